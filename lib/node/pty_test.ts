import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { BadParameterError } from "../errors/mod.ts";
import { ensureTestUser, readAll, waitForOutput, waitUntil } from "./_os_testing.ts";
import { trackedCount } from "./_reaper.ts";
import { buildSessionEnv } from "./env.ts";
import type { OsUser } from "./os_user.ts";
import { type PtyProcess, type PtySpawnOptions, signalNumber, spawnPty } from "./pty.ts";

const LOGIN = "td_ptytest";

/** Tests that run commands as the OS test user (root only; `deno task test` reports a skip). */
const asUser = skipGroup("os-users") ? Deno.test.ignore : Deno.test;

let cached: OsUser | undefined;
async function user(): Promise<OsUser> {
  return cached ??= await ensureTestUser(LOGIN);
}

async function start(
  extra: Partial<PtySpawnOptions> & { term?: string } = {},
): Promise<PtyProcess> {
  const u = await user();
  return await spawnPty({
    user: u,
    env: buildSessionEnv({ user: u, term: extra.term ?? "xterm-256color" }),
    ...extra,
  });
}

/** Runs `command` on a pty and returns all output and the exit status. */
async function runOnPty(command: string, extra: Partial<PtySpawnOptions> = {}) {
  const p = await start({ command, ...extra });
  const [out, status] = await Promise.all([readAll(p.stream), p.exited]);
  return { p, out, status };
}

/** Foreground process group of the terminal whose session leader is `pid` (/proc stat tpgid). */
function foregroundPgrp(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[5]); // state ppid pgrp session tty_nr tpgid
}

asUser(
  "spawnPty() runs a login shell on /dev/pts/N owned by user:tty 0620 when asked for a shell",
  async () => {
    const p = await start();
    assert.match(p.ttyName, /^\/dev\/pts\/\d+$/);
    p.stream.write(`tty; stat -c 'owner=%U:%G:%a' "$(tty)"; echo "D$((40+2))NE"\n`);
    const out = await waitForOutput(p.stream, /D42NE/);
    assert.ok(out.includes(`${p.ttyName}\r\n`), out);
    assert.match(out, new RegExp(`owner=${LOGIN}:tty:620`));
    p.stream.write("exit 3\n");
    assert.deepEqual(await p.exited, { code: 3 });
    assert.equal(trackedCount(), 0);
  },
);

asUser(
  "spawnPty() runs as the user with initgroups and cwd home when given a command",
  async () => {
    const u = await user();
    const { out, status } = await runOnPty("id; pwd");
    assert.deepEqual(status, { code: 0 });
    assert.match(out, new RegExp(`uid=${u.uid}\\(${LOGIN}\\) gid=${u.gid}\\(`));
    assert.match(out, /groups=.*100\(users\)/);
    assert.doesNotMatch(out, /\b0\(root\)/);
    assert.ok(out.includes(`${u.home}\r\n`), out);
  },
);

asUser(
  "spawnPty() passes only the built environment when the daemon has LD_PRELOAD set",
  async () => {
    Deno.env.set("LD_PRELOAD", "/nonexistent/td_pty_evil.so");
    Deno.env.set("TD_PTY_DAEMON_SECRET", "leak");
    let out: string;
    try {
      const u = await user();
      const env = buildSessionEnv({
        user: u,
        term: "vt220",
        clientEnv: { LANG: "C.UTF-8", LD_PRELOAD: "/tmp/x.so" },
      });
      ({ out } = await runOnPty("env", { env }));
    } finally {
      Deno.env.delete("LD_PRELOAD");
      Deno.env.delete("TD_PTY_DAEMON_SECRET");
    }
    const vars = new Map(
      out.split("\r\n").filter((l) => l.includes("=")).map((l) => {
        const i = l.indexOf("=");
        return [l.slice(0, i), l.slice(i + 1)] as const;
      }),
    );
    const u = await user();
    assert.equal(vars.get("HOME"), u.home);
    assert.equal(vars.get("USER"), LOGIN);
    assert.equal(vars.get("LOGNAME"), LOGIN);
    assert.equal(vars.get("SHELL"), "/bin/bash");
    assert.ok(vars.get("PATH")?.includes("/usr/bin"));
    assert.equal(vars.get("TERM"), "vt220");
    assert.equal(vars.get("LANG"), "C.UTF-8");
    assert.match(vars.get("SSH_TTY") ?? "", /^\/dev\/pts\/\d+$/);
    assert.equal(vars.has("LD_PRELOAD"), false);
    assert.equal(vars.has("TD_PTY_DAEMON_SECRET"), false);
    assert.doesNotMatch(out, /td_pty_evil|cannot be preloaded/);
  },
);

asUser("spawnPty() sets the initial size and resize() delivers a new one", async () => {
  const p = await start({ size: { cols: 100, rows: 30 } });
  p.stream.write(`stty size; echo "S$((1))Z"\n`);
  assert.match(await waitForOutput(p.stream, /S1Z/), /\b30 100\r\n/);
  p.resize({ cols: 132, rows: 43 });
  p.stream.write(`stty size; echo "S$((2))Z"\n`);
  assert.match(await waitForOutput(p.stream, /S2Z/), /\b43 132\r\n/);
  assert.throws(() => p.resize({ cols: -1, rows: 10 }), BadParameterError);
  p.stream.write("exit\n");
  assert.deepEqual(await p.exited, { code: 0 });
  p.resize({ cols: 10, rows: 10 }); // after close: ignored, never touches a reused fd
});

asUser(
  "signal() interrupts the foreground job when it is sleep and the shell sees 130",
  async () => {
    const p = await start();
    p.stream.write(`echo "R$((1))Y"\n`);
    await waitForOutput(p.stream, /R1Y/);
    p.stream.write("sleep 30\n");
    // Wait until the foreground job has exec'd sleep: before the exec, bash's child may still
    // be in the window where it ignores SIGINT.
    await waitUntil(() => {
      const fg = foregroundPgrp(p.pid);
      if (fg === p.pid || fg <= 0) return false;
      try {
        return Deno.readTextFileSync(`/proc/${fg}/comm`).trim() === "sleep";
      } catch {
        return false;
      }
    }, "sleep is the foreground job");
    assert.equal(p.signal("INT"), true);
    // Interactive bash drops the rest of a list whose job died of SIGINT: ask on a new line.
    await waitUntil(() => foregroundPgrp(p.pid) === p.pid, "the shell is back in the foreground");
    p.stream.write("echo rc=$?\n");
    assert.match(await waitForOutput(p.stream, /rc=\d+/), /rc=130/);
    p.stream.write("exit 0\n");
    assert.deepEqual(await p.exited, { code: 0 });
    assert.equal(p.signal("SIGTERM"), false);
    assert.throws(() => p.signal("NOPE"), BadParameterError);
  },
);

asUser("exited reports signal KILL when the shell kills itself", async () => {
  const p = await start();
  p.stream.write("kill -KILL $$\n");
  assert.deepEqual(await p.exited, { signal: "KILL" });
});

asUser("close() hangs up the session when the shell is still running", async () => {
  const p = await start();
  p.stream.write(`echo "H$((1))P"\n`);
  await waitForOutput(p.stream, /H1P/);
  p.close();
  const status = await p.exited;
  assert.ok(
    "signal" in status ? status.signal === "HUP" : status.code === 129,
    JSON.stringify(status),
  );
  assert.equal(p.stream.destroyed, true);
});

asUser("spawnPty() applies terminal modes from the pty request", async () => {
  const { out } = await runOnPty("stty -a", { modes: { VERASE: 8, ECHO: 0, VINTR: 3 } });
  assert.match(out, /erase = \^H/);
  assert.match(out, /intr = \^C/);
  assert.match(out, /(^|\s)-echo(\s|$)/m);
});

asUser("spawnPty() leaks no fds into the shell", async () => {
  const { out } = await runOnPty("ls /proc/$$/fd; :");
  const fds = out.trim().split(/\s+/).map(Number).sort((a, b) => a - b);
  assert.deepEqual(fds.filter((fd) => ![0, 1, 2, 255].includes(fd)), [], out);
});

asUser("exited loses no output when the command prints a lot just before exiting", async () => {
  const { out, status } = await runOnPty("seq 1 20000; exit 5");
  assert.deepEqual(status, { code: 5 });
  const lines = out.trim().split("\r\n");
  assert.equal(lines.length, 20000);
  assert.equal(lines.at(-1), "20000");
});

asUser("stream backpressure stops the child while paused and loses nothing on resume", async () => {
  const p = await start({ command: "seq 1 100000" });
  let exited = false;
  p.exited.then(() => (exited = true));
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const first = new Promise<void>((resolve) => {
    p.stream.on("data", (c: Uint8Array) => {
      chunks.push(c);
      bytes += c.length;
      if (chunks.length === 1) {
        p.stream.pause();
        resolve();
      }
    });
  });
  await first;
  await new Promise((resolve) => setTimeout(resolve, 400)); // the assertion window, not readiness
  assert.equal(exited, false, "the child must block while the consumer is paused");
  const ended = new Promise((resolve) => p.stream.on("end", resolve));
  p.stream.resume();
  await ended;
  assert.deepEqual(await p.exited, { code: 0 });
  const text = new TextDecoder().decode(
    chunks.reduce((a, c) => {
      const n = new Uint8Array(a.length + c.length);
      n.set(a);
      n.set(c, a.length);
      return n;
    }, new Uint8Array()),
  );
  const lines = text.trim().split("\r\n");
  assert.equal(lines.length, 100000, `got ${bytes} bytes`);
  assert.equal(lines.at(-1), "100000");
});

for (
  const [what, job] of [
    ["is quiet", "sleep 30"],
    ["keeps printing", "while :; do echo tick; sleep 0.02; done"],
  ]
) {
  asUser(`exited settles soon when a background job holding the tty ${what}`, async () => {
    const t0 = Date.now();
    // The job ignores SIGHUP from birth (inherited SIG_IGN), so it survives the shell's exit.
    const { status, out } = await runOnPty(`trap '' HUP; ${job} & echo "bg=$!"`, {
      drainTimeoutMs: 100,
    });
    const bg = Number(/bg=(\d+)/.exec(out)?.[1]);
    try {
      assert.deepEqual(status, { code: 0 });
      const took = Date.now() - t0;
      assert.ok(took >= 100 && took < 3000, `took ${took} ms`);
      // The background job really outlived the shell (this is the case the cap is for).
      assert.equal(Deno.readTextFileSync(`/proc/${bg}/stat`).includes(") "), true);
    } finally {
      if (bg > 0) Deno.kill(bg, "SIGKILL");
    }
  });
}

asUser(
  "spawnPty() serves 20 concurrent sessions with the right outputs and exit codes",
  async () => {
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => runOnPty(`echo "out-$((${i}*3))"; exit ${i}`)),
    );
    runs.forEach(({ out, status }, i) => {
      assert.match(out, new RegExp(`out-${i * 3}\\r\\n`));
      assert.deepEqual(status, { code: i });
    });
    assert.equal(new Set(runs.map((r) => r.p.ttyName)).size, 20);
    assert.equal(trackedCount(), 0);
  },
);

asUser(
  "spawnPty() and node:child_process children keep their own exit codes when run together",
  async () => {
    const { spawn } = await import("node:child_process");
    const viaNode = (i: number) =>
      new Promise<number | null>((resolve) => {
        const ch = spawn("/bin/sh", ["-c", `exit ${i + 100}`], { stdio: "ignore" });
        ch.on("exit", (code) => resolve(code));
      });
    const [ptys, nodes] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, (_, i) => runOnPty(`exit ${i + 50}`))),
      Promise.all(Array.from({ length: 10 }, (_, i) => viaNode(i))),
    ]);
    assert.deepEqual(ptys.map((r) => r.status), ptys.map((_, i) => ({ code: i + 50 })));
    assert.deepEqual(nodes, nodes.map((_, i) => i + 100));
  },
);

Deno.test("signalNumber() accepts SSH and POSIX names when valid and rejects others", () => {
  assert.equal(signalNumber("INT"), 2);
  assert.equal(signalNumber("SIGKILL"), 9);
  assert.equal(signalNumber("term"), 15);
  assert.throws(() => signalNumber("BOGUS"), BadParameterError);
});

asUser("spawnPty() rejects an environment with a NUL byte", async () => {
  const u = await user();
  await assert.rejects(
    spawnPty({ user: u, env: { BAD: "a\0b" }, command: "true" }),
    BadParameterError,
  );
  assert.equal(trackedCount(), 0);
});
