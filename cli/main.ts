/**
 * Entry of every personality. `tsh` and `tctl` are chosen by the program's name
 * (argv0, e.g. a symlink) or by the first argument; everything else is the
 * `teleport` daemon's commands. Errors print as one line; --debug adds the trace.
 */
import { messageOf, TeleportError } from "../lib/errors/mod.ts";
import { VERSION } from "../lib/config/mod.ts";
import { CliError, print, printErr } from "./_common.ts";

// Personalities load on demand: `tsh ssh` should not pay for loading the daemon's modules.

const USAGE = `Usage: teleport COMMAND [flags]

Commands:
  start       start the teleport services (see "teleport start --help")
  configure   print a commented teleport.yaml
  version     print the version
  install     install systemd: the systemd unit; install links DIR: tsh, tctl and
              teleport runnable by name
  tctl ...    admin tool (also run as "tctl" through a symlink)
  tsh ...     user tool (also run as "tsh" through a symlink)`;

/** Picks the personality from argv0 or the first argument. */
export function pickPersonality(
  args: string[],
  argv0: string,
): { personality: "teleport" | "tctl" | "tsh"; args: string[] } {
  const base = argv0.split(/[\\/]/).pop()?.replace(/\.(exe|ts|js)$/, "") ?? "";
  if (base === "tctl" || base === "tsh") return { personality: base, args };
  if (args[0] === "tctl" || args[0] === "tsh") return { personality: args[0], args: args.slice(1) };
  return { personality: "teleport", args };
}

async function teleportMain(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  switch (cmd) {
    case "start":
      return await (await import("./start/start.ts")).startCommand(rest);
    case "configure":
      return await (await import("./start/configure.ts")).configureCommand(rest);
    case "install":
      return await (await import("./start/install.ts")).installCommand(rest);
    case "version":
    case "--version":
      print(`Teleport v${VERSION} deno ${Deno.version.deno}`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      print(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      throw new CliError(
        `teleport: unknown command "${cmd}" (commands: start, configure, install, version, tctl, tsh)`,
        2,
      );
  }
}

/** Runs the program; returns the exit code. Never throws. */
export async function runCli(args: string[], argv0: string): Promise<number> {
  const { personality, args: rest } = pickPersonality(args, argv0);
  const debug = rest.includes("--debug") || rest.includes("-d");
  try {
    if (personality === "tctl") return await (await import("./tctl/tctl.ts")).tctlMain(rest);
    if (personality === "tsh") return await (await import("./tsh/tsh.ts")).tshMain(rest);
    return await teleportMain(rest);
  } catch (err) {
    const code = err instanceof CliError ? err.code : 1;
    const known = err instanceof CliError || err instanceof TeleportError;
    printErr(`ERROR: ${messageOf(err)}`);
    if (debug || (!known && Deno.env.get("TELEPORT_DEBUG") === "1")) {
      printErr(err instanceof Error && err.stack ? err.stack : String(err));
    }
    return code;
  }
}
