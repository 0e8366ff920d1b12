/**
 * connectToNode() and dialProxySsh() against a fake proxy SSH server (lib/ssh, certificate
 * logins, `proxy:<host>:<port>` routed to in-process nodes), plain and over TLS routing.
 */
import assert from "node:assert/strict";
import tls from "node:tls";
import type { Socket } from "node:net";
import { generateSshKeyPair, generateTlsKeyPair } from "../ca/mod.ts";
import { ALPN_PROXY_SSH } from "../multiplex/mod.ts";
import type { ProxyResource, ServerResource } from "../resource/mod.ts";
import type { ClusterApi } from "./cluster.ts";
import { withListCache } from "./list_cache.ts";
import {
  fakeClusterApi,
  startFakeNode,
  startFakeSshProxy,
  type TestCluster,
  testCluster,
  webCertificate,
} from "./_testing.ts";
import { type ClientContext, connectToNode, dialProxySsh, resolveNode } from "./dial.ts";
import type { ProfileKeys } from "./profile.ts";

async function userKeys(cluster: TestCluster): Promise<ProfileKeys> {
  const sshKey = await generateSshKeyPair("ed25519");
  const t = await generateTlsKeyPair();
  return {
    sshKey,
    sshCert: await cluster.userCert(sshKey.publicKeyBlob, "alice", ["root", "alice"]),
    tlsKeyPem: t.privateKeyPem,
    tlsCertPem: "",
    hostCaTlsCerts: [cluster.tlsCa.certPem],
    hostCaKeys: [cluster.hostCaLine],
  };
}

function context(
  cluster: TestCluster,
  keys: ProfileKeys,
  sshPort: number,
  nodes: ServerResource[],
  proxies: Parameters<typeof fakeClusterApi>[1],
): ClientContext {
  return {
    profile: {
      name: "127.0.0.1",
      webProxyAddr: { host: "127.0.0.1", port: 1 },
      sshProxyAddr: { host: "127.0.0.1", port: sshPort },
      user: "alice",
      cluster: cluster.name,
      tlsRoutingEnabled: false,
      validUntil: new Date(Date.now() + 3_600_000),
    },
    keys,
    trust: {},
    api: fakeClusterApi(nodes, proxies),
    timeoutMs: 10_000,
  };
}

Deno.test("connectToNode() runs a command on a node through the proxy subsystem", async () => {
  const cluster = await testCluster("c1");
  const node = await startFakeNode(cluster, { hostname: "web1" });
  await using proxy = await startFakeSshProxy(cluster, [node]);
  const ctx = context(cluster, await userKeys(cluster), proxy.server.addr.port, [node.resource], [
    proxy.resource,
  ]);
  await using conn = await connectToNode(ctx, { target: "web1", login: "root" });
  assert.equal(conn.node.metadata.name, node.uuid);
  const r = await conn.client.exec("uptime");
  assert.equal(new TextDecoder().decode(r.stdout), "root ran uptime\n");
  assert.equal(r.exitCode, 0);
  assert.equal((await conn.client.exec("fail")).exitCode, 3);
  assert.deepEqual(proxy.subsystems, [`proxy:${node.uuid}:0`]);
});

Deno.test("connectToNode() refuses a node whose key is not the one in its certificate", async () => {
  const cluster = await testCluster("c1");
  const uuid = crypto.randomUUID();
  const published = await cluster.hostCert({
    key: await generateSshKeyPair("ed25519"),
    principals: [uuid],
    role: "Node",
  });
  const node = await startFakeNode(cluster, { uuid, hostname: "web1", hostCert: published });
  await using proxy = await startFakeSshProxy(cluster, [node]);
  const ctx = context(cluster, await userKeys(cluster), proxy.server.addr.port, [node.resource], [
    proxy.resource,
  ]);
  await assert.rejects(
    connectToNode(ctx, { target: "web1", login: "root" }),
    new RegExp(
      `Cannot trust the SSH host key of node "web1" \\(${uuid}\\): the server presented key`,
    ),
  );
});

Deno.test("connectToNode() names the node and the fix when it does not exist", async () => {
  const cluster = await testCluster("c1");
  const node = await startFakeNode(cluster, { hostname: "web1" });
  await using proxy = await startFakeSshProxy(cluster, [node]);
  const ctx = context(cluster, await userKeys(cluster), proxy.server.addr.port, [node.resource], [
    proxy.resource,
  ]);
  await assert.rejects(
    connectToNode(ctx, { target: "db9", login: "root" }),
    { message: 'Cannot find node "db9" (or you may not access it); run tsh ls' },
  );
});

Deno.test("dialProxySsh() refuses a proxy whose key no proxy certificate certifies", async () => {
  const cluster = await testCluster("c1");
  const other = await cluster.hostCert({
    key: await generateSshKeyPair("ed25519"),
    principals: ["x"],
    role: "Proxy",
  });
  await using proxy = await startFakeSshProxy(cluster, [], { hostCert: other });
  const ctx = context(cluster, await userKeys(cluster), proxy.server.addr.port, [], [
    proxy.resource,
  ]);
  await assert.rejects(
    dialProxySsh(ctx, { login: "root" }),
    /Cannot trust the SSH host key of proxy 127\.0\.0\.1:\d+: it presented key SHA256:.*, which no proxy host certificate of cluster c1 certifies/,
  );
});

Deno.test("dialProxySsh() refuses a proxy presenting a node certificate", async () => {
  const cluster = await testCluster("c1");
  const node = await startFakeNode(cluster, { hostname: "web1" });
  await using proxy = await startFakeSshProxy(cluster, []);
  // The proxy's presence says its certificate is a Node certificate for its real key.
  const key = proxy.resource.spec.host_cert!;
  const asNode = { ...proxy.resource, spec: { ...proxy.resource.spec, host_cert: key } };
  const ctx = context(cluster, await userKeys(cluster), proxy.server.addr.port, [], [asNode]);
  // Sanity: the real certificate passes.
  const client = await dialProxySsh(ctx, { login: "root" });
  await client.close();
  const forged = await cluster.hostCert({
    key: { publicKeyBlob: client.hostKey } as never,
    principals: ["p"],
    role: "Node",
  });
  const bad = { ...proxy.resource, spec: { ...proxy.resource.spec, host_cert: forged } };
  await assert.rejects(
    dialProxySsh(context(cluster, ctx.keys, proxy.server.addr.port, [], [bad]), { login: "root" }),
    /its certificate is for role "Node", not Proxy/,
  );
  await node.server.close();
});

Deno.test("dialProxySsh() names the proxy when its SSH port is closed or hangs up", async () => {
  const cluster = await testCluster("c1");
  const keys = await userKeys(cluster);
  await using proxy = await startFakeSshProxy(cluster, []);
  const port = proxy.server.addr.port;
  await proxy.server.close();
  await assert.rejects(
    dialProxySsh(context(cluster, keys, port, [], [proxy.resource]), { login: "root" }),
    new RegExp(
      `^ConnectionProblemError: Cannot connect to 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`,
    ),
  );
  // TLS routing to a web port that hangs up after the handshake.
  const web = await webCertificate();
  const server = tls.createServer({
    cert: web.certPem,
    key: web.keyPem,
    ALPNProtocols: [ALPN_PROXY_SSH],
  }, (s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const webPort = (server.address() as { port: number }).port;
  try {
    const base = context(cluster, keys, 1, [], [proxy.resource]);
    const ctx: ClientContext = {
      ...base,
      profile: {
        ...base.profile,
        tlsRoutingEnabled: true,
        webProxyAddr: { host: "127.0.0.1", port: webPort },
      },
      trust: { caCertPems: [web.caPem] },
    };
    await assert.rejects(dialProxySsh(ctx, { login: "root" }), (e: Error) => {
      assert.equal(e.name, "ConnectionProblemError");
      assert.match(e.message, new RegExp(`proxy 127\\.0\\.0\\.1:${webPort} \\(TLS routing\\)`));
      assert.ok(!e.message.includes("the given stream"), e.message);
      return true;
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

Deno.test("dialProxySsh() logs in over TLS routing with the web trust", async () => {
  const cluster = await testCluster("c1");
  const node = await startFakeNode(cluster, { hostname: "web1" });
  await using proxy = await startFakeSshProxy(cluster, [node], { listen: false });
  const web = await webCertificate();
  const sockets = new Set<Socket>();
  const server = tls.createServer({
    cert: web.certPem,
    key: web.keyPem,
    ALPNProtocols: [ALPN_PROXY_SSH],
  }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    proxy.server.handleSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const base = context(cluster, await userKeys(cluster), 1, [node.resource], [proxy.resource]);
    const ctx: ClientContext = {
      ...base,
      profile: {
        ...base.profile,
        tlsRoutingEnabled: true,
        webProxyAddr: { host: "127.0.0.1", port },
      },
      trust: { caCertPems: [web.caPem] },
    };
    await using conn = await connectToNode(ctx, { target: node.uuid, login: "alice" });
    const r = await conn.client.exec("id");
    assert.equal(new TextDecoder().decode(r.stdout), "alice ran id\n");
    // A pinned certificate that is not the proxy's is refused before any SSH.
    await assert.rejects(
      dialProxySsh({ ...ctx, trust: { pinnedSha256: "11".repeat(32) } }, { login: "alice" }),
      /its certificate changed since you logged in with --insecure/,
    );
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

/**
 * A context whose API serves `live` (changed by the test) through a list cache in a temp dir,
 * and counts the live calls.
 */
async function cachedContext(
  base: ClientContext,
  live: { nodes: ServerResource[]; proxies: ProxyResource[] },
) {
  const dir = await Deno.makeTempDir({ prefix: "tp-dial-cache-" });
  const calls = { nodes: 0, proxies: 0 };
  const api: ClusterApi = {
    listNodes: () => (calls.nodes++, Promise.resolve(live.nodes)),
    listProxies: () => (calls.proxies++, Promise.resolve(live.proxies)),
    listSessionTrackers: () => Promise.resolve([]),
    getSessionTracker: () => Promise.reject(new Error("none")),
    downloadRecording: () => Promise.reject(new Error("none")),
    close: () => {},
  };
  const ctx: ClientContext = {
    ...base,
    api: withListCache(api, { path: `${dir}/c1.json`, sshCert: base.keys.sshCert }),
    listMaxAgeMs: 60_000,
  };
  return {
    ctx,
    calls,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("connectToNode() dials from cached lists without asking the cluster", async () => {
  const cluster = await testCluster("c1");
  const node = await startFakeNode(cluster, { hostname: "web1" });
  await using proxy = await startFakeSshProxy(cluster, [node]);
  const base = context(cluster, await userKeys(cluster), proxy.server.addr.port, [], []);
  const live = { nodes: [node.resource], proxies: [proxy.resource] };
  await using c = await cachedContext(base, live);
  await (await connectToNode(c.ctx, { target: "web1", login: "root" })).close();
  assert.deepEqual(c.calls, { nodes: 1, proxies: 1 });
  await using conn = await connectToNode(c.ctx, { target: "web1", login: "root" });
  assert.equal((await conn.client.exec("uptime")).exitCode, 0);
  assert.deepEqual(c.calls, { nodes: 1, proxies: 1 });
});

Deno.test("connectToNode() asks again when a cached entry is missing or wrong", async (t) => {
  const cluster = await testCluster("c1");
  const keys = await userKeys(cluster);
  const node = await startFakeNode(cluster, { hostname: "web1" });
  await using proxy = await startFakeSshProxy(cluster, [node]);
  const base = context(cluster, keys, proxy.server.addr.port, [], []);
  // The same node name under a key the node does not have (it re-registered since).
  const oldCert = await cluster.hostCert({
    key: await generateSshKeyPair("ed25519"),
    principals: [node.uuid],
    role: "Node",
  });
  const oldNode = { ...node.resource, spec: { ...node.resource.spec, host_cert: oldCert } };
  const otherProxyCert = await cluster.hostCert({
    key: await generateSshKeyPair("ed25519"),
    principals: ["x"],
    role: "Proxy",
  });
  const oldProxy = {
    ...proxy.resource,
    spec: { ...proxy.resource.spec, host_cert: otherProxyCert },
  };

  await t.step("a node and a proxy the cached lists do not have", async () => {
    const live = { nodes: [] as ServerResource[], proxies: [] as ProxyResource[] };
    await using c = await cachedContext(base, live);
    await c.ctx.api.listNodes();
    await c.ctx.api.listProxies();
    live.nodes = [node.resource];
    live.proxies = [proxy.resource];
    await using conn = await connectToNode(c.ctx, { target: "web1", login: "root" });
    assert.equal((await conn.client.exec("uptime")).exitCode, 0);
    assert.deepEqual(c.calls, { nodes: 2, proxies: 2 });
  });

  await t.step("host certificates of older keys", async () => {
    const live: { nodes: ServerResource[]; proxies: ProxyResource[] } = {
      nodes: [oldNode],
      proxies: [oldProxy],
    };
    await using c = await cachedContext(base, live);
    await c.ctx.api.listNodes();
    await c.ctx.api.listProxies();
    live.nodes = [node.resource];
    live.proxies = [proxy.resource];
    await using conn = await connectToNode(c.ctx, { target: "web1", login: "root" });
    assert.equal((await conn.client.exec("uptime")).exitCode, 0);
    assert.deepEqual(c.calls, { nodes: 2, proxies: 2 });
  });

  await t.step("the cluster still says the same: refused once, not retried", async () => {
    const live: { nodes: ServerResource[]; proxies: ProxyResource[] } = {
      nodes: [oldNode],
      proxies: [proxy.resource],
    };
    await using c = await cachedContext(base, live);
    await assert.rejects(
      connectToNode(c.ctx, { target: "web1", login: "root" }),
      /Cannot trust the SSH host key of node "web1"/,
    );
    assert.equal(c.calls.nodes, 2);
    assert.equal(proxy.subsystems.filter((s) => s === `proxy:${node.uuid}:0`).length, 4);
  });
});

Deno.test("resolveNode() matches UUID, name, name.cluster and address; refuses ambiguity", () => {
  const n = (uuid: string, hostname: string, addr: string): ServerResource => ({
    kind: "node",
    version: "v2",
    metadata: { name: uuid },
    spec: { hostname, addr, version: "1" },
  });
  const nodes = [
    n("u1", "web", "10.0.0.1:3022"),
    n("u2", "web", "10.0.0.2:3022"),
    n("u3", "db", "10.0.0.3:3022"),
  ];
  assert.equal(resolveNode(nodes, "u2", "c1").metadata.name, "u2");
  assert.equal(resolveNode(nodes, "db", "c1").metadata.name, "u3");
  assert.equal(resolveNode(nodes, "db.c1", "c1").metadata.name, "u3");
  assert.equal(resolveNode(nodes, "10.0.0.2", "c1").metadata.name, "u2");
  assert.equal(resolveNode(nodes, "10.0.0.1:3022", "c1").metadata.name, "u1");
  assert.throws(
    () => resolveNode(nodes, "web", "c1"),
    /Cannot pick node "web": 2 nodes match \(u1 \(10\.0\.0\.1:3022\), u2 \(10\.0\.0\.2:3022\)\); name one by its host UUID instead/,
  );
  assert.throws(() => resolveNode(nodes, "x", "c1"), /Cannot find node "x"/);
});
