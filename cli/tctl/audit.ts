/**
 * `tctl audit ls`: search the cluster's audit log by time, event type and
 * session (`--since=1h` or `--from`/`--to`, `--type=session.start,exec`,
 * `--sid=ID`, `--limit=N`, `--format=text|json`).
 */
import type { AuditEvent } from "../../lib/events/mod.ts";
import { BadParameterError } from "../../lib/errors/mod.ts";
import { parseDuration } from "../../lib/resource/mod.ts";
import {
  CliError,
  type FlagSpec,
  formatTable,
  outputFormat,
  type Parsed,
  print,
  str,
} from "../_common.ts";
import type { Connect } from "./_client.ts";

/** Flags of `tctl audit`. */
export const AUDIT_FLAGS: FlagSpec = {
  since: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
  type: { type: "string" },
  sid: { type: "string" },
  limit: { type: "string" },
  order: { type: "string" },
  format: { type: "string" },
};

function timeFlag(p: Parsed, name: string): Date | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) {
    throw new BadParameterError(
      `--${name}: "${v}" is not a time; use RFC 3339 (2026-11-21T10:00:00Z)`,
    );
  }
  return new Date(t);
}

/** The detail column: what happened beyond who and where. */
function details(e: AuditEvent): string {
  const parts: string[] = [];
  const add = (k: string, v: unknown) => {
    if (v !== undefined && v !== "") {
      parts.push(`${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
    }
  };
  add("command", e.command);
  add("exit", e.exitCode);
  add("addr", e["addr.remote"]);
  add("dest", e.dest);
  add("node", e.node_name);
  add("role", e.role);
  add("token", e.token_name);
  add("size", e.size);
  add("error", e.error ?? e.exitError);
  return parts.join(" ");
}

/** Runs `tctl audit ls`. */
export async function auditCommand(connect: Connect, p: Parsed, args: string[]): Promise<number> {
  if (args[0] !== "ls") {
    throw new CliError(`tctl audit: unknown command "${args[0] ?? ""}" (use ls)`, 2);
  }
  const fmt = outputFormat(p, ["text", "json"], "text");
  const to = timeFlag(p, "to") ?? new Date();
  let from = timeFlag(p, "from");
  if (from === undefined) {
    const since = str(p, "since") ?? "24h";
    from = new Date(to.getTime() - parseDuration(since, "--since"));
  }
  const limitText = str(p, "limit");
  const limit = limitText === undefined ? 500 : Number(limitText);
  if (!Number.isInteger(limit) || limit <= 0) {
    throw new BadParameterError(`--limit must be a positive integer, not "${limitText}"`);
  }
  const order = str(p, "order") ?? "asc";
  if (order !== "asc" && order !== "desc") {
    throw new BadParameterError(`--order must be asc or desc, not "${order}"`);
  }
  const types = (str(p, "type") ?? "").split(",").map((t) => t.trim()).filter((t) => t !== "");
  const sid = str(p, "sid");
  const { client } = await connect();
  const events: AuditEvent[] = [];
  let startKey: string | undefined;
  do {
    const page = await client.searchEvents({
      from,
      to,
      types,
      order,
      limit: Math.min(limit - events.length, 1000),
      ...(sid === undefined ? {} : { sid }),
      ...(startKey === undefined ? {} : { startKey }),
    });
    events.push(...page.events);
    startKey = page.lastKey;
  } while (startKey !== undefined && events.length < limit);
  if (fmt === "json") {
    print(JSON.stringify(events, null, 2));
    return 0;
  }
  print(formatTable(
    ["Time", "Event", "Code", "User", "Login", "Server", "Session", "Details"],
    events.map((e) => [
      e.time,
      e.event,
      e.code,
      e.user ?? "",
      e.login ?? "",
      e.server_hostname ?? e.server_id ?? "",
      e.sid ?? "",
      details(e),
    ]),
  ));
  return 0;
}
