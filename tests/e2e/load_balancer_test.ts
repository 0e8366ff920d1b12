/**
 * The proxy behind real load balancers (haproxy), on 127.0.0.x ports:
 * - a TLS-terminating haproxy (`mode tcp`, `ssl crt`, ALPN `teleport-proxy-ssh,http/1.1`) that
 *   adds a PROXY v2 header, in front of `teleport start --insecure-no-tls` with
 *   `proxy_protocol: on`: the web API, `tsh login` and SSH (stock ssh, ALPN `teleport-proxy-ssh`
 *   ending at haproxy) work through it, and the audit
 *   log names the client's address (127.0.0.1), not haproxy's (it connects from 127.0.0.9);
 *   a client that skips haproxy (no header) is refused;
 * - with `proxy_protocol: off`, a spoofed PROXY header sent straight to the port is refused,
 *   while the same request without one is served.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  auditEvents,
  ensureOsUser,
  eventually,
  freePort,
  run,
  runCli,
  type RunningTeleport,
  startTeleport,
  tempDir,
} from "./_helpers.ts";
import { lbCertificate, startHaproxy, writeHaproxyConfig } from "./_haproxy.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const ALICE = "td_e2e_lbalice";
const CLUSTER = "e2e-lb.example";
const NODE = "e2e-lb-node";
/** haproxy's own source address towards teleport. */
const LB_SOURCE = "127.0.0.9";

async function writeConfig(
  dir: string,
  o: {
    webPort: number;
    nodePort: number;
    publicPort?: number;
    proxyProtocol?: "on" | "off";
    node: boolean;
  },
): Promise<string> {
  const config = `${dir}/teleport.yaml`;
  await Deno.writeTextFile(
    config,
    `version: v3
teleport:
  nodename: ${NODE}
  data_dir: ${dir}/data
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
  cluster_name: ${CLUSTER}
  proxy_listener_mode: multiplex
  authentication:
    type: local
    second_factor: otp
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${o.webPort}
${o.publicPort === undefined ? "" : `  public_addr: localhost:${o.publicPort}\n`}${
      o.proxyProtocol === undefined ? "" : `  proxy_protocol: ${o.proxyProtocol}\n`
    }ssh_service:
  enabled: ${o.node}
  listen_addr: 127.0.0.1:${o.nodePort}
`,
  );
  return config;
}

Deno.test({
  name: "load balancer: TLS-terminating haproxy with PROXY v2 in front of --insecure-no-tls",
  ignore: skipGroup("lb-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-lb-");
    const webPort = freePort();
    const lbPort = freePort();
    const nodePort = freePort();
    const config = await writeConfig(dir.path, {
      webPort,
      nodePort,
      publicPort: lbPort,
      proxyProtocol: "on",
      node: true,
    });
    const lbPem = await lbCertificate(dir.path);
    const haproxyCfg = await writeHaproxyConfig(dir.path, {
      mode: "tcp",
      sections: `frontend lb
  bind 127.0.0.1:${lbPort} ssl crt ${lbPem} alpn teleport-proxy-ssh,http/1.1
  default_backend teleport
backend teleport
  server tp 127.0.0.1:${webPort} send-proxy-v2 source ${LB_SOURCE}
`,
    });
    await ensureOsUser(ALICE);
    await using tp: RunningTeleport = await startTeleport(["-c", config, "--insecure-no-tls"]);
    await using _lb = await startHaproxy(haproxyCfg, lbPort);
    const home = `${dir.path}/tsh`;
    const tsh = (args: string[]) => runCli(["tsh", ...args], { env: { TELEPORT_HOME: home } });

    await t.step("the web API answers through haproxy", async () => {
      const r = await run("curl", ["-sS", "-k", `https://127.0.0.1:${lbPort}/webapi/ping`]);
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).cluster_name, CLUSTER);
      assert.match(tp.logs(), /--insecure-no-tls: the web port/);
    });

    await t.step("a client that skips haproxy is refused (no PROXY header)", async () => {
      const plain = await run("curl", ["-sS", `http://127.0.0.1:${webPort}/webapi/ping`]);
      assert.notEqual(plain.code, 0, plain.out);
      const tls = await run("curl", ["-sSk", `https://127.0.0.1:${webPort}/webapi/ping`]);
      assert.notEqual(tls.code, 0, tls.out);
    });

    await t.step("tsh login and ssh through haproxy; audit names the client", async () => {
      const totp = await inviteAndEnroll({
        config,
        webPort: lbPort,
        user: "alice",
        roles: "access",
        logins: ALICE,
      });
      const out = await tshLogin({ home, webPort: lbPort, user: "alice", totp });
      assert.equal(out.code, 0, out.stderr + out.stdout);
      // SSH through haproxy: TLS (ALPN teleport-proxy-ssh) ends at haproxy, plain SSH with a
      // PROXY header reaches the proxy's SSH jump server. (tsh ssh itself also needs the auth
      // passthrough ALPN, which a TLS-terminating balancer cannot carry without
      // /webapi/connectionupgrade.)
      const cfg = await tsh(["config"]);
      assert.equal(cfg.code, 0, cfg.stderr);
      const sshConfig = `${dir.path}/ssh_config`;
      await Deno.writeTextFile(sshConfig, cfg.stdout);
      const jump = `ssh -F ${sshConfig} -o BatchMode=yes ` +
        `-o 'ProxyCommand=openssl s_client -quiet -connect 127.0.0.1:${lbPort} -alpn teleport-proxy-ssh' ` +
        `-W ${NODE}:${nodePort} ${ALICE}@127.0.0.1`;
      const r = await run("ssh", [
        "-F",
        sshConfig,
        "-o",
        `ProxyCommand=${jump}`,
        "-o",
        "BatchMode=yes",
        `${ALICE}@${NODE}.${CLUSTER}`,
        "echo $SSH_CLIENT",
      ]);
      assert.equal(r.code, 0, r.err);
      // The node sees the client (127.0.0.1), not haproxy (127.0.0.9).
      assert.match(r.out.trim(), /^127\.0\.0\.1 \d+ \d+$/);
      const logins = await eventually("the user.login event", async () => {
        const events = await auditEvents<Record<string, unknown>>(config, "user.login");
        return events.length > 0 ? events : undefined;
      });
      const text = JSON.stringify(logins);
      assert.match(text, /127\.0\.0\.1/, text);
      assert.doesNotMatch(text, new RegExp(LB_SOURCE.replaceAll(".", "\\.")), text);
      const starts = await auditEvents<Record<string, string>>(config, "session.start");
      assert.ok(starts.length > 0, "no session.start event");
      for (const e of starts) assert.match(e["addr.remote"] ?? "", /^127\.0\.0\.1:\d+$/);
    });
  },
});

Deno.test({
  name: "load balancer: a spoofed PROXY header sent straight to the port is refused when off",
  ignore: skipGroup("lb-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using dir = await tempDir("tp-e2e-lboff-");
    const webPort = freePort();
    const config = await writeConfig(dir.path, {
      webPort,
      nodePort: freePort(),
      proxyProtocol: "off",
      node: false,
    });
    await using tp = await startTeleport(["-c", config, "--roles=auth,proxy"]);
    const url = `https://127.0.0.1:${webPort}/webapi/ping`;
    const honest = await run("curl", ["-sSk", url]);
    assert.equal(honest.code, 0, honest.err);
    assert.equal(JSON.parse(honest.out).cluster_name, CLUSTER);
    // curl's --haproxy-clientip claims another client in a v1 header.
    const spoofed = await run("curl", ["-sSk", "--haproxy-clientip", "203.0.113.50", url]);
    assert.notEqual(spoofed.code, 0, spoofed.out);
    assert.equal(spoofed.out, "");
    assert.doesNotMatch(tp.logs(), /203\.0\.113\.50/);
  },
});
