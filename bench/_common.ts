/** What every benchmark here shares: set-up, output, timing of one command, percentiles. */
import { ensureOsUser, run } from "../tests/e2e/_helpers.ts";

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
