/** Test helpers for lib/ca: temporary directories and running real OpenSSH/OpenSSL tools. */

/** A temporary directory removed on `await using` disposal. */
export interface TempDir extends AsyncDisposable {
  path: string;
  /** Joins `name` onto the directory. */
  file(name: string): string;
}

/** Creates a temporary directory that is removed when disposed. */
export async function tempDir(): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: "teleport_ca_test_" });
  return {
    path,
    file: (name) => `${path}/${name}`,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** The outcome of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args...` to completion with TZ=UTC; never throws on a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: Uint8Array; cwd?: string } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: { TZ: "UTC", LC_ALL: "C" },
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin) {
    const w = child.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Like {@link run} but throws with stderr when the exit code is not 0. */
export async function runOk(
  cmd: string,
  args: string[],
  opts: { stdin?: Uint8Array; cwd?: string } = {},
): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

/** Writes a file readable only by its owner (ssh-keygen refuses group/world-readable keys). */
export async function writePrivate(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: 0o600 });
}
