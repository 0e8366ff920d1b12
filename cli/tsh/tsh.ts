/**
 * The tsh personality. Only `tsh version` works in this version: login, ssh and
 * the rest need the proxy service, which is not built yet; they say so.
 */
import { CliError, print } from "../_common.ts";
import { VERSION } from "../../lib/service/mod.ts";

const PLANNED = ["login", "logout", "status", "ls", "ssh", "scp", "config", "play", "proxy"];

/** Runs tsh with `args`. */
export function tshMain(args: string[]): Promise<number> {
  const [cmd] = args.filter((a) => !a.startsWith("-"));
  if (cmd === "version") {
    print(`tsh v${VERSION} deno ${Deno.version.deno}`);
    return Promise.resolve(0);
  }
  if (cmd !== undefined && PLANNED.includes(cmd)) {
    throw new CliError(
      `tsh ${cmd}: not available in this version: it needs the proxy service, which is not built yet (this version runs the auth service and tctl)`,
    );
  }
  print(`Usage: tsh version\n\n(login, ssh, ls and the rest arrive with the proxy service)`);
  return Promise.resolve(cmd === undefined ? 0 : 2);
}
