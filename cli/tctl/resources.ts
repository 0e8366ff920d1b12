/** `tctl get KIND[/NAME]`, `tctl create -f FILE [--force]`, `tctl rm KIND/NAME`. */
import { parseResources, resolveKind, type Resource } from "../../lib/resource/mod.ts";
import {
  CliError,
  flag,
  type FlagSpec,
  formatTable,
  outputFormat,
  type Parsed,
  print,
  printResources,
  str,
} from "../_common.ts";
import type { Connect } from "./_client.ts";

/** Flags of get/create/rm. */
export const RESOURCE_FLAGS: FlagSpec = {
  format: { type: "string" },
  filename: { type: "string", short: "f" },
  force: { type: "boolean" },
};

function splitRef(ref: string | undefined, command: string): [string, string | undefined] {
  if (ref === undefined || ref === "") {
    throw new CliError(`tctl ${command}: give a resource, e.g. "roles" or "role/access"`, 2);
  }
  const i = ref.indexOf("/");
  return i < 0 ? [ref, undefined] : [ref.slice(0, i), ref.slice(i + 1)];
}

function describe(r: Resource): string[] {
  switch (r.kind) {
    case "user":
      return [r.kind, r.metadata.name, `roles: ${r.spec.roles.join(",")}`];
    case "role":
      return [r.kind, r.metadata.name, `logins: ${(r.spec.allow.logins ?? []).join(",")}`];
    case "token":
      return [r.kind, r.metadata.name, `roles: ${r.spec.roles.join(",")}`];
    case "cert_authority":
      return [r.kind, r.metadata.name, `cluster: ${r.spec.cluster_name}`];
    case "node":
      return [r.kind, r.metadata.name, `${r.spec.hostname} ${r.spec.addr}`];
    case "proxy":
      return [r.kind, r.metadata.name, `${r.spec.hostname} ${r.spec.public_addr ?? r.spec.addr}`];
    case "session_tracker":
      return [r.kind, r.metadata.name, `${r.spec.user}@${r.spec.hostname} as ${r.spec.login}`];
  }
}

/** Runs `tctl get`. */
export async function getCommand(connect: Connect, p: Parsed, args: string[]): Promise<number> {
  if (args.length !== 1) throw new CliError(`tctl get: give exactly one resource, e.g. "roles"`, 2);
  const [kindName, name] = splitRef(args[0], "get");
  const kind = resolveKind(kindName);
  const fmt = outputFormat(p, ["yaml", "json", "text"], "yaml");
  const ctx = await connect();
  const items = name === undefined
    ? await ctx.client.listResources(kind)
    : [await ctx.client.getResource(kind, name)];
  printResources(fmt, items, () => formatTable(["Kind", "Name", "Summary"], items.map(describe)));
  return 0;
}

/** Runs `tctl create -f FILE`. */
export async function createCommand(connect: Connect, p: Parsed, args: string[]): Promise<number> {
  const file = str(p, "filename") ?? args[0];
  if (file === undefined) throw new CliError("tctl create: give the file with -f FILE", 2);
  let text: string;
  try {
    text = file === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new CliError(`tctl create: file ${file} does not exist`);
    }
    throw err;
  }
  const resources = parseResources(text, file);
  const ctx = await connect();
  for (const r of resources) {
    await ctx.client.putResource(r, flag(p, "force"));
    print(
      `${r.kind} "${r.metadata.name}" has been ${
        flag(p, "force") ? "created or replaced" : "created"
      }`,
    );
  }
  return 0;
}

/** Runs `tctl rm KIND/NAME`. */
export async function rmCommand(connect: Connect, _p: Parsed, args: string[]): Promise<number> {
  if (args.length !== 1) {
    throw new CliError(`tctl rm: give exactly one resource, e.g. "role/dev"`, 2);
  }
  const [kindName, name] = splitRef(args[0], "rm");
  if (name === undefined || name === "") {
    throw new CliError(`tctl rm: give the resource as KIND/NAME, e.g. "role/dev"`, 2);
  }
  const kind = resolveKind(kindName);
  await (await connect()).client.deleteResource(kind, name);
  print(`${kind} "${kind === "token" ? name.slice(0, 4) + "…" : name}" has been deleted`);
  return 0;
}
