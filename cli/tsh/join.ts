/**
 * `tsh join [--mode=observer|peer] [-l LOGIN] SESSION_ID`: joins a running interactive session
 * (Teleport's session sharing). The session's tracker in auth names its node; tsh connects to
 * that node through the proxy like `tsh ssh` (direct or tunnel node) and asks to join with the
 * env requests `TELEPORT_SESSION=<sid>` and `TELEPORT_PARTICIPANT_MODE=<mode>` before its shell
 * request (lib/node/shared_session.ts).
 */
import { connectToNode, type NodeConnection } from "../../lib/client/mod.ts";
import { isKind, messageOf } from "../../lib/errors/mod.ts";
import type { SessionParticipantMode, SessionTracker } from "../../lib/resource/mod.ts";
import type { ClientSession } from "../../lib/ssh/mod.ts";
import { CliError, type FlagSpec, type Parsed, printErr, str } from "../_common.ts";
import { openContext, type TshEnv } from "./_env.ts";
import { pumpFromReader, pumpToWriter } from "./_pipe.ts";

/** Flags of `tsh join`. */
export const JOIN_FLAGS: FlagSpec = {
  mode: { type: "string" },
  login: { type: "string", short: "l" },
};

/** Usage of `tsh join`. */
export const JOIN_HELP = `Usage: tsh join [flags] SESSION_ID

Joins a running interactive session ("tsh sessions ls" lists them; inside a
session its id is $TELEPORT_SESSION). Everyone in the session sees "[user X
joined the session as MODE]" and, when X leaves, "[user X left the session]".

You may join your own sessions in either mode; other users' sessions need a role
whose allow.join_sessions admits the mode for the session owner's roles.

  --mode=MODE              observer (default: watch only; Ctrl-C or Ctrl-D
                           leaves) or peer (your keys reach the shell; leave by
                           closing your terminal or ending your input)
  -l, --login=LOGIN        OS login used to reach the node (default: the
                           session's login)`;

const CTRL_C = 0x03;
const CTRL_D = 0x04;

/** Runs `tsh join`. */
export async function joinCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  const sid = args[0];
  if (sid === undefined || args.length > 1) {
    throw new CliError('tsh join: give one session id (see "tsh sessions ls")', 2);
  }
  const mode = str(p, "mode") ?? "observer";
  if (mode !== "peer" && mode !== "observer") {
    throw new CliError(`tsh join: --mode must be observer or peer, not "${mode}"`, 2);
  }
  const ctx = await openContext(env, p);
  let conn: NodeConnection;
  let tracker: SessionTracker;
  try {
    try {
      tracker = await ctx.api.getSessionTracker(sid);
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new CliError(
          `Cannot join session ${sid}: it is not running, or you may not see it ` +
            '(see "tsh sessions ls")',
          1,
        );
      }
      throw err;
    }
    const nodeId = tracker.spec.node_id;
    const node = (await ctx.api.listNodes()).find((n) => n.metadata.name === nodeId);
    if (node === undefined) {
      throw new CliError(
        `Cannot join session ${sid}: its node ${tracker.spec.hostname} (${nodeId}) is not ` +
          'online or not visible to you (see "tsh ls")',
        1,
      );
    }
    conn = await connectToNode(ctx, {
      target: nodeId,
      login: str(p, "login") ?? tracker.spec.login,
      node,
    });
  } catch (err) {
    ctx.api.close();
    if (err instanceof CliError) throw err;
    throw new CliError(messageOf(err), 255);
  }
  try {
    return await joinSession(conn, sid, mode, tracker.spec.hostname);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(messageOf(err), 255);
  } finally {
    await conn.close();
    ctx.api.close();
  }
}

/** Opens the joining session channel and moves bytes until our part in the session ends. */
async function joinSession(
  conn: NodeConnection,
  sid: string,
  mode: SessionParticipantMode,
  hostname: string,
): Promise<number> {
  const session: ClientSession = await conn.client.openSession();
  const asked = await session.setEnv("TELEPORT_SESSION", sid) &&
    await session.setEnv("TELEPORT_PARTICIPANT_MODE", mode);
  if (!asked) {
    session.close();
    throw new CliError(`Cannot join session ${sid}: node ${hostname} does not offer joining`, 1);
  }
  const tty = Deno.stdin.isTerminal();
  if (tty) {
    const { columns, rows } = Deno.consoleSize();
    await session.requestPty({ cols: columns, rows, term: Deno.env.get("TERM") ?? "xterm" });
  }
  // A refused join is accepted by the node, explained on stderr and ended with status 1.
  if (!await session.shell()) {
    session.close();
    throw new CliError(`Cannot join session ${sid}: node ${hostname} refused the request`, 1);
  }
  const ch = session.channel;
  let ended = false;
  if (tty) Deno.stdin.setRaw(true);
  try {
    const out = pumpToWriter(ch, Deno.stdout);
    const err = pumpToWriter(ch.stderr, Deno.stderr);
    // An observer's keys never reach the shell; in a raw terminal Ctrl-C or Ctrl-D leaves.
    const input = mode === "observer" && tty
      ? waitForLeaveKey(() => ended).then(() => {
        if (!ch.destroyed && !ch.writableEnded) ch.end();
      })
      : pumpFromReader(Deno.stdin, ch, () => ended);
    void input;
    const status = await ch.exitStatus;
    ended = true;
    await Promise.all([out, err]);
    if (status.kind === "code") return status.code;
    if (status.kind === "signal") return 255;
    if (!tty) printErr(`ERROR: the session on ${hostname} ended without an exit status`);
    return 255;
  } finally {
    ended = true;
    if (tty) Deno.stdin.setRaw(false);
  }
}

/** Reads the raw terminal until Ctrl-C, Ctrl-D or the end of input. */
async function waitForLeaveKey(stopped: () => boolean): Promise<void> {
  const buf = new Uint8Array(256);
  while (!stopped()) {
    const n = await Deno.stdin.read(buf);
    if (n === null) return;
    if (buf.subarray(0, n).some((b) => b === CTRL_C || b === CTRL_D)) return;
  }
}
