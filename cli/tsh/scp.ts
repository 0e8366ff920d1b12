/**
 * `tsh scp [-r] [-p] SRC... DEST`: copies files to or from a node through the proxy, like
 * OpenSSH's scp; one side is `[LOGIN@]NODE:PATH`. Speaks the scp protocol to the stock `scp`
 * on the node (see lib/client/scp.ts), so a role with `ssh_file_copy: false` refuses it.
 */
import { connectToNode, scpDownload, scpUpload } from "../../lib/client/mod.ts";
import { messageOf } from "../../lib/errors/mod.ts";
import { CliError, flag, type FlagSpec, type Parsed, str } from "../_common.ts";
import { openContext, osUser, type TshEnv } from "./_env.ts";

/** Flags of `tsh scp`. */
export const SCP_FLAGS: FlagSpec = {
  recursive: { type: "boolean", short: "r" },
  preserve: { type: "boolean", short: "p" },
  login: { type: "string", short: "l" },
};

/** Usage of `tsh scp`. */
export const SCP_HELP = `Usage: tsh scp [flags] SOURCE... DEST

Copies files between this machine and a node through the proxy. One side is
remote: [LOGIN@]NODE:PATH (an empty PATH is the login's home directory).

  tsh scp report.txt alice@web1:/tmp/       upload a file
  tsh scp -r alice@web1:logs ./             download a directory
  tsh scp a.txt b.txt web1:inbox/           several files into a directory

  -r, --recursive          copy directories recursively
  -p, --preserve           keep modification times and exact modes
  -l, --login=LOGIN        OS login on the node (default: LOGIN@, else the local
                           user name)

Modes are copied (masked by the receiver's umask unless -p). The node must
allow file copy (role option ssh_file_copy) and have scp installed.`;

/** One side of the copy. */
export type ScpLocation =
  | { kind: "local"; path: string }
  | { kind: "remote"; login?: string; node: string; path: string };

/**
 * Parses a copy argument: `[LOGIN@]NODE:PATH` is remote when the part before the first colon
 * holds no `/` (so `./a:b` and `/x:y` are local files, as in scp).
 */
export function parseScpLocation(arg: string): ScpLocation {
  const colon = arg.indexOf(":");
  if (colon <= 0 || arg.slice(0, colon).includes("/")) return { kind: "local", path: arg };
  const hostPart = arg.slice(0, colon);
  const at = hostPart.lastIndexOf("@");
  const node = at < 0 ? hostPart : hostPart.slice(at + 1);
  if (node === "") throw new CliError(`tsh scp: "${arg}" names no node`, 2);
  return {
    kind: "remote",
    ...(at > 0 ? { login: hostPart.slice(0, at) } : {}),
    node,
    path: arg.slice(colon + 1),
  };
}

/** A checked `tsh scp` request: direction, node, login, paths. */
export interface ScpPlan {
  direction: "upload" | "download";
  node: string;
  login: string;
  sources: string[];
  target: string;
}

/** Checks that exactly one side is remote and every remote argument names the same node. */
export function planScp(
  args: string[],
  loginFlag: string | undefined,
  defaultLogin: () => string,
): ScpPlan {
  if (args.length < 2) {
    throw new CliError(
      'tsh scp: give at least one source and a destination (see "tsh scp --help")',
      2,
    );
  }
  const locs = args.map(parseScpLocation);
  const dest = locs.at(-1)!;
  const sources = locs.slice(0, -1);
  const remote = (l: ScpLocation) => l.kind === "remote";
  let direction: ScpPlan["direction"];
  let remotes: Array<Extract<ScpLocation, { kind: "remote" }>>;
  if (remote(dest)) {
    if (sources.some(remote)) {
      throw new CliError(
        "tsh scp: copies between two nodes are not supported; one side must be local",
        2,
      );
    }
    direction = "upload";
    remotes = [dest as Extract<ScpLocation, { kind: "remote" }>];
  } else {
    if (!sources.every(remote)) {
      throw new CliError(
        "tsh scp: one side must be remote ([LOGIN@]NODE:PATH); for local copies use cp",
        2,
      );
    }
    direction = "download";
    remotes = sources as Array<Extract<ScpLocation, { kind: "remote" }>>;
  }
  const first = remotes[0]!;
  for (const r of remotes) {
    if (r.node !== first.node || r.login !== first.login) {
      throw new CliError("tsh scp: every remote source must name the same LOGIN@NODE", 2);
    }
  }
  return {
    direction,
    node: first.node,
    login: loginFlag ?? first.login ?? defaultLogin(),
    sources: direction === "upload"
      ? sources.map((s) => (s as { path: string }).path)
      : remotes.map((r) => r.path),
    target: direction === "upload" ? first.path : (dest as { path: string }).path,
  };
}

/** Runs `tsh scp`. */
export async function scpCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  const plan = planScp(args, str(p, "login"), osUser);
  const options = { recursive: flag(p, "recursive"), preserve: flag(p, "preserve") };
  let ctx;
  let conn;
  try {
    ctx = await openContext(env, p);
    conn = await connectToNode(ctx, { target: plan.node, login: plan.login });
  } catch (err) {
    ctx?.api.close();
    throw new CliError(messageOf(err), 255);
  }
  try {
    if (plan.direction === "upload") {
      await scpUpload(conn.client, plan.sources, plan.target, options);
    } else {
      await scpDownload(conn.client, plan.sources, plan.target, options);
    }
    return 0;
  } catch (err) {
    throw new CliError(`tsh scp: ${messageOf(err)}`, 1);
  } finally {
    await conn.close();
    ctx.api.close();
  }
}
