/** `tsh config`: an OpenSSH configuration block for the current profile. */
import { formatHostPort, formatSshConfig, tshInvocation } from "../../lib/client/mod.ts";
import { messageOf } from "../../lib/errors/mod.ts";
import { CliError, type Parsed, print, printErr } from "../_common.ts";
import { openContext, selectedProfile, type TshEnv } from "./_env.ts";

/** Usage of `tsh config`. */
export const CONFIG_HELP = `Usage: tsh config [--proxy=HOST] >> ~/.ssh/config

Prints an OpenSSH client configuration so plain "ssh NODE.CLUSTER" reaches the
cluster's nodes through the proxy (ProxyCommand "tsh proxy ssh") with your tsh
key and certificate, trusting hosts signed by the cluster's host CA. The host CA
keys in the profile's known_hosts are refreshed first, so during a host CA
rotation they list both the old and the new key.`;

/** Runs `tsh config`. */
export async function configCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  if (args.length > 0) {
    throw new CliError(`tsh config: unexpected argument "${args[0]}"`, 2);
  }
  const profile = await env.store.load(selectedProfile(p));
  if (profile === undefined) throw new CliError('Not logged in; run "tsh login" first', 1);
  const paths = env.store.paths(profile.name, profile.user, profile.cluster);
  // known_hosts follows a host CA rotation (both keys while both are trusted).
  try {
    const ctx = await openContext(env, p, { allowExpired: true });
    try {
      await ctx.refreshHostCas?.();
    } finally {
      ctx.api.close();
    }
  } catch (err) {
    printErr(
      `tsh config: cannot refresh the cluster's host CA keys in ${paths.knownHosts}, which ` +
        `keep the keys of the last refresh: ${messageOf(err)}\n`,
    );
  }
  print(formatSshConfig({
    cluster: profile.cluster,
    proxyHost: profile.name,
    proxyAddr: formatHostPort(profile.webProxyAddr),
    knownHostsPath: paths.knownHosts,
    identityPath: paths.sshKey,
    certificatePath: paths.sshCert,
    tshCommand: tshInvocation({
      execPath: Deno.execPath(),
      mainModule: Deno.mainModule,
      ...(env.teleportHome === undefined ? {} : { teleportHome: env.teleportHome }),
    }),
  }));
  return 0;
}
