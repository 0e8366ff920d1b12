/**
 * Interactive sessions on a real pseudo-terminal: allocate a pty through libc (FFI), hand the
 * slave to the OS user like sshd (owner user:tty, mode 0620), and start the user's login shell
 * or `shell -c command` on it as that user with `posix_spawn` + `setpriv --init-groups`.
 *
 * The master fd is driven by `node:tty.ReadStream` (epoll, no thread per session) behind a
 * plain {@link Duplex}; exit statuses come from the process-wide SIGCHLD reaper.
 *
 * @module
 */

import { Duplex } from "node:stream";
import * as tty from "node:tty";
import {
  AccessDeniedError,
  BadParameterError,
  ConnectionProblemError,
  NotFoundError,
} from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  cstr,
  cstrArray,
  describeErrno,
  ENOENT,
  errno,
  type ExitStatus,
  fromCstr,
  libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_RDWR,
  POSIX_SPAWN_SETSID,
  POSIX_SPAWN_SETSIGDEF,
  POSIX_SPAWN_SETSIGMASK,
  SIGNALS,
  TIOCSWINSZ,
} from "./_libc.ts";
import { envEntries, planLaunch, sessionCwd, shellArgs, signalNumber } from "./_launch.ts";
import { armReaper, disarmIfIdle, trackPid } from "./_reaper.ts";
import { applyTerminalModes, type TerminalModes } from "./_termios.ts";
import { isDaemonRoot, lookupGroupId, type OsUser } from "./os_user.ts";

export type { ExitStatus } from "./_libc.ts";
export type { TerminalModes } from "./_termios.ts";
export { signalNumber } from "./_launch.ts";

/** A terminal size as sent in `pty-req` and `window-change`. */
export interface WindowSize {
  /** Columns (characters), 0–65535. */
  readonly cols: number;
  /** Rows (lines), 0–65535. */
  readonly rows: number;
  /** Width in pixels, 0 when unknown. */
  readonly width?: number;
  /** Height in pixels, 0 when unknown. */
  readonly height?: number;
}

/** Options of {@link spawnPty}. */
export interface PtySpawnOptions {
  /** The OS user to run as (from `lookupOsUser`). */
  readonly user: OsUser;
  /** Command for `shell -c`; omitted, the user's login shell starts (`shell -l`). */
  readonly command?: string;
  /**
   * The exact environment (from `buildSessionEnv`); nothing of the daemon's is inherited.
   * `SSH_TTY` is set to the allocated pty.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Initial window size; default 80×24. */
  readonly size?: WindowSize;
  /** Terminal modes from `pty-req` (ssh2's `info.modes`); unknown names are ignored. */
  readonly modes?: TerminalModes;
  /**
   * After the child exits, how long to wait for more output before giving up on the end of
   * output (background jobs may hold the tty open). Default 200 ms.
   */
  readonly drainTimeoutMs?: number;
  /** Path of util-linux `setpriv`; default `/usr/bin/setpriv`. */
  readonly setprivPath?: string;
  /** Debug logging. */
  readonly logger?: Logger;
}

/** A process running on a pty. */
export interface PtyProcess {
  /** Pid of the session leader (the shell). */
  readonly pid: number;
  /** The slave device, e.g. `/dev/pts/3`. */
  readonly ttyName: string;
  /**
   * The terminal: `'data'` is output, `write()` is input. Standard stream backpressure: when
   * the consumer stops reading (or `pause()`s and the buffer fills) the pty stops being read and
   * the child blocks on output. Ends (`'end'`) after the child exited and its output was read.
   * Input written after the session ended is dropped. `destroy()` equals {@link close}.
   */
  readonly stream: Duplex;
  /**
   * Settles once the child has exited and its output was read to the end (EIO), or no more
   * output came for `drainTimeoutMs` (background jobs still holding the tty); the pty is then
   * closed, which hangs up any such job. Never rejects.
   */
  readonly exited: Promise<ExitStatus>;
  /** Sets the window size; the kernel sends SIGWINCH to the foreground job. No-op after close. */
  resize(size: WindowSize): void;
  /**
   * Sends a signal (`"INT"` or `"SIGINT"`, case-insensitive) to the terminal's foreground
   * process group (or the session's group when the pty is gone). Returns false when the
   * session has already ended.
   *
   * @throws BadParameterError for an unknown signal name.
   */
  signal(name: string): boolean;
  /** Hangs up: closes the master, so the session gets SIGHUP. Buffered output is dropped. */
  close(): void;
}

const DEFAULT_SIZE: WindowSize = { cols: 80, rows: 24 };

function checkSize(size: WindowSize): Uint16Array<ArrayBuffer> {
  const dims = [size.rows, size.cols, size.width ?? 0, size.height ?? 0];
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffff) {
      throw new BadParameterError(
        `window size ${JSON.stringify(size)} is invalid: cols, rows, width and height must ` +
          `be integers from 0 to 65535`,
      );
    }
  }
  return new Uint16Array(dims);
}

function errnoError(what: string, code: number): Error {
  const msg = `${what}: ${describeErrno(code)}`;
  if (code === ENOENT) return new NotFoundError(msg);
  if (code === 1 || code === 13) return new AccessDeniedError(msg); // EPERM, EACCES
  return new ConnectionProblemError(msg);
}

let ttyGid: Promise<number | undefined> | undefined;

/** Spawns `argv` with stdio and controlling tty on `ttyName`, in a new session. */
function posixSpawnOnTty(
  plan: { file: string; argv: readonly string[] },
  ttyName: string,
  cwd: string,
  env: string[],
): number {
  const c = libc();
  const fa = new Uint8Array(256); // posix_spawn_file_actions_t is 80 bytes on LP64
  const attr = new Uint8Array(512); // posix_spawnattr_t is 336 bytes on LP64
  const sigs = new Uint8Array(128);
  const mask = new Uint8Array(128);
  const keep: unknown[] = [];
  c.posix_spawn_file_actions_init(fa);
  c.posix_spawnattr_init(attr);
  try {
    // glibc runs setsid() before the file actions, so opening the slave without O_NOCTTY
    // makes it the controlling terminal of the new session.
    const path = cstr(ttyName);
    keep.push(path);
    check(c.posix_spawn_file_actions_addopen(fa, 0, path, O_RDWR, 0), "addopen");
    check(c.posix_spawn_file_actions_adddup2(fa, 0, 1), "adddup2");
    check(c.posix_spawn_file_actions_adddup2(fa, 0, 2), "adddup2");
    if (c.posix_spawn_file_actions_addclosefrom_np !== null) {
      check(c.posix_spawn_file_actions_addclosefrom_np(fa, 3), "addclosefrom_np");
    } else {
      for (const entry of Deno.readDirSync("/proc/self/fd")) {
        const fd = Number(entry.name);
        if (fd >= 3) c.posix_spawn_file_actions_addclose(fa, fd);
      }
    }
    let { file, argv } = plan;
    if (c.posix_spawn_file_actions_addchdir_np !== null) {
      const dir = cstr(cwd);
      keep.push(dir);
      check(c.posix_spawn_file_actions_addchdir_np(fa, dir), "addchdir_np");
    } else {
      // glibc < 2.29: change directory in a tiny sh wrapper before the real program.
      const at = argv.indexOf("--") + 1;
      const wrapped = ["/bin/sh", "-c", 'cd -- "$1" || cd /; shift; exec "$@"', "sh", cwd];
      argv = [...argv.slice(0, at), ...wrapped, ...argv.slice(at)];
      if (at === 0) file = "/bin/sh";
    }
    c.sigfillset(sigs);
    c.sigemptyset(mask);
    check(c.posix_spawnattr_setsigdefault(attr, sigs), "setsigdefault");
    check(c.posix_spawnattr_setsigmask(attr, mask), "setsigmask");
    check(
      c.posix_spawnattr_setflags(
        attr,
        POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK,
      ),
      "setflags (POSIX_SPAWN_SETSID needs glibc 2.26 or later)",
    );
    const argvC = cstrArray(argv);
    const envC = cstrArray(env);
    const fileC = cstr(file);
    const pid = new Int32Array(1);
    keep.push(argvC, envC, fileC);
    const rc = c.posix_spawn(pid, fileC, fa, attr, argvC.array, envC.array);
    if (rc !== 0) throw errnoError(`cannot start ${file} on ${ttyName}`, rc);
    return pid[0]!;
  } finally {
    c.posix_spawn_file_actions_destroy(fa);
    c.posix_spawnattr_destroy(attr);
    keep.length = 0;
  }
}

function check(rc: number, what: string): void {
  if (rc !== 0) throw errnoError(`posix_spawn ${what} failed`, rc);
}

/**
 * Opens a pty, hands the slave to `options.user` (owner uid:tty, mode 0620; root daemon only),
 * applies size and modes, and starts the login shell (`shell -l`) or `shell -c command` on it as
 * that user: through `setpriv --reuid --regid --init-groups` when the daemon is root and the
 * user is not, directly otherwise. The working directory is the home directory, or `/` when it
 * is missing. The child gets only fds 0–2 (the slave), default signal dispositions and an empty
 * signal mask.
 *
 * @throws AccessDeniedError when a non-root daemon is asked for another user.
 * @throws BadParameterError for an invalid size, environment or command.
 * @throws NotImplementedError when glibc or setpriv is missing.
 * @throws NotFoundError / AccessDeniedError / ConnectionProblemError when the pty or the spawn
 *   fails (the message names the call and errno).
 */
export async function spawnPty(options: PtySpawnOptions): Promise<PtyProcess> {
  const { user } = options;
  const winsize = checkSize(options.size ?? DEFAULT_SIZE);
  const args = shellArgs(user, options.command);
  const plan = planLaunch(user, args, options.setprivPath);
  const cwd = sessionCwd(user);
  const root = isDaemonRoot();
  const gid = root ? await (ttyGid ??= lookupGroupId("tty")) : undefined;
  const c = libc();

  armReaper(); // before the spawn, so an immediate exit is not missed
  let master = -1;
  let slave = -1;
  try {
    master = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) throw errnoError("posix_openpt (allocating a pty) failed", errno());
    if (c.grantpt(master) !== 0) throw errnoError("grantpt failed", errno());
    if (c.unlockpt(master) !== 0) throw errnoError("unlockpt failed", errno());
    const nameBuf = new Uint8Array(128);
    const rc = c.ptsname_r(master, nameBuf, BigInt(nameBuf.length));
    if (rc !== 0) throw errnoError("ptsname_r failed", rc);
    const ttyName = fromCstr(nameBuf);
    const env = envEntries({ ...options.env, SSH_TTY: ttyName });

    slave = c.open(cstr(ttyName), O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
    if (slave < 0) throw errnoError(`cannot open ${ttyName}`, errno());
    if (root) {
      if (c.fchown(slave, user.uid, gid ?? user.gid) !== 0) {
        throw errnoError(`cannot chown ${ttyName} to uid ${user.uid}`, errno());
      }
      if (c.fchmod(slave, gid === undefined ? 0o600 : 0o620) !== 0) {
        throw errnoError(`cannot chmod ${ttyName}`, errno());
      }
    }
    if (c.ioctl(master, TIOCSWINSZ, new Uint8Array(winsize.buffer)) !== 0) {
      throw errnoError(`cannot set the window size of ${ttyName}`, errno());
    }
    if (options.modes !== undefined) applyTerminalModes(slave, options.modes);

    const pid = posixSpawnOnTty(plan, ttyName, cwd, env);
    // posix_spawn returns after the child exec'd (CLONE_VFORK): it holds its own slave fd.
    c.close(slave);
    slave = -1;
    const exit = trackPid(pid);
    let session: PtySession;
    try {
      session = new PtySession({
        pid,
        ttyName,
        master,
        exit,
        drainTimeoutMs: options.drainTimeoutMs ?? 200,
        logger: options.logger,
      });
    } catch (err) {
      c.kill(-pid, SIGNALS.KILL!);
      throw err;
    }
    options.logger?.debug("Started pty session {pid} on {tty} as {login}", {
      pid,
      tty: ttyName,
      login: user.name,
    });
    return session;
  } catch (err) {
    if (slave >= 0) c.close(slave);
    if (master >= 0) c.close(master);
    disarmIfIdle();
    throw err;
  }
}

class PtySession implements PtyProcess {
  readonly pid: number;
  readonly ttyName: string;
  readonly stream: Duplex;
  readonly exited: Promise<ExitStatus>;
  #master: number;
  #inner: tty.ReadStream;
  /** The master fd is open and owned by #inner (false → never touch the fd number again). */
  #masterOpen = true;
  #ended = false;
  #childGone = false;
  #innerPaused = false;
  #sawData = false;
  #onEnd: Array<() => void> = [];

  constructor(init: {
    pid: number;
    ttyName: string;
    master: number;
    exit: Promise<ExitStatus>;
    drainTimeoutMs: number;
    logger: Logger | undefined;
  }) {
    this.pid = init.pid;
    this.ttyName = init.ttyName;
    this.#master = init.master;
    this.#inner = new tty.ReadStream(init.master);
    const inner = this.#inner;
    this.stream = new Duplex({
      allowHalfOpen: true,
      read: () => {
        if (this.#innerPaused && this.#masterOpen) {
          this.#innerPaused = false;
          inner.resume();
        }
      },
      write: (chunk: Uint8Array, _enc, cb) => {
        if (!this.#masterOpen) return cb(); // session gone: input is dropped
        inner.write(chunk, () => cb()); // EIO on write means the same: dropped
      },
      final: (cb) => {
        cb(); // a pty has no half-close; EOF is ^D typed by the user
      },
      destroy: (err, cb) => {
        this.close();
        cb(err);
      },
    });
    inner.on("data", (chunk: Uint8Array) => {
      if (this.#ended) return;
      this.#sawData = true;
      if (!this.stream.push(chunk)) {
        this.#innerPaused = true;
        inner.pause();
      }
    });
    // EIO (every slave fd closed) arrives as 'error'; the stream then closes the fd itself.
    inner.on("error", (err: Error & { code?: string }) => {
      if (err.code !== "EIO") {
        init.logger?.warn("Pty {tty} of session {pid} failed: {error}", {
          tty: init.ttyName,
          pid: init.pid,
          error: err.message,
        });
      }
      this.#finishOutput();
    });
    inner.on("end", () => this.#finishOutput());
    inner.on("close", () => this.#finishOutput());
    this.exited = init.exit.then(async (status) => {
      this.#childGone = true;
      await this.#drain(init.drainTimeoutMs);
      this.#closeMaster();
      this.#finishOutput();
      return status;
    });
  }

  /** End of output: no more pushes, the consumer sees 'end' after the buffered data. */
  #finishOutput(): void {
    this.#masterOpen = this.#masterOpen && !this.#inner.destroyed;
    if (this.#ended) return;
    this.#ended = true;
    this.stream.push(null);
    for (const f of this.#onEnd.splice(0)) f();
  }

  #closeMaster(): void {
    if (!this.#masterOpen) return;
    this.#masterOpen = false;
    this.#inner.destroy();
  }

  /** Waits for EIO; gives up after `ms` without output while the consumer keeps reading. */
  #drain(ms: number): Promise<void> {
    if (this.#ended) return Promise.resolve();
    const deadline = Date.now() + 10 * ms;
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#onEnd.push(done);
      this.#sawData = false;
      const tick = () => {
        if (this.#ended) return done();
        const backpressured = this.#innerPaused;
        const busy = this.#sawData && Date.now() < deadline;
        this.#sawData = false;
        if (backpressured || busy) timer = setTimeout(tick, ms);
        else done();
      };
      timer = setTimeout(tick, ms);
    });
  }

  resize(size: WindowSize): void {
    const winsize = checkSize(size);
    if (!this.#masterOpen || this.#inner.destroyed) return;
    libc().ioctl(this.#master, TIOCSWINSZ, new Uint8Array(winsize.buffer));
  }

  signal(name: string): boolean {
    const sig = signalNumber(name);
    if (this.#childGone) return false;
    let pgrp = -1;
    if (this.#masterOpen && !this.#inner.destroyed) pgrp = libc().tcgetpgrp(this.#master);
    if (pgrp <= 0) pgrp = this.pid; // setsid made the shell its own group leader
    return libc().kill(-pgrp, sig) === 0;
  }

  close(): void {
    if (this.#masterOpen) this.#closeMaster();
    if (!this.#ended) {
      this.#finishOutput();
    }
    if (!this.stream.destroyed) this.stream.destroy();
  }
}
