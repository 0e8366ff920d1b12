/**
 * The network-namespace harness itself (tests/e2e/_netns.ts): names and TCP between hosts of one
 * LAN, a NAT firewall router (inside dials out, outside cannot connect in), tinyproxy with Basic
 * auth as the only way out of an isolated LAN, haproxy balancing two backends and failing over,
 * and cleanup: nothing of a topology remains, even when its test throws, and the start-up sweep
 * removes namespaces of dead runs.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  firewallRules,
  type Host,
  startHaproxy,
  startTcpServer,
  startTinyproxy,
  sweepStaleNamespaces,
  Topology,
} from "./_netns.ts";

/** Reads the banner of `addr:port` from `host` with bash's /dev/tcp. */
async function banner(host: Host, addr: string, port: number): Promise<string> {
  const r = await host.run("timeout", [
    "5",
    "bash",
    "-c",
    'exec 3<>"/dev/tcp/$0/$1"; read -r line <&3; echo "$line" >&3; echo "$line"',
    addr,
    String(port),
  ]);
  assert.equal(r.code, 0, `${host.name} -> ${addr}:${port}: ${r.stderr}`);
  return r.stdout.trim();
}

async function namespacesWith(prefix: string): Promise<string[]> {
  const out = await new Deno.Command("/usr/sbin/ip", { args: ["netns", "list"] }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(prefix));
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  return exists(`/proc/${pid}`);
}

Deno.test({
  name: "netns harness: LAN, NAT firewall, tinyproxy CONNECT, haproxy, cleanup",
  ignore: skipGroup("netns-harness"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    let prefix = "";
    let dir = "";
    {
      await using topo = await Topology.create({ label: "harness" });
      prefix = topo.prefix;
      dir = topo.dir;
      const out = await topo.addLan("out", "10.1.0.0/24");
      const inn = await topo.addLan("in", "10.2.0.0/24");
      const dark = await topo.addLan("dark", "10.3.0.0/24");
      const fw = await topo.addRouter("fw", {
        lans: [{ lan: out, ip: "10.1.0.1" }, { lan: inn, ip: "10.2.0.1" }],
        firewall: { inside: "in0", outside: "out0" },
      });
      const outer = await topo.addHost("outer", {
        lans: [{ lan: out, ip: "10.1.0.10" }],
        // A route into the inside: only the firewall stands between outer and inner.
        routes: [{ to: "10.2.0.0/24", via: fw.ip(out) }],
      });
      const peer = await topo.addHost("peer", { lans: [{ lan: out, ip: "10.1.0.11" }] });
      const inner = await topo.addHost("inner", {
        lans: [{ lan: inn, ip: "10.2.0.10" }],
        gateway: fw.ip(inn),
      });
      const gate = await topo.addHost("gate", {
        lans: [{ lan: out, ip: "10.1.0.3" }, { lan: dark, ip: "10.3.0.3" }],
      });
      const isolated = await topo.addHost("isolated", { lans: [{ lan: dark, ip: "10.3.0.10" }] });
      await topo.addNames({ "outer.example.com": outer.ip(), "gate.example.com": gate.ip(dark) });

      const [outerSrv, _peerSrv, innerSrv] = await Promise.all([
        startTcpServer(outer, { port: 7000 }),
        startTcpServer(peer, { port: 7000 }),
        startTcpServer(inner, { port: 7000 }),
      ]);

      await topo.step(t, "two hosts on one LAN reach each other by name", async () => {
        const r = await outer.exec("getent", ["hosts", "peer"]);
        assert.match(r.stdout, /^10\.1\.0\.11\s+peer/);
        const hosts = await Deno.readTextFile(`/etc/netns/${outer.ns}/hosts`);
        assert.match(hosts, /^127\.0\.0\.1 localhost$/m);
        assert.match(hosts, /^10\.1\.0\.10 outer$/m);
        assert.equal(await banner(outer, "peer", 7000), "peer");
        assert.equal(await banner(peer, "outer.example.com", 7000), "outer");
        // Unknown names fail at once (dead local nameserver), they do not wait on real DNS.
        const unknown = await outer.run("getent", ["hosts", "nowhere.invalid"]);
        assert.notEqual(unknown.code, 0);
      });

      await topo.step(
        t,
        "a NAT firewall lets inside dial out, nothing from outside in",
        async () => {
          assert.equal(await banner(inner, "outer", 7000), "outer");
          // Masqueraded: outer sees the firewall's outside address.
          assert.ok(
            outerSrv.matches(/from (\S+)/).some((m) => m[1] === fw.ip(out)),
            outerSrv.output,
          );
          // The inside server is up (the router itself reaches it) ...
          assert.equal(await banner(fw, inner.ip(), 7000), "inner");
          // ... but outside hosts cannot connect, though outer routes through the firewall.
          assert.equal(await outer.canConnect(inner.ip(), 7000, 1_000), false);
          assert.equal(await peer.canConnect(inner.ip(), 7000, 1_000), false);
          assert.equal(innerSrv.matches(/from (\S+)/).some((m) => m[1] !== fw.ip(inn)), false);
          // The isolated LAN has no route anywhere.
          assert.equal(await isolated.canConnect(outer.ip(), 7000, 1_000), false);
        },
      );

      await topo.step(t, "firewallRules() output loads and can be replaced", async () => {
        await fw.nft(
          firewallRules({
            inside: "in0",
            outside: "out0",
            allow: [`iifname "out0" ip daddr ${inner.ip()} tcp dport 7000`],
          }),
          { replace: true },
        );
        assert.equal(await banner(outer, inner.ip(), 7000), "inner");
        await fw.nft(firewallRules({ inside: "in0", outside: "out0" }), { replace: true });
        assert.equal(await outer.canConnect(inner.ip(), 7000, 1_000), false);
      });

      await topo.step(t, "tinyproxy with Basic auth is the isolated host's way out", async () => {
        const tp = await startTinyproxy(gate, { user: "tpuser", password: "tp-s3cret" });
        const proxy = tp.url("gate.example.com");
        assert.equal(proxy, "http://tpuser:tp-s3cret@gate.example.com:8888");
        const ok = await isolated.run("curl", [
          "-sS",
          "--http0.9",
          "-p",
          "-x",
          proxy,
          "-w",
          "\n%{http_connect}",
          "http://outer.example.com:7000/",
        ]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.deepEqual(ok.stdout.split("\n").filter((l) => l !== ""), ["outer", "200"]);
        // A raw CONNECT, as our dialer sends it.
        const raw = await isolated.run("timeout", [
          "5",
          "bash",
          "-c",
          'exec 3<>/dev/tcp/gate.example.com/8888; printf "CONNECT outer.example.com:7000 ' +
          "HTTP/1.1\\r\\nHost: outer.example.com:7000\\r\\nProxy-Authorization: Basic %s" +
          '\\r\\n\\r\\n" "$(printf %s "$CREDS" | base64)" >&3; read -r status <&3; ' +
          "while read -r l <&3 && [ \"$l\" != $'\\r' ]; do :; done; read -r b <&3; " +
          'echo "$status"; echo "$b"; echo bye >&3',
        ], { env: { CREDS: "tpuser:tp-s3cret" } });
        assert.equal(raw.code, 0, raw.stderr);
        const [status, got] = raw.stdout.split("\n");
        assert.match(status!, /^HTTP\/1\.[01] 200/);
        assert.equal(got, "outer");
        const wrong = await isolated.run("curl", [
          "-s",
          "-o",
          "/dev/null",
          "-p",
          "-x",
          "http://tpuser:wrong@gate.example.com:8888",
          "-w",
          "%{http_connect}",
          "http://outer.example.com:7000/",
        ]);
        assert.match(wrong.stdout, /^40[17]$/);
        const none = await isolated.run("curl", [
          "-s",
          "-o",
          "/dev/null",
          "-p",
          "-x",
          "http://gate.example.com:8888",
          "-w",
          "%{http_connect}",
          "http://outer.example.com:7000/",
        ]);
        assert.equal(none.stdout, "407");
        assert.deepEqual(tp.connectTargets().slice(0, 2), [
          "outer.example.com:7000",
          "outer.example.com:7000",
        ]);
        assert.doesNotMatch(topo.logs(), /tp-s3cret/);
      });

      await topo.step(t, "haproxy balances two backends and fails over", async () => {
        const [b1, b2] = await Promise.all([
          topo.addHost("b1", { lans: [{ lan: out, ip: "10.1.0.21" }] }),
          topo.addHost("b2", { lans: [{ lan: out, ip: "10.1.0.22" }] }),
        ]);
        const lb = await topo.addHost("lb", { lans: [{ lan: out, ip: "10.1.0.5" }] });
        await startTcpServer(b1, { port: 7000 });
        const s2 = await startTcpServer(b2, { port: 7000 });
        const haproxy = await startHaproxy(lb, {
          frontends: [{ bind: "10.1.0.5:8080", backends: ["10.1.0.21:7000", "10.1.0.22:7000"] }],
        });
        const seen = [];
        for (let i = 0; i < 4; i++) seen.push(await banner(outer, "lb", 8080));
        assert.deepEqual(new Set(seen), new Set(["b1", "b2"]));
        await s2.stop();
        await haproxy.waitForOutput(/s1 is DOWN/, 10_000);
        for (let i = 0; i < 3; i++) assert.equal(await banner(outer, "lb", 8080), "b1");
      });
    }
    assert.deepEqual(await namespacesWith(prefix), []);
    assert.equal(exists(dir), false);
    assert.equal(exists(`/run/tp-netns/${prefix.slice(0, -1)}.pid`), false);
  },
});

Deno.test({
  name: "netns harness: a failing test still deletes everything; stale runs are swept",
  ignore: skipGroup("netns-harness"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    let prefix = "";
    let pid = 0;
    let dir = "";
    await assert.rejects(
      async () => {
        await using topo = await Topology.create({ label: "fails" });
        prefix = topo.prefix;
        dir = topo.dir;
        const lan = await topo.addLan("lan", "10.9.0.0/24");
        const a = await topo.addHost("a", { lans: [{ lan, ip: "10.9.0.2" }] });
        // A process that ignores SIGTERM, and a grandchild in the background.
        const p = a.spawn("bash", ["-c", "trap '' TERM; sleep 300 & echo started; wait"]);
        await p.waitForOutput(/started/);
        pid = p.pid;
        await topo.explain(() => {
          throw new Error("deliberate failure");
        });
      },
      (err: Error) => {
        assert.match(err.message, /deliberate failure/);
        assert.match(err.message, /logs of topology/);
        assert.match(err.message, /a\/bash \(running\)/);
        return true;
      },
    );
    assert.notEqual(prefix, "");
    assert.deepEqual(await namespacesWith(prefix), []);
    assert.equal(alive(pid), false);
    assert.equal(exists(`/etc/netns/${prefix}a`), false);
    assert.equal(exists(dir), false);

    // A run whose creator died: its namespace and files are swept by the next Topology.create.
    const id = `tp${crypto.randomUUID().slice(0, 4).replace(/[^0-9a-f]/g, "0")}`;
    const gone = new Deno.Command("true").spawn();
    const deadPid = gone.pid;
    await gone.status;
    await Deno.mkdir("/run/tp-netns", { recursive: true });
    await Deno.writeTextFile(`/run/tp-netns/${id}.pid`, `${deadPid} 1 /nonexistent-${id}\n`, {
      createNew: true,
    });
    await new Deno.Command("/usr/sbin/ip", { args: ["netns", "add", `${id}-stale`] }).output();
    await Deno.mkdir(`/etc/netns/${id}-stale`, { recursive: true });
    assert.deepEqual(await namespacesWith(`${id}-`), [`${id}-stale`]);
    const swept = await sweepStaleNamespaces();
    assert.ok(swept.includes(`${id}-stale`), swept.join(","));
    assert.deepEqual(await namespacesWith(`${id}-`), []);
    assert.equal(exists(`/etc/netns/${id}-stale`), false);
    assert.equal(exists(`/run/tp-netns/${id}.pid`), false);
  },
});
