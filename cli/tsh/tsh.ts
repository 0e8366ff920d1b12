/**
 * The tsh personality: the user tool. Commands live one per file; this file finds the command
 * (global flags may come before or after it), parses its flags and runs it.
 */
import { VERSION } from "../../lib/config/mod.ts";
import {
  CliError,
  firstPositionalIndex,
  flag,
  type FlagSpec,
  type Parsed,
  parseFlags,
  print,
} from "../_common.ts";
import { GLOBAL_FLAGS, type TshEnv, tshEnv } from "./_env.ts";
import { CONFIG_HELP, configCommand } from "./config.ts";
import { JOIN_FLAGS, JOIN_HELP, joinCommand } from "./join.ts";
import { LOGIN_FLAGS, LOGIN_HELP, loginCommand } from "./login.ts";
import { LS_FLAGS, LS_HELP, lsCommand } from "./ls.ts";
import { PLAY_FLAGS, PLAY_HELP, playCommand } from "./play.ts";
import { PROXY_FLAGS, PROXY_HELP, proxyCommand } from "./proxy.ts";
import { SCP_FLAGS, SCP_HELP, scpCommand } from "./scp.ts";
import { SESSIONS_FLAGS, SESSIONS_HELP, sessionsCommand } from "./sessions.ts";
import { SSH_HELP, sshCommand } from "./ssh.ts";
import { LOGOUT_HELP, logoutCommand, STATUS_HELP, statusCommand } from "./status.ts";

type Run = (env: TshEnv, p: Parsed, args: string[]) => Promise<number>;

interface Command {
  flags: FlagSpec;
  run: Run;
  summary: string;
  help: string;
}

const COMMANDS: Record<string, Command> = {
  login: {
    flags: LOGIN_FLAGS,
    run: loginCommand,
    summary: "log in to a cluster and store short-lived certificates",
    help: LOGIN_HELP,
  },
  logout: {
    flags: {},
    run: (env, p) => logoutCommand(env, p),
    summary: "remove the current profile's keys",
    help: LOGOUT_HELP,
  },
  status: {
    flags: {},
    run: (env, p) => statusCommand(env, p),
    summary: "show the current profile",
    help: STATUS_HELP,
  },
  ls: { flags: LS_FLAGS, run: lsCommand, summary: "list the nodes you may access", help: LS_HELP },
  ssh: {
    flags: {},
    run: () => Promise.resolve(0), // parsed by sshCommand itself
    summary: "run a shell or command on a node",
    help: SSH_HELP,
  },
  scp: {
    flags: SCP_FLAGS,
    run: scpCommand,
    summary: "copy files to or from a node",
    help: SCP_HELP,
  },
  sessions: {
    flags: SESSIONS_FLAGS,
    run: sessionsCommand,
    summary: "list running sessions (sessions ls)",
    help: SESSIONS_HELP,
  },
  join: {
    flags: JOIN_FLAGS,
    run: joinCommand,
    summary: "join a running session as observer or peer",
    help: JOIN_HELP,
  },
  proxy: {
    flags: PROXY_FLAGS,
    run: proxyCommand,
    summary: "ssh: stdio bridge for OpenSSH's ProxyCommand",
    help: PROXY_HELP,
  },
  config: {
    flags: {},
    run: configCommand,
    summary: "print an OpenSSH client configuration",
    help: CONFIG_HELP,
  },
  play: {
    flags: PLAY_FLAGS,
    run: playCommand,
    summary: "replay a session recording",
    help: PLAY_HELP,
  },
  version: {
    flags: {},
    run: () => {
      print(`tsh v${VERSION} deno ${Deno.version.deno}`);
      return Promise.resolve(0);
    },
    summary: "print the version",
    help: "Usage: tsh version",
  },
};

const USAGE = `Usage: tsh [global flags] COMMAND [args]

The user tool of the teleport cluster.

Commands:
${Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(8)} ${c.summary}`).join("\n")}

Global flags:
  --proxy=HOST[:PORT]  the proxy (selects the profile; login: its web address,
                       port 3080 when not given)
  --user=NAME          Teleport user (login)
  --insecure           do not verify the proxy's TLS certificate (warns; the
                       certificate seen at login is pinned)
  -d, --debug          show stack traces
  -h, --help           help for tsh or a command

Profiles live in $TELEPORT_HOME (default ~/.tsh). "tsh COMMAND --help" for more.`;

/** Runs tsh with `args` (after the personality was picked). */
export async function tshMain(args: string[]): Promise<number> {
  const idx = firstPositionalIndex(args, GLOBAL_FLAGS);
  if (idx < 0) {
    parseFlags(args, GLOBAL_FLAGS, "tsh");
    print(USAGE);
    return args.includes("--help") || args.includes("-h") ? 0 : 2;
  }
  const name = args[idx]!;
  const before = args.slice(0, idx);
  const rest = args.slice(idx + 1);
  if (name === "help") {
    const topic = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    print(topic?.help ?? USAGE);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (cmd === undefined) {
    throw new CliError(
      `tsh: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(", ")})`,
      2,
    );
  }
  if (name === "ssh") return await sshCommand(tshEnv(), [...before, ...rest]);
  const p = parseFlags([...before, ...rest], { ...GLOBAL_FLAGS, ...cmd.flags }, `tsh ${name}`);
  if (flag(p, "help")) {
    print(cmd.help);
    return 0;
  }
  return await cmd.run(
    name === "version" ? undefined as unknown as TshEnv : tshEnv(),
    p,
    p.positionals,
  );
}
