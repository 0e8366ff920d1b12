/**
 * Agent forwarding and remote port forwarding end to end, with the stock OpenSSH client and
 * tsh: one `teleport start` (auth, proxy, node); alice's `access` role allows both, bob's role
 * neither. `ssh -A` direct to the node and through the proxy (tsh config) lists the key of a
 * real ssh-agent from inside the session, through a private socket that is gone after the
 * session; `ssh -R 0:…` lets a program on the node reach an echo server on the client side and
 * is audited; bob is refused both with a message; `tsh ssh -A` and `tsh ssh -R` likewise.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  auditEvents,
  ensureOsUser,
  eventually,
  freePort,
  REPO,
  run,
  runCli,
  startTeleport,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const ALICE = "td_e2e_falice";
const CLUSTER = "e2e-fwd.example";
const NODE = "e2e-fnode";

/** Inside the session: the agent's keys, then mode, owner and type of the socket and its dir. */
const AGENT_PROBE = `ssh-add -l; echo "rc=$?"; s="$SSH_AUTH_SOCK"; echo "sock=$s"; ` +
  `[ -n "$s" ] && stat -c '%a %U %F' "$s" "$(dirname "$s")"`;

/** Inside the session: read the forwarded port from stdin, send a line through it, read it back. */
const ECHO_PROBE = `read port; exec 3<>/dev/tcp/127.0.0.1/$port; printf 'hello-R\\n' >&3; ` +
  "head -n 1 <&3";

interface AuditEventLike {
  event: string;
  code: string;
  user?: string;
  forward?: string;
  "addr.local"?: string;
  error?: string;
}

/** An echo server on the client side (what -R forwards to). */
function startEcho(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      void conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      await served.catch(() => {});
    },
  };
}

/**
 * Runs a client that sets up a remote forward to port 0, waits for the "Allocated port N" line
 * it prints on stderr, then writes N to its stdin (read by ECHO_PROBE on the node).
 */
async function runWithAllocatedPort(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string; port: number }> {
  const child = new Deno.Command(cmd, {
    args,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Response(child.stdout).text();
  let err = "";
  let port = 0;
  const allocated = Promise.withResolvers<number>();
  const errDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      err += chunk;
      const m = /Allocated port (\d+) for remote forward/.exec(err);
      if (m !== null) allocated.resolve(Number(m[1]));
    }
    allocated.reject(new Error(`no "Allocated port" line:\n${err}`));
  })();
  const writer = child.stdin.getWriter();
  try {
    port = await allocated.promise;
    await writer.write(new TextEncoder().encode(`${port}\n`));
  } finally {
    await writer.close().catch(() => {});
  }
  const status = await child.status;
  await errDone;
  return { code: status.code, out: await out, err, port };
}

Deno.test({
  name: "forwarding: ssh/tsh -A and -R direct and through the proxy, refusals, audit",
  ignore: skipGroup("forward-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-fwd-");
    const d = dir.path;
    const nodePort = freePort();
    const config = await writeClusterConfig(d, {
      nodeName: NODE,
      clusterName: CLUSTER,
      nodePort,
    });
    await using tp = await startTeleport(["-c", config]);
    await ensureOsUser(ALICE);
    await Deno.writeTextFile(
      `${d}/no-forward.yaml`,
      `kind: role
version: v7
metadata:
  name: no-forward
spec:
  options:
    forward_agent: false
    port_forwarding: false
  allow:
    logins: [${ALICE}]
    node_labels:
      "*": "*"
`,
    );
    const created = await runCli(["tctl", "-c", config, "create", "-f", `${d}/no-forward.yaml`]);
    assert.equal(created.code, 0, created.stderr);

    const homes = { alice: `${d}/tsh-alice`, bob: `${d}/tsh-bob` };
    const sshConfigs = { alice: `${d}/ssh-alice`, bob: `${d}/ssh-bob` };
    for (const [user, roles] of [["alice", "access"], ["bob", "no-forward"]] as const) {
      const totp = await inviteAndEnroll({
        config,
        webPort: tp.webPort,
        user,
        roles,
        logins: ALICE,
      });
      const login = await tshLogin({ home: homes[user], webPort: tp.webPort, user, totp });
      assert.equal(login.code, 0, login.stderr + login.stdout);
      const cfg = await runCli(["tsh", "config"], { env: { TELEPORT_HOME: homes[user] } });
      assert.equal(cfg.code, 0, cfg.stderr);
      await Deno.writeTextFile(sshConfigs[user], cfg.stdout);
    }

    // A real agent holding one key, as the user's own would.
    const agentSock = `${d}/agent.sock`;
    const started = await run("ssh-agent", ["-s", "-a", agentSock]);
    assert.equal(started.code, 0, started.err);
    const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(started.out)?.[1]);
    assert.ok(agentPid > 0, started.out);
    const agentEnv = { SSH_AUTH_SOCK: agentSock };
    const echo = startEcho();
    try {
      await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "fwd", "-f", `${d}/k`]);
      const added = await run("ssh-add", [`${d}/k`], { env: agentEnv });
      assert.equal(added.code, 0, added.err);
      const fingerprint = /SHA256:\S+/.exec((await run("ssh-keygen", ["-lf", `${d}/k.pub`])).out)
        ?.[0];
      assert.ok(fingerprint !== undefined);

      /** The stock ssh through the proxy, as configured by `tsh config`. */
      const viaProxy = (user: "alice" | "bob", extra: string[], command: string) => [
        "-F",
        sshConfigs[user],
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        ...extra,
        `${ALICE}@${NODE}.${CLUSTER}`,
        command,
      ];

      await t.step(
        "ssh -A direct to the node: ssh-add -l lists the key; private socket",
        async () => {
          const cfg = await Deno.readTextFile(sshConfigs.alice);
          const identity = /IdentityFile\s+"?([^"\n]+)"?/.exec(cfg)![1]!;
          const certificate = /CertificateFile\s+"?([^"\n]+)"?/.exec(cfg)![1]!;
          const knownHosts = /UserKnownHostsFile\s+"?([^"\n]+)"?/.exec(cfg)![1]!;
          const r = await run("ssh", [
            "-F",
            "/dev/null",
            "-p",
            String(nodePort),
            "-i",
            identity,
            "-o",
            `CertificateFile=${certificate}`,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            `UserKnownHostsFile=${knownHosts}`,
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            `HostKeyAlias=${NODE}.${CLUSTER}`,
            "-A",
            `${ALICE}@127.0.0.1`,
            AGENT_PROBE,
          ], { env: agentEnv });
          assert.equal(r.code, 0, r.err);
          assert.ok(r.out.includes(fingerprint), r.out);
          assert.match(r.out, /^rc=0$/m);
          assert.match(r.out, new RegExp(`^600 ${ALICE} socket$`, "m"));
          assert.match(r.out, new RegExp(`^700 ${ALICE} directory$`, "m"));
          const sock = /^sock=(\S+)$/m.exec(r.out)![1]!;
          assert.notEqual(sock, agentSock);
          const dirOf = sock.slice(0, sock.lastIndexOf("/"));
          // Removed when the session ends (the node learns it as the client disconnects).
          await eventually("the agent socket directory to be removed", async () => {
            try {
              await Deno.stat(dirOf);
              return undefined;
            } catch (err) {
              return err instanceof Deno.errors.NotFound ? true : undefined;
            }
          });
        },
      );

      await t.step("ssh -A through the proxy lists the key", async () => {
        const r = await run("ssh", viaProxy("alice", ["-A"], "ssh-add -l"), { env: agentEnv });
        assert.equal(r.code, 0, r.err);
        assert.ok(r.out.includes(fingerprint), r.out);
      });

      await t.step("ssh -A is refused with a message when the role forbids it", async () => {
        const r = await run("ssh", viaProxy("bob", ["-A"], AGENT_PROBE), { env: agentEnv });
        assert.equal(r.code, 1, r.err); // [ -n "" ] fails: no socket was set up
        assert.match(r.err, /agent forwarding is not permitted by your roles/);
        assert.match(r.out, /^sock=$/m);
        assert.doesNotMatch(r.out, /^rc=0$/m);
      });

      await t.step("ssh -R 0:… through the proxy: bytes round-trip; audited", async () => {
        const r = await runWithAllocatedPort(
          "ssh",
          viaProxy("alice", [
            "-o",
            "LogLevel=INFO",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            `0:127.0.0.1:${echo.port}`,
          ], ECHO_PROBE),
        );
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, "hello-R\n");
        const event = await eventually("the port event of the remote forward", async () => {
          const events = await auditEvents<AuditEventLike>(config, "port");
          return events.find((e) =>
            e.forward === "remote" && e["addr.local"] === `127.0.0.1:${r.port}`
          );
        });
        assert.equal(event.code, "T3003I");
        assert.equal(event.user, "alice");
      });

      await t.step("ssh -R is refused when the role forbids port forwarding; audited", async () => {
        const r = await run("ssh", [
          ...viaProxy("bob", [
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            `0:127.0.0.1:${echo.port}`,
          ], "echo should-not-run"),
        ]);
        assert.equal(r.code, 255, r.out + r.err);
        assert.match(r.err, /remote port forwarding failed/);
        assert.doesNotMatch(r.out, /should-not-run/);
        const event = await eventually("the refused port event", async () => {
          const events = await auditEvents<AuditEventLike>(config, "port");
          return events.find((e) => e.user === "bob" && e.forward === "remote");
        });
        assert.equal(event.code, "T3003E");
        assert.match(event.error ?? "", /not permitted/);
      });

      await t.step("ssh -R of a privileged port is refused for a non-root login", async () => {
        const r = await run("ssh", [
          ...viaProxy("alice", [
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            `80:127.0.0.1:${echo.port}`,
          ], "echo should-not-run"),
        ]);
        assert.equal(r.code, 255, r.out + r.err);
        assert.match(r.err, /remote port forwarding failed for listen port 80/);
        const event = await eventually("the refused privileged port event", async () => {
          const events = await auditEvents<AuditEventLike>(config, "port");
          return events.find((e) => e.user === "alice" && /privileged/.test(e.error ?? ""));
        });
        assert.equal(event.code, "T3003E");
      });

      await t.step("tsh ssh -A lists the key of the local agent", async () => {
        const r = await runCli(["tsh", "ssh", "-A", `${ALICE}@${NODE}`, "ssh-add -l"], {
          env: { TELEPORT_HOME: homes.alice, ...agentEnv },
        });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.includes(fingerprint), r.stdout);
        const bob = await runCli(["tsh", "ssh", "-A", `${ALICE}@${NODE}`, "ssh-add -l"], {
          env: { TELEPORT_HOME: homes.bob, ...agentEnv },
        });
        assert.notEqual(bob.code, 0);
        assert.match(bob.stderr, /refused agent forwarding|not permitted/);
      });

      await t.step("tsh ssh -R 0:… forwards a port on the node back to this side", async () => {
        const r = await runWithAllocatedPort(Deno.execPath(), [
          "run",
          "-A",
          `${REPO}main.ts`,
          "tsh",
          "ssh",
          "-R",
          `0:127.0.0.1:${echo.port}`,
          `${ALICE}@${NODE}`,
          ECHO_PROBE,
        ], { TELEPORT_HOME: homes.alice, NO_COLOR: "1" });
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, "hello-R\n");
        const bob = await runCli([
          "tsh",
          "ssh",
          "-R",
          `0:127.0.0.1:${echo.port}`,
          `${ALICE}@${NODE}`,
          "echo should-not-run",
        ], { env: { TELEPORT_HOME: homes.bob } });
        assert.equal(bob.code, 255, bob.stderr);
        assert.match(bob.stderr, /Cannot forward port 0 on the node/);
        assert.doesNotMatch(bob.stdout, /should-not-run/);
      });
    } finally {
      await echo.close();
      try {
        Deno.kill(agentPid, "SIGTERM");
      } catch {
        // already gone
      }
    }
  },
});
