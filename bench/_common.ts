/** What every benchmark here shares: set-up, output, timing of one command, percentiles. */
import { ensureOsUser, REPO, run } from "../tests/e2e/_helpers.ts";

/** Prints a line to stdout (benchmarks report, they do not log). */
export function out(line = ""): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

/** The `p`th percentile (nearest rank) of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Milliseconds `fn` took; throws when the command it ran failed. */
export async function timed(fn: () => Promise<{ code: number; err: string }>): Promise<number> {
  const t0 = performance.now();
  const r = await fn();
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${r.err}`);
  return ms;
}

/**
 * A world-readable temp dir and the OS user `login` that sshd accepts: useradd leaves the
 * account locked ("!"), which sshd refuses without PAM; "*" means no password.
 */
export async function benchSetup(prefix: string, login: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o755);
  await ensureOsUser(login);
  await run("usermod", ["-p", "*", login]);
  return dir;
}

/** Waits `ms` (benchmarks let a process settle before sampling it; never used for readiness). */
export function settle(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`…), in KiB; 0 when the process is gone. */
export function procStatusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
      Deno.readTextFileSync(`/proc/${pid}/status`),
    );
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

/** Proportional set size of a process (shared pages split among their users), in KiB. */
export function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`));
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

/** CPU time (user + system) a process has used, in seconds (clock ticks of 100 Hz). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** The command line of a process, arguments joined by spaces ("" when it is gone). */
export function cmdline(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** Pids of every process whose parent is `pid`, recursively (not `pid` itself). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const m = /^PPid:\s+(\d+)/m.exec(Deno.readTextFileSync(`/proc/${e.name}/status`));
      if (m !== null) parent.set(Number(e.name), Number(m[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

/**
 * Spawns `cmd args` through bash with the open-files limit raised first (to 65536, or to the
 * hard limit when that is lower); `exec` keeps the pid, so `child.pid` is the command's own.
 */
export function spawnRaised(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; stdin?: "piped" | "null" } = {},
): Deno.ChildProcess {
  return new Deno.Command("bash", {
    args: [
      "-c",
      'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
      "bash",
      cmd,
      ...args,
    ],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    stdin: opts.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** The soft open-files limit of a running process (`/proc/<pid>/limits`). */
export function openFilesLimit(pid: number): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(
      Deno.readTextFileSync(`/proc/${pid}/limits`),
    );
    return m === null ? 0 : m[1] === "unlimited" ? Infinity : Number(m[1]);
  } catch {
    return 0;
  }
}

/** Calls `onLine` for every line of `stream`; resolves at its end. */
export async function eachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  if (buf !== "") onLine(buf);
}

/** A running `teleport start` (see {@link startDaemon}). */
export interface Daemon {
  pid: number;
  /** Spawn → readiness banner, in ms. */
  startMs: number;
  /** Everything logged on stderr so far. */
  logs(): string;
  /** Sends `signal` (default SIGTERM) once and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/**
 * Starts `teleport start ARGS` (`deno run -A main.ts`) and resolves once it prints its
 * readiness banner ("Stop with"); works for every role mix, including a tunnel node whose banner
 * has no port. `raiseOpenFiles` spawns it through {@link spawnRaised}; the returned pid is
 * checked to be the teleport process itself.
 */
export async function startDaemon(
  args: string[],
  o: { raiseOpenFiles?: boolean; onLog?: (line: string) => void; timeoutMs?: number } = {},
): Promise<Daemon> {
  const main = `${REPO}main.ts`;
  const t0 = performance.now();
  const argv = ["run", "-A", main, "start", ...args];
  const env = { ...Deno.env.toObject(), NO_COLOR: "1" };
  const child = o.raiseOpenFiles
    ? spawnRaised(Deno.execPath(), argv, { cwd: REPO, env })
    : new Deno.Command(Deno.execPath(), {
      args: argv,
      cwd: REPO,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  let stderr = "";
  const errDone = eachLine(child.stderr, (l) => {
    o.onLog?.(l);
    stderr += l + "\n";
  });
  const ready = Promise.withResolvers<void>();
  let banner = "";
  const outDone = eachLine(child.stdout, (l) => {
    banner += l + "\n";
    if (l.includes("Stop with")) ready.resolve();
  });
  child.status.then(() => ready.reject(new Error(`teleport start exited:\n${banner}${stderr}`)));
  const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 120_000);
  try {
    await ready.promise;
  } finally {
    clearTimeout(timer);
  }
  const startMs = performance.now() - t0;
  const cmd = cmdline(child.pid);
  if (!cmd.includes(main) || !cmd.includes(" start")) {
    throw new Error(`pid ${child.pid} is not the teleport process: ${cmd}`);
  }
  let stopped: Promise<void> | undefined;
  return {
    pid: child.pid,
    startMs,
    logs: () => stderr,
    stop: (signal: Deno.Signal = "SIGTERM") =>
      stopped ??= (async () => {
        try {
          child.kill(signal);
        } catch {
          // gone already
        }
        await child.status;
        await Promise.all([errDone, outDone]);
      })(),
  };
}
