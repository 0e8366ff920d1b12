/** `tsh ls [label=value…] [--format=text|json|yaml]`: the nodes the user may see. */
import { RealClock } from "../../lib/clock/mod.ts";
import { NODE_OFFLINE_AFTER_MS, SERVER_ANNOUNCE_TTL_MS } from "../../lib/config/mod.ts";
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

Lists the nodes you may access: name, address and labels. A node that missed its
last heartbeats shows "(offline, last seen ... ago)". Arguments filter by label
(every one must match).`;

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

/** "5m", "2h", "3d": how long ago, coarsely. */
function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/**
 * A node's status from its presence record at `now`: its last heartbeat is the record's expiry
 * less the TTL it was written with; three missed heartbeats mean offline (a stopped node's
 * record outlives it until the TTL ends).
 */
export function nodeStatus(
  n: ServerResource,
  now: number,
): { online: true } | { online: false; lastSeenMs: number } {
  const expires = Date.parse(n.metadata.expires ?? "");
  if (Number.isNaN(expires)) return { online: true };
  const lastSeen = expires - SERVER_ANNOUNCE_TTL_MS;
  return now - lastSeen > NODE_OFFLINE_AFTER_MS
    ? { online: false, lastSeenMs: now - lastSeen }
    : { online: true };
}

/** The text table of `tsh ls` at time `now` (ms). */
export function formatNodeTable(nodes: ServerResource[], now: number): string {
  return formatTable(
    ["Node Name", "Address", "Labels"],
    nodes.map((n) => {
      const addr = n.spec.use_tunnel ? "⟵ Tunnel" : n.spec.addr;
      const status = nodeStatus(n, now);
      return [
        n.spec.hostname,
        status.online ? addr : `${addr} (offline, last seen ${formatAge(status.lastSeenMs)} ago)`,
        Object.entries(n.metadata.labels ?? {}).sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `${k}=${v}`).join(","),
      ];
    }),
  );
}

/** Runs `tsh ls`. */
export async function lsCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  const filters = parseLabelFilters(args);
  const fmt = outputFormat(p, ["text", "json", "yaml"], "text");
  const ctx = await openContext(env, p);
  try {
    const nodes = filterNodes(await ctx.api.listNodes(), filters);
    printResources(fmt, nodes, () => formatNodeTable(nodes, new RealClock().now().getTime()));
  } finally {
    ctx.api.close();
  }
  return 0;
}
