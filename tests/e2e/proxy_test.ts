/**
 * The proxy service and tsh end to end: one `teleport start --roles=auth,proxy,node`
 * per listener mode; a user invited with `tctl users add` sets a password and
 * enrolls TOTP through the proxy's JSON API; `tsh login` with password + TOTP;
 * `tsh ls`, `tsh ssh` (exit codes, TLS routing and the separate SSH port), the
 * stock `ssh` through `tsh config`; `curl` and `openssl s_client` against the
 * multiplexed port; and the refusals: a user without the login, an expired
 * certificate, and a host:port that is not a registered node.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import type * as OTPAuth from "otpauth";
import { openBackend } from "../../lib/backend/mod.ts";
import { importSshPrivateKey, parseSshCertificate, signSshCertificate } from "../../lib/ca/mod.ts";
import { RealClock } from "../../lib/clock/mod.ts";
import { CertAuthoritiesService } from "../../lib/services/mod.ts";
import {
  auditEvents,
  ensureOsUser,
  eventually,
  freePort,
  REPO,
  run,
  runCli,
  type RunningTeleport,
  startTeleport,
  tempDir,
} from "./_helpers.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const ALICE = "td_e2e_palice";

interface Cluster {
  tp: RunningTeleport;
  dir: string;
  config: string;
  cluster: string;
  node: string;
}

async function startCluster(
  dir: string,
  o: { mode: "multiplex" | "separate"; cluster: string; node: string },
): Promise<Cluster> {
  const config = `${dir}/teleport.yaml`;
  const proxySsh = o.mode === "separate" ? `  listen_addr: 127.0.0.1:${freePort()}\n` : "";
  await Deno.writeTextFile(
    config,
    `version: v3
teleport:
  nodename: ${o.node}
  data_dir: ${dir}/data
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
  cluster_name: ${o.cluster}
  proxy_listener_mode: ${o.mode}
  authentication:
    type: local
    second_factor: otp
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${freePort()}
${proxySsh}ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
  labels:
    env: test
`,
  );
  const tp = await startTeleport(["-c", config]);
  return { tp, dir, config, cluster: o.cluster, node: o.node };
}

/** Invites `user` with the given roles and logins; returns the enrolled TOTP. */
function invite(c: Cluster, user: string, logins: string, roles = "access") {
  return inviteAndEnroll({ config: c.config, webPort: c.tp.webPort, user, roles, logins });
}

/** Runs tsh with its own TELEPORT_HOME (`home` under the test dir). */
function tsh(c: Cluster, args: string[], stdin?: string, home = "tsh") {
  return runCli(["tsh", ...args], {
    env: { TELEPORT_HOME: `${c.dir}/${home}` },
    ...(stdin === undefined ? {} : { stdin }),
  });
}

/** `tsh login` as `user`; fails the test when it fails. */
async function login(c: Cluster, user: string, totp: OTPAuth.TOTP, home = "tsh") {
  const out = await tshLogin({ home: `${c.dir}/${home}`, webPort: c.tp.webPort, user, totp });
  assert.equal(out.code, 0, out.stderr + out.stdout);
  return out;
}

Deno.test({
  name: "proxy: multiplexed port, tsh login with TOTP, tsh ls/ssh, ssh via tsh config, refusals",
  ignore: skipGroup("proxy-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-proxy-");
    const c = await startCluster(dir.path, {
      mode: "multiplex",
      cluster: "e2e-proxy.example",
      node: "e2e-pnode",
    });
    await using _tp = c.tp;
    await ensureOsUser(ALICE);

    await t.step("curl gets /webapi/ping with Teleport's field names", async () => {
      const r = await run("curl", ["-sk", `https://127.0.0.1:${c.tp.webPort}/webapi/ping`]);
      const ping = JSON.parse(r.out);
      assert.equal(ping.cluster_name, c.cluster);
      assert.equal(ping.proxy.tls_routing_enabled, true);
      assert.equal(ping.auth.second_factor, "otp");
      assert.equal(typeof ping.server_version, "string");
      assert.match(ping.proxy.ssh.web_listen_addr, new RegExp(`:${c.tp.webPort}$`));
    });

    await t.step("openssl s_client -alpn teleport-proxy-ssh gets an SSH banner", async () => {
      const child = new Deno.Command("openssl", {
        args: [
          "s_client",
          "-connect",
          `127.0.0.1:${c.tp.webPort}`,
          "-alpn",
          "teleport-proxy-ssh",
          "-quiet",
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      let seen = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const timer = setTimeout(() => child.kill(), 15_000);
      while (!seen.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      clearTimeout(timer);
      child.kill();
      await reader.cancel();
      await child.stdin.close().catch(() => {});
      await child.status;
      assert.match(seen, /^SSH-2\.0-Teleport/);
    });

    await t.step("a plain HTTP request gets a hint to use HTTPS", async () => {
      const r = await run("curl", ["-s", `http://127.0.0.1:${c.tp.webPort}/webapi/ping`]);
      assert.match(r.out, /https/i);
    });

    const totp = await invite(c, "alice", ALICE, "access,editor");

    await t.step("tsh login with password and TOTP; status", async () => {
      const out = await login(c, "alice", totp);
      assert.match(out.stdout + out.stderr, /alice/);
      const st = await tsh(c, ["status"]);
      assert.match(st.stdout, /alice/);
      assert.match(st.stdout, new RegExp(ALICE));
    });

    await t.step("tsh ls shows the node with its labels", async () => {
      const ls = await tsh(c, ["ls"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, new RegExp(c.node));
      assert.match(ls.stdout, /env=test/);
      const json = JSON.parse((await tsh(c, ["ls", "--format=json"])).stdout);
      assert.equal(json.length, 1);
      assert.equal((await tsh(c, ["ls", "env=prod"])).stdout.includes(c.node), false);
    });

    await t.step("tsh ssh runs a command and returns its exit code", async () => {
      const r = await tsh(c, ["ssh", `${ALICE}@${c.node}`, "id; exit 7"]);
      assert.equal(r.code, 7, r.stderr);
      assert.match(r.stdout, new RegExp(`uid=\\d+\\(${ALICE}\\)`));
      const l = await tsh(c, ["ssh", "-l", ALICE, c.node, "echo", "hi"]);
      assert.equal(l.code, 0, l.stderr);
      assert.equal(l.stdout.trim(), "hi");
    });

    await t.step("tsh ssh -L forwards a local port through the node", async () => {
      const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const served = (async () => {
        for await (const conn of echo) {
          void conn.readable.pipeTo(conn.writable).catch(() => {});
        }
      })();
      const local = freePort();
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${REPO}main.ts`,
          "tsh",
          "ssh",
          "-L",
          `${local}:127.0.0.1:${(echo.addr as Deno.NetAddr).port}`,
          `${ALICE}@${c.node}`,
          "sleep 20",
        ],
        env: { TELEPORT_HOME: `${c.dir}/tsh` },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        const reply = await eventually("the forwarded port", async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: local });
          try {
            await conn.write(new TextEncoder().encode("ping through -L"));
            const buf = new Uint8Array(64);
            const n = await conn.read(buf);
            return n === null ? undefined : new TextDecoder().decode(buf.subarray(0, n));
          } finally {
            conn.close();
          }
        });
        assert.equal(reply, "ping through -L");
      } finally {
        child.kill();
        await child.output();
        echo.close();
        await served.catch(() => {});
      }
    });

    await t.step("tsh play replays a recorded PTY session", async () => {
      const r = await tsh(c, ["ssh", "-t", `${ALICE}@${c.node}`, "echo recorded-hello"]);
      assert.equal(r.code, 0, r.stderr);
      const sid = await eventually("the uploaded recording", async () => {
        const events = await auditEvents<{ sid?: string }>(c.config, "session.upload");
        return events.at(-1)?.sid;
      });
      const play = await tsh(c, ["play", "--speed=50", sid]);
      assert.equal(play.code, 0, play.stderr);
      assert.match(play.stdout, /recorded-hello/);
    });

    await t.step("plain ssh <node>.<cluster> works through tsh config", async () => {
      const cfg = await tsh(c, ["config"]);
      assert.equal(cfg.code, 0, cfg.stderr);
      const file = `${c.dir}/ssh_config`;
      await Deno.writeTextFile(file, cfg.stdout);
      const r = await run("ssh", [
        "-F",
        file,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        `${ALICE}@${c.node}.${c.cluster}`,
        "echo via-openssh; exit 3",
      ]);
      assert.equal(r.code, 3, r.err);
      assert.equal(r.out.trim(), "via-openssh");
    });

    await t.step("stock ssh -J jumps through the proxy's SSH port (direct-tcpip)", async () => {
      // The jump host is the multiplexed web port (plain SSH is routed to the proxy); the
      // `Host … 127.0.0.1` block of tsh config gives it the key, certificate and known_hosts.
      const file = `${c.dir}/ssh_config`;
      const cfg = await Deno.readTextFile(file);
      const identity = /IdentityFile\s+"?([^"\n]+)"?/.exec(cfg)![1]!;
      const certificate = /CertificateFile\s+"?([^"\n]+)"?/.exec(cfg)![1]!;
      const knownHosts = /UserKnownHostsFile\s+"?([^"\n]+)"?/.exec(cfg)![1]!;
      const r = await run("ssh", [
        "-F",
        file,
        "-J",
        `${ALICE}@127.0.0.1:${c.tp.webPort}`,
        "-i",
        identity,
        "-o",
        `CertificateFile=${certificate}`,
        "-o",
        `UserKnownHostsFile=${knownHosts}`,
        "-o",
        `HostKeyAlias=${c.node}.${c.cluster}`,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        `${ALICE}@${c.node}`,
        "echo via-jump",
      ]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), "via-jump");
      // An unregistered target is refused by the proxy, with its reason.
      const bad = await run("ssh", [
        "-F",
        file,
        "-J",
        `${ALICE}@127.0.0.1:${c.tp.webPort}`,
        "-i",
        identity,
        "-o",
        `CertificateFile=${certificate}`,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-p",
        "22",
        `${ALICE}@127.0.0.1`,
        "true",
      ]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.err, /not a registered node/);
    });

    await t.step("stock ssh -J with an ssh-keygen RSA key and default algorithms", async () => {
      // The key is certified by the cluster (tctl auth sign --public-key); OpenSSH ≥ 8.8
      // signs with rsa-sha2-512 on both hops, the proxy's SSH server and the node.
      const key = `${c.dir}/id_rsa`;
      await run("ssh-keygen", ["-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", key]);
      const signed = await runCli([
        "tctl",
        "-c",
        c.config,
        "auth",
        "sign",
        "--user=alice",
        `--public-key=${key}.pub`,
        "--ttl=1h",
      ]);
      assert.equal(signed.code, 0, signed.stderr);
      const knownHosts = `${c.dir}/rsa_known_hosts`;
      const exported = await runCli(["tctl", "-c", c.config, "auth", "export", "--type=host"]);
      await Deno.writeTextFile(knownHosts, exported.stdout);
      // One config for both hops (ssh passes -F to the jump ssh): the jump host (the
      // multiplexed web port) is not checked, the node is, against the cluster's host CA.
      const config = `${c.dir}/rsa_ssh_config`;
      await Deno.writeTextFile(
        config,
        `Host 127.0.0.1
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
Host *
  IdentityFile ${key}
  CertificateFile ${key}-cert.pub
  IdentitiesOnly yes
  BatchMode yes
  LogLevel ERROR
  StrictHostKeyChecking yes
  UserKnownHostsFile ${knownHosts}
`,
      );
      const r = await run("ssh", [
        "-F",
        config,
        "-J",
        `${ALICE}@127.0.0.1:${c.tp.webPort}`,
        "-o",
        `HostKeyAlias=${c.node}.${c.cluster}`,
        `${ALICE}@${c.node}`,
        "echo rsa-via-jump",
      ]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), "rsa-via-jump");
    });

    await t.step("a host:port that is not a registered node is refused", async () => {
      const r = await tsh(c, ["proxy", "ssh", `${ALICE}@127.0.0.1:22`], "");
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /not a registered node/);
      const s = await tsh(c, ["ssh", `${ALICE}@127.0.0.1:22`, "true"]);
      assert.notEqual(s.code, 0);
    });

    await t.step("a user without the login is refused", async () => {
      const bob = await invite(c, "bob", "td_nobody_here");
      await login(c, "bob", bob, "tsh-bob");
      const r = await tsh(c, ["ssh", `${ALICE}@${c.node}`, "true"], undefined, "tsh-bob");
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /denied|not allowed|cannot/i);
    });

    await t.step("an expired certificate is refused", async () => {
      const home = `${c.dir}/tsh`;
      const certs: string[] = [];
      for await (const e of Deno.readDir(`${home}/keys`)) {
        for await (const f of Deno.readDir(`${home}/keys/${e.name}`)) {
          if (f.name.endsWith("-ssh")) {
            for await (const g of Deno.readDir(`${home}/keys/${e.name}/${f.name}`)) {
              certs.push(`${home}/keys/${e.name}/${f.name}/${g.name}`);
            }
          }
        }
      }
      // The backend has one writer: read the user CA while teleport is stopped, then restart.
      await c.tp.stop();
      const backend = await openBackend(`kv:${c.dir}/data/backend/kv.db`, {
        clock: new RealClock(),
      });
      const ca = await new CertAuthoritiesService(backend).get("user", c.cluster);
      await backend.close();
      const signer = await importSshPrivateKey(ca.spec.active_keys.ssh[0]!.private_key!);
      for (const path of certs) {
        const old = parseSshCertificate(await Deno.readTextFile(path));
        const expired = await signSshCertificate({
          signer,
          publicKeyBlob: old.publicKeyBlob,
          certType: "user",
          keyId: old.keyId,
          principals: old.principals,
          validAfter: new Date(Date.now() - 2 * 3_600_000),
          validBefore: new Date(Date.now() - 3_600_000),
          extensions: old.extensions,
        });
        await Deno.writeTextFile(path, expired.authorizedKey + "\n");
      }
      await using _again = await startTeleport(["-c", c.config]);
      const r = await tsh(c, ["ssh", `${ALICE}@${c.node}`, "true"]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /expired|tsh login/i);
    });
  },
});

Deno.test({
  name: "proxy: separate listener mode, tsh ssh through the SSH proxy port",
  ignore: skipGroup("proxy-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using dir = await tempDir("tp-e2e-proxy-sep-");
    const c = await startCluster(dir.path, {
      mode: "separate",
      cluster: "e2e-sep.example",
      node: "e2e-snode",
    });
    await using _tp = c.tp;
    assert.ok(Number.isFinite(c.tp.proxySshPort), c.tp.banner);
    await ensureOsUser(ALICE);
    const ping = JSON.parse(
      (await run("curl", ["-sk", `https://127.0.0.1:${c.tp.webPort}/webapi/ping`])).out,
    );
    assert.equal(ping.proxy.tls_routing_enabled, false);
    assert.match(ping.proxy.ssh.listen_addr, new RegExp(`:${c.tp.proxySshPort}$`));
    const totp = await invite(c, "alice", ALICE, "access,editor");
    await login(c, "alice", totp);
    const r = await tsh(c, ["ssh", `${ALICE}@${c.node}`, "echo separate; exit 7"]);
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout.trim(), "separate");
  },
});
