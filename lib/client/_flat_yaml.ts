/**
 * A flat YAML mapping of scalars (`key: value` lines), enough for a tsh profile without a YAML
 * dependency (npm:yaml stays in lib/config and lib/resource). Strings are written as YAML
 * double-quoted scalars (JSON string syntax, which YAML 1.2 reads the same), booleans and
 * numbers plain. The reader takes the same subset plus plain and single-quoted scalars,
 * comments and blank lines, so a hand-edited or YAML-tool-written flat file still loads.
 */
import { BadParameterError } from "../errors/mod.ts";

/** A scalar value of the mapping. */
export type FlatValue = string | number | boolean;

/** Formats `fields` as `key: value` lines (undefined values are left out). */
export function formatFlatYaml(fields: Record<string, FlatValue | undefined>): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new BadParameterError(`Cannot write YAML key ${JSON.stringify(key)}: not a plain name`);
    }
    lines.push(`${key}: ${typeof value === "string" ? JSON.stringify(value) : String(value)}`);
  }
  return lines.join("\n") + "\n";
}

/** Parses a flat mapping of scalars; `where` names the file in errors. */
export function parseFlatYaml(text: string, where: string): Record<string, FlatValue | null> {
  const out: Record<string, FlatValue | null> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.trimEnd();
    if (line.trim() === "" || line.trimStart().startsWith("#") || line === "---") continue;
    const bad = (why: string): never => {
      throw new BadParameterError(`Cannot read ${where}: line ${i + 1} ${why}`);
    };
    const m = /^([A-Za-z_][A-Za-z0-9_]*):(?:[ \t]+(.*))?$/.exec(line);
    if (m === null) bad('is not a "key: value" line');
    const key = m![1]!;
    if (Object.hasOwn(out, key)) bad(`repeats the key ${key}`);
    out[key] = parseScalar((m![2] ?? "").trim(), bad);
  }
  return out;
}

function parseScalar(text: string, bad: (why: string) => never): FlatValue | null {
  if (text === "" || text === "~" || text === "null") return null;
  if (text.startsWith('"')) {
    try {
      const v = JSON.parse(text);
      if (typeof v === "string") return v;
    } catch {
      // fall through
    }
    return bad("has a double-quoted string that does not end where the line ends");
  }
  if (text.startsWith("'")) {
    if (text.length < 2 || !text.endsWith("'")) bad("has an unterminated single-quoted string");
    return text.slice(1, -1).replaceAll("''", "'");
  }
  if (text === "true") return true;
  if (text === "false") return false;
  const hash = text.search(/\s#/);
  const plain = (hash < 0 ? text : text.slice(0, hash)).trim();
  if (/^-?\d+(\.\d+)?$/.test(plain)) return Number(plain);
  if (/^[[{&*!|>%@`]/.test(plain)) bad("holds a YAML value that is not a plain scalar");
  return plain;
}
