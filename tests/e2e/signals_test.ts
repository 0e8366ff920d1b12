/**
 * Signals of a real `teleport start --roles=auth,proxy,node` with a pid file, driven the way
 * systemd and an operator do it: procps `pkill -L -F` (refuses an unlocked pid file), SIGUSR1
 * (diagnostic report in the log), SIGQUIT (graceful drain: a live `tsh ssh` session survives
 * until it ends by itself, new connections are refused), SIGTERM (fast stop, sessions dropped,
 * pid file removed) and SIGKILL (the next start takes over the pid file and the backend lock).
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  ensureOsUser,
  eventually,
  freePort,
  REPO,
  run,
  type RunningTeleport,
  startTeleport,
  tempDir,
} from "./_helpers.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const USER = "td_e2e_sig";
const NODE = "e2e-signode";

/** A `tsh ssh` session running `cmd`, its stdin open. */
interface Session {
  child: Deno.ChildProcess;
  /** Resolves once stdout contains `text`; rejects if the session ends first. */
  waitFor(text: string): Promise<void>;
  send(line: string): Promise<void>;
  /** Exit code and everything printed. */
  done: Promise<{ code: number; out: string }>;
}

function startSession(home: string, cmd: string): Session {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}main.ts`, "tsh", "ssh", `${USER}@${NODE}`, cmd],
    cwd: REPO,
    env: { NO_COLOR: "1", TELEPORT_HOME: home },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  const writer = child.stdin.getWriter();
  const read = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      out += chunk;
      for (const w of waiters.filter((w) => out.includes(w.text))) w.resolve();
    }
  })();
  const errText = new Response(child.stderr).text();
  const done = (async () => {
    const status = await child.status;
    await read;
    return { code: status.code, out: out + (await errText) };
  })();
  return {
    child,
    waitFor: (text) =>
      new Promise((resolve, reject) => {
        if (out.includes(text)) return resolve();
        waiters.push({ text, resolve });
        done.then((r) => reject(new Error(`session ended before "${text}": ${r.out}`)));
      }),
    send: async (line) => {
      await writer.write(new TextEncoder().encode(line));
    },
    done: done.finally(() => writer.close().catch(() => {})),
  };
}

/** `pkill -SIG -L -F pidfile`: signals only the process that holds the pid file locked. */
function pkill(signal: string, pidFile: string) {
  return run("pkill", [`--signal`, signal, "-L", "-F", pidFile]);
}

async function writeClusterConfig(dir: string): Promise<string> {
  const config = `${dir}/teleport.yaml`;
  await Deno.writeTextFile(
    config,
    `version: v3
teleport:
  nodename: ${NODE}
  data_dir: ${dir}/data
  pid_file: ${dir}/teleport.pid
  drain_timeout: 2m
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
  cluster_name: e2e-sig.example
  proxy_listener_mode: multiplex
  authentication:
    type: local
    second_factor: otp
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${freePort()}
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
`,
  );
  return config;
}

/** Resolves "running" while the process has not exited. */
async function state(tp: RunningTeleport): Promise<"running" | "exited"> {
  return await Promise.race([
    tp.child.status.then(() => "exited" as const),
    new Promise<"running">((r) => setTimeout(() => r("running"), 0)),
  ]);
}

Deno.test({
  name: "signals: pkill -L, USR1 report, QUIT drains a live tsh ssh session, TERM, KILL",
  ignore: skipGroup("signals-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-sig-");
    const config = await writeClusterConfig(dir.path);
    const pidFile = `${dir.path}/teleport.pid`;
    const home = `${dir.path}/tsh`;
    await ensureOsUser(USER);
    await using tp = await startTeleport(["-c", config]);
    const totp = await inviteAndEnroll({
      config,
      webPort: tp.webPort,
      user: USER,
      roles: "access",
      logins: USER,
    });
    const login = await tshLogin({ home, webPort: tp.webPort, user: USER, totp });
    assert.equal(login.code, 0, login.stderr + login.stdout);

    await t.step("pkill -L signals the process through its locked pid file only", async () => {
      assert.equal((await Deno.readTextFile(pidFile)).trim(), String(tp.child.pid));
      const ok = await pkill("0", pidFile);
      assert.equal(ok.code, 0, ok.err);
      // The same pid in a file nobody holds locked: pkill -L refuses it.
      await Deno.writeTextFile(`${dir.path}/copy.pid`, `${tp.child.pid}\n`);
      const refused = await pkill("0", `${dir.path}/copy.pid`);
      assert.notEqual(refused.code, 0);
      assert.match(refused.err, /pidfile not valid/);
    });

    await t.step(
      "QUIT drains: the live session ends by itself, new connections are refused",
      async () => {
        const session = startSession(home, "echo started; read line; echo got $line");
        await session.waitFor("started");

        const usr1 = await pkill("USR1", pidFile);
        assert.equal(usr1.code, 0, usr1.err);
        const report = await eventually("the USR1 report", () => {
          const m = /Diagnostic report \(SIGUSR1\):[^]*?\nnode: [^\n]*/.exec(tp.logs());
          return Promise.resolve(m?.[0]);
        });
        assert.match(report, /process: pid=\d+ state=running .*rss_mb=[\d.]+ .*event_loop_lag_ms=/);
        assert.match(report, /connections: open=\d+ .*by_listener=\{/);
        assert.match(report, /proxy: listeners=\["127\.0\.0\.1:\d+"\] ssh_connections=1 tunnels=0/);
        assert.match(report, /node: listener=127\.0\.0\.1:\d+ ssh_connections=1 ssh_sessions=1/);
        assert.match(report, /auth: listener=127\.0\.0\.1:\d+ backend="ok \(read in [\d.]+ ms\)"/);

        const quit = await pkill("QUIT", pidFile);
        assert.equal(quit.code, 0, quit.err);
        // The web port stops accepting: curl cannot connect (exit 7).
        await eventually("the web port to refuse connections", async () => {
          const r = await run("curl", ["-sk", `https://127.0.0.1:${tp.webPort}/webapi/ping`]);
          return r.code === 7 ? true : undefined;
        });
        const late = await run(Deno.execPath(), [
          "run",
          "-A",
          `${REPO}main.ts`,
          "tsh",
          "ssh",
          `${USER}@${NODE}`,
          "echo late",
        ], { env: { NO_COLOR: "1", TELEPORT_HOME: home } });
        assert.notEqual(late.code, 0, "a new session is refused while draining");
        assert.ok(!late.out.includes("late"));
        assert.equal(await state(tp), "running", "the live session keeps the process running");

        await session.send("bye\n");
        const ended = await session.done;
        assert.equal(ended.code, 0, ended.out);
        assert.match(ended.out, /got bye/);
        assert.equal((await tp.child.status).code, 0, tp.logs());
        assert.match(tp.logs(), /Drained in [\d.]+ s; stopping/);
        await assert.rejects(Deno.stat(pidFile), Deno.errors.NotFound);
      },
    );

    await t.step(
      "KILL: the next start takes over the pid file and the backend lock; TERM drops sessions",
      async () => {
        await using killed = await startTeleport(["-c", config]);
        assert.equal(await killed.stop("SIGKILL"), 137);
        assert.equal((await Deno.readTextFile(pidFile)).trim(), String(killed.child.pid));
        await using next = await startTeleport(["-c", config]);
        assert.equal((await Deno.readTextFile(pidFile)).trim(), String(next.child.pid));
        assert.equal((await pkill("0", pidFile)).code, 0);

        // TERM stops at once: the live session is dropped, the pid file removed. (Same ports
        // and CA, so the certificates of the first login still work.)
        const session = startSession(home, "echo started; read line; echo got $line");
        await session.waitFor("started");
        assert.equal(await next.stop("SIGTERM"), 0, next.logs());
        const ended = await session.done;
        assert.notEqual(ended.code, 0);
        assert.ok(!ended.out.includes("got"), ended.out);
        await assert.rejects(Deno.stat(pidFile), Deno.errors.NotFound);
      },
    );
  },
});
