/**
 * `deno task compile`: builds the single binary `dist/teleport` with `deno compile`.
 *
 * `deno compile` appends the program to `denort`, Deno's runtime binary, which it downloads
 * from Deno's release server unless `DENORT_BIN` names a local copy or the zip is cached in
 * `$DENO_DIR/dl/release/v<version>/`. This script finds the runtime first, so a machine that
 * cannot reach the server gets one clear message (and the `deno task bundle` alternative)
 * instead of a download error.
 *
 * ```sh
 * deno task compile                          # uses the cached or downloadable runtime
 * DENORT_BIN=/opt/denort deno task compile   # uses a local denort for this Deno version
 * ```
 *
 * @module
 */

/** Repository root: the parent of the folder holding this file. */
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");

/** Output binary, repo relative. */
export const OUTPUT = "dist/teleport";
/** Entry point, repo relative. */
export const ENTRY = "main.ts";
/**
 * Files or folders read at run time via `import.meta.dirname`, embedded with `--include`
 * when they exist. Add new assets here.
 */
export const ASSETS: readonly string[] = ["lib/web/static"];

/** Where `deno compile` gets the runtime from. */
export type DenortSource =
  | { kind: "bin"; path: string }
  | { kind: "cached"; path: string }
  | { kind: "download"; url: string; cachePath: string };

/** Inputs of {@linkcode findDenort}, injected for tests. */
export interface FindDenortOptions {
  /** Value of `DENORT_BIN`, if set. */
  denortBin: string | undefined;
  /** Deno's cache directory (`deno info --json` → `denoDir`). */
  denoDir: string;
  /** Deno version, e.g. `2.9.6`. */
  version: string;
  /** Target triple, e.g. `x86_64-unknown-linux-gnu`. */
  target: string;
  /** Path of the running `deno` CLI. */
  execPath: string;
  /** `stat` of a path, `undefined` if it does not exist. */
  stat(path: string): { isFile: boolean; mode: number | null } | undefined;
  /** Canonical path, for comparing `DENORT_BIN` with the `deno` CLI. */
  realPath(path: string): string;
  /** Whether Deno's release server answers. */
  reachable(url: string): Promise<boolean>;
}

/** A failure the user can fix; printed as one message without a stack trace. */
export class CompileError extends Error {
  /** Exit code to use. */
  readonly code: number;

  constructor(message: string, code = 1) {
    super(message);
    this.name = "CompileError";
    this.code = code;
  }
}

/** The URL `deno compile` downloads the runtime from. */
export function denortUrl(version: string, target: string): string {
  return `https://dl.deno.land/release/v${version}/denort-${target}.zip`;
}

/** The message for a machine with no way to get the runtime. */
export function noDenortMessage(version: string, target: string, cachePath: string): string {
  return [
    `Cannot compile ${OUTPUT}: deno compile needs the denort runtime for Deno ${version} ` +
    `(${target}), which is downloaded from Deno's release server ` +
    `(${denortUrl(version, target)}); this machine cannot reach it, and no copy is cached at ` +
    `${cachePath}.`,
    `Set DENORT_BIN to a denort binary for Deno ${version}, or use \`deno task bundle\` ` +
    `(writes dist/teleport.js; run it with \`deno run -A dist/teleport.js\`).`,
  ].join("\n");
}

/** Decides where the runtime comes from, or throws {@linkcode CompileError}. */
export async function findDenort(options: FindDenortOptions): Promise<DenortSource> {
  const { denortBin, version, target } = options;
  if (denortBin !== undefined && denortBin !== "") {
    const info = options.stat(denortBin);
    if (info === undefined) {
      throw new CompileError(`Cannot compile ${OUTPUT}: DENORT_BIN=${denortBin} does not exist`);
    }
    if (!info.isFile || info.mode === null || (info.mode & 0o111) === 0) {
      throw new CompileError(
        `Cannot compile ${OUTPUT}: DENORT_BIN=${denortBin} is not an executable file`,
      );
    }
    if (options.realPath(denortBin) === options.realPath(options.execPath)) {
      throw new CompileError(
        `Cannot compile ${OUTPUT}: DENORT_BIN=${denortBin} is the deno CLI itself, not denort; ` +
          `the result would start a Deno REPL instead of teleport. Point DENORT_BIN at the ` +
          `denort binary from denort-${target}.zip of Deno ${version}.`,
      );
    }
    return { kind: "bin", path: denortBin };
  }
  const cachePath = `${options.denoDir}/dl/release/v${version}/denort-${target}.zip`;
  if (options.stat(cachePath)?.isFile) return { kind: "cached", path: cachePath };
  const url = denortUrl(version, target);
  if (await options.reachable(url)) return { kind: "download", url, cachePath };
  throw new CompileError(noDenortMessage(version, target, cachePath));
}

/** The `deno compile` arguments for the given existing assets. */
export function compileArgs(assets: readonly string[]): string[] {
  return [
    "compile",
    "-A",
    "--unstable-kv",
    "--output",
    OUTPUT,
    ...assets.flatMap((asset) => ["--include", asset]),
    ENTRY,
  ];
}

function statOrUndefined(path: string): { isFile: boolean; mode: number | null } | undefined {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Deno's cache directory as `deno info` reports it, with the documented defaults as fallback. */
async function denoDir(): Promise<string> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (out.success) {
      const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: unknown };
      if (typeof info.denoDir === "string") return info.denoDir;
    }
  } catch {
    // Fall through to the defaults.
  }
  const explicit = Deno.env.get("DENO_DIR");
  if (explicit) return explicit;
  const cache = Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME") ?? "."}/.cache`;
  return `${cache}/deno`;
}

async function reachable(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(5000) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

const encoder = new TextEncoder();

function printErr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text.endsWith("\n") ? text : `${text}\n`));
}

/** Runs the build; returns the exit code. */
export async function main(): Promise<number> {
  const version = Deno.version.deno;
  const target = Deno.build.target;
  const denortBin = Deno.env.get("DENORT_BIN");
  const source = await findDenort({
    denortBin,
    denoDir: await denoDir(),
    version,
    target,
    execPath: Deno.execPath(),
    stat: statOrUndefined,
    realPath: (path) => Deno.realPathSync(path),
    reachable,
  });
  if (statOrUndefined(`${ROOT}/${ENTRY}`) === undefined) {
    throw new CompileError(`Cannot compile ${OUTPUT}: ${ROOT}/${ENTRY} does not exist`);
  }
  const assets = ASSETS.filter((asset) => statOrUndefined(`${ROOT}/${asset}`) !== undefined);
  const env: Record<string, string> = {};
  if (source.kind === "bin") env.DENORT_BIN = source.path;
  const out = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(assets),
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    printErr(stderr);
    return out.code || 1;
  }
  if (stderr.trim() !== "") printErr(stderr);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    if (!(error instanceof CompileError)) throw error;
    printErr(error.message);
    Deno.exit(error.code);
  }
}
