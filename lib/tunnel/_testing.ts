/** Test fixtures: a cluster's host CA, proxy and node host certificates, a node SSH server. */
import net from "node:net";
import type { Duplex } from "node:stream";
import { generateSshKeyPair, signSshCertificate, type SshKeyPair } from "../ca/mod.ts";
import { RealClock } from "../clock/mod.ts";
import { testLogger } from "../log/mod.ts";
import { type SshServer, startSshServer } from "../ssh/mod.ts";
import { AgentPool, type AgentPoolOptions } from "./agent.ts";
import { TunnelServer, type TunnelServerOptions } from "./server.ts";

export const CLUSTER = "tunnel.test";

/** A host key with its certificate. */
export interface Host {
  id: string;
  key: SshKeyPair;
  cert: Uint8Array;
}

/** A cluster host CA that issues proxy and node certificates. */
export interface TestCluster {
  ca: SshKeyPair;
  host(o: {
    id: string;
    role: "Node" | "Proxy";
    principals?: string[];
    cluster?: string;
    signer?: SshKeyPair;
  }): Promise<Host>;
}

export async function testCluster(): Promise<TestCluster> {
  const ca = await generateSshKeyPair("ed25519");
  return {
    ca,
    async host(o) {
      const key = await generateSshKeyPair("ed25519");
      const now = Date.now();
      const signed = await signSshCertificate({
        signer: o.signer ?? ca,
        publicKeyBlob: key.publicKeyBlob,
        certType: "host",
        keyId: o.id,
        principals: o.principals ?? [`${o.id}.${CLUSTER}`, o.id, "localhost", "127.0.0.1"],
        validAfter: new Date(now - 60_000),
        validBefore: new Date(now + 3_600_000),
        extensions: {
          "x-teleport-role": o.role,
          "x-teleport-authority": o.cluster ?? CLUSTER,
        },
      });
      return { id: o.id, key, cert: signed.blob };
    },
  };
}

/** A node SSH server that answers every exec with "hello from <id>" and exit 0. */
export function nodeSshServer(node: Host): Promise<SshServer<null>> {
  return startSshServer<null>({
    hostKey: node.key,
    hostCertificate: node.cert,
    logger: testLogger().logger,
    authenticate: () => ({ ok: true, context: null }),
    handlers: {
      session: (open) => {
        open.accept((req) => {
          if (req.type !== "exec") return req.reject();
          const ch = req.accept();
          ch.write(`hello from ${node.id}\n`);
          ch.exit(0);
          ch.end();
        });
      },
    },
  });
}

/** A tunnel server on 127.0.0.1:0 for `proxy`. */
export function startTestTunnelServer(
  cluster: TestCluster,
  proxy: Host,
  extra: Partial<TunnelServerOptions> = {},
): Promise<TunnelServer> {
  return TunnelServer.start({
    hostKey: proxy.key,
    hostCertificate: proxy.cert,
    hostCaKeys: () => [cluster.ca.publicKeyBlob],
    clusterName: CLUSTER,
    proxyId: proxy.id,
    dialAuth: () => Promise.reject(new Error("no auth in this test")),
    version: "test",
    clock: new RealClock(),
    logger: testLogger().logger,
    listen: { hostname: "127.0.0.1", port: 0 },
    keepaliveIntervalMs: 0,
    ...extra,
  });
}

/** An agent pool for `node` dialling 127.0.0.1:`port()`, serving `server`. */
export function startTestPool(
  cluster: TestCluster,
  node: Host,
  port: () => number,
  server: SshServer<null>,
  extra: Partial<AgentPoolOptions> = {},
): AgentPool {
  return AgentPool.start({
    hostId: node.id,
    clusterName: CLUSTER,
    key: node.key,
    certificate: node.cert,
    hostCaKeys: () => [cluster.ca.publicKeyBlob],
    resolve: () => Promise.resolve({ host: "127.0.0.1", port: port(), tls: false, source: "test" }),
    dial: dialLocal,
    serveLocalNode: (stream) => server.handleSocket(stream),
    version: "test-agent",
    clock: new RealClock(),
    logger: testLogger().logger,
    keepaliveIntervalMs: 0,
    backoff: { baseMs: 50, maxMs: 400 },
    duplicateBackoff: { baseMs: 20, maxMs: 100 },
    connectTimeoutMs: 5000,
    ...extra,
  });
}

/** Plain TCP to 127.0.0.1 with no-delay. */
export function dialLocal(host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.setNoDelay(true);
    s.once("error", reject);
    s.once("connect", () => {
      s.removeAllListeners("error");
      resolve(s);
    });
  });
}

/** A TCP load balancer on 127.0.0.1:0 sending connections to `targets` in turn. */
export async function roundRobin(
  targets: () => number[],
): Promise<{ port: number } & AsyncDisposable> {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    const ports = targets();
    const port = ports[next++ % ports.length]!;
    const up = net.connect({ host: "127.0.0.1", port });
    sockets.add(up);
    up.on("close", () => sockets.delete(up));
    client.pipe(up).pipe(client);
    const done = () => {
      client.destroy();
      up.destroy();
    };
    client.on("error", done);
    up.on("error", done);
    client.on("close", done);
    up.on("close", done);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
