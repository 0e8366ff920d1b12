/**
 * The client's real address through the proxy, with stock OpenSSH: a user certificate carrying
 * `source-address 127.0.0.3/32` works from 127.0.0.3 and is refused from 127.0.0.2 (the proxy
 * checks it); the node sees 127.0.0.3 in `SSH_CLIENT` and the audit log, not the proxy's
 * 127.0.0.1, because the proxy writes a signed PROXY v2 header first. Straight to the node port:
 * a genuine proxy-signed header for 127.0.0.2 is refused by the node's own `source-address`
 * check; an unsigned header and one signed by a node's host certificate close the connection.
 * Auth learns the client's address through the proxy's `teleport-auth@…` pass-through too.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import net from "node:net";
import tls from "node:tls";
import { openBackend } from "../../lib/backend/mod.ts";
import { importSshPrivateKey, parseSshCertificate, signSshCertificate } from "../../lib/ca/mod.ts";
import { RealClock } from "../../lib/clock/mod.ts";
import { authAlpn } from "../../lib/multiplex/mod.ts";
import { formatProxyHeaderV2 } from "../../lib/net/mod.ts";
import { CertAuthoritiesService } from "../../lib/services/mod.ts";
import {
  auditEvents,
  ensureOsUser,
  eventually,
  freePort,
  REPO,
  run,
  runCli,
  startTeleport,
  startTunnelNode,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const ALICE = "td_e2e_caddr";
const CLUSTER = "e2e-caddr.example";
const NODE = "e2e-caddr-node";
const TUNNEL_NODE = "e2e-caddr-tnode";
const DIAL = `${REPO}tests/e2e/_client_addr_dial.ts`;

Deno.test({
  name: "client address: source-address at proxy and node, SSH_CLIENT and audit show the client",
  ignore: skipGroup("client-addr-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-caddr-");
    const nodePort = freePort();
    const config = await writeClusterConfig(dir.path, {
      nodeName: NODE,
      clusterName: CLUSTER,
      nodePort,
    });
    await ensureOsUser(ALICE);
    const home = `${dir.path}/tsh`;
    let tp = await startTeleport(["-c", config]);
    try {
      const totp = await inviteAndEnroll({
        config,
        webPort: tp.webPort,
        user: "alice",
        roles: "access",
        logins: ALICE,
      });
      const out = await tshLogin({ home, webPort: tp.webPort, user: "alice", totp });
      assert.equal(out.code, 0, out.stderr + out.stdout);
      const cfg = await runCli(["tsh", "config"], { env: { TELEPORT_HOME: home } });
      assert.equal(cfg.code, 0, cfg.stderr);
      await Deno.writeTextFile(`${dir.path}/ssh_config`, cfg.stdout);

      // Re-sign alice's certificate with source-address (the backend has one writer: stop first).
      await tp.stop();
      const backend = await openBackend(`kv:${dir.path}/data/backend/kv.db`, {
        clock: new RealClock(),
      });
      const ca = await new CertAuthoritiesService(backend).get("user", CLUSTER);
      await backend.close();
      const signer = await importSshPrivateKey(ca.spec.active_keys.ssh[0]!.private_key!);
      const certPath = /CertificateFile\s+"?([^"\n]+)"?/.exec(cfg.stdout)![1]!;
      const old = parseSshCertificate(await Deno.readTextFile(certPath));
      const pinned = await signSshCertificate({
        signer,
        publicKeyBlob: old.publicKeyBlob,
        certType: "user",
        keyId: old.keyId,
        principals: old.principals,
        validAfter: old.validAfter,
        validBefore: old.validBefore,
        criticalOptions: { "source-address": "127.0.0.3/32" },
        extensions: old.extensions,
      });
      await Deno.writeTextFile(certPath, pinned.authorizedKey + "\n");
      tp = await startTeleport(["-c", config]);

      const sshConfig = `${dir.path}/ssh_config`;
      /** A check for `eventually`: the process log shows `re`. */
      const inLogs = (re: RegExp) => () => Promise.resolve(re.test(tp.logs()) ? true : undefined);
      /** Stock ssh to the node through the proxy's web port, the jump leg bound to `from`. */
      const viaProxy = (from: string, command: string) =>
        run("ssh", [
          "-F",
          sshConfig,
          "-o",
          `ProxyCommand=ssh -F ${sshConfig} -o BatchMode=yes -b ${from} -p ${tp.webPort} ` +
          `-W ${NODE}:${nodePort} ${ALICE}@127.0.0.1`,
          "-o",
          "BatchMode=yes",
          `${ALICE}@${NODE}.${CLUSTER}`,
          command,
        ]);
      /** Stock ssh straight to the node port behind `_client_addr_dial.ts`. */
      const direct = (mode: string, identity: string, claimed: string, command: string) =>
        run("ssh", [
          "-F",
          sshConfig,
          "-o",
          `ProxyCommand=${Deno.execPath()} run -A ${DIAL} ${nodePort} ${mode} ${dir.path}/data/${identity}.identity ${claimed}`,
          "-o",
          "BatchMode=yes",
          `${ALICE}@${NODE}.${CLUSTER}`,
          command,
        ]);

      await t.step(
        "allowed from 127.0.0.3; SSH_CLIENT shows the client, not the proxy",
        async () => {
          const r = await viaProxy("127.0.0.3", "echo $SSH_CLIENT");
          assert.equal(r.code, 0, r.err);
          assert.match(r.out.trim(), /^127\.0\.0\.3 \d+ \d+$/);
        },
      );

      await t.step("the session's audit events name the client's address", async () => {
        const r = await viaProxy("127.0.0.3", "true");
        assert.equal(r.code, 0, r.err);
        const addrs = await eventually("the session.start and exec events", async () => {
          const events = await auditEvents<Record<string, string>>(config, "session.start,exec");
          return events.length >= 2 ? events.map((e) => e["addr.remote"]) : undefined;
        });
        for (const a of addrs) assert.match(a ?? "", /^127\.0\.0\.3:\d+$/);
      });

      await t.step("refused from 127.0.0.2 by the proxy", async () => {
        const r = await viaProxy("127.0.0.2", "true");
        assert.notEqual(r.code, 0);
        await eventually(
          "the proxy's refusal in the log",
          inLogs(/may be used only from 127\.0\.0\.3\/32, not from 127\.0\.0\.2/),
        );
      });

      await t.step(
        "the node believes a proxy-signed header and checks source-address itself",
        async () => {
          const ok = await direct("signed", "proxy", "127.0.0.3", "echo $SSH_CLIENT");
          assert.equal(ok.code, 0, ok.err);
          assert.match(ok.out.trim(), /^127\.0\.0\.3 40000 \d+$/);
          const refused = await direct("signed", "proxy", "127.0.0.2", "true");
          assert.notEqual(refused.code, 0);
          await eventually(
            "the node's refusal in the log",
            inLogs(/Refused login .* from 127\.0\.0\.2: .*not from 127\.0\.0\.2/),
          );
        },
      );

      await t.step("an unsigned PROXY header straight to the node port is refused", async () => {
        const r = await direct("unsigned", "proxy", "127.0.0.3", "true");
        assert.notEqual(r.code, 0);
        await eventually(
          "the warning",
          inLogs(
            /Refused SSH connection from .*: a PROXY protocol v2 header arrived and ssh_service\.proxy_protocol is off/,
          ),
        );
      });

      await t.step("a header signed by a node's host certificate is refused", async () => {
        const r = await direct("signed", "node", "127.0.0.3", "true");
        assert.notEqual(r.code, 0);
        await eventually(
          "the warning",
          inLogs(
            /Refused SSH connection from .*: Cannot trust PROXY header: the signer .* is not a proxy/,
          ),
        );
      });

      await t.step(
        "auth learns the client's address through the proxy's auth pass-through",
        async () => {
          // A join with a bad token through the web port's teleport-auth ALPN, from 127.0.0.3:
          // auth records the failed join with the address it believes.
          const body = JSON.stringify({
            token: "0123456789abcdef0123456789abcdef",
            hostID: "caddr-probe",
            node_name: "caddr-probe",
            role: "Node",
            public_ssh_key: "x",
            public_tls_key: "x",
          });
          const answer = await new Promise<string>((resolve, reject) => {
            const raw = net.connect({
              host: "127.0.0.1",
              port: tp.webPort,
              localAddress: "127.0.0.3",
            });
            raw.setNoDelay(true);
            const s = tls.connect({
              socket: raw,
              ALPNProtocols: [authAlpn(CLUSTER)],
              rejectUnauthorized: false,
            });
            let text = "";
            s.on("data", (d) => text += d);
            s.on("end", () => resolve(text));
            s.on("error", reject);
            s.once("secureConnect", () =>
              s.write(
                `POST /v1/register HTTP/1.1\r\nHost: auth\r\nContent-Type: application/json\r\n` +
                  `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
              ));
          });
          assert.match(answer, /^HTTP\/1\.1 [45]\d\d/);
          const event = await eventually("the failed instance.join event", async () => {
            const events = await auditEvents<Record<string, unknown>>(config, "instance.join");
            return events.find((e) => e.host_id === "caddr-probe");
          });
          assert.equal(event["addr.remote"], "127.0.0.3");
        },
      );

      await t.step(
        "auth closes a connection that starts with an unsigned PROXY header",
        async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: tp.authPort });
          conn.setNoDelay(true);
          await conn.write(formatProxyHeaderV2({
            source: { addr: "127.0.0.3", port: 1 },
            destination: { addr: "127.0.0.1", port: tp.authPort },
          }));
          // Closed without a word: the read sees the end (or a reset), never TLS.
          const n = await conn.read(new Uint8Array(16)).catch(() => null);
          conn.close();
          assert.equal(n, null);
          await eventually(
            "the warning",
            inLogs(/Refused auth API connection from 127\.0\.0\.1: .*not signed by a proxy/),
          );
        },
      );

      await t.step(
        "a tunnel node sees the client's address from the transport dial request",
        async () => {
          // A tunnel node's banner names no listener, so it is started here rather than with
          // startTeleport(); the banner comes once it has joined and its tunnel is up.
          await using _stop = await startTunnelNode({
            proxy: `127.0.0.1:${tp.webPort}`,
            config,
            dataDir: `${dir.path}/tunnel-data`,
            nodeName: TUNNEL_NODE,
          });
          // The jump leg names the tunnel node; its registration may lag its banner a little.
          const r = await eventually("ssh to the tunnel node", async () => {
            const res = await run("ssh", [
              "-F",
              sshConfig,
              "-o",
              `ProxyCommand=ssh -F ${sshConfig} -o BatchMode=yes -b 127.0.0.3 -p ${tp.webPort} ` +
              `-W ${TUNNEL_NODE}:22 ${ALICE}@127.0.0.1`,
              "-o",
              "BatchMode=yes",
              `${ALICE}@${TUNNEL_NODE}.${CLUSTER}`,
              "echo $SSH_CLIENT",
            ]);
            return /not a registered node|no reverse tunnel/.test(res.err) ? undefined : res;
          });
          assert.equal(r.code, 0, r.err);
          // The node checked source-address 127.0.0.3/32 against this address, not the proxy's.
          assert.match(r.out.trim(), /^127\.0\.0\.3 \d+ \d+$/);
        },
      );
    } finally {
      await tp.stop("SIGKILL");
    }
  },
});
