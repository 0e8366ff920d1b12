/**
 * The pid file: holds this process's pid and an exclusive `flock` on itself for as long as the
 * process runs, so `pkill -HUP -L -F /run/teleport.pid` (systemd's ExecReload) signals only a
 * live teleport: procps `pkill -L` refuses a pid file nobody holds locked. A process killed with
 * KILL leaves the file behind, but the kernel drops its lock, so the next start takes it over.
 * Removed on stop, only while it still names this process.
 *
 * After a graceful restart the pid file follows the live process: the successor writes a new
 * file beside it, locks it and renames it over the old one ({@link replacePidFile}); the old
 * process's lock stays on the replaced file, and its release leaves the new one alone.
 */
import { AccessDeniedError } from "../errors/mod.ts";

/** A pid file this process holds. */
export interface PidFile {
  readonly path: string;
  /** Removes the file (if it still names this process) and drops the lock. Idempotent. */
  release(): Promise<void>;
  /** {@link release} for an exit path that cannot wait (a forced exit). */
  releaseSync(): void;
}

/**
 * Writes this process's pid to `path` and keeps it locked until {@link PidFile.release}.
 * Refuses when another live process holds the lock.
 */
export async function writePidFile(path: string): Promise<PidFile> {
  // Not truncated before the lock is ours: the file may belong to a running process.
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o644 });
  if (!(await file.tryLock(true))) {
    let holder = "";
    try {
      holder = (await Deno.readTextFile(path)).trim();
    } catch {
      // unreadable: name no pid
    }
    file.close();
    throw new AccessDeniedError(
      `Cannot write pid file ${path}: another teleport process${
        /^\d+$/.test(holder) ? ` (pid ${holder})` : ""
      } holds it; stop that process first or choose another --pid-file`,
    );
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return held(path, file);
}

/**
 * A successor's pid file: this process's pid in a new locked file renamed over `path`, so
 * that `pkill -L -F path` reaches this process from now on (see the module doc).
 */
export async function replacePidFile(path: string): Promise<PidFile> {
  const tmp = `${path}.${Deno.pid}.tmp`;
  const file = await Deno.open(tmp, { read: true, write: true, create: true, mode: 0o644 });
  try {
    if (!(await file.tryLock(true))) {
      throw new AccessDeniedError(`Cannot write pid file ${tmp}: another process holds it`);
    }
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    await Deno.rename(tmp, path);
  } catch (err) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  return held(path, file);
}

function held(path: string, file: Deno.FsFile): PidFile {
  let released = false;
  const ours = (text: string) => text.trim() === String(Deno.pid);
  const drop = () => {
    released = true;
    try {
      file.unlockSync();
    } catch {
      // closing releases it too
    }
    file.close();
  };
  return {
    path,
    async release() {
      if (released) return;
      try {
        if (ours(await Deno.readTextFile(path))) await Deno.remove(path);
      } catch {
        // already gone
      }
      drop();
    },
    releaseSync() {
      if (released) return;
      try {
        if (ours(Deno.readTextFileSync(path))) Deno.removeSync(path);
      } catch {
        // already gone
      }
      drop();
    },
  };
}
