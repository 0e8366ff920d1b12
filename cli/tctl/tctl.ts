/** The tctl personality: admin commands against the auth API. */
import { CliError, type FlagSpec, type Parsed, parseFlags, print } from "../_common.ts";
import { AUDIT_FLAGS, auditCommand } from "./audit.ts";
import { AUTH_FLAGS, authCommand } from "./auth.ts";
import { type Connect, connect, GLOBAL_FLAGS, type TctlContext } from "./_client.ts";
import { NODES_FLAGS, nodesCommand } from "./nodes.ts";
import { createCommand, getCommand, RESOURCE_FLAGS, rmCommand } from "./resources.ts";
import { statusCommand } from "./status.ts";
import { TOKENS_FLAGS, tokensCommand } from "./tokens.ts";
import { USERS_FLAGS, usersCommand } from "./users.ts";

type Run = (connect: Connect, p: Parsed, args: string[]) => Promise<number>;

const COMMANDS: Record<string, { flags: FlagSpec; run: Run; help: string }> = {
  status: {
    flags: {},
    run: (c) => statusCommand(c),
    help: "cluster status, CA fingerprints, rotation phases and CA pins",
  },
  tokens: {
    flags: TOKENS_FLAGS,
    run: tokensCommand,
    help: "add --type=node[,proxy] [--ttl=30m] | ls | rm TOKEN",
  },
  users: {
    flags: USERS_FLAGS,
    run: usersCommand,
    help: "add NAME --roles=.. [--logins=..] | reset NAME | ls | rm NAME",
  },
  get: { flags: RESOURCE_FLAGS, run: getCommand, help: "KIND[/NAME] [--format=yaml|json|text]" },
  create: { flags: RESOURCE_FLAGS, run: createCommand, help: "-f FILE [--force]" },
  rm: { flags: RESOURCE_FLAGS, run: rmCommand, help: "KIND/NAME" },
  nodes: { flags: NODES_FLAGS, run: nodesCommand, help: "ls [--format=text|json|yaml]" },
  audit: {
    flags: AUDIT_FLAGS,
    run: auditCommand,
    help:
      "ls [--since=24h | --from=T --to=T] [--type=session.start,exec] [--sid=ID] [--format=text|json]",
  },
  auth: {
    flags: AUTH_FLAGS,
    run: authCommand,
    help:
      "export [--type=host|user|tls-host|tls-user] | sign --user=NAME --out=PREFIX [--ttl=12h] [--public-key=FILE.pub] | rotate --type=host|user [--grace-period=48h] | rotate --manual --type=host|user --phase=init|update_clients|update_servers|rollback|standby",
  },
};

const USAGE = `Usage: tctl [global flags] COMMAND [args]

Admin tool for the teleport cluster.

Commands:
${Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(8)} ${c.help}`).join("\n")}

Global flags:
  -c, --config=FILE          teleport.yaml of the auth service (default /etc/teleport.yaml)
  --data-dir=DIR             data dir of the auth service (instead of a config file)
  --auth-server=HOST:PORT    auth API address
  -i, --identity=FILE        identity file to authenticate with
  -d, --debug                show stack traces`;

/** Runs tctl with `args` (after the personality was picked). */
export async function tctlMain(args: string[]): Promise<number> {
  // Find the command name: the first positional, skipping global flag values.
  const allFlags: FlagSpec = { ...GLOBAL_FLAGS };
  for (const c of Object.values(COMMANDS)) Object.assign(allFlags, c.flags);
  let loose: Parsed;
  try {
    loose = parseFlags(args, allFlags, "tctl");
  } catch (err) {
    if (args.length === 0 || args.includes("--help") || args.includes("-h")) {
      loose = { values: {}, positionals: [] };
    } else throw err;
  }
  const [name, ...rest] = loose.positionals;
  if (name === undefined || name === "help") {
    print(USAGE);
    return name === undefined && args.length === 0 ? 2 : 0;
  }
  const cmd = COMMANDS[name];
  if (cmd === undefined) {
    throw new CliError(
      `tctl: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(", ")})`,
      2,
    );
  }
  const p = parseFlags(args, { ...GLOBAL_FLAGS, ...cmd.flags }, `tctl ${name}`);
  if (p.values.help === true) {
    print(`Usage: tctl ${name} ${cmd.help}`);
    return 0;
  }
  let session: Promise<TctlContext> | undefined;
  try {
    return await cmd.run(() => session ??= connect(p), p, rest);
  } finally {
    if (session !== undefined) (await session.catch(() => undefined))?.client.close();
  }
}
