/** `tsh config`: an OpenSSH configuration block for the current profile. */
import { formatHostPort, formatSshConfig, tshInvocation } from "../../lib/client/mod.ts";
import { CliError, type Parsed, print } from "../_common.ts";
import { selectedProfile, type TshEnv } from "./_env.ts";

/** Usage of `tsh config`. */
export const CONFIG_HELP = `Usage: tsh config [--proxy=HOST] >> ~/.ssh/config

Prints an OpenSSH client configuration so plain "ssh NODE.CLUSTER" reaches the
cluster's nodes through the proxy (ProxyCommand "tsh proxy ssh") with your tsh
key and certificate, trusting hosts signed by the cluster's host CA.`;

/** Runs `tsh config`. */
export async function configCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  if (args.length > 0) {
    throw new CliError(`tsh config: unexpected argument "${args[0]}"`, 2);
  }
  const profile = await env.store.load(selectedProfile(p));
  if (profile === undefined) throw new CliError('Not logged in; run "tsh login" first', 1);
  const paths = env.store.paths(profile.name, profile.user, profile.cluster);
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
