import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { BadParameterError } from "../errors/mod.ts";
import { ensureTestUser, readAll, runDenoAsUser, waitForOutput } from "./_os_testing.ts";
import { buildSessionEnv } from "./env.ts";
import type { OsUser } from "./os_user.ts";
import { type ExecProcess, type ExecSpawnOptions, spawnExec } from "./spawn.ts";

const LOGIN = "td_spawntest";

/** Tests that run commands as the OS test user (root only; `deno task test` reports a skip). */
const asUser = skipGroup("os-users") ? Deno.test.ignore : Deno.test;

let cached: OsUser | undefined;
async function user(): Promise<OsUser> {
  return cached ??= await ensureTestUser(LOGIN);
}

async function start(
  command: string,
  extra: Partial<ExecSpawnOptions> = {},
): Promise<ExecProcess> {
  const u = await user();
  return await spawnExec({ user: u, command, env: buildSessionEnv({ user: u }), ...extra });
}

/** Runs `command` with `input` on stdin (EOF after it) and collects everything. */
async function run(command: string, input = "", extra: Partial<ExecSpawnOptions> = {}) {
  const p = await start(command, extra);
  p.stdin.end(input);
  const [stdout, stderr, status] = await Promise.all([
    readAll(p.stdout),
    readAll(p.stderr),
    p.exited,
  ]);
  return { p, stdout, stderr, status };
}

asUser("spawnExec() reports exit code 7 and keeps stderr separate from stdout", async () => {
  const { stdout, stderr, status } = await run("echo to-out; echo to-err >&2; exit 7");
  assert.equal(stdout, "to-out\n");
  assert.equal(stderr, "to-err\n");
  assert.deepEqual(status, { code: 7 });
});

asUser("spawnExec() delivers stdin EOF to cat when stdin ends", async () => {
  const { stdout, status } = await run("cat; echo done", "line one\nline two\n");
  assert.equal(stdout, "line one\nline two\ndone\n");
  assert.deepEqual(status, { code: 0 });
});

asUser("spawnExec() lets yes | head -1 end when SIGPIPE has its default action", async () => {
  const { stdout, status } = await run("yes | head -1");
  assert.equal(stdout, "y\n");
  assert.deepEqual(status, { code: 0 });
});

asUser(
  "spawnExec() runs as the user with initgroups, home cwd and only the given env",
  async () => {
    const u = await user();
    Deno.env.set("LD_PRELOAD", "/nonexistent/td_spawn_evil.so");
    Deno.env.set("TD_SPAWN_DAEMON_SECRET", "leak");
    let out: { stdout: string; stderr: string };
    try {
      out = await run("id; pwd; env");
    } finally {
      Deno.env.delete("LD_PRELOAD");
      Deno.env.delete("TD_SPAWN_DAEMON_SECRET");
    }
    assert.match(out.stdout, new RegExp(`uid=${u.uid}\\(${LOGIN}\\) gid=${u.gid}\\(`));
    assert.match(out.stdout, /groups=.*100\(users\)/);
    assert.doesNotMatch(out.stdout, /\b0\(root\)/);
    assert.match(out.stdout, new RegExp(`^${u.home}$`, "m"));
    assert.match(out.stdout, new RegExp(`^HOME=${u.home}$`, "m"));
    assert.match(out.stdout, new RegExp(`^USER=${LOGIN}$`, "m"));
    assert.match(out.stdout, /^PATH=\/usr\/local\/bin:/m);
    assert.doesNotMatch(out.stdout, /LD_PRELOAD|TD_SPAWN_DAEMON_SECRET|^TERM=/m);
    assert.equal(out.stderr, "");
  },
);

asUser("spawnExec() leaks no fds into the command", async () => {
  const { stdout } = await run("ls /proc/$$/fd; :");
  assert.deepEqual(stdout.trim().split(/\s+/).map(Number).sort(), [0, 1, 2]);
});

asUser("signal() reaches the whole process group when the command has children", async () => {
  const p = await start(`sleep 30 & echo "child=$!"; wait`);
  p.stdin.end();
  const stderr = readAll(p.stderr);
  const out = await waitForOutput(p.stdout, /child=\d+/);
  const child = Number(/child=(\d+)/.exec(out)![1]);
  assert.equal(p.signal("TERM"), true);
  assert.deepEqual(await p.exited, { signal: "TERM" });
  await stderr;
  let alive = true;
  try {
    alive = !Deno.readTextFileSync(`/proc/${child}/stat`).includes(") Z");
  } catch {
    alive = false;
  }
  assert.equal(alive, false, "the background sleep must have died with its group");
  assert.equal(p.signal("TERM"), false);
  assert.throws(() => p.signal("NOPE"), BadParameterError);
});

asUser("kill() ends the command with signal KILL", async () => {
  const p = await start("echo up; exec sleep 30");
  const all = readAll(p.stdout);
  await waitForOutput(p.stdout, /up/);
  p.kill();
  assert.deepEqual(await p.exited, { signal: "KILL" });
  await all;
});

asUser("spawnExec() runs 20 commands concurrently with the right outputs and codes", async () => {
  const runs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => run(`echo "out-$((${i}+1))"; exit ${i}`)),
  );
  runs.forEach(({ stdout, status }, i) => {
    assert.equal(stdout, `out-${i + 1}\n`);
    assert.deepEqual(status, { code: i });
  });
});

asUser("exited settles soon when a background job keeps stdout open", async () => {
  const t0 = Date.now();
  const { stdout, status } = await run(`trap '' HUP; sleep 30 & echo "bg=$!"`, "", {
    drainTimeoutMs: 100,
  });
  const bg = Number(/bg=(\d+)/.exec(stdout)?.[1]);
  try {
    assert.deepEqual(status, { code: 0 });
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  } finally {
    if (bg > 0) Deno.kill(bg, "SIGKILL");
  }
});

asUser("spawnExec() rejects a command with a NUL byte", async () => {
  await assert.rejects(start("echo a\0b"), BadParameterError);
});

asUser(
  "spawnExec() and spawnPty() run as the daemon's own user and refuse others when the daemon is not root",
  async () => {
    const u = await user();
    const mod = (f: string) => JSON.stringify(new URL(f, import.meta.url).href);
    const code = `
    import { lookupOsUser } from ${mod("./os_user.ts")};
    import { spawnExec } from ${mod("./spawn.ts")};
    import { spawnPty } from ${mod("./pty.ts")};
    const read = (s) => new Promise((r) => { let t = ""; s.on("data", (d) => t += d); s.on("end", () => r(t)); s.on("close", () => r(t)); });
    const me = await lookupOsUser(${JSON.stringify(LOGIN)});
    const root = await lookupOsUser("root");
    const env = { PATH: "/usr/bin:/bin", HOME: me.home };
    const ex = await spawnExec({ user: me, command: "id -un; cat /proc/$$/status | grep ^Groups", env });
    ex.stdin.end();
    const [exOut, exStatus] = await Promise.all([read(ex.stdout), ex.exited, read(ex.stderr)]);
    const pty = await spawnPty({ user: me, command: "id -un; stat -c %U $(tty)", env });
    const [ptyOut, ptyStatus] = await Promise.all([read(pty.stream), pty.exited]);
    const denied = [];
    for (const f of [() => spawnExec({ user: root, command: "true", env }), () => spawnPty({ user: root, env })]) {
      try { await f(); denied.push("allowed"); } catch (e) { denied.push(e.name + ": " + e.message); }
    }
    console.log(JSON.stringify({ exOut, exStatus, ptyOut, ptyStatus, denied }));
  `;
    const out = await runDenoAsUser(u, code);
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    assert.match(r.exOut, new RegExp(`^${LOGIN}\\n`));
    assert.deepEqual(r.exStatus, { code: 0 });
    assert.match(r.ptyOut, new RegExp(`^${LOGIN}\\r\\n${LOGIN}\\r\\n`));
    assert.deepEqual(r.ptyStatus, { code: 0 });
    assert.equal(r.denied.length, 2);
    for (const d of r.denied) {
      assert.match(d, /^AccessDeniedError: .*not root.*"root"/);
    }
  },
);
