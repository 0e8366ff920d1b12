/** `tsh sessions ls [--format=text|json|yaml]`: the running interactive sessions you may see. */
import type { SessionTracker } from "../../lib/resource/mod.ts";
import {
  CliError,
  type FlagSpec,
  formatTable,
  outputFormat,
  type Parsed,
  printResources,
} from "../_common.ts";
import { formatTime, openContext, type TshEnv } from "./_env.ts";

/** Flags of `tsh sessions`. */
export const SESSIONS_FLAGS: FlagSpec = { format: { type: "string" } };

/** Usage of `tsh sessions`. */
export const SESSIONS_HELP = `Usage: tsh sessions ls [--format=text|json|yaml]

Lists the interactive sessions running now that you may see: your own, those
your roles let you join (allow.join_sessions), or all of them when your roles
may list sessions (e.g. auditor, editor). Join one with "tsh join ID".`;

/** The text table of `tsh sessions ls`. */
export function formatSessionTable(sessions: SessionTracker[]): string {
  return formatTable(
    ["ID", "User", "Node", "Login", "Created", "Participants"],
    sessions.map((s) => [
      s.metadata.name,
      s.spec.user,
      s.spec.hostname,
      s.spec.login,
      formatTime(new Date(s.spec.created)),
      s.spec.participants.filter((p) => p.mode !== "owner").map((p) => `${p.user} (${p.mode})`)
        .join(", ") || "-",
    ]),
  );
}

/** Runs `tsh sessions`. */
export async function sessionsCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  if (args[0] !== "ls" || args.length > 1) {
    throw new CliError('tsh sessions: use "tsh sessions ls" (see "tsh sessions --help")', 2);
  }
  const fmt = outputFormat(p, ["text", "json", "yaml"], "text");
  const ctx = await openContext(env, p);
  try {
    const sessions = await ctx.api.listSessionTrackers();
    printResources(fmt, sessions, () => formatSessionTable(sessions));
  } finally {
    ctx.api.close();
  }
  return 0;
}
