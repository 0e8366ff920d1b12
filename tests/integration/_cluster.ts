/** An in-process auth cluster on 127.0.0.1:0 with the memory backend, for integration tests. */
import { AuthClient } from "../../lib/authclient/mod.ts";
import { type ProcessConfig, resolveProcessConfig } from "../../lib/config/mod.ts";
import { type IdentityFile, readIdentityFile } from "../../lib/identity/mod.ts";
import { type AuthReady, TeleportProcess } from "../../lib/service/mod.ts";

/** A running test cluster; dispose stops it and removes its data dir. */
export interface TestCluster extends AsyncDisposable {
  proc: TeleportProcess;
  ready: AuthReady;
  admin: IdentityFile;
  /** A client of this cluster's auth API (trusting its host CA). */
  client(o?: Partial<ConstructorParameters<typeof AuthClient>[0]>): AuthClient;
  /** A client authenticated with the admin identity. */
  adminClient(): AuthClient;
}

/** Starts the auth service in-process and waits for `auth.ready`. */
export async function startTestCluster(
  opts: { configure?: (c: ProcessConfig) => void } = {},
): Promise<TestCluster> {
  const dataDir = await Deno.makeTempDir({ prefix: "tp-int-" });
  const config = resolveProcessConfig({
    flags: { roles: "auth", dataDir, clusterName: "example" },
    hostname: "testhost",
    env: {},
  });
  config.auth.listenAddr = { host: "127.0.0.1", port: 0 };
  // Tests join many hosts from 127.0.0.1; the per-address limit has its own tests
  // (lib/auth/listener_test.ts).
  config.connectionLimits.unauthenticatedRate = { burst: 10_000, perMinute: 10_000 };
  opts.configure?.(config);
  const proc = await TeleportProcess.start({ config, hostname: "testhost", backendUri: "memory:" });
  const ready = await proc.supervisor.waitFor("auth.ready") as AuthReady;
  const admin = await readIdentityFile(ready.adminIdentityPath);
  const client = (o: Partial<ConstructorParameters<typeof AuthClient>[0]> = {}) =>
    new AuthClient({ host: "127.0.0.1", port: ready.port, caCertPems: admin.tlsCaCertPems, ...o });
  return {
    proc,
    ready,
    admin,
    client,
    adminClient: () => client({ identity: { certPem: admin.tlsCertPem, keyPem: admin.keyPem } }),
    async [Symbol.asyncDispose]() {
      await proc.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}
