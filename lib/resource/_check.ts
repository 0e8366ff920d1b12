/** Small structural checks used by the codecs. Each failure names the field path. */
import { BadParameterError } from "../errors/mod.ts";

export type Obj = Record<string, unknown>;

export function fail(path: string, what: string): never {
  throw new BadParameterError(`${path}: ${what}`);
}

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function obj(v: unknown, path: string): Obj {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) fail(path, "must be a mapping");
  return v;
}

export function onlyKeys(o: Obj, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      fail(path === "" ? k : `${path}.${k}`, `unknown field (allowed: ${allowed.join(", ")})`);
    }
  }
}

export function str(v: unknown, path: string): string {
  if (typeof v !== "string") fail(path, "must be a string");
  return v;
}

export function optStr(v: unknown, path: string): string | undefined {
  return v === undefined || v === null ? undefined : str(v, path);
}

export function strList(v: unknown, path: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return [v];
  if (!Array.isArray(v)) fail(path, "must be a list of strings");
  return v.map((x, i) => str(x, `${path}[${i}]`));
}

export function strMap(v: unknown, path: string): Record<string, string> {
  const o = obj(v, path);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(o)) out[k] = str(x, `${path}.${k}`);
  return out;
}

export function bool(v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") fail(path, "must be true or false");
  return v;
}

export function time(v: unknown, path: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  const d = v instanceof Date ? v : new Date(str(v, path));
  if (Number.isNaN(d.getTime())) fail(path, `"${String(v)}" is not an RFC 3339 time`);
  return d.toISOString();
}
