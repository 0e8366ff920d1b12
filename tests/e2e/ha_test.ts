/**
 * High availability on PostgreSQL (issue 15) in the layout of tests/e2e/_ha.ts: two auth
 * servers of one cluster start at once on one database behind haproxy on 3025; two proxies
 * behind haproxy on 3080; a direct node, a tunnel node and a client host. Then:
 *
 * - `kill -9` of one auth server: tsh ssh to both nodes, tsh ls, tctl users add, a new user's
 *   enrollment and login, a token join go on; the auth server rejoins on restart;
 * - both auth servers down: tsh ssh to both nodes still works (proxies and nodes serve from
 *   their caches of CAs, roles and nodes), and everything works again once auth is back;
 * - `kill -9` of one proxy: a live session through the other goes on, new tsh ssh works
 *   through the load balancer, and the proxy rejoins on restart (the tunnel node too).
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { startPostgres } from "../../lib/backend/mod.ts";
import { parseFileConfig, resolveProcessConfig } from "../../lib/config/mod.ts";
import { note, type Proc, Topology } from "./_netns.ts";
import {
  addToken,
  startTeleportIn,
  tsh,
  type TshClient,
  tshSshEventually,
} from "./_topology_enroll.ts";
import {
  AUTH,
  HaCluster,
  LOGIN,
  serverDown,
  serverUp,
  START_TIMEOUT_MS,
  waitForCount,
} from "./_ha.ts";
import {
  alive,
  loadOptions,
  readPid,
  reload,
  runLoad,
  startReloadCluster,
  until,
} from "./_reload.ts";

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

/** Warnings and errors `procs` logged after the `marks` (output lengths) were taken. */
function complaintsSince(marks: Map<Proc, number>): string[] {
  return [...marks].flatMap(([p, mark]) =>
    p.output.slice(mark).split("\n").filter((l) => /\[(WRN|ERR)\]/.test(l)).map((l) =>
      `${p.label}: ${l}`
    )
  );
}

const TUNNEL_LINE = /Reverse tunnel to proxy \S+ at \S+ is up/;

Deno.test({
  name: "ha: two auth servers on PostgreSQL and two proxies behind haproxy survive kill -9",
  ignore: skipGroup("ha"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "ha" });
    const step = stepper(t, topo);
    await using ha = await HaCluster.create(topo);
    const [auth1, auth2] = ha.auths as [typeof ha.auths[0], typeof ha.auths[0]];
    let alice: TshClient | undefined;
    let bob: TshClient | undefined;
    const longRunning = () => topo.procs.filter((p) => !p.oneShot && p.exitStatus === undefined);

    await step("two auth servers start at once on one PostgreSQL database", async () => {
      assert.equal(await ha.hosts.authLb.canConnect(ha.hosts.db.ip(), 5432, 1_000), true);
      await ha.startAuths();
    });
    await step("two proxies join through auth.example.com behind lb.example.com", async () => {
      await ha.startProxies();
      assert.equal(await ha.hosts.client.canConnect(auth1.host.ip(), 3025, 1_000), false);
    });
    await step(
      "alice enrolls and logs in (password + TOTP) through the load balancer",
      async () => {
        alice = await ha.enrollAndLogin("alice");
      },
    );
    await step(
      "a direct node joins auth.example.com, a tunnel node joins lb.example.com",
      async () => {
        await ha.startNodes();
      },
    );
    await step("tsh ls and tsh ssh reach both nodes", async () => {
      const ls = await tsh(alice!, ["ls"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /nodea/);
      assert.match(ls.stdout, /nodeb/);
      for (const node of ["nodea", "nodeb"]) {
        const r = await tshSshEventually(alice!, `${LOGIN}@${node}`, `echo hi-${node}`);
        assert.equal(r.stdout.trim(), `hi-${node}`);
      }
    });

    await step(
      "kill -9 auth1: tsh ssh, tsh ls, tctl users add, login and joins go on",
      async () => {
        const marks = new Map(longRunning().map((p) => [p, p.output.length]));
        const killedAt = Date.now();
        await ha.kill(auth1);
        const a = await tshSshEventually(alice!, `${LOGIN}@nodea`, "echo after-kill", 60_000);
        const sshBackMs = Date.now() - killedAt;
        assert.equal(a.stdout.trim(), "after-kill");
        const b = await tshSshEventually(alice!, `${LOGIN}@nodeb`, "echo after-kill-b", 60_000);
        assert.equal(b.stdout.trim(), "after-kill-b");
        const ls = await tsh(alice!, ["ls"]);
        assert.equal(ls.code, 0, ls.stderr);
        assert.match(ls.stdout, /nodea[\s\S]*nodeb|nodeb[\s\S]*nodea/);
        // tctl on the surviving auth server, the invite page and the TOTP enrollment through a
        // proxy (which reaches auth through authlb), then a first login.
        bob = await ha.enrollAndLogin("bob", auth2);
        const join = await addToken(auth2.host, auth2.config, "node");
        await startTeleportIn(ha.hosts.nodeC, [
          "--roles=node",
          `--auth-server=${AUTH}`,
          `--token=${join.token}`,
          ...join.pins.map((p) => `--ca-pin=${p}`),
          `--data-dir=${topo.dir}/nodec-data`,
          "--nodename=nodec",
        ], { name: "nodec", timeoutMs: START_TIMEOUT_MS });
        const c = await tshSshEventually(bob, `${LOGIN}@nodec`, "echo joined-c", 60_000);
        assert.equal(c.stdout.trim(), "joined-c");
        const complaints = complaintsSince(marks);
        note(
          `ha: after kill -9 of auth1, tsh ssh worked again ${sshBackMs} ms later; ` +
            `${a.attempts - 1 + b.attempts - 1} tsh ssh attempt(s) failed in between; ` +
            `${complaints.length} warning(s) logged${complaints.length ? ":\n" : ""}` +
            complaints.join("\n"),
        );
      },
    );

    await step("auth1 restarts and serves the same cluster again", async () => {
      const ups = ha.authHaproxy!.matches(serverUp(0)).length;
      await ha.start(auth1);
      // What auth2 wrote while auth1 was gone, auth1 reads.
      const users = await auth1.host.cli(["tctl", "-c", auth1.config, "users", "ls"]);
      assert.equal(users.code, 0, users.stderr);
      assert.match(users.stdout, /bob/);
      await waitForCount(ha.authHaproxy!, serverUp(0), ups + 1);
      const r = await tshSshEventually(alice!, `${LOGIN}@nodec`, "echo back");
      assert.equal(r.stdout.trim(), "back");
    });

    await step("both auth servers down: tsh ssh to both nodes works from caches", async () => {
      const downs = [0, 1].map((i) => ha.authHaproxy!.matches(serverDown(i)).length);
      await Promise.all(ha.auths.map((a) => ha.kill(a)));
      await Promise.all(
        [0, 1].map((i) => waitForCount(ha.authHaproxy!, serverDown(i), downs[i]! + 1)),
      );
      // Proxies check user certificates against their cached CAs and route from their cached
      // node list; nodes check certificates and roles from theirs.
      for (const node of ["nodea", "nodeb", "nodec"]) {
        const r = await tsh(alice!, ["ssh", `${LOGIN}@${node}`, `echo cached-${node}`]);
        assert.equal(r.code, 0, `tsh ssh ${node} without auth: ${r.stderr}`);
        assert.equal(r.stdout.trim(), `cached-${node}`);
      }
      const ls = await tsh(alice!, ["ls"]);
      assert.notEqual(ls.code, 0, "tsh ls asks auth, which is down");
      const ups = [0, 1].map((i) => ha.authHaproxy!.matches(serverUp(i)).length);
      await Promise.all(ha.auths.map((a) => ha.start(a)));
      await Promise.all([0, 1].map((i) => waitForCount(ha.authHaproxy!, serverUp(i), ups[i]! + 1)));
      const again = await tsh(alice!, ["ls"]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /nodec/);
    });

    await step("kill -9 proxya: a live session through proxyb goes on; new ones work", async () => {
      const [proxyA] = ha.proxies;
      const web = ha.webHaproxy!;
      // Steer the live session to proxyb: proxya refuses new connections until haproxy sees it
      // down (established ones, such as nodeb's tunnel, stay).
      const downs = web.matches(serverDown(0)).length;
      await proxyA!.host.nft(
        "table inet tp_steer {\n  chain input {\n" +
          "    type filter hook input priority 0; policy accept;\n" +
          "    tcp dport 3080 ct state new reject with tcp reset\n  }\n}\n",
      );
      await waitForCount(web, serverDown(0), downs + 1);
      const ups = web.matches(serverUp(0)).length;
      const live = ha.hosts.client.teleport(
        ["tsh", "ssh", `${LOGIN}@nodeb`, "while read l; do echo got-$l; done"],
        { env: { TELEPORT_HOME: alice!.home }, stdin: "piped", name: "live-session" },
      );
      await live.write("one\n");
      await live.waitForOutput(/got-one/, 30_000, "stdout");
      await proxyA!.host.nft("delete table inet tp_steer\n");
      await waitForCount(web, serverUp(0), ups + 1);
      const killedAt = Date.now();
      await ha.kill(proxyA!);
      await live.write("two\n");
      await live.waitForOutput(/got-two/, 30_000, "stdout");
      assert.equal(live.exitStatus, undefined, "the live session through proxyb is still up");
      const r = await tshSshEventually(alice!, `${LOGIN}@nodea`, "echo via-lb", 60_000);
      assert.equal(r.stdout.trim(), "via-lb");
      const b = await tshSshEventually(alice!, `${LOGIN}@nodeb`, "echo via-lb-b", 60_000);
      assert.equal(b.stdout.trim(), "via-lb-b");
      note(
        `ha: after kill -9 of proxya, tsh ssh worked again ${Date.now() - killedAt} ms later ` +
          `(${r.attempts - 1 + b.attempts - 1} failed attempt(s)); the live session went on`,
      );
      await live.closeStdin();
      assert.equal((await live.status).code, 0, live.output);
    });

    await step("proxya restarts; nodeb tunnels to it again; tsh works through it", async () => {
      const [proxyA] = ha.proxies;
      const tunnels = ha.tunnelNode!.proc.matches(TUNNEL_LINE).length;
      const ups = ha.webHaproxy!.matches(serverUp(0)).length;
      await ha.start(proxyA!);
      await waitForCount(ha.webHaproxy!, serverUp(0), ups + 1);
      await waitForCount(ha.tunnelNode!.proc, TUNNEL_LINE, tunnels + 1, START_TIMEOUT_MS);
      for (const node of ["nodea", "nodeb", "nodec"]) {
        const r = await tshSshEventually(alice!, `${LOGIN}@${node}`, `echo end-${node}`);
        assert.equal(r.stdout.trim(), `end-${node}`);
      }
    });
  },
});

/** The fenced blocks of README's "High availability" section, by language. */
function readmeHaBlocks(): { lang: string; text: string }[] {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const start = readme.indexOf("\n## High availability\n");
  assert.ok(start >= 0, "README has a High availability section");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1]!,
    text: m[2]!,
  }));
}

Deno.test({
  name: "README high availability example: teleport.yaml resolves, haproxy -c accepts haproxy.cfg",
  ignore: skipGroup("ha"),
  async fn() {
    const blocks = readmeHaBlocks();
    const yaml = blocks.find((b) => b.lang === "yaml");
    const haproxy = blocks.find((b) => b.lang === "" && /^defaults/m.test(b.text));
    assert.ok(yaml && haproxy, "a teleport.yaml and a haproxy.cfg block");
    const file = parseFileConfig(yaml.text, "README.md");
    const cfg = resolveProcessConfig({ file, flags: {}, hostname: "tp1", env: {} });
    assert.deepEqual(cfg.roles, { auth: true, proxy: true, node: false });
    assert.equal(cfg.storage?.type, "postgresql");
    assert.match(cfg.auth.auditEventsUri ?? "", /^postgresql:\/\//);
    assert.match(cfg.auth.auditSessionsUri ?? "", /^postgresql:\/\//);
    assert.deepEqual(cfg.auth.publicAddrs, [{ host: "auth.example.com", port: 3025 }]);
    const dir = await Deno.makeTempDir({ prefix: "tp-ha-readme-" });
    try {
      // Addresses of the example are not on this machine: check the syntax only.
      const path = `${dir}/haproxy.cfg`;
      await Deno.writeTextFile(path, haproxy.text.replace("bind 10.0.0.10:3025", "bind :3025"));
      const out = await new Deno.Command("haproxy", { args: ["-c", "-f", path] }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "ha: a HUP of a cluster on PostgreSQL under load drops nothing, auth calls included",
  ignore: skipGroup("ha"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "ha-hup" });
    const lan = await topo.addLan("lan", "10.92.0.0/24");
    const srv = await topo.addHost("srv", { lans: [{ lan, ip: "10.92.0.2" }] });
    // PostgreSQL inside the same namespace, on its loopback.
    await using pg = await startPostgres({
      listen: { address: "127.0.0.1", port: 5432, allow: "127.0.0.1/32", netns: srv.ns },
    });
    const passwordFile = `${topo.dir}/pg-password`;
    await Deno.writeTextFile(passwordFile, `${pg.password}\n`, { mode: 0o600 });
    const url = new URL(pg.url);
    url.password = "";
    const { cfg, pidFile, tp, web } = await startReloadCluster(srv, topo.dir, {
      teleport: `  storage:\n    type: postgresql\n    conn_string: ${url.href}\n` +
        `    password_file: ${passwordFile}\n`,
    });
    const first = await readPid(pidFile);

    await topo.step(t, "two HUPs under SSH load and back-to-back tctl calls", async () => {
      const options = loadOptions(topo.dir, web, { rate: 10, bulkMiB: 8, bulkSeconds: 6 });
      const pids = [first];
      // Auth API calls straight to the auth listener (tctl), back to back across the HUPs.
      const calls: boolean[] = [];
      let stop = false;
      const tctl = (async () => {
        while (!stop) {
          const r = await srv.cli(["tctl", "-c", cfg, "users", "ls"]);
          calls.push(r.code === 0 && /loader/.test(r.stdout));
        }
      })();
      const result = await runLoad(srv, options, async () => {
        for (let k = 1; k <= 2; k++) pids.push(await reload(tp, pidFile));
      });
      stop = true;
      await tctl;
      note(
        `HUP on PostgreSQL under load: ${JSON.stringify(result)}; tctl users ls: ` +
          `${calls.filter((c) => c).length} of ${calls.length} ok`,
      );
      assert.deepEqual(result.connections.failed, [], "no connection refused, reset or failed");
      assert.equal(result.connections.ok, result.connections.attempted);
      assert.deepEqual(result.sessions.failed, [], "no session dropped");
      assert.ok(result.bulk.ok, result.bulk.detail);
      assert.ok(calls.length >= 2, `${calls.length} tctl calls`);
      assert.deepEqual(calls.filter((c) => !c), [], "no auth API call failed");
      // The old processes drain and exit; the survivor writes to and reads from the database.
      await until("the old processes to exit", tp, () => pids.slice(0, -1).every((p) => !alive(p)));
      const token = await addToken(srv, cfg, "node");
      const count = await pg.psql("SELECT count(*) FROM kv", "teleport");
      assert.ok(Number(count.trim()) > 0, count);
      assert.match(token.token, /^[0-9a-f]{32}$/);
    });
  },
});
