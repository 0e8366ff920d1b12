/**
 * The `teleport` program: daemon, `tctl` and `tsh` in one binary.
 * Development entry point: `deno run -A main.ts ARGS` from the repo root.
 *
 * @module
 */
import process from "node:process";
import { runCli } from "./cli/main.ts";

if (import.meta.main) {
  // Run by deno, argv0 is "deno": the program's own file name (a symlink such as tsh.js to the
  // bundle keeps its name here) picks the personality instead.
  const name = Deno.build.standalone ? process.argv0 ?? "teleport" : Deno.mainModule;
  const code = await runCli(Deno.args, name);
  Deno.exit(code);
}
