/**
 * `tsh ssh [-l login] [-t|-T] [-A] [-L spec]... [-R spec]... [user@]node [command...]`: a shell or command on a
 * node through the proxy, end to end SSH with the user certificate. Everything after the node
 * is the command, even words that start with "-". Exit code: the remote command's, or 255 when
 * the connection fails or the command dies of a signal (as OpenSSH does).
 */
import {
  connectToNode,
  type LocalForward,
  type LocalForwardSpec,
  parseLocalForwardSpec,
  parseRemoteForwardSpec,
  type RemoteForward,
  type RemoteForwardSpec,
  startLocalForward,
  startRemoteForward,
} from "../../lib/client/mod.ts";
import { messageOf } from "../../lib/errors/mod.ts";
import type { ServerResource } from "../../lib/resource/mod.ts";
import type { ClientChannel, SshClient } from "../../lib/ssh/mod.ts";
import {
  CliError,
  firstPositionalIndex,
  flag,
  type FlagSpec,
  type Parsed,
  parseFlags,
  print,
  printErr,
  str,
  strs,
} from "../_common.ts";
import { GLOBAL_FLAGS, openContext, osUser, type TshEnv } from "./_env.ts";
import { isLabelTarget, nodesMatching, runOnNodes } from "./_labels.ts";
import { pumpFromReader, pumpToWriter } from "./_pipe.ts";

/** Flags of `tsh ssh`. */
export const SSH_FLAGS: FlagSpec = {
  login: { type: "string", short: "l" },
  tty: { type: "boolean", short: "t" },
  "no-tty": { type: "boolean", short: "T" },
  forward: { type: "string", short: "L", multiple: true },
  "remote-forward": { type: "string", short: "R", multiple: true },
  "forward-agent": { type: "boolean", short: "A" },
};

/** Usage of `tsh ssh`. */
export const SSH_HELP = `Usage: tsh ssh [flags] [LOGIN@]NODE [COMMAND...]

Runs a shell (no command) or COMMAND on NODE (a node name, host UUID or address;
see "tsh ls") through the proxy. Everything after NODE is the command.

NODE may be labels instead, KEY=VALUE[,KEY=VALUE...]: COMMAND then runs on every
node you may access whose labels all match, in parallel, each output line
prefixed with "[node-name] " (tsh ssh root@env=prod uptime). A shell needs
exactly one matching node. The exit code is 0 when the command succeeded
everywhere, else that of the first node (by name) where it failed.

  -l, --login=LOGIN        OS login on the node (default: LOGIN@, else the local
                           user name)
  -t, --tty                allocate a terminal even for a command
  -T, --no-tty             never allocate a terminal
  -L, --forward=SPEC       forward [bind_address:]port:host:hostport through the
                           node while the session lasts (repeatable)
  -R, --remote-forward=SPEC
                           listen on port on the node (its loopback; 0 picks one)
                           and forward each connection to host:hostport from here,
                           while the session lasts (repeatable)
  -A, --forward-agent      let the node use the keys of the local SSH agent
                           (SSH_AUTH_SOCK); the roles must allow forward_agent

Exit code: the remote command's; 255 when the connection fails or the command
dies of a signal.`;

/** A parsed `tsh ssh` command line. */
export interface SshInvocation {
  parsed: Parsed;
  login: string;
  target: string;
  /** The command, or undefined for a shell. */
  command?: string;
  tty: "auto" | "force" | "never";
  forwards: LocalForwardSpec[];
  /** -R forwards. */
  remoteForwards?: RemoteForwardSpec[];
  /** -A: forward the local agent. */
  forwardAgent?: boolean;
  help: boolean;
}

/** Parses the arguments of `tsh ssh` (global flags included). */
export function parseSshArgs(args: string[], defaultLogin: () => string): SshInvocation {
  const spec = { ...GLOBAL_FLAGS, ...SSH_FLAGS };
  const idx = firstPositionalIndex(args, spec);
  let flagArgs = idx < 0 ? args : args.slice(0, idx);
  if (flagArgs.at(-1) === "--") flagArgs = flagArgs.slice(0, -1);
  const parsed = parseFlags(flagArgs, spec, "tsh ssh");
  const help = flag(parsed, "help");
  if (idx < 0) {
    if (help) {
      return { parsed, login: "", target: "", tty: "auto", forwards: [], help };
    }
    throw new CliError('tsh ssh: give a node to connect to (see "tsh ssh --help")', 2);
  }
  const dest = args[idx]!;
  const at = dest.lastIndexOf("@");
  const target = at < 0 ? dest : dest.slice(at + 1);
  if (target === "") throw new CliError(`tsh ssh: "${dest}" names no node`, 2);
  const login = str(parsed, "login") ?? (at > 0 ? dest.slice(0, at) : undefined) ?? defaultLogin();
  const words = args.slice(idx + 1);
  if (flag(parsed, "tty") && flag(parsed, "no-tty")) {
    throw new CliError("tsh ssh: -t and -T cannot be used together", 2);
  }
  let forwards: LocalForwardSpec[];
  let remoteForwards: RemoteForwardSpec[];
  try {
    forwards = strs(parsed, "forward").map(parseLocalForwardSpec);
    remoteForwards = strs(parsed, "remote-forward").map(parseRemoteForwardSpec);
  } catch (err) {
    throw new CliError(`tsh ssh: ${messageOf(err)}`, 2);
  }
  return {
    parsed,
    login,
    target,
    ...(words.length === 0 ? {} : { command: words.join(" ") }),
    tty: flag(parsed, "tty") ? "force" : flag(parsed, "no-tty") ? "never" : "auto",
    forwards,
    remoteForwards,
    forwardAgent: flag(parsed, "forward-agent"),
    help,
  };
}

/** Runs `tsh ssh`. */
export async function sshCommand(env: TshEnv, args: string[]): Promise<number> {
  const inv = parseSshArgs(args, osUser);
  if (inv.help) {
    print(SSH_HELP);
    return 0;
  }
  let conn;
  let ctx;
  const agentSocket = inv.forwardAgent ? Deno.env.get("SSH_AUTH_SOCK") : undefined;
  if (inv.forwardAgent && !agentSocket) {
    printErr("WARNING: -A: SSH_AUTH_SOCK is not set, so there is no local agent to forward");
  }
  try {
    ctx = await openContext(env, inv.parsed);
    let node: ServerResource | undefined;
    if (isLabelTarget(inv.target)) {
      const nodes = await nodesMatching(ctx, inv.target);
      if (nodes.length > 1) {
        if (
          inv.command === undefined || inv.tty === "force" || inv.forwards.length > 0 ||
          (inv.remoteForwards?.length ?? 0) > 0 || inv.forwardAgent === true
        ) {
          throw new CliError(
            `tsh ssh: ${nodes.length} nodes match ${inv.target}: give a command to run on all ` +
              "of them (a shell, -t, -L, -R and -A need exactly one node)",
            2,
          );
        }
        const c = ctx;
        ctx = undefined;
        try {
          return await runOnNodes(c, nodes, inv.login, inv.command);
        } finally {
          c.api.close();
        }
      }
      node = nodes[0];
    }
    conn = await connectToNode(ctx, {
      target: inv.target,
      login: inv.login,
      ...(node === undefined ? {} : { node }),
      ...(agentSocket ? { agentSocket } : {}),
    });
  } catch (err) {
    if (err instanceof CliError) {
      ctx?.api.close();
      throw err;
    }
    ctx?.api.close();
    throw new CliError(messageOf(err), 255);
  }
  const forwards: Array<LocalForward | RemoteForward> = [];
  try {
    for (const spec of inv.forwards) {
      forwards.push(await startLocalForward(conn.client, spec));
    }
    for (const spec of inv.remoteForwards ?? []) {
      const f = await startRemoteForward(conn.client, spec);
      forwards.push(f);
      // As OpenSSH does for a port the server picked.
      if (spec.bindPort === 0) {
        printErr(
          `Allocated port ${f.port} for remote forward to ${spec.destHost}:${spec.destPort}`,
        );
      }
    }
    return await runSession(conn.client, { ...inv, forwardAgent: Boolean(agentSocket) });
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(messageOf(err), 255);
  } finally {
    for (const f of forwards) await f.close().catch(() => {});
    await conn.close();
    ctx.api.close();
  }
}

function terminalSize(): { cols: number; rows: number } {
  try {
    const { columns, rows } = Deno.consoleSize();
    return { cols: columns, rows };
  } catch {
    return { cols: 80, rows: 24 };
  }
}

/** Runs the shell or command on `client` and returns the exit code; restores the terminal. */
export async function runSession(client: SshClient, inv: SshInvocation): Promise<number> {
  const stdinTty = Deno.stdin.isTerminal();
  const pty = inv.tty === "force" || (inv.tty === "auto" && inv.command === undefined && stdinTty);
  const session = await client.openSession();
  if (inv.forwardAgent && !(await session.requestAgentForwarding())) {
    printErr("WARNING: the node refused agent forwarding (the roles must allow forward_agent)");
  }
  if (pty) {
    const ok = await session.requestPty({
      ...terminalSize(),
      term: Deno.env.get("TERM") ?? "xterm",
    });
    if (!ok) printErr("WARNING: the node refused a terminal; continuing without one");
  }
  const started = inv.command === undefined
    ? await session.shell()
    : await session.exec(inv.command);
  if (!started) {
    session.close();
    throw new CliError(
      `Cannot start ${inv.command === undefined ? "a shell" : "the command"} on ${inv.target}: ` +
        "the node refused",
      255,
    );
  }
  const channel: ClientChannel = session.channel;
  const raw = pty && stdinTty;
  let ended = false;
  const onWinch = () => session.windowChange(terminalSize());
  if (raw) Deno.stdin.setRaw(true);
  if (pty && Deno.stdout.isTerminal()) Deno.addSignalListener("SIGWINCH", onWinch);
  try {
    const out = pumpToWriter(channel, Deno.stdout);
    const err = pumpToWriter(channel.stderr, Deno.stderr);
    void pumpFromReader(Deno.stdin, channel, () => ended);
    const status = await channel.exitStatus;
    ended = true;
    await Promise.all([out, err]);
    if (status.kind === "code") return status.code;
    if (status.kind === "signal") {
      if (!raw) printErr(`Remote command on ${inv.target} died of signal ${status.signal}`);
      return 255;
    }
    printErr(`ERROR: the session on ${inv.target} ended without an exit status`);
    return 255;
  } finally {
    ended = true;
    if (pty && Deno.stdout.isTerminal()) Deno.removeSignalListener("SIGWINCH", onWinch);
    if (raw) Deno.stdin.setRaw(false);
  }
}
