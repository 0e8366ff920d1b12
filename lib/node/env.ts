/**
 * The environment of session processes, built from scratch (the daemon's own environment is
 * never inherited), and the policy for SSH `env` requests from clients.
 *
 * @module
 */

import type { OsUser } from "./os_user.ts";

/** PATH for root when /etc/login.defs has no ENV_SUPATH. */
export const DEFAULT_SUPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** PATH for other users when /etc/login.defs has no ENV_PATH. */
export const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";

/** Longest value accepted in a client `env` request. */
export const MAX_CLIENT_ENV_VALUE = 1024;

/** One end of the SSH connection. */
export interface Endpoint {
  /** IP address (v4 or v6, no brackets). */
  readonly addr: string;
  readonly port: number;
}

/** Inputs of {@link buildSessionEnv}. */
export interface SessionEnvOptions {
  /** The OS user the session runs as: HOME, USER, LOGNAME, SHELL, MAIL, PATH. */
  readonly user: OsUser;
  /**
   * `TERM` from the client's `pty-req`; omitted without a pty. Only terminal-type names
   * (`[A-Za-z0-9._+-]`, at most 64 characters) are kept; anything else is left out.
   */
  readonly term?: string;
  /** The session's pty (`/dev/pts/N`) as `SSH_TTY`; `spawnPty()` sets it itself. */
  readonly ttyName?: string;
  /** Client end of the connection: `SSH_CLIENT`, `SSH_CONNECTION`. */
  readonly client?: Endpoint;
  /** Server (node) end of the connection: `SSH_CONNECTION`. */
  readonly server?: Endpoint;
  /** Session id: `SSH_SESSION_ID` and `TELEPORT_SESSION`. */
  readonly sessionId?: string;
  /** The Teleport user behind the login: `TELEPORT_USERNAME`, `SSH_TELEPORT_USER`. */
  readonly teleportUser?: string;
  /** This node's host id: `SSH_TELEPORT_HOST_UUID`. */
  readonly hostId?: string;
  /** The cluster name: `SSH_TELEPORT_CLUSTER_NAME`. */
  readonly clusterName?: string;
  /**
   * Variables the client sent with `env` requests. Each is re-checked with
   * {@link checkClientEnv}; refused ones are dropped.
   */
  readonly clientEnv?: Readonly<Record<string, string>>;
  /**
   * What the client asked to run when a certificate's `force-command` replaced it (the exec
   * command, or the subsystem name): `SSH_ORIGINAL_COMMAND`, as OpenSSH sets it.
   */
  readonly originalCommand?: string;
  /** Path of login.defs for ENV_PATH / ENV_SUPATH (tests); default `/etc/login.defs`. */
  readonly loginDefsPath?: string;
}

/** The verdict on a client `env` request. */
export type EnvVerdict = { readonly accepted: true } | {
  readonly accepted: false;
  readonly reason: string;
};

// Never accepted, with the reason given to the operator. Loader and shell start-up variables
// inject code; the rest are set by the node itself.
const DENIED: ReadonlyMap<string, string> = new Map([
  ["LD_PRELOAD", "it makes the dynamic loader inject code"],
  ["LD_LIBRARY_PATH", "it changes which shared libraries the loader uses"],
  ["LD_AUDIT", "it makes the dynamic loader inject code"],
  ["BASH_ENV", "bash runs the file it names at start-up"],
  ["ENV", "sh runs the file it names at start-up"],
  ["IFS", "it changes how shells split words"],
  ["PATH", "the node sets it"],
  ["HOME", "the node sets it from the OS user"],
  ["SHELL", "the node sets it from the OS user"],
  ["USER", "the node sets it from the OS user"],
  ["LOGNAME", "the node sets it from the OS user"],
  ["MAIL", "the node sets it from the OS user"],
  ["TERM", "it comes from the pty request"],
]);

/** Names a client may set with `env` requests (besides `LC_*`). */
export const ACCEPTED_CLIENT_ENV: readonly string[] = Object.freeze([
  "LANG",
  "LANGUAGE",
  "TZ",
  "COLORTERM",
  "NO_COLOR",
]);

/**
 * Decides whether a client's SSH `env` request is accepted. Accepted: `LANG`, `LANGUAGE`,
 * `LC_*`, `TZ`, `COLORTERM`, `NO_COLOR`, with a value of at most 1024 characters and no control
 * characters. Everything else is refused with a reason, in particular loader variables
 * (`LD_*`, `DYLD_*`), shell start-up hooks (`BASH_ENV`, `ENV`, `IFS`), what the node sets
 * itself (`PATH`, `HOME`, `SHELL`, `USER`, `TERM`, …) and `SSH_*` / `TELEPORT_*`.
 */
export function checkClientEnv(name: string, value: string): EnvVerdict {
  const refuse = (reason: string): EnvVerdict => ({ accepted: false, reason });
  if (typeof name !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    return refuse(`${JSON.stringify(name)} is not a valid environment variable name`);
  }
  const denied = DENIED.get(name);
  if (denied !== undefined) return refuse(`${name} is never accepted from clients: ${denied}`);
  if (name.startsWith("LD_") || name.startsWith("DYLD_")) {
    return refuse(`${name} is never accepted from clients: it configures the dynamic loader`);
  }
  if (name.startsWith("TELEPORT_") || name.startsWith("SSH_")) {
    return refuse(`${name} is never accepted from clients: the node sets ${name.split("_")[0]}_*`);
  }
  if (!ACCEPTED_CLIENT_ENV.includes(name) && !/^LC_[A-Z]+$/.test(name)) {
    return refuse(
      `${name} is not in the accepted list (${ACCEPTED_CLIENT_ENV.join(", ")}, LC_*)`,
    );
  }
  if (typeof value !== "string" || value.length > MAX_CLIENT_ENV_VALUE) {
    return refuse(`the value of ${name} is longer than ${MAX_CLIENT_ENV_VALUE} characters`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) {
    return refuse(`the value of ${name} contains control characters`);
  }
  return { accepted: true };
}

/** True for a plausible terminal type name (`xterm-256color`, `screen.xterm`, `vt220`). */
export function isTermName(term: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(term);
}

const loginDefsCache = new Map<string, { path?: string; supath?: string }>();

function loginDefsPaths(file: string): { path?: string; supath?: string } {
  const cached = loginDefsCache.get(file);
  if (cached !== undefined) return cached;
  const found: { path?: string; supath?: string } = {};
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    // no login.defs: defaults apply
  }
  for (const line of text.split("\n")) {
    const m = /^\s*(ENV_PATH|ENV_SUPATH)\s+(\S+)\s*$/.exec(line);
    if (m === null) continue;
    const value = m[2]!.replace(/^PATH=/, "");
    if (!value.startsWith("/")) continue;
    if (m[1] === "ENV_PATH") found.path = value;
    else found.supath = value;
  }
  loginDefsCache.set(file, found);
  return found;
}

/** The PATH for `user`: ENV_SUPATH / ENV_PATH of login.defs, else the defaults. */
export function defaultPathFor(user: OsUser, loginDefsPath = "/etc/login.defs"): string {
  const defs = loginDefsPaths(loginDefsPath);
  return user.uid === 0 ? defs.supath ?? DEFAULT_SUPATH : defs.path ?? DEFAULT_PATH;
}

/**
 * Builds the complete environment of a session process from scratch: HOME, USER, LOGNAME,
 * SHELL, MAIL, PATH; TERM and SSH_TTY with a pty; SSH_CLIENT (`ip port serverPort`) and
 * SSH_CONNECTION (`ip port serverIp serverPort`); SSH_SESSION_ID, TELEPORT_SESSION,
 * TELEPORT_USERNAME and the SSH_TELEPORT_* variables; SSH_ORIGINAL_COMMAND under a forced
 * command; plus the accepted client variables
 * (LANG, LC_*, TZ, …), which can never override what the node sets.
 */
export function buildSessionEnv(options: SessionEnvOptions): Record<string, string> {
  const { user } = options;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.clientEnv ?? {})) {
    if (checkClientEnv(k, v).accepted) env[k] = v;
  }
  Object.assign(env, {
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
    MAIL: `/var/mail/${user.name}`,
    PATH: defaultPathFor(user, options.loginDefsPath),
  });
  if (options.term !== undefined && isTermName(options.term)) env.TERM = options.term;
  if (options.ttyName !== undefined) env.SSH_TTY = options.ttyName;
  if (options.client !== undefined) {
    const { client, server } = options;
    env.SSH_CLIENT = `${client.addr} ${client.port} ${server?.port ?? 0}`;
    if (server !== undefined) {
      env.SSH_CONNECTION = `${client.addr} ${client.port} ${server.addr} ${server.port}`;
    }
  }
  if (options.sessionId !== undefined) {
    env.SSH_SESSION_ID = options.sessionId;
    env.TELEPORT_SESSION = options.sessionId;
  }
  if (options.teleportUser !== undefined) {
    env.TELEPORT_USERNAME = options.teleportUser;
    env.SSH_TELEPORT_USER = options.teleportUser;
  }
  if (options.originalCommand !== undefined) env.SSH_ORIGINAL_COMMAND = options.originalCommand;
  if (options.hostId !== undefined) env.SSH_TELEPORT_HOST_UUID = options.hostId;
  if (options.clusterName !== undefined) env.SSH_TELEPORT_CLUSTER_NAME = options.clusterName;
  return env;
}
