/**
 * `deno task deps`: installs every Debian package the tests and benchmarks use (tools/prereqs.ts)
 * with apt-get. Needs root; otherwise it prints the command to run. `.ci/run` uses it too.
 *
 * @module
 */
import { findCommand, PACKAGES } from "./prereqs.ts";

function fail(message: string): never {
  Deno.stderr.writeSync(new TextEncoder().encode(`${message}\n`));
  Deno.exit(1);
}

const names = PACKAGES.map((p) => p.name);
const install = `apt-get update && apt-get install -y ${names.join(" ")}`;
if (findCommand("apt-get") === undefined) {
  fail(
    `Cannot install the test prerequisites: apt-get is missing (this task knows Debian and ` +
      `Ubuntu); install these packages, or what provides them: ${names.join(" ")}`,
  );
}
if (Deno.uid() !== 0) {
  fail(`Cannot install the test prerequisites: apt-get needs root; run: sudo sh -c '${install}'`);
}
const env = { DEBIAN_FRONTEND: "noninteractive" };
for (const args of [["update", "-qq"], ["install", "-y", "-qq", ...names]]) {
  const out = await new Deno.Command("apt-get", {
    args,
    env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) fail(`Cannot install the test prerequisites: apt-get ${args[0]} failed`);
}
