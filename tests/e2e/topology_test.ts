/**
 * Reverse tunnels in real network topologies (issue 5), every host a network namespace
 * (tests/e2e/_netns.ts). In each topology a user enrolls and runs `tsh login` from a client host,
 * a node joins through the proxy and holds reverse tunnels (it listens on nothing), and from the
 * client both `tsh ssh root@<node> 'echo ok-<n>'` and the stock `ssh -F <tsh config>
 * root@<node>.<cluster>` reach it:
 *
 * 1. a node behind a NAT firewall (nothing from outside gets in);
 * 2. HTTP CONNECT only: the node's LAN has no router, tinyproxy with Basic auth is the way out;
 *    then NO_PROXY=proxy.example.com:3024 in separate mode (tunnel direct, join via tinyproxy);
 * 3. one open port on the cluster host (3080, multiplex), then 3023/3024/3080 (separate);
 * 4. two proxies behind haproxy with one web certificate: the node tunnels to both, and tsh
 *    works again after one proxy stops;
 * 5. internal/external proxy addresses (seed 003): TELEPORT_TUNNEL_PUBLIC_ADDR with two
 *    public_addr names, then tunnel_public_addr in separate mode with proxy_server on port 3024.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  firewallRules,
  type Host,
  note,
  type Proc,
  startHaproxy,
  startTcpServer,
  startTinyproxy,
  Topology,
} from "./_netns.ts";
import {
  addToken,
  enrollUser,
  type JoinToken,
  type Started,
  startTeleportIn,
  stockSsh,
  tsh,
  type TshClient,
  tshLogin,
  tshSshEventually,
  waitForTunnels,
  writeTeleportConfig,
  writeWebCert,
} from "./_topology_enroll.ts";

const USER = "alice";
const LOGIN = "root";
const SKIP = skipGroup("topology");
/** How long a node may take from start to its tunnels being up. */
const TUNNEL_TIMEOUT_MS = 45_000;

/** Sequential steps; after a failure the remaining steps are reported as ignored. */
function stepper(t: Deno.TestContext, topo: Topology) {
  let failed: string | undefined;
  return async (name: string, fn: () => Promise<void>): Promise<boolean> => {
    if (failed !== undefined) {
      await t.step({ name: `${name} (not run: an earlier step failed)`, ignore: true, fn() {} });
      return false;
    }
    const ok = await topo.step(t, name, fn);
    if (!ok) failed = name;
    return ok;
  };
}

/** Cluster (auth+proxy) settings of one variant. */
interface ClusterSpec {
  cluster: string;
  mode: "multiplex" | "separate";
  publicAddr: string[];
  tunnelPublicAddr?: string[];
}

/** A running auth+proxy host. */
interface Cluster extends Started {
  config: string;
  spec: ClusterSpec;
}

/** Writes the config of an auth+proxy host (separate mode: 3023/3024/3080) and starts it. */
async function startCluster(
  topo: Topology,
  host: Host,
  spec: ClusterSpec,
): Promise<Cluster> {
  const dir = `${topo.dir}/${spec.cluster}`;
  await Deno.mkdir(dir, { recursive: true });
  const config = await writeTeleportConfig(`${dir}/teleport.yaml`, {
    nodename: host.name,
    dataDir: `${dir}/data`,
    auth: { clusterName: spec.cluster, mode: spec.mode },
    proxy: {
      webListenAddr: "0.0.0.0:3080",
      ...(spec.mode === "separate"
        ? { listenAddr: "0.0.0.0:3023", tunnelListenAddr: "0.0.0.0:3024" }
        : {}),
      publicAddr: spec.publicAddr,
      ...(spec.tunnelPublicAddr ? { tunnelPublicAddr: spec.tunnelPublicAddr } : {}),
    },
  });
  const started = await startTeleportIn(host, ["--config", config], { name: spec.cluster });
  assert.match(started.banner, /Web proxy:\s+https:\/\//);
  return { ...started, config, spec };
}

/** Enrolls alice (logins=root) through `proxy` from the client and logs in with tsh. */
async function enrollAndLogin(
  auth: Host,
  config: string,
  client: TshClient,
  proxy: string,
): Promise<void> {
  const totp = await enrollUser({
    auth,
    config,
    client: client.host,
    proxy,
    user: USER,
    roles: "access",
    logins: LOGIN,
  });
  await tshLogin(client, { proxy, user: USER, totp });
  const st = await tsh(client, ["status"]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, new RegExp(USER));
}

/** Options of {@link startNode}. */
interface NodeSpec {
  name: string;
  proxyServer: string;
  join: JoinToken;
  env?: Record<string, string>;
  /** Join settings in a config file instead of flags. */
  viaConfigFile?: boolean;
}

/**
 * Starts a tunnel node on `host` (`--roles=node --proxy-server … --insecure`, or the same in a
 * config file) and waits for its banner, which it prints once it has joined.
 */
async function startNode(topo: Topology, host: Host, n: NodeSpec): Promise<Started> {
  const dataDir = `${topo.dir}/${n.name}-data`;
  let args: string[];
  if (n.viaConfigFile) {
    const config = await writeTeleportConfig(`${topo.dir}/${n.name}.yaml`, {
      nodename: n.name,
      dataDir,
      ssh: { labels: { topology: "yes" } },
      join: { proxyServer: n.proxyServer, token: n.join.token, caPins: n.join.pins },
    });
    args = ["--config", config, "--insecure"];
  } else {
    args = [
      "--roles=node",
      `--proxy-server=${n.proxyServer}`,
      `--token=${n.join.token}`,
      ...n.join.pins.map((p) => `--ca-pin=${p}`),
      "--insecure",
      `--data-dir=${dataDir}`,
      `--nodename=${n.name}`,
    ];
  }
  return await startTeleportIn(host, args, {
    name: n.name,
    timeoutMs: TUNNEL_TIMEOUT_MS,
    ...(n.env ? { env: n.env } : {}),
  });
}

/** Waits for `count` tunnels of a node; returns proxy id → address. */
async function tunnelsOf(node: Proc, count: number): Promise<Map<string, string>> {
  return await waitForTunnels(node, count, TUNNEL_TIMEOUT_MS);
}

/** Listening TCP sockets in a host's namespace, as `addr:port` strings. */
async function listeners(host: Host): Promise<string[]> {
  const r = await host.exec("ss", ["-ltnH"]);
  return r.stdout.split("\n").filter((l) => l.trim() !== "").map((l) => l.split(/\s+/)[3]!);
}

/** Both clients reach `node`: tsh ssh prints ok-<n>, stock ssh through tsh config prints ok. */
async function reachNode(
  step: ReturnType<typeof stepper>,
  topo: Topology,
  c: TshClient,
  node: string,
  cluster: string,
  n: string,
): Promise<void> {
  await step(`tsh ssh ${LOGIN}@${node} 'echo ok-${n}' from the client`, async () => {
    const r = await tshSshEventually(c, `${LOGIN}@${node}`, `echo ok-${n}`);
    assert.equal(r.stdout.trim(), `ok-${n}`, r.stderr);
  });
  await step(`stock ssh -F <tsh config> ${LOGIN}@${node}.${cluster} from the client`, async () => {
    const r = await stockSsh(topo, c, `${LOGIN}@${node}.${cluster}`, "echo ok");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "ok");
  });
}

Deno.test({
  name: "topology 1: a node behind a NAT firewall dials out; tsh and stock ssh reach it",
  ignore: SKIP,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "t1" });
    const step = stepper(t, topo);
    const out = await topo.addLan("out", "10.1.0.0/24");
    const inside = await topo.addLan("in", "10.2.0.0/24");
    const fw = await topo.addRouter("fw", {
      lans: [{ lan: out, ip: "10.1.0.1" }, { lan: inside, ip: "10.2.0.1" }],
      firewall: { inside: "in0", outside: "out0" },
    });
    // Outside hosts even route the inside subnet through the firewall: only its rules stop them.
    const toInside = [{ to: "10.2.0.0/24", via: fw.ip(out) }];
    const clusterHost = await topo.addHost("cluster", {
      lans: [{ lan: out, ip: "10.1.0.2" }],
      routes: toInside,
    });
    const clientHost = await topo.addHost("client", {
      lans: [{ lan: out, ip: "10.1.0.10" }],
      routes: toInside,
    });
    const nodeHost = await topo.addHost("node1", {
      lans: [{ lan: inside, ip: "10.2.0.10" }],
      gateway: fw.ip(inside),
    });
    await topo.addNames({ "proxy.example.com": clusterHost.ip() });
    const client: TshClient = { host: clientHost, home: `${topo.dir}/tsh` };
    const proxy = "proxy.example.com:3080";
    let cluster: Cluster | undefined;
    let node: Started | undefined;

    await step(
      "the cluster host starts auth and proxy (multiplex, proxy.example.com:3080)",
      async () => {
        cluster = await startCluster(topo, clusterHost, {
          cluster: "topo1",
          mode: "multiplex",
          publicAddr: [proxy],
        });
      },
    );
    await step("alice enrolls and logs in with tsh from the client host", async () => {
      await enrollAndLogin(clusterHost, cluster!.config, client, proxy);
    });
    await step("nothing on the outside can connect into the node's network", async () => {
      const canary = await startTcpServer(nodeHost, { port: 7000 });
      assert.equal(await fw.canConnect(nodeHost.ip(), 7000), true, "the router reaches it");
      assert.equal(await clusterHost.canConnect(nodeHost.ip(), 7000, 1_000), false);
      assert.equal(await clientHost.canConnect(nodeHost.ip(), 7000, 1_000), false);
      await canary.stop();
      assert.equal(await nodeHost.canConnect("proxy.example.com", 3080), true, "dials out");
    });
    await step("the node joins through the firewall and holds a reverse tunnel", async () => {
      const join = await addToken(clusterHost, cluster!.config, "node");
      node = await startNode(topo, nodeHost, { name: "node1", proxyServer: proxy, join });
      const tunnels = await tunnelsOf(node.proc, 1);
      assert.deepEqual([...tunnels.values()], [proxy]);
      assert.deepEqual(await listeners(nodeHost), [], "a tunnel node listens on nothing");
    });
    await reachNode(step, topo, client, "node1", "topo1", "1");
  },
});

Deno.test({
  name: "topology 2: HTTP CONNECT only (tinyproxy with Basic auth), then NO_PROXY for port 3024",
  ignore: SKIP,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "t2" });
    const step = stepper(t, topo);
    const out = await topo.addLan("out", "10.1.0.0/24");
    const dark = await topo.addLan("dark", "10.5.0.0/24");
    const dmz = await topo.addLan("dmz", "10.6.0.0/24");
    const clusterHost = await topo.addHost("cluster", { lans: [{ lan: out, ip: "10.1.0.2" }] });
    const clientHost = await topo.addHost("client", { lans: [{ lan: out, ip: "10.1.0.10" }] });
    // tinyproxy's host sits on all three LANs and forwards nothing itself.
    const gate = await topo.addHost("gate", {
      lans: [
        { lan: out, ip: "10.1.0.3" },
        { lan: dark, ip: "10.5.0.3" },
        { lan: dmz, ip: "10.6.0.3" },
      ],
    });
    // The dmz's router lets only the proxy's tunnel port 3024 through.
    const fw = await topo.addRouter("fw", {
      lans: [{ lan: out, ip: "10.1.0.1" }, { lan: dmz, ip: "10.6.0.1" }],
      firewall: {
        inside: "dmz0",
        outside: "out0",
        outbound: [`ip daddr ${clusterHost.ip()} tcp dport 3024`],
      },
    });
    const nodeA = await topo.addHost("node2a", { lans: [{ lan: dark, ip: "10.5.0.10" }] });
    const nodeB = await topo.addHost("node2b", {
      lans: [{ lan: dmz, ip: "10.6.0.10" }],
      gateway: fw.ip(dmz),
    });
    await topo.addNames({
      "proxy.example.com": clusterHost.ip(),
      "gate-dark.example.com": gate.ip(dark),
      "gate-dmz.example.com": gate.ip(dmz),
    });
    const proxy = "proxy.example.com:3080";
    const tinyproxy = await startTinyproxy(gate, {
      port: 8888,
      user: "tpuser",
      password: "tp-pass-2",
    });
    let cluster: Cluster | undefined;

    // Variant A: no route at all, everything through tinyproxy.
    await step("variant A: the cluster host starts (multiplex) and alice logs in", async () => {
      cluster = await startCluster(topo, clusterHost, {
        cluster: "topo2a",
        mode: "multiplex",
        publicAddr: [proxy],
      });
      await enrollAndLogin(clusterHost, cluster.config, {
        host: clientHost,
        home: `${topo.dir}/tsh-a`,
      }, proxy);
    });
    await step(
      "variant A: the node's LAN has no route out; tinyproxy is the only way",
      async () => {
        assert.equal(await nodeA.canConnect("proxy.example.com", 3080, 1_000), false);
        assert.equal(await nodeA.canConnect("gate-dark.example.com", 8888), true);
      },
    );
    await step(
      "variant A: the node joins and tunnels through tinyproxy (HTTPS_PROXY)",
      async () => {
        const join = await addToken(clusterHost, cluster!.config, "node");
        const node = await startNode(topo, nodeA, {
          name: "node2a",
          proxyServer: proxy,
          join,
          env: { HTTPS_PROXY: tinyproxy.url("gate-dark.example.com") },
        });
        const tunnels = await tunnelsOf(node.proc, 1);
        assert.deepEqual([...tunnels.values()], [proxy]);
        const targets = tinyproxy.connectTargets();
        assert.ok(targets.filter((x) => x === proxy).length >= 2, `join and tunnel: ${targets}`);
        assert.doesNotMatch(topo.logs(), /tp-pass-2/, "the proxy password is never logged");
      },
    );
    await reachNode(
      step,
      topo,
      { host: clientHost, home: `${topo.dir}/tsh-a` },
      "node2a",
      "topo2a",
      "2",
    );

    // Variant B: separate ports; the dmz reaches 3024 directly, the join (3080) needs tinyproxy.
    const seenBefore = tinyproxy.connectTargets().length;
    await step("variant B: the cluster restarts in separate mode (3023/3024/3080)", async () => {
      await cluster?.proc.stop();
      cluster = await startCluster(topo, clusterHost, {
        cluster: "topo2b",
        mode: "separate",
        publicAddr: [proxy],
      });
      await enrollAndLogin(clusterHost, cluster.config, {
        host: clientHost,
        home: `${topo.dir}/tsh-b`,
      }, proxy);
    });
    await step("variant B: the node's LAN routes to port 3024 only", async () => {
      assert.equal(await nodeB.canConnect("proxy.example.com", 3024), true);
      assert.equal(await nodeB.canConnect("proxy.example.com", 3080, 1_000), false);
      assert.equal(await nodeB.canConnect("proxy.example.com", 3023, 1_000), false);
    });
    await step("variant B: join via tinyproxy, tunnel direct to :3024 (NO_PROXY)", async () => {
      const join = await addToken(clusterHost, cluster!.config, "node");
      const node = await startNode(topo, nodeB, {
        name: "node2b",
        proxyServer: proxy,
        join,
        env: {
          HTTPS_PROXY: tinyproxy.url("gate-dmz.example.com"),
          NO_PROXY: "proxy.example.com:3024",
        },
      });
      const tunnels = await tunnelsOf(node.proc, 1);
      assert.deepEqual([...tunnels.values()], ["proxy.example.com:3024"]);
      const targets = tinyproxy.connectTargets().slice(seenBefore);
      assert.ok(targets.includes(proxy), `the join went through tinyproxy: ${targets}`);
      assert.ok(!targets.some((x) => x.endsWith(":3024")), `no CONNECT to :3024: ${targets}`);
    });
    await reachNode(
      step,
      topo,
      { host: clientHost, home: `${topo.dir}/tsh-b` },
      "node2b",
      "topo2b",
      "2b",
    );
  },
});

Deno.test({
  name: "topology 3: one open port on the cluster host (3080), then only 3023/3024/3080",
  ignore: SKIP,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "t3" });
    const step = stepper(t, topo);
    const out = await topo.addLan("out", "10.1.0.0/24");
    const dc = await topo.addLan("dc", "10.3.0.0/24");
    const fw = await topo.addRouter("fw", {
      lans: [{ lan: out, ip: "10.1.0.1" }, { lan: dc, ip: "10.3.0.1" }],
    });
    const clusterHost = await topo.addHost("cluster", {
      lans: [{ lan: dc, ip: "10.3.0.2" }],
      gateway: fw.ip(dc),
    });
    const clientHost = await topo.addHost("client", {
      lans: [{ lan: out, ip: "10.1.0.10" }],
      gateway: fw.ip(out),
    });
    const nodeHost = await topo.addHost("node3", {
      lans: [{ lan: out, ip: "10.1.0.20" }],
      gateway: fw.ip(out),
    });
    await topo.addNames({ "proxy.example.com": clusterHost.ip() });
    const proxy = "proxy.example.com:3080";
    const openPorts = (ports: number[]) =>
      firewallRules({
        inside: "dc0",
        outside: "out0",
        nat: false,
        allow: [`iifname "out0" ip daddr ${clusterHost.ip()} tcp dport { ${ports.join(", ")} }`],
      });
    /** From the client and the node host: `open` ports accept, `closed` ones do not. */
    const probe = async (open: number[], closed: number[]) => {
      const checks = [clientHost, nodeHost].flatMap((h) => [
        ...open.map(async (p) => [h.name, p, await h.canConnect("proxy.example.com", p), true]),
        ...closed.map(async (p) => [
          h.name,
          p,
          await h.canConnect("proxy.example.com", p, 1_000),
          false,
        ]),
      ]);
      for (const [host, port, got, want] of await Promise.all(checks)) {
        assert.equal(got, want, `${host} -> proxy.example.com:${port}`);
      }
    };
    let cluster: Cluster | undefined;
    let nodeA: Started | undefined;

    await step("variant A: multiplex mode behind a firewall that opens only 3080", async () => {
      await fw.nft(openPorts([3080]), { replace: true });
      cluster = await startCluster(topo, clusterHost, {
        cluster: "topo3a",
        mode: "multiplex",
        publicAddr: [proxy],
      });
      await probe([3080], [3025, 3023, 3024, 3022]);
      await enrollAndLogin(clusterHost, cluster.config, {
        host: clientHost,
        home: `${topo.dir}/tsh-a`,
      }, proxy);
    });
    await step("variant A: the node joins and tunnels through port 3080", async () => {
      const join = await addToken(clusterHost, cluster!.config, "node");
      nodeA = await startNode(topo, nodeHost, { name: "node3a", proxyServer: proxy, join });
      assert.deepEqual([...(await tunnelsOf(nodeA.proc, 1)).values()], [proxy]);
    });
    await reachNode(
      step,
      topo,
      { host: clientHost, home: `${topo.dir}/tsh-a` },
      "node3a",
      "topo3a",
      "3",
    );

    await step(
      "variant B: separate mode, firewall opens 3023, 3024 and 3080 (3025 closed)",
      async () => {
        await nodeA?.proc.stop();
        await cluster?.proc.stop();
        await fw.nft(openPorts([3023, 3024, 3080]), { replace: true });
        cluster = await startCluster(topo, clusterHost, {
          cluster: "topo3b",
          mode: "separate",
          publicAddr: [proxy],
        });
        await probe([3023, 3024, 3080], [3025, 3022]);
        await enrollAndLogin(clusterHost, cluster.config, {
          host: clientHost,
          home: `${topo.dir}/tsh-b`,
        }, proxy);
      },
    );
    await step("variant B: the node joins on 3080 and tunnels to 3024", async () => {
      const join = await addToken(clusterHost, cluster!.config, "node");
      const node = await startNode(topo, nodeHost, { name: "node3b", proxyServer: proxy, join });
      assert.deepEqual([...(await tunnelsOf(node.proc, 1)).values()], ["proxy.example.com:3024"]);
    });
    await reachNode(
      step,
      topo,
      { host: clientHost, home: `${topo.dir}/tsh-b` },
      "node3b",
      "topo3b",
      "3b",
    );
  },
});

Deno.test({
  name: "topology 4: two proxies behind haproxy; the node tunnels to both; tsh survives one",
  ignore: SKIP,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "t4" });
    const step = stepper(t, topo);
    const dc = await topo.addLan("dc", "10.4.0.0/24");
    const out = await topo.addLan("out", "10.1.0.0/24");
    const authHost = await topo.addHost("auth", { lans: [{ lan: dc, ip: "10.4.0.2" }] });
    const proxyA = await topo.addHost("proxya", { lans: [{ lan: dc, ip: "10.4.0.3" }] });
    const proxyB = await topo.addHost("proxyb", { lans: [{ lan: dc, ip: "10.4.0.4" }] });
    // The load balancer is the only host on both LANs, and it forwards nothing itself.
    const lb = await topo.addHost("lb", {
      lans: [{ lan: out, ip: "10.1.0.5" }, { lan: dc, ip: "10.4.0.5" }],
    });
    const clientHost = await topo.addHost("client", { lans: [{ lan: out, ip: "10.1.0.10" }] });
    const nodeHost = await topo.addHost("node4", { lans: [{ lan: out, ip: "10.1.0.20" }] });
    await topo.addNames({ "lb.example.com": lb.ip(out), "auth.example.com": authHost.ip() });
    const proxy = "lb.example.com:3080";
    const client: TshClient = { host: clientHost, home: `${topo.dir}/tsh` };
    const authConfig = `${topo.dir}/auth.yaml`;
    const proxies: Record<string, Started> = {};
    let haproxy: Proc | undefined;
    let node: Started | undefined;

    await step("auth starts on its own host", async () => {
      await writeTeleportConfig(authConfig, {
        nodename: "auth",
        dataDir: `${topo.dir}/auth-data`,
        auth: { clusterName: "topo4", mode: "multiplex" },
      });
      await startTeleportIn(authHost, ["--config", authConfig], { name: "auth" });
    });
    await step(
      "two proxies join auth and serve the same web certificate for lb.example.com",
      async () => {
        const pair = await writeWebCert(authHost, topo.dir, ["lb.example.com"]);
        await Promise.all([proxyA, proxyB].map(async (h) => {
          const join = await addToken(authHost, authConfig, "proxy");
          const config = await writeTeleportConfig(`${topo.dir}/${h.name}.yaml`, {
            nodename: h.name,
            dataDir: `${topo.dir}/${h.name}-data`,
            proxy: { webListenAddr: "0.0.0.0:3080", publicAddr: [proxy], httpsKeyPairs: [pair] },
          });
          proxies[h.name] = await startTeleportIn(h, [
            "--roles=proxy",
            "--auth-server=auth.example.com:3025",
            `--token=${join.token}`,
            ...join.pins.map((p) => `--ca-pin=${p}`),
            `--config=${config}`,
          ], { name: h.name });
        }));
      },
    );
    await step("haproxy balances lb.example.com:3080 over both proxies", async () => {
      haproxy = await startHaproxy(lb, {
        frontends: [{ bind: "10.1.0.5:3080", backends: ["10.4.0.3:3080", "10.4.0.4:3080"] }],
      });
      // Both proxies answer behind the one name with the one certificate, and both know the
      // cluster's listener mode (multiplex, set on auth) although their own files do not say it.
      for (let i = 0; i < 2; i++) {
        const r = await clientHost.exec("curl", [
          "-sS",
          "--cacert",
          `${topo.dir}/web-cert.pem`,
          `https://${proxy}/webapi/ping`,
        ]);
        const ping = JSON.parse(r.stdout);
        assert.equal(ping.cluster_name, "topo4");
        assert.equal(
          ping.proxy.tls_routing_enabled,
          true,
          "a proxy-only host takes proxy_listener_mode (multiplex) from the auth server",
        );
      }
      assert.equal(await nodeHost.canConnect(proxyA.ip(), 3080, 1_000), false, "only via the LB");
    });
    await step("alice enrolls and logs in through the load balancer", async () => {
      await enrollAndLogin(authHost, authConfig, client, proxy);
    });
    await step("the node joins via the LB and ends up with tunnels to both proxies", async () => {
      const join = await addToken(authHost, authConfig, "node");
      node = await startNode(topo, nodeHost, { name: "node4", proxyServer: proxy, join });
      const tunnels = await tunnelsOf(node.proc, 2);
      assert.equal(tunnels.size, 2, [...tunnels.keys()].join(", "));
      assert.deepEqual([...new Set(tunnels.values())], [proxy]);
    });
    await reachNode(step, topo, client, "node4", "topo4", "4");
    await step(
      "after one proxy stops, tsh ssh through the LB works again within 60 s",
      async () => {
        const stoppedAt = Date.now();
        await proxies["proxya"]!.proc.stop("SIGTERM");
        await haproxy!.waitForOutput(/s0 is DOWN/, 10_000);
        const r = await tshSshEventually(client, `${LOGIN}@node4`, "echo ok-4-again", 60_000);
        assert.equal(r.stdout.trim(), "ok-4-again");
        note(
          `topology 4: after proxya stopped, tsh ssh worked again ${Date.now() - stoppedAt} ms ` +
            `later (${r.attempts} attempt(s))`,
        );
      },
    );
  },
});

Deno.test({
  name:
    "topology 5: internal and external proxy addresses (TELEPORT_TUNNEL_PUBLIC_ADDR, tunnel_public_addr)",
  ignore: SKIP,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "t5" });
    const step = stepper(t, topo);
    const ext = await topo.addLan("ext", "10.7.0.0/24");
    const int = await topo.addLan("int", "10.8.0.0/24");
    // One proxy host with an address on each LAN; nothing routes between them.
    const proxyHost = await topo.addHost("proxy", {
      lans: [{ lan: ext, ip: "10.7.0.2" }, { lan: int, ip: "10.8.0.2" }],
    });
    const clientHost = await topo.addHost("client", { lans: [{ lan: ext, ip: "10.7.0.10" }] });
    const nodeHost = await topo.addHost("node5", { lans: [{ lan: int, ip: "10.8.0.10" }] });
    await topo.addNames({
      "external.example.com": proxyHost.ip(ext),
      "internal.example.com": proxyHost.ip(int),
    });
    const external = "external.example.com:3080";
    const internal = "internal.example.com:3080";
    let cluster: Cluster | undefined;
    let nodeA: Started | undefined;

    await step("variant A: proxy with public_addr [external, internal] (multiplex)", async () => {
      cluster = await startCluster(topo, proxyHost, {
        cluster: "topo5a",
        mode: "multiplex",
        publicAddr: [external, internal],
      });
      assert.equal(await clientHost.canConnect("external.example.com", 3080), true);
      assert.equal(await clientHost.canConnect("internal.example.com", 3080, 1_000), false);
      assert.equal(await nodeHost.canConnect("internal.example.com", 3080), true);
      assert.equal(await nodeHost.canConnect("external.example.com", 3080, 1_000), false);
      await enrollAndLogin(proxyHost, cluster.config, {
        host: clientHost,
        home: `${topo.dir}/tsh-a`,
      }, external);
    });
    await step(
      "variant A: the node tunnels to internal.example.com (TELEPORT_TUNNEL_PUBLIC_ADDR)",
      async () => {
        const join = await addToken(proxyHost, cluster!.config, "node");
        nodeA = await startNode(topo, nodeHost, {
          name: "node5a",
          proxyServer: internal,
          join,
          env: { TELEPORT_TUNNEL_PUBLIC_ADDR: internal },
        });
        assert.deepEqual([...(await tunnelsOf(nodeA.proc, 1)).values()], [internal]);
      },
    );
    await reachNode(
      step,
      topo,
      { host: clientHost, home: `${topo.dir}/tsh-a` },
      "node5a",
      "topo5a",
      "5",
    );

    await step(
      "variant B: separate mode, tunnel_public_addr internal.example.com:3024",
      async () => {
        await nodeA?.proc.stop();
        await cluster?.proc.stop();
        // The internal side of the proxy host accepts only the tunnel port.
        await proxyHost.nft(
          `table inet tp_in {\n  chain input {\n    type filter hook input priority 0; policy accept;\n` +
            `    iifname "int0" tcp dport != 3024 drop\n  }\n}\n`,
        );
        cluster = await startCluster(topo, proxyHost, {
          cluster: "topo5b",
          mode: "separate",
          publicAddr: [external],
          tunnelPublicAddr: ["internal.example.com:3024"],
        });
        assert.equal(await nodeHost.canConnect("internal.example.com", 3024), true);
        assert.equal(await nodeHost.canConnect("internal.example.com", 3080, 1_000), false);
        await enrollAndLogin(proxyHost, cluster.config, {
          host: clientHost,
          home: `${topo.dir}/tsh-b`,
        }, external);
      },
    );
    await step(
      "variant B: a node with proxy_server internal.example.com:3024 in its config joins and tunnels",
      async () => {
        const join = await addToken(proxyHost, cluster!.config, "node");
        const node = await startNode(topo, nodeHost, {
          name: "node5b",
          proxyServer: "internal.example.com:3024",
          join,
          viaConfigFile: true,
        });
        assert.deepEqual([...(await tunnelsOf(node.proc, 1)).values()], [
          "internal.example.com:3024",
        ]);
      },
    );
    await reachNode(
      step,
      topo,
      { host: clientHost, home: `${topo.dir}/tsh-b` },
      "node5b",
      "topo5b",
      "5b",
    );
  },
});
