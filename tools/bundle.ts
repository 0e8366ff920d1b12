/**
 * `deno task bundle [OUT]`: one JavaScript file, `dist/teleport.js` (or OUT), run with
 * `deno run -A`.
 *
 * Two things `deno bundle` cannot do alone for our npm dependencies:
 * - ssh2 and cpu-features `require()` optional native addons (`*.node`) inside try/catch and
 *   fall back to JavaScript; they are marked external so the bundler does not fail on them.
 * - ssh2's emscripten poly1305 reads the CommonJS `__dirname` when it loads; an ES module has
 *   none, so a one-line prelude defines it (the value is only used to locate files it never
 *   needs, the wasm is inlined).
 *
 * @module
 */

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
/** Output file, repo relative. */
export const OUTPUT = "dist/teleport.js";
/** Defines `__dirname` for CommonJS code inside the bundle. */
export const PRELUDE = "globalThis.__dirname ??= import.meta.dirname;\n";

if (import.meta.main) {
  const output = Deno.args[0] ?? OUTPUT;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "deno", "--external", "*.node", "-o", output, "main.ts"],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) Deno.exit(out.code || 1);
  const path = output.startsWith("/") ? output : `${ROOT}/${output}`;
  await Deno.writeTextFile(path, PRELUDE + await Deno.readTextFile(path));
}
