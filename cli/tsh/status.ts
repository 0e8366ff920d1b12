/** `tsh status` and `tsh logout`. */
import { profileStatus } from "../../lib/client/mod.ts";
import { CliError, type Parsed, print } from "../_common.ts";
import { formatStatus, selectedProfile, type TshEnv } from "./_env.ts";

/** Usage of `tsh status`. */
export const STATUS_HELP = `Usage: tsh status [--proxy=HOST]

Shows the current profile (or the one of --proxy): proxy, user, cluster, roles,
logins and how long the certificates stay valid. Exits 1 with "Not logged in"
when there is no profile, so scripts can test it.`;

/** Usage of `tsh logout`. */
export const LOGOUT_HELP = `Usage: tsh logout [--proxy=HOST]

Removes the keys and certificates of the current profile (or of --proxy) from
$TELEPORT_HOME (default ~/.tsh).`;

/** Runs `tsh status`. */
export async function statusCommand(env: { store: TshEnv["store"] }, p: Parsed): Promise<number> {
  const name = selectedProfile(p);
  const profile = await env.store.load(name);
  if (profile === undefined) throw new CliError("Not logged in", 1);
  const keys = await env.store.loadKeys(profile);
  print(formatStatus(profileStatus(profile, keys, new Date())));
  return 0;
}

/** Runs `tsh logout`. */
export async function logoutCommand(env: { store: TshEnv["store"] }, p: Parsed): Promise<number> {
  const name = selectedProfile(p) ?? await env.store.currentName();
  const profile = name === undefined
    ? undefined
    : await env.store.load(name).catch(() => undefined);
  if (name === undefined || !await env.store.remove(name)) {
    print("Not logged in.");
    return 0;
  }
  print(
    profile === undefined ? `Logged out from ${name}.` : `Logged out ${profile.user} from ${name}.`,
  );
  return 0;
}
