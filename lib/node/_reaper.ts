/**
 * The process-wide child reaper for processes started through FFI `posix_spawn`.
 *
 * One `SIGCHLD` listener serves every tracked pid. On each signal it calls
 * `waitpid(pid, WNOHANG)` for the pids it tracks, and only those: children of
 * `node:child_process` and `Deno.Command` are reaped by Deno itself and must not be stolen.
 * The listener is installed while at least one pid is tracked and removed afterwards, so an
 * idle process holds no signal resource. Deno's signal listeners do not keep the event loop
 * alive, so while pids are tracked a slow interval (also a backstop for a lost SIGCHLD) does.
 *
 * @module
 */

import { decodeWaitStatus, ECHILD, errno, type ExitStatus, libc, WNOHANG } from "./_libc.ts";

const tracked = new Map<number, (status: ExitStatus) => void>();
let listening = false;
let backstop: ReturnType<typeof setInterval> | undefined;
/** Poll period of the backstop, in ms. */
const BACKSTOP_MS = 1000;
const statusBuf = new Int32Array(1);

function onSigchld(): void {
  reapTracked();
}

/** Polls every tracked pid once; resolves the ones that ended. */
export function reapTracked(): void {
  const c = libc();
  for (const [pid, resolve] of tracked) {
    const r = c.waitpid(pid, statusBuf, WNOHANG);
    if (r === pid) {
      const status = decodeWaitStatus(statusBuf[0]!);
      if (status === undefined) continue; // stopped, not ended
      tracked.delete(pid);
      resolve(status);
    } else if (r < 0 && errno() === ECHILD) {
      // Someone else reaped it; the status is lost. Report a generic failure, not a hang.
      tracked.delete(pid);
      resolve({ code: 255 });
    }
  }
  disarmIfIdle();
}

/**
 * Installs the SIGCHLD listener if needed. Call before spawning, so that an exit racing the
 * spawn is not missed; then call {@link trackPid} with the new pid.
 */
export function armReaper(): void {
  if (!listening) {
    Deno.addSignalListener("SIGCHLD", onSigchld);
    listening = true;
  }
  backstop ??= setInterval(reapTracked, BACKSTOP_MS);
}

/**
 * Tracks `pid` (a direct child started by posix_spawn) and returns a promise of its exit
 * status. Polls once immediately, in case it ended before the call.
 */
export function trackPid(pid: number): Promise<ExitStatus> {
  armReaper();
  const promise = new Promise<ExitStatus>((resolve) => tracked.set(pid, resolve));
  reapTracked();
  return promise;
}

/** Removes the listener and the backstop when nothing is tracked (also after a failed spawn). */
export function disarmIfIdle(): void {
  if (tracked.size !== 0) return;
  if (listening) {
    Deno.removeSignalListener("SIGCHLD", onSigchld);
    listening = false;
  }
  if (backstop !== undefined) {
    clearInterval(backstop);
    backstop = undefined;
  }
}

/** Number of pids being waited for (diagnostics and tests). */
export function trackedCount(): number {
  return tracked.size;
}
