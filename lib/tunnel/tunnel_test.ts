import assert from "node:assert/strict";
import net from "node:net";
import { generateSshKeyPair } from "../ca/mod.ts";
import { testLogger } from "../log/mod.ts";
import { connectSsh } from "../ssh/mod.ts";
import {
  dialLocal,
  type Host,
  nodeSshServer,
  roundRobin,
  startTestPool,
  startTestTunnelServer,
  testCluster,
} from "./_testing.ts";
import type { TunnelServer } from "./server.ts";
import type { AgentPool } from "./agent.ts";

/** Waits until `cond` holds, checking whenever the server or pool reports a change. */
async function until(
  cond: () => boolean,
  changed: () => Promise<void>,
  what: string,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Promise.race([changed(), new Promise((r) => setTimeout(r, 100))]);
  }
}

/** Runs `echo` on the node through the proxy's tunnel; returns stdout. */
async function execThrough(server: TunnelServer, node: Host): Promise<string> {
  const stream = await server.dial(node.id, { clientSrcAddr: "10.1.2.3:5555" });
  const user = await generateSshKeyPair("ed25519");
  // The node fixture admits anyone; log in with a throwaway self-signed "certificate".
  const { signSshCertificate } = await import("../ca/mod.ts");
  const cert = await signSshCertificate({
    signer: user,
    publicKeyBlob: user.publicKeyBlob,
    certType: "user",
    keyId: "u",
    principals: ["u"],
    validAfter: new Date(Date.now() - 60_000),
    validBefore: new Date(Date.now() + 60_000),
    extensions: {},
  });
  const client = await connectSsh({
    socket: stream,
    username: "u",
    key: user,
    certificate: cert.blob,
    verifyHostKey: ({ keyBlob }) => keyBlob.every((b, i) => b === node.key.publicKeyBlob[i]),
    logger: testLogger().logger,
  });
  try {
    const r = await client.exec("echo");
    return new TextDecoder().decode(r.stdout);
  } finally {
    await client.close();
  }
}

Deno.test("a node behind a tunnel serves SSH through the proxy's registry", async () => {
  const cluster = await testCluster();
  const proxy = await cluster.host({ id: "p1", role: "Proxy" });
  const node = await cluster.host({ id: "n1", role: "Node" });
  await using server = await startTestTunnelServer(cluster, proxy);
  await using nodeSsh = await nodeSshServer(node);
  await using pool = startTestPool(cluster, node, () => server.addr.port, nodeSsh);
  await pool.ready();
  assert.deepEqual(pool.proxies, ["p1"]);
  await until(() => server.has("n1"), () => server.changed(), "registration");
  assert.equal(await execThrough(server, node), "hello from n1\n");
  assert.equal(await execThrough(server, node), "hello from n1\n");
  const [info] = server.tunnels();
  assert.equal(info?.hostId, "n1");
  await assert.rejects(server.dial("nobody"), { name: "NotFoundError" });
});

Deno.test("the agent refuses a proxy whose certificate lacks the dialled name or CA", async (t) => {
  const cluster = await testCluster();
  const node = await cluster.host({ id: "n1", role: "Node" });
  await using nodeSsh = await nodeSshServer(node);
  const cases: Array<[string, Parameters<typeof cluster.host>[0], RegExp]> = [
    [
      "missing principal",
      { id: "p1", role: "Proxy", principals: ["p1.x", "elsewhere"] },
      /does not list "127.0.0.1"/,
    ],
    ["wrong role", { id: "p1", role: "Node" }, /not a proxy's/],
    [
      "wrong CA",
      { id: "p1", role: "Proxy", signer: await generateSshKeyPair("ed25519") },
      /Cannot trust the proxy/,
    ],
  ];
  for (const [name, hostSpec, pattern] of cases) {
    await t.step(name, async () => {
      const proxy = await cluster.host(hostSpec);
      await using server = await startTestTunnelServer(cluster, proxy);
      const { logger, records } = testLogger();
      const errors = () =>
        records.filter((r) => r.level === "warn").map((r) => String(r.properties?.error));
      await using pool = startTestPool(cluster, node, () => server.addr.port, nodeSsh, { logger });
      await until(
        () => errors().some((e) => pattern.test(e)),
        () => new Promise((r) => setTimeout(r, 50)),
        `a refusal matching ${pattern} (seen: ${errors().join(" | ")})`,
        5000,
      );
      assert.deepEqual(pool.proxies, []);
      await until(() => !server.has("n1"), () => server.changed(), "the refused tunnel gone");
    });
  }
});

Deno.test("the proxy refuses agents with user or foreign certificates", async () => {
  const cluster = await testCluster();
  const proxy = await cluster.host({ id: "p1", role: "Proxy" });
  const foreign = await cluster.host({ id: "n2", role: "Node", cluster: "other" });
  await using server = await startTestTunnelServer(cluster, proxy);
  await using nodeSsh = await nodeSshServer(foreign);
  const pool = startTestPool(cluster, foreign, () => server.addr.port, nodeSsh);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(pool.proxies, []);
  assert.equal(server.connectionCount, 0);
  await pool.close();
});

Deno.test("an agent behind a load balancer holds tunnels to every proxy and moves off a draining one", async () => {
  const cluster = await testCluster();
  const p1 = await cluster.host({ id: "p1", role: "Proxy" });
  const p2 = await cluster.host({ id: "p2", role: "Proxy" });
  const node = await cluster.host({ id: "n1", role: "Node" });
  const live = new Set(["p1", "p2"]);
  const listProxies = () => Promise.resolve([...live]);
  await using s1 = await startTestTunnelServer(cluster, p1, {
    listProxies,
    discoveryIntervalMs: 100,
  });
  const s2 = await startTestTunnelServer(cluster, p2, { listProxies, discoveryIntervalMs: 100 });
  const ports = [s1.addr.port, s2.addr.port];
  await using lb = await roundRobin(() => ports);
  await using nodeSsh = await nodeSshServer(node);
  await using pool = startTestPool(cluster, node, () => lb.port, nodeSsh);
  await until(() => pool.proxies.length === 2, () => pool.changed(), "tunnels to both proxies");
  assert.deepEqual(pool.proxies, ["p1", "p2"]);
  assert.equal(await execThrough(s2, node), "hello from n1\n");

  // p2 shuts down: it leaves the proxy list and asks its agents to go elsewhere.
  live.delete("p2");
  ports.splice(1, 1);
  await s2.drain(5000);
  await s2.close();
  await until(() => pool.proxies.join() === "p1", () => pool.changed(), "p2 gone");
  assert.equal(await execThrough(s1, node), "hello from n1\n");
});

Deno.test("an agent reaches auth through the proxy (@remote-auth-server) and nothing else", async () => {
  const cluster = await testCluster();
  const proxy = await cluster.host({ id: "p1", role: "Proxy" });
  const node = await cluster.host({ id: "n1", role: "Node" });
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  const echoPort = (echo.address() as net.AddressInfo).port;
  try {
    await using server = await startTestTunnelServer(cluster, proxy, {
      dialAuth: () => dialLocal("127.0.0.1", echoPort),
    });
    await using nodeSsh = await nodeSshServer(node);
    await using pool: AgentPool = startTestPool(cluster, node, () => server.addr.port, nodeSsh);
    await pool.ready();
    const stream = await pool.dialAuth();
    const got = new Promise<string>((resolve) => stream.once("data", (d) => resolve(String(d))));
    stream.write("ping");
    assert.equal(await got, "ping");
    stream.destroy();
  } finally {
    await new Promise((r) => echo.close(r));
  }
});

Deno.test("a tunnel node that goes away is reported, and the agent reconnects after a proxy restart", async () => {
  const cluster = await testCluster();
  const proxy = await cluster.host({ id: "p1", role: "Proxy" });
  const node = await cluster.host({ id: "n1", role: "Node" });
  let server = await startTestTunnelServer(cluster, proxy);
  const port = server.addr.port;
  await using nodeSsh = await nodeSshServer(node);
  const pool = startTestPool(cluster, node, () => port, nodeSsh);
  try {
    await pool.ready();
    await server.close();
    await until(() => pool.proxies.length === 0, () => pool.changed(), "tunnel down");
    server = await startTestTunnelServer(cluster, proxy, {
      listen: { hostname: "127.0.0.1", port },
    });
    await until(() => pool.proxies.length === 1, () => pool.changed(), "tunnel back");
    assert.equal(await execThrough(server, node), "hello from n1\n");
    await pool.close();
    await until(() => !server.has("n1"), () => server.changed(), "registry cleared");
    await assert.rejects(server.dial("n1"), /no reverse tunnel/);
  } finally {
    await pool.close();
    await server.close();
  }
});
