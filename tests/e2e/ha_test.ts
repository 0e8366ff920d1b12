/**
 * High availability on PostgreSQL (issue 15), every host a network namespace
 * (tests/e2e/_netns.ts):
 *
 * ```
 *   db (PostgreSQL 15 on 10.5.0.2:5432)
 *   auth1, auth2 ── authlb (haproxy TCP :3025) ── proxya, proxyb, nodea (direct), nodec
 *   proxya, proxyb ── lb (haproxy TCP :3080, multiplex) ── client, nodeb (tunnel)
 * ```
 *
 * Two auth servers of one cluster share the database (state, audit log, recordings) and start
 * at the same time; proxies and the direct node reach auth only through `auth.example.com:3025`
 * (authlb); the client and the tunnel node reach the proxies only through `lb.example.com:3080`.
 * Then: `kill -9` of one auth server — tsh ssh to both nodes, tsh ls, tctl users add, a new
 * user's enrollment and login, a token join keep working, and the auth server rejoins on
 * restart; `kill -9` of one proxy — a live session through the other proxy goes on, new tsh ssh
 * works through the load balancer, and the proxy rejoins on restart.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { type PgServer, startPostgres } from "../../lib/backend/mod.ts";
import { parseFileConfig, resolveProcessConfig } from "../../lib/config/mod.ts";
import { type Host, note, type Proc, startHaproxy, Topology } from "./_netns.ts";
import {
  addToken,
  enrollUser,
  type Started,
  startTeleportIn,
  tsh,
  type TshClient,
  tshLogin,
  tshSshEventually,
  waitForTunnels,
  writeTeleportConfig,
  writeWebCert,
} from "./_topology_enroll.ts";

const CLUSTER = "ha";
const LOGIN = "root";
const PROXY = "lb.example.com:3080";
const AUTH = "auth.example.com:3025";
/** How long a process may take to print its banner (joins included). */
const START_TIMEOUT_MS = 60_000;

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

/** Resolves once `proc` printed `re` at least `count` times. */
async function waitForCount(proc: Proc, re: RegExp, count: number, timeoutMs = 30_000) {
  await proc.waitForOutput(new RegExp(`(?:${re.source}[\\s\\S]*?){${count}}`), timeoutMs);
}

/** An auth server's host, config and process. */
interface AuthNode {
  host: Host;
  config: string;
  started?: Started;
}

Deno.test({
  name: "ha: two auth servers on PostgreSQL and two proxies behind haproxy survive kill -9",
  ignore: skipGroup("ha"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "ha" });
    const step = stepper(t, topo);
    const dc = await topo.addLan("dc", "10.5.0.0/24");
    const out = await topo.addLan("out", "10.6.0.0/24");
    const on = (ip: string) => ({ lans: [{ lan: dc, ip }] });
    const db = await topo.addHost("db", on("10.5.0.2"));
    const auths: AuthNode[] = [];
    for (const [i, ip] of ["10.5.0.3", "10.5.0.4"].entries()) {
      const host = await topo.addHost(`auth${i + 1}`, on(ip));
      auths.push({ host, config: `${topo.dir}/auth${i + 1}.yaml` });
    }
    const authLb = await topo.addHost("authlb", on("10.5.0.5"));
    const proxyHosts = [
      await topo.addHost("proxya", on("10.5.0.6")),
      await topo.addHost("proxyb", on("10.5.0.7")),
    ];
    // The web load balancer is the only host on both LANs, and it forwards nothing itself.
    const lb = await topo.addHost("lb", {
      lans: [{ lan: out, ip: "10.6.0.8" }, { lan: dc, ip: "10.5.0.8" }],
    });
    const nodeA = await topo.addHost("nodea", on("10.5.0.9"));
    const nodeC = await topo.addHost("nodec", on("10.5.0.11"));
    const clientHost = await topo.addHost("client", { lans: [{ lan: out, ip: "10.6.0.10" }] });
    const nodeB = await topo.addHost("nodeb", { lans: [{ lan: out, ip: "10.6.0.20" }] });
    await topo.addNames({ "lb.example.com": lb.ip(out), "auth.example.com": authLb.ip() });
    const alice: TshClient = { host: clientHost, home: `${topo.dir}/tsh-alice` };
    const bob: TshClient = { host: clientHost, home: `${topo.dir}/tsh-bob` };
    await using pg: PgServer = await startPostgres({
      listen: { address: db.ip(), port: 5432, allow: "10.5.0.0/24", netns: db.ns },
    });
    const proxies: { host: Host; args: string[]; started?: Started }[] = [];
    let authHaproxy: Proc | undefined;
    let webHaproxy: Proc | undefined;
    let tunnelNode: Started | undefined;

    await step("two auth servers start at once on one PostgreSQL database", async () => {
      await pg.psql("CREATE DATABASE audit OWNER teleport", "postgres");
      assert.equal(await authLb.canConnect(db.ip(), 5432, 1_000), true);
      // The password comes from a file only the auth hosts read.
      const passwordFile = `${topo.dir}/pg-password`;
      await Deno.writeTextFile(passwordFile, `${pg.password}\n`, { mode: 0o600 });
      const url = new URL(pg.url);
      url.password = "";
      for (const a of auths) {
        await writeTeleportConfig(a.config, {
          nodename: a.host.name,
          dataDir: `${topo.dir}/${a.host.name}-data`,
          auth: {
            clusterName: CLUSTER,
            mode: "multiplex",
            storage: { connString: url.href, passwordFile },
            auditUri: url.href.replace(/\/teleport$/, "/audit"),
            // Proxies sign client addresses for the balancer's address, which auth accepts.
            publicAddr: [AUTH],
          },
        });
      }
      const started = await Promise.all(
        auths.map((a) =>
          startTeleportIn(a.host, ["--config", a.config], {
            name: a.host.name,
            timeoutMs: START_TIMEOUT_MS,
          })
        ),
      );
      started.forEach((s, i) => auths[i]!.started = s);
      // One cluster: both auth servers serve the same host CA (the CA pin of each).
      const pins = await Promise.all(auths.map(async (a) => {
        const r = await a.host.cli(["tctl", "-c", a.config, "status"]);
        assert.equal(r.code, 0, r.stderr);
        return /CA pin\s+(sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
      }));
      assert.ok(pins[0]);
      assert.equal(pins[1], pins[0]);
      authHaproxy = await startHaproxy(authLb, {
        frontends: [{
          bind: `${authLb.ip()}:3025`,
          backends: auths.map((a) => `${a.host.ip()}:3025`),
        }],
      });
    });

    await step("two proxies join through auth.example.com behind lb.example.com", async () => {
      const pair = await writeWebCert(auths[0]!.host, topo.dir, ["lb.example.com"]);
      await Promise.all(proxyHosts.map(async (h) => {
        const join = await addToken(auths[0]!.host, auths[0]!.config, "proxy");
        const config = await writeTeleportConfig(`${topo.dir}/${h.name}.yaml`, {
          nodename: h.name,
          dataDir: `${topo.dir}/${h.name}-data`,
          proxy: { webListenAddr: "0.0.0.0:3080", publicAddr: [PROXY], httpsKeyPairs: [pair] },
        });
        const args = [
          "--roles=proxy",
          `--auth-server=${AUTH}`,
          `--token=${join.token}`,
          ...join.pins.map((p) => `--ca-pin=${p}`),
          `--config=${config}`,
        ];
        const started = await startTeleportIn(h, args, {
          name: h.name,
          timeoutMs: START_TIMEOUT_MS,
        });
        proxies.push({ host: h, args, started });
      }));
      proxies.sort((a, b) => a.host.name.localeCompare(b.host.name));
      webHaproxy = await startHaproxy(lb, {
        frontends: [{
          bind: `${lb.ip(out)}:3080`,
          backends: proxyHosts.map((h) => `${h.ip()}:3080`),
        }],
      });
      assert.equal(await clientHost.canConnect(auths[0]!.host.ip(), 3025, 1_000), false);
    });

    await step(
      "alice enrolls and logs in (password + TOTP) through the load balancer",
      async () => {
        const totp = await enrollUser({
          auth: auths[0]!.host,
          config: auths[0]!.config,
          client: clientHost,
          proxy: PROXY,
          user: "alice",
          roles: "access",
          logins: LOGIN,
        });
        await tshLogin(alice, { proxy: PROXY, user: "alice", totp });
      },
    );

    await step(
      "a direct node joins auth.example.com, a tunnel node joins lb.example.com",
      async () => {
        const [joinA, joinB] = await Promise.all([
          addToken(auths[1]!.host, auths[1]!.config, "node"),
          addToken(auths[1]!.host, auths[1]!.config, "node"),
        ]);
        const configA = await writeTeleportConfig(`${topo.dir}/nodea.yaml`, {
          nodename: "nodea",
          dataDir: `${topo.dir}/nodea-data`,
          ssh: { listenAddr: `${nodeA.ip()}:3022` },
          join: { authServer: AUTH, token: joinA.token, caPins: joinA.pins },
        });
        const [, b] = await Promise.all([
          startTeleportIn(nodeA, ["--config", configA], {
            name: "nodea",
            timeoutMs: START_TIMEOUT_MS,
          }),
          startTeleportIn(nodeB, [
            "--roles=node",
            `--proxy-server=${PROXY}`,
            `--token=${joinB.token}`,
            ...joinB.pins.map((p) => `--ca-pin=${p}`),
            "--insecure",
            `--data-dir=${topo.dir}/nodeb-data`,
            "--nodename=nodeb",
          ], { name: "nodeb", timeoutMs: START_TIMEOUT_MS }),
        ]);
        tunnelNode = b;
        assert.equal((await waitForTunnels(b.proc, 2, START_TIMEOUT_MS)).size, 2);
      },
    );

    await step("tsh ls and tsh ssh reach both nodes", async () => {
      const ls = await tsh(alice, ["ls"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /nodea/);
      assert.match(ls.stdout, /nodeb/);
      for (const node of ["nodea", "nodeb"]) {
        const r = await tshSshEventually(alice, `${LOGIN}@${node}`, `echo hi-${node}`);
        assert.equal(r.stdout.trim(), `hi-${node}`);
      }
    });

    await step(
      "kill -9 auth1: tsh ssh, tsh ls, tctl users add, login and joins go on",
      async () => {
        const killedAt = Date.now();
        auths[0]!.started!.proc.kill("SIGKILL");
        await auths[0]!.started!.proc.status;
        let failed = 0;
        const firstSsh = await tshSshEventually(alice, `${LOGIN}@nodea`, "echo after-kill", 60_000);
        failed += firstSsh.attempts - 1;
        const sshBackMs = Date.now() - killedAt;
        assert.equal(firstSsh.stdout.trim(), "after-kill");
        const second = await tshSshEventually(alice, `${LOGIN}@nodeb`, "echo after-kill-b", 60_000);
        failed += second.attempts - 1;
        assert.equal(second.stdout.trim(), "after-kill-b");
        const ls = await tsh(alice, ["ls"]);
        assert.equal(ls.code, 0, ls.stderr);
        assert.match(ls.stdout, /nodea[\s\S]*nodeb|nodeb[\s\S]*nodea/);
        // tctl on the surviving auth server, the invite page and the TOTP enrollment through a
        // proxy (which reaches auth through authlb), then a first login.
        const totp = await enrollUser({
          auth: auths[1]!.host,
          config: auths[1]!.config,
          client: clientHost,
          proxy: PROXY,
          user: "bob",
          roles: "access",
          logins: LOGIN,
        });
        await tshLogin(bob, { proxy: PROXY, user: "bob", totp });
        const join = await addToken(auths[1]!.host, auths[1]!.config, "node");
        await startTeleportIn(nodeC, [
          "--roles=node",
          `--auth-server=${AUTH}`,
          `--token=${join.token}`,
          ...join.pins.map((p) => `--ca-pin=${p}`),
          `--data-dir=${topo.dir}/nodec-data`,
          "--nodename=nodec",
        ], { name: "nodec", timeoutMs: START_TIMEOUT_MS });
        const c = await tshSshEventually(bob, `${LOGIN}@nodec`, "echo joined-c", 60_000);
        assert.equal(c.stdout.trim(), "joined-c");
        note(
          `ha: after kill -9 of auth1, tsh ssh worked again ${sshBackMs} ms later; ` +
            `${failed} tsh ssh attempt(s) failed in between`,
        );
      },
    );

    await step("auth1 restarts and serves the same cluster again", async () => {
      const upsBefore = authHaproxy!.matches(/b0\/s0 is UP/).length;
      auths[0]!.started = await startTeleportIn(auths[0]!.host, ["--config", auths[0]!.config], {
        name: "auth1",
        timeoutMs: START_TIMEOUT_MS,
      });
      // What auth2 wrote while auth1 was gone, auth1 reads.
      const users = await auths[0]!.host.cli(["tctl", "-c", auths[0]!.config, "users", "ls"]);
      assert.equal(users.code, 0, users.stderr);
      assert.match(users.stdout, /bob/);
      await waitForCount(authHaproxy!, /b0\/s0 is UP/, upsBefore + 1);
      const r = await tshSshEventually(alice, `${LOGIN}@nodec`, "echo back");
      assert.equal(r.stdout.trim(), "back");
    });

    await step("kill -9 proxya: a live session through proxyb goes on; new ones work", async () => {
      const [proxyA] = proxies;
      // Steer the live session to proxyb: proxya refuses new connections until haproxy sees it
      // down (established ones, such as nodeb's tunnel, stay).
      const downs = webHaproxy!.matches(/b0\/s0 is DOWN/).length;
      await proxyA!.host.nft(
        "table inet tp_steer {\n  chain input {\n" +
          "    type filter hook input priority 0; policy accept;\n" +
          "    tcp dport 3080 ct state new reject with tcp reset\n  }\n}\n",
      );
      await waitForCount(webHaproxy!, /b0\/s0 is DOWN/, downs + 1);
      const ups = webHaproxy!.matches(/b0\/s0 is UP/).length;
      const live = clientHost.teleport(
        ["tsh", "ssh", `${LOGIN}@nodeb`, "while read l; do echo got-$l; done"],
        { env: { TELEPORT_HOME: alice.home }, stdin: "piped", name: "live-session" },
      );
      await live.write("one\n");
      await live.waitForOutput(/got-one/, 30_000, "stdout");
      await proxyA!.host.nft("delete table inet tp_steer\n");
      await waitForCount(webHaproxy!, /b0\/s0 is UP/, ups + 1);
      const killedAt = Date.now();
      proxyA!.started!.proc.kill("SIGKILL");
      await proxyA!.started!.proc.status;
      await live.write("two\n");
      await live.waitForOutput(/got-two/, 30_000, "stdout");
      assert.equal(live.exitStatus, undefined, "the live session through proxyb is still up");
      const r = await tshSshEventually(alice, `${LOGIN}@nodea`, "echo via-lb", 60_000);
      assert.equal(r.stdout.trim(), "via-lb");
      const b = await tshSshEventually(alice, `${LOGIN}@nodeb`, "echo via-lb-b", 60_000);
      assert.equal(b.stdout.trim(), "via-lb-b");
      note(
        `ha: after kill -9 of proxya, tsh ssh worked again ${Date.now() - killedAt} ms later ` +
          `(${r.attempts - 1 + b.attempts - 1} failed attempt(s)); the live session went on`,
      );
      await live.closeStdin();
      assert.equal((await live.status).code, 0, live.output);
    });

    await step("proxya restarts; nodeb tunnels to it again; tsh works through it", async () => {
      const [proxyA] = proxies;
      const tunnels = tunnelNode!.proc.matches(/Reverse tunnel to proxy \S+ at \S+ is up/).length;
      const ups = webHaproxy!.matches(/b0\/s0 is UP/).length;
      proxyA!.started = await startTeleportIn(proxyA!.host, proxyA!.args, {
        name: "proxya",
        timeoutMs: START_TIMEOUT_MS,
      });
      await waitForCount(webHaproxy!, /b0\/s0 is UP/, ups + 1);
      await waitForCount(
        tunnelNode!.proc,
        /Reverse tunnel to proxy \S+ at \S+ is up/,
        tunnels + 1,
        START_TIMEOUT_MS,
      );
      for (const node of ["nodea", "nodeb", "nodec"]) {
        const r = await tshSshEventually(alice, `${LOGIN}@${node}`, `echo end-${node}`);
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
