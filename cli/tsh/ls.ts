/** `tsh ls [label=value…] [--format=text|json|yaml]`: the nodes the user may see. */
import type { ServerResource } from "../../lib/resource/mod.ts";
import {
  CliError,
  type FlagSpec,
  formatTable,
  outputFormat,
  type Parsed,
  printResources,
} from "../_common.ts";
import { openContext, type TshEnv } from "./_env.ts";

/** Flags of `tsh ls`. */
export const LS_FLAGS: FlagSpec = { format: { type: "string" } };

/** Usage of `tsh ls`. */
export const LS_HELP = `Usage: tsh ls [label=value ...] [--format=text|json|yaml]

Lists the nodes you may access: name, address and labels. Arguments filter by
label (every one must match).`;

/** Parses `k=v` filters. */
export function parseLabelFilters(args: string[]): Array<[string, string]> {
  return args.map((a) => {
    const i = a.indexOf("=");
    if (i <= 0) {
      throw new CliError(`tsh ls: "${a}" is not a label filter; use name=value`, 2);
    }
    return [a.slice(0, i), a.slice(i + 1)] as [string, string];
  });
}

/** The nodes matching every filter, sorted by name. */
export function filterNodes(
  nodes: ServerResource[],
  filters: Array<[string, string]>,
): ServerResource[] {
  return nodes
    .filter((n) => filters.every(([k, v]) => n.metadata.labels?.[k] === v))
    .sort((a, b) =>
      a.spec.hostname.localeCompare(b.spec.hostname) ||
      a.metadata.name.localeCompare(b.metadata.name)
    );
}

/** The text table of `tsh ls`. */
export function formatNodeTable(nodes: ServerResource[]): string {
  return formatTable(
    ["Node Name", "Address", "Labels"],
    nodes.map((n) => [
      n.spec.hostname,
      n.spec.use_tunnel ? "⟵ Tunnel" : n.spec.addr,
      Object.entries(n.metadata.labels ?? {}).sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`).join(","),
    ]),
  );
}

/** Runs `tsh ls`. */
export async function lsCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  const filters = parseLabelFilters(args);
  const fmt = outputFormat(p, ["text", "json", "yaml"], "text");
  const ctx = await openContext(env, p);
  try {
    const nodes = filterNodes(await ctx.api.listNodes(), filters);
    printResources(fmt, nodes, () => formatNodeTable(nodes));
  } finally {
    ctx.api.close();
  }
  return 0;
}
