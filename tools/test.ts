/**
 * `deno task test`: runs `deno test -A --parallel` with the arguments given, then says which
 * groups of tests were skipped on this machine and why (tools/prereqs.ts), and how to get what
 * they need, so a run without root or without a package never looks complete. Exits with the
 * test run's status.
 *
 * @module
 */
import { GROUPS, missingFor, type TestGroup } from "./prereqs.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");

function write(text: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}

/** Repo-relative paths among `args` (existing files or directories; flags and values are not). */
function selectedPaths(args: string[]): string[] {
  const end = args.indexOf("--");
  const paths: string[] = [];
  for (const arg of end === -1 ? args : args.slice(0, end)) {
    if (arg.startsWith("-")) continue;
    try {
      const abs = Deno.realPathSync(arg);
      if (abs === ROOT) return [];
      if (abs.startsWith(`${ROOT}/`)) paths.push(abs.slice(ROOT.length + 1));
    } catch {
      // a flag's value, not a path
    }
  }
  return paths;
}

/** The groups a run over `paths` includes (all of them when no path was given). */
function groupsIn(paths: string[]): TestGroup[] {
  if (paths.length === 0) return [...GROUPS];
  return GROUPS.filter((g) =>
    g.files.some((f) => paths.some((p) => f === p || f.startsWith(`${p}/`)))
  );
}

/** The report printed after the run. */
export function skipReport(groups: TestGroup[], ci: boolean, deno: string): string {
  if (ci) return "Test groups: none skipped (CI: a missing prerequisite fails instead).\n";
  const skipped = groups.map((g) => ({ g, why: missingFor(g) })).filter((s) => s.why.length > 0);
  if (skipped.length === 0) {
    return "Test groups: none skipped; every prerequisite is here.\n";
  }
  const lines = [
    "",
    `SKIPPED: ${skipped.length} group(s) of tests did not run on this machine:`,
    ...skipped.map(({ g, why }) =>
      `  - ${g.id}: ${g.title} [${g.files.join(", ")}]: ${why.join("; ")}`
    ),
    `Install every prerequisite (Debian/Ubuntu, as root): ${deno} task deps`,
  ];
  if (skipped.some(({ g }) => g.root === true) && Deno.uid() !== 0) {
    lines.push("Groups that need root run only when the tests run as root.");
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--parallel", ...Deno.args],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  const deno = /\/node_modules\/deno\//.test(Deno.execPath())
    ? `npx -y deno@${Deno.version.deno}`
    : "deno";
  write(skipReport(groupsIn(selectedPaths(Deno.args)), Boolean(Deno.env.get("CI")), deno));
  Deno.exit(status.signal !== null ? 1 : status.code);
}
