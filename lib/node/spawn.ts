/**
 * Commands without a pty (SSH `exec` requests): `shell -c command` as the OS user, through
 * `setpriv --reuid --regid --init-groups` when the daemon is root, in a new session and process
 * group, with stdin/stdout/stderr pipes, the exact environment given and the home directory as
 * working directory.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { ConnectionProblemError, NotFoundError } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { type ExitStatus, F_GETFD, F_SETFD, FD_CLOEXEC, libc, SIGNALS } from "./_libc.ts";
import { envEntries, planLaunch, sessionCwd, shellArgs, signalNumber } from "./_launch.ts";
import type { OsUser } from "./os_user.ts";

export type { ExitStatus } from "./_libc.ts";

/** Options of {@link spawnExec}. */
export interface ExecSpawnOptions {
  /** The OS user to run as (from `lookupOsUser`). */
  readonly user: OsUser;
  /** The command, run as `shell -c command`. */
  readonly command: string;
  /** The exact environment (from `buildSessionEnv`); nothing of the daemon's is inherited. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * After the command exits, how long to wait for more output before giving up on the end of
   * stdout/stderr (background jobs may hold the pipes). Default 200 ms.
   */
  readonly drainTimeoutMs?: number;
  /** Path of util-linux `setpriv`; default `/usr/bin/setpriv`. */
  readonly setprivPath?: string;
  /** Debug logging. */
  readonly logger?: Logger;
}

/** A command running on pipes. */
export interface ExecProcess {
  /** Pid of the shell; also the id of its process group and session. */
  readonly pid: number;
  /**
   * The command's stdin; `end()` delivers EOF. Write errors after the command exited (EPIPE)
   * are swallowed; it is destroyed when `exited` settles.
   */
  readonly stdin: Writable;
  /**
   * The command's stdout. Consume it (or destroy it), or `exited` may wait for it. It emits
   * 'end' at EOF, or only 'close' when the drain after exit gave up (see `exited`).
   */
  readonly stdout: Readable;
  /** The command's stderr, separate from stdout. Consume it like stdout. */
  readonly stderr: Readable;
  /**
   * Settles once the shell has exited and stdout/stderr reached their end, or no more output
   * came for `drainTimeoutMs` while nothing unread was buffered (background jobs holding the
   * pipes; the pipes are then destroyed). Never rejects.
   */
  readonly exited: Promise<ExitStatus>;
  /**
   * Sends a signal (`"TERM"` or `"SIGTERM"`) to the command's whole process group. Returns
   * false once the shell has exited.
   *
   * @throws BadParameterError for an unknown signal name.
   */
  signal(name: string): boolean;
  /** SIGKILL to the whole process group (no-op once the shell has exited). */
  kill(): void;
}

/**
 * Sets close-on-exec on every fd ≥ 3 of this process that lacks it (fds inherited from
 * whatever started the daemon), so that exec'd commands get only their three pipes.
 * Deno's own fds are close-on-exec already.
 */
function sealInheritedFds(): void {
  const c = libc();
  let fds: number[];
  try {
    fds = [...Deno.readDirSync("/proc/self/fd")].map((e) => Number(e.name));
  } catch {
    return; // no /proc: nothing to do
  }
  for (const fd of fds) {
    if (fd < 3) continue;
    const flags = c.fcntl(fd, F_GETFD, 0);
    if (flags >= 0 && (flags & FD_CLOEXEC) === 0) c.fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

/**
 * Starts `shell -c command` as `options.user` without a pty: `setpriv --reuid --regid
 * --init-groups` when the daemon is root and the user is not, directly otherwise; in a new
 * session (`setsid`, so pgid = pid); stdio pipes; only the given environment; cwd = home, or `/`
 * when it is missing. Signal dispositions are default (SIGPIPE included), so `yes | head -1`
 * ends.
 *
 * @throws AccessDeniedError when a non-root daemon is asked for another user.
 * @throws BadParameterError for an invalid environment or command.
 * @throws NotImplementedError when setpriv is missing.
 * @throws NotFoundError / ConnectionProblemError when the process cannot be started.
 */
export async function spawnExec(options: ExecSpawnOptions): Promise<ExecProcess> {
  const { user } = options;
  const plan = planLaunch(user, shellArgs(user, options.command), options.setprivPath);
  const env = Object.fromEntries(
    envEntries(options.env).map((e) => {
      const i = e.indexOf("=");
      return [e.slice(0, i), e.slice(i + 1)];
    }),
  );
  sealInheritedFds();
  const child = spawn(plan.file, plan.argv.slice(1), {
    argv0: plan.argv[0],
    cwd: sessionCwd(user),
    env,
    detached: true, // setsid(): own session and process group
    stdio: ["pipe", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error & { code?: string }) => {
      child.off("spawn", onSpawn);
      const what = `cannot start ${plan.file} for OS user "${user.name}": ${err.message}`;
      reject(
        err.code === "ENOENT"
          ? new NotFoundError(what, { cause: err })
          : new ConnectionProblemError(what, { cause: err }),
      );
    };
    const onSpawn = () => {
      child.off("error", onError);
      resolve();
    };
    child.once("error", onError);
    child.once("spawn", onSpawn);
  });
  options.logger?.debug("Started exec {pid} as {login}", { pid: child.pid, login: user.name });
  return new ExecSession(child, options.drainTimeoutMs ?? 200);
}

class ExecSession implements ExecProcess {
  readonly pid: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exited: Promise<ExitStatus>;
  #gone = false;

  constructor(child: ChildProcess, drainMs: number) {
    this.pid = child.pid!;
    this.stdin = child.stdin!;
    this.stdout = child.stdout!;
    this.stderr = child.stderr!;
    // Without a listener, EPIPE on a late write would be an uncaught 'error'.
    this.stdin.on("error", () => {});
    this.stdout.on("error", () => {});
    this.stderr.on("error", () => {});
    const outputs = [this.stdout, this.stderr];
    // Bytes read so far (net.Socket#bytesRead), to tell a busy pipe from an idle one.
    const bytesRead = () =>
      outputs.reduce((n, s) => n + Number((s as { bytesRead?: number }).bytesRead ?? 0), 0);
    this.exited = new Promise<ExitStatus>((resolve) => {
      child.once("exit", (code, signal) => {
        this.#gone = true;
        const status: ExitStatus = signal !== null
          ? { signal: signal.replace(/^SIG/, "") }
          : { code: code ?? 255 };
        const ended = () => outputs.every((s) => s.readableEnded || s.destroyed);
        const deadline = Date.now() + 10 * drainMs;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const finish = () => {
          clearTimeout(timer);
          for (const s of outputs) {
            s.off("end", check);
            s.off("close", check);
            if (!s.readableEnded) s.destroy();
          }
          this.stdin.destroy(); // nothing reads it any more (background jobs got a closed pipe)
          resolve(status);
        };
        const check = () => {
          if (ended()) finish();
        };
        const tick = () => {
          if (ended()) return finish();
          const unread = outputs.some((s) => s.readableLength > 0);
          const now = bytesRead();
          const busy = now !== lastRead && Date.now() < deadline;
          lastRead = now;
          if (unread || busy) timer = setTimeout(tick, drainMs);
          else finish();
        };
        for (const s of outputs) {
          s.on("end", check);
          s.on("close", check);
        }
        if (ended()) return finish();
        let lastRead = bytesRead();
        timer = setTimeout(tick, drainMs);
      });
    });
  }

  signal(name: string): boolean {
    const sig = signalNumber(name);
    if (this.#gone) return false;
    return libc().kill(-this.pid, sig) === 0;
  }

  kill(): void {
    if (!this.#gone) libc().kill(-this.pid, SIGNALS.KILL!);
  }
}
