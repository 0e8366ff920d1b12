/**
 * Shared by the PTY and exec paths: which program to start so that a command runs as an OS
 * user, in which directory, and validation of the exact environment handed to it.
 *
 * @module
 */

import { BadParameterError, NotImplementedError } from "../errors/mod.ts";
import { SIGNALS } from "./_libc.ts";
import { assertCanRunAs, type OsUser } from "./os_user.ts";

/** Where util-linux installs `setpriv` on Debian, Ubuntu and RHEL. */
export const DEFAULT_SETPRIV = "/usr/bin/setpriv";

/** The program and full argv (argv[0] included) that run `args` as `user`. */
export interface LaunchPlan {
  readonly file: string;
  readonly argv: readonly string[];
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Plans how to start `args` (argv, `args[0]` an absolute program path) as `user`:
 * - daemon is root, target is not: `setpriv --reuid --regid --init-groups -- args…`, so the
 *   process gets the user's ids and supplementary groups (initgroups) and nothing of root's;
 * - target is the daemon's own uid (root → root, or a non-root daemon): `args` directly.
 *
 * @throws AccessDeniedError when a non-root daemon is asked for another user.
 * @throws NotImplementedError when `setpriv` is needed but missing.
 */
export function planLaunch(
  user: OsUser,
  args: readonly string[],
  setpriv: string = DEFAULT_SETPRIV,
): LaunchPlan {
  assertCanRunAs(user);
  if (Deno.uid() === user.uid) return { file: args[0]!, argv: args };
  if (!isFile(setpriv)) {
    throw new NotImplementedError(
      `cannot switch to OS user "${user.name}": ${setpriv} is missing; install util-linux ` +
        `(Debian/RHEL) or util-linux-misc (Alpine)`,
    );
  }
  return {
    file: setpriv,
    argv: [
      setpriv,
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      "--init-groups",
      "--",
      ...args,
    ],
  };
}

/** The argv of `user`'s shell: a login shell (`-l`), or `shell -c command`. */
export function shellArgs(user: OsUser, command: string | undefined): string[] {
  if (command !== undefined && command.includes("\0")) {
    throw new BadParameterError("the command contains a NUL byte; remove it");
  }
  return command === undefined ? [user.shell, "-l"] : [user.shell, "-c", command];
}

/** The user's home directory when it is an existing directory, else `/` (like sshd). */
export function sessionCwd(user: OsUser): string {
  try {
    if (user.home.startsWith("/") && Deno.statSync(user.home).isDirectory) return user.home;
  } catch {
    // missing or unreadable home: fall through
  }
  return "/";
}

/**
 * Checks an environment before it reaches a child: names are `[A-Za-z_][A-Za-z0-9_]*`, values
 * carry no NUL bytes. Returns `NAME=value` strings.
 *
 * @throws BadParameterError naming the first bad entry.
 */
export function envEntries(env: Readonly<Record<string, string>>): string[] {
  return Object.entries(env).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw new BadParameterError(`environment variable name ${JSON.stringify(k)} is invalid`);
    }
    if (typeof v !== "string" || v.includes("\0")) {
      throw new BadParameterError(`environment variable ${k} has a value with a NUL byte`);
    }
    return `${k}=${v}`;
  });
}

/**
 * Parses a signal name, SSH style (`"INT"`) or POSIX style (`"SIGINT"`), case-insensitive, to
 * its Linux number.
 *
 * @throws BadParameterError for an unknown name.
 */
export function signalNumber(name: string): number {
  const key = String(name).toUpperCase().replace(/^SIG/, "");
  const num = SIGNALS[key];
  if (num === undefined) {
    throw new BadParameterError(
      `unknown signal ${JSON.stringify(name)}; use a name such as INT, TERM, KILL, HUP`,
    );
  }
  return num;
}
