/**
 * The proxy behind an HTTP-only (L7) load balancer: haproxy in `mode http` terminates TLS on
 * 127.0.0.1 (ALPN `http/1.1` only) in front of `teleport start --insecure-no-tls`. Plain HTTPS
 * (the web API, account setup, `tsh login`) passes as HTTP; everything that needs TLS routing
 * (the auth API for `tsh ls`, `tsh ssh`, `tsh proxy ssh` under OpenSSH, a reverse tunnel node)
 * only works because the clients notice that the balancer picks no Teleport ALPN and go through
 * `GET /webapi/connectionupgrade` by themselves. The proxy's debug log counts the upgrades, so a
 * client that silently went another way fails the test.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  ensureOsUser,
  eventually,
  freePort,
  run,
  runCli,
  startTeleport,
  startTunnelNode,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import { lbCertificate, startHaproxy, writeHaproxyConfig } from "./_haproxy.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const ALICE = "td_e2e_l7alice";
const CLUSTER = "e2e-l7.example";
const NODE = "e2e-l7-node";
const TUNNEL_NODE = "e2e-l7-tunnel";

/** How many connection upgrades the proxy's debug log shows. */
function upgrades(logs: string): number {
  return logs.match(/Upgraded a connection from \S+ \(alpn-ping\)/g)?.length ?? 0;
}

Deno.test({
  name: "L7 load balancer: tsh, tsh proxy ssh and a tunnel node upgrade through haproxy mode http",
  ignore: skipGroup("l7-lb-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-l7-");
    const lbPort = freePort();
    const config = await writeClusterConfig(dir.path, {
      nodeName: NODE,
      clusterName: CLUSTER,
      // Agents and tsh are told the balancer's address.
      proxy: `  public_addr: 127.0.0.1:${lbPort}\n`,
    });
    // The banner names the public address (the balancer): take the listener from the file.
    const webPort = Number(
      /web_listen_addr: 127\.0\.0\.1:(\d+)/.exec(
        await Deno.readTextFile(config),
      )?.[1],
    );
    await ensureOsUser(ALICE);
    await using tp = await startTeleport(["-c", config, "--insecure-no-tls", "--debug"]);
    const lbPem = await lbCertificate(dir.path);
    const haproxyCfg = await writeHaproxyConfig(dir.path, {
      mode: "http",
      sections: `frontend lb
  bind 127.0.0.1:${lbPort} ssl crt ${lbPem} alpn http/1.1
  default_backend teleport
backend teleport
  server tp 127.0.0.1:${webPort}
`,
    });
    await using _lb = await startHaproxy(haproxyCfg, lbPort);
    const base = `https://127.0.0.1:${lbPort}`;
    const home = `${dir.path}/tsh`;
    const tsh = (args: string[]) => runCli(["tsh", ...args], { env: { TELEPORT_HOME: home } });

    await t.step("the web API answers through haproxy", async () => {
      const r = await run("curl", ["-sSk", `${base}/webapi/ping`]);
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).cluster_name, CLUSTER);
    });

    await t.step("curl --no-alpn gets 101 from /webapi/connectionupgrade", async () => {
      const r = await run("curl", [
        "-sSik",
        "--no-alpn",
        "--max-time",
        "3",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: alpn-ping",
        `${base}/webapi/connectionupgrade`,
      ]);
      // curl then waits on the upgraded stream; its time limit ends it.
      assert.match(r.out, /^HTTP\/1\.1 101 Switching Protocols\r\n/, r.out + r.err);
      assert.match(r.out, /\r\nx-teleport-upgrade: alpn-ping\r\n/i);
      const bad = await run("curl", [
        "-sSk",
        "-w",
        " %{http_code}",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: h2c",
        `${base}/webapi/connectionupgrade`,
      ]);
      assert.match(bad.out, /unsupported upgrade type "h2c".* 400$/s);
    });

    await t.step("tsh login, tsh ls and tsh ssh upgrade by themselves", async () => {
      const totp = await inviteAndEnroll({
        config,
        webPort: lbPort,
        user: "alice",
        roles: "access",
        logins: ALICE,
      });
      const login = await tshLogin({ home, webPort: lbPort, user: "alice", totp });
      assert.equal(login.code, 0, login.stderr + login.stdout);
      const before = upgrades(tp.logs());
      const ls = await tsh(["ls"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, new RegExp(NODE));
      const ssh = await tsh(["ssh", `${ALICE}@${NODE}`, "echo", "ok"]);
      assert.equal(ssh.code, 0, ssh.stderr);
      assert.equal(ssh.stdout.trim(), "ok");
      // The auth API (tsh ls, tsh ssh) and the SSH proxy (tsh ssh) went through upgrades.
      assert.ok(
        upgrades(tp.logs()) >= before + 3,
        `expected at least 3 more upgrades, log has ${upgrades(tp.logs())} (was ${before})`,
      );
    });

    await t.step("OpenSSH with tsh proxy ssh as ProxyCommand", async () => {
      const cfg = await tsh(["config"]);
      assert.equal(cfg.code, 0, cfg.stderr);
      const sshConfig = `${dir.path}/ssh_config`;
      await Deno.writeTextFile(sshConfig, cfg.stdout);
      const before = upgrades(tp.logs());
      const r = await run("ssh", [
        "-F",
        sshConfig,
        "-o",
        "BatchMode=yes",
        `${ALICE}@${NODE}.${CLUSTER}`,
        "echo via-openssh",
      ], { env: { ...Deno.env.toObject(), TELEPORT_HOME: home } });
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), "via-openssh");
      assert.ok(upgrades(tp.logs()) > before, "tsh proxy ssh went through an upgrade");
    });

    await t.step("a tunnel node joins and serves through the balancer", async () => {
      const before = upgrades(tp.logs());
      // A tunnel node's banner names no listener, so it is started here (as in client_addr_test).
      await using _stop = await startTunnelNode({
        proxy: `127.0.0.1:${lbPort}`,
        config,
        dataDir: `${dir.path}/tunnel-data`,
        nodeName: TUNNEL_NODE,
      });
      assert.ok(upgrades(tp.logs()) > before, "the tunnel went through an upgrade");
      // Its registration may lag its banner a little.
      const r = await eventually("tsh ssh to the tunnel node", async () => {
        const res = await tsh(["ssh", `${ALICE}@${TUNNEL_NODE}`, "echo", "tunnel-ok"]);
        return res.code === 0 ? res : undefined;
      });
      assert.equal(r.stdout.trim(), "tunnel-ok");
    });
  },
});
