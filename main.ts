/**
 * The `teleport` program: daemon, `tctl` and `tsh` in one binary.
 * Development entry point: `deno run -A main.ts ARGS` from the repo root.
 *
 * @module
 */
import process from "node:process";
import { runCli } from "./cli/main.ts";

if (import.meta.main) {
  const code = await runCli(Deno.args, process.argv0 ?? "teleport");
  Deno.exit(code);
}
