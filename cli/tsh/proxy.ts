/**
 * `tsh proxy ssh [--cluster=C] user@host:port`: a stdio bridge for OpenSSH's ProxyCommand
 * (see `tsh config`). It logs in to the proxy (checking its host certificate), opens subsystem
 * `proxy:<host>:<port>` with the `.<cluster>` suffix stripped from host, and pipes stdin and
 * stdout through it until either side ends. OpenSSH itself then checks the node's host
 * certificate against the `@cert-authority` lines of the profile's known_hosts.
 */
import { dialProxySsh, openProxySubsystem, parseHostPort } from "../../lib/client/mod.ts";
import { messageOf } from "../../lib/errors/mod.ts";
import { CliError, type FlagSpec, type Parsed, str } from "../_common.ts";
import { openContext, type TshEnv } from "./_env.ts";
import { pumpFromReader, pumpToWriter } from "./_pipe.ts";

/** Flags of `tsh proxy`. */
export const PROXY_FLAGS: FlagSpec = { cluster: { type: "string" } };

/** Usage of `tsh proxy`. */
export const PROXY_HELP = `Usage: tsh proxy ssh [--cluster=CLUSTER] [--proxy=HOST] LOGIN@HOST[:PORT]

Connects standard input and output to HOST's SSH port through the proxy, for
OpenSSH's ProxyCommand (see "tsh config"). HOST may end in ".CLUSTER".`;

/** The parts of `user@host:port`. */
export interface ProxyTarget {
  login: string;
  host: string;
  /** 0 when not given (the node's own port). */
  port: number;
}

/** Parses `user@host[:port]` and strips `.<cluster>` from the host. */
export function parseProxyTarget(text: string, cluster: string): ProxyTarget {
  const at = text.lastIndexOf("@");
  if (at <= 0) {
    throw new CliError(`tsh proxy ssh: "${text}" must be LOGIN@HOST[:PORT]`, 2);
  }
  let addr;
  try {
    addr = parseHostPort(text.slice(at + 1), 0, "the target");
  } catch (err) {
    throw new CliError(`tsh proxy ssh: ${messageOf(err)}`, 2);
  }
  const suffix = `.${cluster}`;
  const host = addr.host.endsWith(suffix) && addr.host.length > suffix.length
    ? addr.host.slice(0, -suffix.length)
    : addr.host;
  return { login: text.slice(0, at), host, port: addr.port };
}

/** Runs `tsh proxy`. */
export async function proxyCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  if (args[0] !== "ssh") {
    throw new CliError(
      `tsh proxy: unknown subcommand "${args[0] ?? ""}" (use "tsh proxy ssh")`,
      2,
    );
  }
  if (args.length !== 2) {
    throw new CliError('tsh proxy ssh: give one LOGIN@HOST[:PORT] (see "tsh proxy --help")', 2);
  }
  let ctx;
  try {
    ctx = await openContext(env, p);
  } catch (err) {
    throw new CliError(messageOf(err), 255);
  }
  const cluster = str(p, "cluster") ?? ctx.profile.cluster;
  if (cluster !== ctx.profile.cluster) {
    ctx.api.close();
    throw new CliError(
      `Cannot reach cluster ${cluster}: you are logged in to ${ctx.profile.cluster}, and tsh ` +
        "reaches only that cluster",
      255,
    );
  }
  const target = parseProxyTarget(args[1]!, cluster);
  let proxy;
  let channel;
  try {
    proxy = await dialProxySsh(ctx, { login: target.login });
    channel = await openProxySubsystem(proxy, target.host, target.port);
  } catch (err) {
    await proxy?.close().catch(() => {});
    ctx.api.close();
    throw new CliError(messageOf(err), 255);
  }
  ctx.api.close();
  let ended = false;
  try {
    await Promise.race([
      pumpToWriter(channel, Deno.stdout),
      pumpFromReader(Deno.stdin, channel, () => ended),
    ]);
  } finally {
    ended = true;
    channel.destroy();
    await proxy.close().catch(() => {});
  }
  return 0;
}
