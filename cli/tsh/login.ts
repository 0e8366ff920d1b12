/** `tsh login --proxy=HOST[:PORT] --user=NAME [--ttl=DURATION] [--insecure]`. */
import {
  formatHostPort,
  LinePrompter,
  login,
  parseHostPort,
  profileStatus,
} from "../../lib/client/mod.ts";
import { parseDuration } from "../../lib/resource/mod.ts";
import { CliError, flag, type FlagSpec, type Parsed, print, printErr, str } from "../_common.ts";
import { DEFAULT_WEB_PORT, formatStatus, osUser, type TshEnv, warnInsecure } from "./_env.ts";

/** Flags of `tsh login`. */
export const LOGIN_FLAGS: FlagSpec = { ttl: { type: "string" } };

/** Usage of `tsh login`. */
export const LOGIN_HELP =
  `Usage: tsh login [--proxy=HOST[:PORT]] [--user=NAME] [--ttl=DURATION] [--insecure]

Logs in to the cluster behind the proxy and stores short-lived certificates in
$TELEPORT_HOME (default ~/.tsh). Asks for the password, and for an OTP code when
the cluster uses one; when standard input is not a terminal, reads them as lines.

  --proxy=HOST[:PORT]  the proxy's web address (port 3080 when not given, our
                       proxy's default listener; Teleport's tsh assumes 443);
                       default: the current profile's proxy
  --user=NAME          Teleport user (default: the current profile's user, else
                       the local OS user)
  --ttl=DURATION       certificate validity, e.g. 8h (default 12h; the cluster
                       may shorten it)
  --insecure           do not verify the proxy's TLS certificate; its certificate
                       is pinned, and later commands accept only that one`;

/** Runs `tsh login`. */
export async function loginCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  if (args.length > 0) {
    throw new CliError(`tsh login: unexpected argument "${args[0]}" (see "tsh login --help")`, 2);
  }
  const current = await env.store.load().catch(() => undefined);
  const proxyText = str(p, "proxy") ??
    (current === undefined ? undefined : formatHostPort(current.webProxyAddr));
  if (proxyText === undefined) {
    throw new CliError('tsh login: give the proxy address, e.g. "--proxy=proxy.example.com"', 2);
  }
  const proxy = parseHostPort(proxyText, DEFAULT_WEB_PORT, "--proxy");
  const existing = await env.store.load(proxy.host).catch(() => undefined);
  const user = str(p, "user") ?? existing?.user ?? osUser();
  const ttlText = str(p, "ttl");
  const ttlMs = ttlText === undefined ? undefined : parseDuration(ttlText, "--ttl");
  const insecure = flag(p, "insecure");
  if (insecure) warnInsecure();
  const prompter = new LinePrompter(Deno.stdin, Deno.stderr);
  const result = await login({
    store: env.store,
    proxy,
    user,
    ...(ttlMs === undefined ? {} : { ttlMs }),
    trust: {
      ...(insecure ? { insecure: true } : {}),
      ...(existing?.webCertSha256 === undefined ? {} : { pinnedSha256: existing.webCertSha256 }),
    },
    prompt: prompter.prompt,
  });
  if (insecure && existing?.webCertSha256 === undefined) {
    printErr(
      `The proxy's certificate (SHA-256 ${result.webCertSha256}) is now pinned in your ` +
        "profile: later commands accept only this certificate.",
    );
  }
  print(formatStatus(profileStatus(result.profile, result.keys, new Date())));
  return 0;
}
