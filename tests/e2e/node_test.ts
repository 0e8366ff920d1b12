/**
 * The node service end to end, with the stock OpenSSH client as the user:
 * auth in one process; a node that joins with a token and CA pin in another;
 * `tctl auth sign` certificates; `ssh -tt` and exec as a real OS user created
 * here; every kind of refusal; audit events and the uploaded recording on the
 * auth side; and logins that keep working while auth is down.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { importSshPrivateKey, parseSshCertificate, signSshCertificate } from "../../lib/ca/mod.ts";
import { openBackend } from "../../lib/backend/mod.ts";
import { RealClock } from "../../lib/clock/mod.ts";
import { CertAuthoritiesService } from "../../lib/services/mod.ts";
import { formatResourcesYaml, parseResources, type Role } from "../../lib/resource/mod.ts";
import {
  ensureOsUser,
  eventually,
  freePort,
  opensshArgs,
  run,
  runCli,
  startTeleport,
  tempDir,
} from "./_helpers.ts";

const ALICE = "td_e2e_alice";
const BOB = "td_e2e_bob";
const CLUSTER = "e2e-node.example";
const NODE = "e2e-node1";

interface AuditEventLike {
  event: string;
  code: string;
  user?: string;
  login?: string;
  sid?: string;
  server_id?: string;
  interactive?: boolean;
  command?: string;
  exitCode?: string;
  [k: string]: unknown;
}

Deno.test({
  name: "node: stock ssh logs in with tctl certificates; refusals, audit and recordings",
  ignore: skipGroup("node-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-node-");
    const d = dir.path;
    const authPort = freePort();
    const authData = `${d}/auth-data`;
    const authConfig = `${d}/auth.yaml`;
    await Deno.writeTextFile(
      authConfig,
      `version: v3
teleport:
  nodename: e2e-auth
  data_dir: ${authData}
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${authPort}
  cluster_name: ${CLUSTER}
proxy_service:
  enabled: false
ssh_service:
  enabled: false
`,
    );
    const nodeConfig = `${d}/node.yaml`;
    await Deno.writeTextFile(
      nodeConfig,
      `version: v3
teleport:
  nodename: ${NODE}
  data_dir: ${d}/node-data
auth_service:
  enabled: false
proxy_service:
  enabled: false
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:0
  labels:
    env: test
`,
    );
    const aliceUid = await ensureOsUser(ALICE);
    await ensureOsUser(BOB);

    let auth = await startTeleport(["--config", authConfig]);
    const tctl = (...args: string[]) =>
      runCli(["tctl", "-c", authConfig, `--auth-server=127.0.0.1:${authPort}`, ...args]);
    const ok = async (...args: string[]) => {
      const r = await tctl(...args);
      assert.equal(r.code, 0, `tctl ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    let node: Awaited<ReturnType<typeof startTeleport>> | undefined;
    try {
      const joined = JSON.parse(await ok("tokens", "add", "--type=node", "--format=json"));
      const pin = joined.ca_pins[0] as string;
      assert.match(pin, /^sha256:[0-9a-f]{64}$/);
      const nodeArgs = ["--config", nodeConfig, `--auth-server=127.0.0.1:${authPort}`];
      node = await startTeleport([...nodeArgs, `--token=${joined.token}`, `--ca-pin=${pin}`]);
      const sshPort = node.sshPort;
      assert.ok(sshPort > 0, node.banner);

      await Deno.writeTextFile(
        `${d}/prod-only.yaml`,
        `kind: role
version: v7
metadata:
  name: prod-only
spec:
  allow:
    logins: [${BOB}]
    node_labels:
      env: prod
`,
      );
      await ok("create", "-f", `${d}/prod-only.yaml`);
      await ok("users", "add", "alice", "--roles=access", `--logins=${ALICE},nobody-such-user`);
      await ok("users", "add", "carol", "--roles=prod-only");
      await ok("auth", "sign", "--user=alice", `--out=${d}/alice`, "--ttl=1h");
      await ok("auth", "sign", "--user=carol", `--out=${d}/carol`, "--ttl=1h");
      // known_hosts: the exported host CA line (`@cert-authority *.<cluster> …`).
      await Deno.writeTextFile(`${d}/known_hosts`, await ok("auth", "export", "--type=host"));

      const ssh = (key: string, login: string, args: string[], stdin?: string) =>
        run(
          "ssh",
          opensshArgs({
            port: sshPort,
            key,
            knownHosts: `${d}/known_hosts`,
            hostKeyAlias: `${NODE}.${CLUSTER}`,
            extra: args.slice(0, -1),
            target: `${login}@127.0.0.1`,
            command: args.at(-1)!,
          }),
          stdin === undefined ? {} : { stdin },
        );

      await t.step("ssh -tt runs a login shell on a real pty as the OS user", async () => {
        const r = await ssh(`${d}/alice`, ALICE, ["-tt", "tty; id -u; id -Gn; echo $HOME; exit 3"]);
        assert.equal(r.code, 3, r.err);
        assert.match(r.out, /\/dev\/pts\/\d+/);
        assert.match(r.out, new RegExp(`^${aliceUid}\\r?$`, "m"));
        assert.match(r.out, /\busers\b/);
        assert.match(r.out, new RegExp(`/home/${ALICE}`));
      });

      await t.step(
        "an ssh-keygen RSA key certified by tctl logs in with default algorithms",
        async () => {
          await run("ssh-keygen", ["-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", `${d}/rsa`]);
          await ok("auth", "sign", "--user=alice", `--public-key=${d}/rsa.pub`, "--ttl=1h");
          assert.match(
            await Deno.readTextFile(`${d}/rsa-cert.pub`),
            /^ssh-rsa-cert-v01@openssh\.com /,
          );
          // No PubkeyAcceptedAlgorithms: OpenSSH picks rsa-sha2-512 from our server-sig-algs.
          const r = await ssh(`${d}/rsa`, ALICE, ["-v", "echo rsa-ok"]);
          assert.equal(r.code, 0, r.err);
          assert.equal(r.out, "rsa-ok\n");
          assert.match(r.err, /server-sig-algs=<[^>]*rsa-sha2-512,rsa-sha2-256/);
        },
      );

      await t.step("exec without a pty: separate streams, stdin EOF, exit code", async () => {
        const r = await ssh(`${d}/alice`, ALICE, ["echo out; echo err >&2; tty; exit 7"]);
        assert.equal(r.code, 7, r.err);
        assert.match(r.out, /^out\nnot a tty\n$/);
        assert.equal(r.err, "err\n");
        const cat = await ssh(`${d}/alice`, ALICE, ["wc -c"], "hello node\n");
        assert.equal(cat.code, 0, cat.err);
        assert.equal(cat.out.trim(), "11");
      });

      await t.step("the environment is built from scratch, LD_PRELOAD refused", async () => {
        const r = await ssh(`${d}/alice`, ALICE, [
          "-o",
          "SetEnv=LD_PRELOAD=/tmp/evil.so LANG=C.UTF-8",
          "env",
        ]);
        assert.equal(r.code, 0, r.err);
        assert.doesNotMatch(r.out, /LD_PRELOAD/);
        assert.match(r.out, /^LANG=C\.UTF-8$/m);
        assert.match(r.out, new RegExp(`^USER=${ALICE}$`, "m"));
        assert.match(r.out, /^SSH_SESSION_ID=/m);
      });

      await t.step("refusals: wrong principal, denied login, foreign CA, plain key", async () => {
        const wrong = await ssh(`${d}/alice`, BOB, ["true"]);
        assert.equal(wrong.code, 255);
        assert.match(wrong.err, /Permission denied/);
        const denied = await ssh(`${d}/carol`, BOB, ["true"]);
        assert.equal(denied.code, 255);
        assert.match(denied.err, /Permission denied/);

        await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${d}/rogue_ca`]);
        await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${d}/rogue`]);
        await run("ssh-keygen", [
          "-q",
          "-s",
          `${d}/rogue_ca`,
          "-I",
          "alice",
          "-n",
          ALICE,
          "-V",
          "-5m:+1h",
          `${d}/rogue.pub`,
        ]);
        const foreign = await ssh(`${d}/rogue`, ALICE, ["true"]);
        assert.equal(foreign.code, 255);
        assert.match(foreign.err, /Permission denied/);

        await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${d}/plain`]);
        const plain = await run(
          "ssh",
          opensshArgs({
            port: sshPort,
            key: `${d}/plain`,
            certificate: false,
            target: `${ALICE}@127.0.0.1`,
            command: "true",
          }),
        );
        assert.equal(plain.code, 255);
        assert.match(plain.err, /Permission denied/);
      });

      await t.step("an unknown OS login is refused with a clear message", async () => {
        const r = await ssh(`${d}/alice`, "nobody-such-user", ["true"]);
        assert.notEqual(r.code, 0);
        assert.match(r.err, /OS user "nobody-such-user" does not exist/);
      });

      await t.step("sftp runs the system sftp-server as the OS user", async () => {
        const args = opensshArgs({
          port: sshPort,
          key: `${d}/alice`,
          knownHosts: `${d}/known_hosts`,
          hostKeyAlias: `${NODE}.${CLUSTER}`,
          target: `${ALICE}@127.0.0.1`,
          command: "",
        });
        // sftp takes ssh's options, but -P for the port and no command.
        const sftpArgs = args.slice(0, -2).map((a) => a === "-p" ? "-P" : a);
        const r = await run("sftp", ["-b", "-", ...sftpArgs, `${ALICE}@127.0.0.1`], {
          stdin: "pwd\nput /etc/hostname uploaded.txt\nls -l uploaded.txt\n",
        });
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, new RegExp(`/home/${ALICE}`));
        const st = await Deno.stat(`/home/${ALICE}/uploaded.txt`);
        assert.equal(st.uid, aliceUid);
      });

      await t.step("tctl nodes ls lists the node with its labels", async () => {
        const out = await ok("nodes", "ls");
        assert.match(out, new RegExp(`${NODE}.*env=test`));
      });

      await t.step("audit: sessions, commands and refusals reach the auth service", async () => {
        const events = await eventually("audit events from the node", async () => {
          const out = await ok("audit", "ls", "--format=json", "--since=1h");
          const list = JSON.parse(out) as AuditEventLike[];
          const has = (e: string) => list.some((x) => x.event === e);
          return has("session.end") && has("exec") && has("auth") && has("session.upload")
            ? list
            : undefined;
        }, 45_000);
        const interactive = events.find((e) =>
          e.event === "session.start" && e.interactive === true && e.login === ALICE
        );
        assert.ok(interactive, "an interactive session.start");
        assert.equal(interactive.user, "alice");
        assert.match(interactive.server_id ?? "", /^[0-9a-f-]{36}$/);
        const exec = events.find((e) => e.event === "exec" && e.exitCode === "7");
        assert.ok(exec, "exec with exit code 7");
        assert.equal(exec.code, "T3002E");
        assert.ok(events.some((e) => e.event === "auth" && e.login === BOB));
        assert.ok(events.some((e) => e.event === "instance.join" && e.code === "TJ002I"));
        for (const e of events) {
          assert.equal(typeof e.uid, "string");
          assert.equal(typeof e.time, "string");
          assert.equal(e.cluster_name, CLUSTER);
        }
        const sid = interactive.sid!;
        const rec = await Deno.stat(`${authData}/log/records/${sid}.rec.gz`);
        assert.ok(rec.size > 0);
        const filtered = JSON.parse(
          await ok(
            "audit",
            "ls",
            "--format=json",
            "--since=1h",
            "--type=session.end",
            `--sid=${sid}`,
          ),
        ) as AuditEventLike[];
        assert.equal(filtered.length, 1);
      });

      await t.step("auth down: valid certs still log in, expired ones do not", async () => {
        await auth.stop();
        const r = await ssh(`${d}/alice`, ALICE, ["echo still-up"]);
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, "still-up\n");

        // Sign an expired certificate with the real user CA, read from the stopped auth's backend.
        const backend = await openBackend(`kv:${authData}/backend/kv.db`, {
          clock: new RealClock(),
        });
        const ca = await new CertAuthoritiesService(backend).get("user", CLUSTER);
        await backend.close();
        const signer = await importSshPrivateKey(ca.spec.active_keys.ssh[0]!.private_key!);
        const aliceCert = parseSshCertificate(await Deno.readTextFile(`${d}/alice-cert.pub`));
        const cert = await signSshCertificate({
          signer,
          publicKeyBlob: aliceCert.publicKeyBlob,
          certType: "user",
          keyId: "alice",
          principals: [ALICE],
          validAfter: new Date(Date.now() - 2 * 3_600_000),
          validBefore: new Date(Date.now() - 3_600_000),
          extensions: {
            "permit-pty": "",
            "teleport-roles": JSON.stringify({ roles: ["access"] }),
            "teleport-traits": JSON.stringify({ logins: [ALICE] }),
          },
        });
        await Deno.copyFile(`${d}/alice`, `${d}/expired`);
        await Deno.chmod(`${d}/expired`, 0o600);
        await Deno.writeTextFile(`${d}/expired-cert.pub`, cert.authorizedKey + "\n");
        const expired = await ssh(`${d}/expired`, ALICE, ["true"]);
        assert.equal(expired.code, 255);
        assert.match(expired.err, /Permission denied/);
      });

      await t.step("auth back: the node's watch resumes and a role change reaches it", async () => {
        auth = await startTeleport(["--config", authConfig]);
        await eventually(
          "the node's resource watch back",
          () =>
            Promise.resolve(/resource watch on auth works again/.test(node!.logs()) || undefined),
          45_000,
        );
        const [read] = parseResources(await ok("get", "role/access")) as Role[];
        // Written back with --force: without the revision it was read at.
        const { revision: _, ...metadata } = read!.metadata;
        const access: Role = { ...read!, metadata };
        const file = `${d}/access.yaml`;
        await Deno.writeTextFile(
          file,
          formatResourcesYaml([{
            ...access,
            spec: { ...access.spec, deny: { ...access.spec.deny, logins: [ALICE] } },
          }]),
        );
        await ok("create", "-f", file, "--force");
        await eventually("the node to refuse alice", async () => {
          const r = await ssh(`${d}/alice`, ALICE, ["true"]);
          return r.code === 255 && /Permission denied/.test(r.err) ? true : undefined;
        });
        // Told by the watch (the role cache logs only changes that events or reloads bring).
        assert.match(node!.logs(), /Roles access changed on auth/);
        await Deno.writeTextFile(file, formatResourcesYaml([access]));
        await ok("create", "-f", file, "--force");
        await eventually("the node to let alice in again", async () => {
          const r = await ssh(`${d}/alice`, ALICE, ["echo back"]);
          return r.code === 0 && r.out === "back\n" ? true : undefined;
        });
      });

      await t.step("a restarted node reuses its identity without a token", async () => {
        assert.equal(await node!.stop(), 0);
        node = await startTeleport(nodeArgs);
        assert.match(node.banner, new RegExp(NODE));
        const r = await run(
          "ssh",
          opensshArgs({
            port: node.sshPort,
            key: `${d}/alice`,
            knownHosts: `${d}/known_hosts`,
            hostKeyAlias: `${NODE}.${CLUSTER}`,
            target: `${ALICE}@127.0.0.1`,
            command: "echo again",
          }),
        );
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, "again\n");
      });
    } catch (err) {
      throw new Error(
        `${err instanceof Error ? err.stack : err}\n--- node log:\n${
          node?.logs() ?? ""
        }\n--- auth log:\n${auth.logs()}`,
      );
    } finally {
      await node?.stop();
      await auth.stop();
    }
  },
});
