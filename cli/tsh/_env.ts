/**
 * What every tsh command shares: global flags, the profile store ($TELEPORT_HOME or ~/.tsh),
 * the `--insecure` warning, opening the selected profile, and writing to stdout/stderr.
 */
import { userInfo } from "node:os";
import {
  type ClientContext,
  openClientContext,
  parseHostPort,
  ProfileStore,
  resolveTshHome,
} from "../../lib/client/mod.ts";
import { formatDuration } from "../../lib/resource/mod.ts";
import type { ProfileStatus } from "../../lib/client/mod.ts";
import { CliError, flag, type FlagSpec, type Parsed, printErr, str } from "../_common.ts";

/** Flags every tsh command takes. */
export const GLOBAL_FLAGS: FlagSpec = {
  proxy: { type: "string" },
  user: { type: "string" },
  insecure: { type: "boolean" },
  debug: { type: "boolean", short: "d" },
  help: { type: "boolean", short: "h" },
};

/** The web port tsh assumes when `--proxy` names none (our proxy's default listener). */
export const DEFAULT_WEB_PORT = 3080;

/** The environment of one tsh run. */
export interface TshEnv {
  store: ProfileStore;
  /** `$TELEPORT_HOME` made absolute, when it is set. */
  teleportHome?: string;
}

/** Builds the environment from the process's variables. */
export function tshEnv(): TshEnv {
  const env = { TELEPORT_HOME: Deno.env.get("TELEPORT_HOME"), HOME: Deno.env.get("HOME") };
  const home = resolveTshHome(env, Deno.cwd());
  return {
    store: new ProfileStore(home),
    ...(env.TELEPORT_HOME ? { teleportHome: home } : {}),
  };
}

/** Prints the `--insecure` warning (every time the flag is used). */
export function warnInsecure(): void {
  printErr(
    "WARNING: --insecure: the proxy's TLS certificate is not verified, so anyone on the " +
      "network path could impersonate it. Use it only on a network you trust.",
  );
}

/** The profile name `--proxy` selects (its host), or undefined for the current profile. */
export function selectedProfile(p: Parsed): string | undefined {
  const proxy = str(p, "proxy");
  return proxy === undefined ? undefined : parseHostPort(proxy, DEFAULT_WEB_PORT, "--proxy").host;
}

/** Opens the selected profile for dialling; warns when `--insecure` is given. */
export async function openContext(
  env: TshEnv,
  p: Parsed,
  options: { allowExpired?: boolean } = {},
): Promise<ClientContext> {
  const insecure = flag(p, "insecure");
  if (insecure) warnInsecure();
  const name = selectedProfile(p);
  return await openClientContext(env.store, {
    ...(name === undefined ? {} : { name }),
    insecure,
    ...(options.allowExpired === undefined ? {} : { allowExpired: options.allowExpired }),
  });
}

/** The local OS user name (Teleport's default user and login). */
export function osUser(): string {
  const name = Deno.env.get("USER") ?? Deno.env.get("LOGNAME");
  if (name !== undefined && name !== "") return name;
  try {
    return userInfo().username;
  } catch {
    throw new CliError("Cannot tell the local user name: set USER, or give --user / -l");
  }
}

/** Formats a time like Teleport's status: `2026-01-01 12:00:00 +0000 UTC`. */
export function formatTime(d: Date): string {
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " +0000 UTC");
}

/** The profile summary `tsh login` and `tsh status` print. */
export function formatStatus(s: ProfileStatus): string {
  const rows: Array<[string, string]> = [
    ["Logged in as:", s.user],
    ["Cluster:", s.cluster],
    ["Roles:", s.roles.join(", ") || "-"],
    ["Logins:", s.logins.join(", ") || "-"],
    [
      "Valid until:",
      `${formatTime(s.validUntil)} ` +
      (s.expired
        ? "[EXPIRED]"
        : `[valid for ${formatDuration(Math.floor(s.validForMs / 1000) * 1000)}]`),
    ],
    ["Extensions:", s.extensions.join(", ") || "-"],
  ];
  return [
    `> Profile URL:        ${s.profileUrl}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(19)} ${v}`),
  ].join("\n");
}

/** Writes all of `data` to a Deno writer. */
export async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  data: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < data.length) off += await w.write(data.subarray(off));
}
