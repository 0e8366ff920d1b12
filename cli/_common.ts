/**
 * Shared CLI plumbing: strict flag parsing with one-line errors, output
 * helpers, tables, and the CliError that the top level prints without a trace.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { BadParameterError, messageOf } from "../lib/errors/mod.ts";
import { formatResourcesYaml, type Resource } from "../lib/resource/mod.ts";

/** An error the top level prints as one line and exits with `code`. */
export class CliError extends Error {
  readonly code: number;
  constructor(message: string, code = 1) {
    super(message);
    this.name = "CliError";
    this.code = code;
  }
}

/** Flag definitions in node:util parseArgs form. */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** Parsed flags and positionals. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Parses `args` strictly against `spec`; errors name the command and the flag. */
export function parseFlags(args: string[], spec: FlagSpec, command: string): Parsed {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: spec,
      strict: true,
      allowPositionals: true,
      allowNegative: false,
    });
    return { values: values as Parsed["values"], positionals };
  } catch (err) {
    const msg = messageOf(err)
      .replace(/^Unknown option '([^']+)'.*$/s, "unknown flag $1")
      .replace(/\. To specify a positional argument.*$/s, "");
    throw new CliError(`${command}: ${msg} (see "${command} --help")`, 2);
  }
}

/** A string flag value, or undefined. */
export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  if (Array.isArray(v)) return v[v.length - 1];
  return typeof v === "string" ? v : undefined;
}

/** A repeatable string flag's values. */
export function strs(p: Parsed, name: string): string[] {
  const v = p.values[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

/** A boolean flag. */
export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

const enc = new TextEncoder();

/** Writes text to stdout (adds a newline unless `text` ends with one). */
export function print(text = ""): void {
  const s = text.endsWith("\n") ? text : text + "\n";
  const bytes = enc.encode(s);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** Writes text to stderr. */
export function printErr(text: string): void {
  const bytes = enc.encode(text.endsWith("\n") ? text : text + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/** Formats rows as an aligned table with a dashed rule under the header. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i]!)).join(" ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Output formats for list commands. */
export type OutputFormat = "text" | "json" | "yaml";

/** Validates `--format`. */
export function outputFormat(
  p: Parsed,
  allowed: OutputFormat[],
  fallback: OutputFormat,
): OutputFormat {
  const v = str(p, "format") ?? fallback;
  if (!allowed.includes(v as OutputFormat)) {
    throw new BadParameterError(`--format must be one of ${allowed.join(", ")}, not "${v}"`);
  }
  return v as OutputFormat;
}

/** Prints resources as JSON, YAML documents, or the table `table()` builds. */
export function printResources(format: OutputFormat, items: Resource[], table: () => string): void {
  if (format === "json") print(JSON.stringify(items, null, 2));
  else if (format === "yaml") print(items.length === 0 ? "" : formatResourcesYaml(items));
  else print(table());
}

/** What {@link selfCommand} looks at (the running process unless a test says otherwise). */
export interface SelfCommandFacts {
  /** `Deno.mainModule`. */
  mainModule: string;
  /** `Deno.execPath()`. */
  execPath: string;
  /** `Deno.version.deno`. */
  denoVersion: string;
  /** `Deno.cwd()`. */
  cwd: string;
  /** `$PATH`. */
  path: string;
}

function currentFacts(): SelfCommandFacts {
  return {
    mainModule: Deno.mainModule,
    execPath: Deno.execPath(),
    denoVersion: Deno.version.deno,
    cwd: Deno.cwd(),
    path: Deno.env.get("PATH") ?? "",
  };
}

/** `text` as one shell word (single-quoted unless it is plainly safe). */
export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

function realPath(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * How to run this program again, in a form that works when pasted into a shell on this host:
 * - a compiled binary: `teleport`;
 * - `deno run` of main.ts (or the bundle): the same Deno as the user reaches it, then
 *   `run -A` and the main module (relative when it lies in the working directory):
 *   `npx -y deno@<version>` when this Deno came from the npm registry (npx puts it on the PATH
 *   of its own children only, so a user's shell has no `deno`), `deno` when the `deno` on the
 *   PATH is this one, else this Deno's absolute path.
 */
export function selfCommand(facts: SelfCommandFacts = currentFacts()): string {
  const main = facts.mainModule;
  if (!main.startsWith("file:") || !/\.(ts|js)$/.test(main)) return "teleport";
  const mainPath = decodeURIComponent(new URL(main).pathname);
  const cwd = facts.cwd.replace(/\/+$/, "");
  const mainArg = mainPath.startsWith(`${cwd}/`) && !mainPath.slice(cwd.length + 1).includes("/")
    ? mainPath.slice(cwd.length + 1)
    : mainPath;
  let deno: string;
  if (/\/node_modules\/deno\//.test(facts.execPath)) {
    deno = `npx -y deno@${facts.denoVersion}`;
  } else {
    const self = realPath(facts.execPath) ?? facts.execPath;
    const onPath = facts.path.split(":").filter((d) => d !== "").some((dir) =>
      realPath(`${dir}/deno`) === self
    );
    deno = onPath ? "deno" : shellQuote(facts.execPath);
  }
  return `${deno} run -A ${shellQuote(mainArg)}`;
}

/** Help text helper: prints usage and returns. */
export function wantsHelp(args: string[]): boolean {
  return args.includes("--help") || args.includes("-h");
}

/**
 * Index in `args` of the first positional argument under `spec`: flags before it and their
 * values are skipped (`--name value`, `-n value`, `-nvalue`, `--name=value`); after `--` the
 * next argument is positional. -1 when there is none. Lets a command treat everything after
 * its operand as data (`tsh ssh node ls -la`).
 */
export function firstPositionalIndex(args: string[], spec: FlagSpec): number {
  const takesValue = (name: string | undefined) =>
    name !== undefined && Object.hasOwn(spec, name) && spec[name]!.type === "string";
  const longOf: Record<string, string> = {};
  for (const [name, o] of Object.entries(spec)) if (o.short !== undefined) longOf[o.short] = name;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return i + 1 < args.length ? i + 1 : -1;
    if (a.startsWith("--")) {
      if (!a.includes("=") && takesValue(a.slice(2))) i++;
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        if (takesValue(longOf[a[j]!])) {
          if (j === a.length - 1) i++;
          break;
        }
      }
      continue;
    }
    return i;
  }
  return -1;
}
