/**
 * OS user accounts of the node: login validation, `getpwnam_r` lookups (through NSS, so LDAP
 * and sssd users work) and the rule for which users this daemon may start sessions as.
 *
 * @module
 */

import {
  AccessDeniedError,
  BadParameterError,
  ConnectionProblemError,
  NotFoundError,
  NotImplementedError,
} from "../errors/mod.ts";
import { cstr, describeErrno, ERANGE, libc } from "./_libc.ts";

/** An OS account as the session code needs it. */
export interface OsUser {
  /** Login name. */
  readonly name: string;
  /** Numeric user id. */
  readonly uid: number;
  /** Primary group id. */
  readonly gid: number;
  /** Home directory (may not exist; sessions then start in `/`). */
  readonly home: string;
  /** Login shell; `/bin/sh` when the passwd entry leaves it empty. */
  readonly shell: string;
}

/** Longest login accepted, in characters (Linux `LOGIN_NAME_MAX` is 256, utmp keeps 32). */
export const MAX_LOGIN_LENGTH = 32;

// POSIX portable user name: portable filename characters, no leading "-"; a trailing "$" is
// allowed for Samba machine accounts.
const LOGIN_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/;

/**
 * Checks that `login` is a POSIX portable user name of 1–32 characters (not `.` or `..`), so
 * nothing odd reaches libc or the command line of `setpriv`.
 *
 * @throws BadParameterError when it is not.
 */
export function validateLogin(login: string): void {
  if (typeof login !== "string" || login.length === 0) {
    throw new BadParameterError("OS login is empty; the SSH client must name an OS user");
  }
  if (login.length > MAX_LOGIN_LENGTH) {
    throw new BadParameterError(
      `OS login "${login.slice(0, 40)}…" is longer than ${MAX_LOGIN_LENGTH} characters`,
    );
  }
  if (!LOGIN_RE.test(login) || /^\.+$/.test(login)) {
    throw new BadParameterError(
      `OS login ${JSON.stringify(login)} is not a valid user name: use letters, digits, ` +
        `".", "_" and "-" (not first)`,
    );
  }
}

// struct passwd on LP64: pw_name, pw_passwd (8-byte pointers), pw_uid, pw_gid (u32),
// pw_gecos, pw_dir, pw_shell (pointers).
const PASSWD_SIZE = 48;
const MAX_BUF = 1 << 20;

function readCString(view: DataView, offset: number): string {
  const ptr = Deno.UnsafePointer.create(view.getBigUint64(offset, true));
  return ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
}

async function lookupWithLibc(login: string): Promise<OsUser | undefined> {
  const c = libc();
  const name = cstr(login);
  const pwd = new Uint8Array(PASSWD_SIZE);
  const result = new BigUint64Array(1);
  for (let size = 16 * 1024; size <= MAX_BUF; size *= 4) {
    const buf = new Uint8Array(size);
    const rc = await c.getpwnam_r(name, pwd, buf, BigInt(size), result);
    if (rc === ERANGE) continue;
    if (rc !== 0) {
      throw new ConnectionProblemError(
        `looking up OS user "${login}" with getpwnam_r failed: ${describeErrno(rc)}; ` +
          `check the name service configuration (/etc/nsswitch.conf, sssd, LDAP)`,
      );
    }
    if (result[0] === 0n) return undefined;
    const view = new DataView(pwd.buffer);
    const shell = readCString(view, 40);
    return {
      name: readCString(view, 0),
      uid: view.getUint32(16, true),
      gid: view.getUint32(20, true),
      home: readCString(view, 32),
      shell: shell === "" ? "/bin/sh" : shell,
    };
  }
  throw new ConnectionProblemError(
    `looking up OS user "${login}": the passwd entry is larger than ${MAX_BUF} bytes`,
  );
}

async function lookupWithGetent(login: string): Promise<OsUser | undefined> {
  const out = await new Deno.Command("getent", {
    args: ["passwd", "--", login],
    stdout: "piped",
    stderr: "null",
    clearEnv: true,
  }).output();
  if (out.code === 2) return undefined; // key not found
  if (!out.success) {
    throw new ConnectionProblemError(
      `looking up OS user "${login}" with "getent passwd" failed with exit code ${out.code}`,
    );
  }
  const fields = new TextDecoder().decode(out.stdout).split("\n")[0]!.split(":");
  if (fields.length < 7) {
    throw new ConnectionProblemError(`"getent passwd ${login}" printed a malformed entry`);
  }
  return {
    name: fields[0]!,
    uid: Number(fields[2]),
    gid: Number(fields[3]),
    home: fields[5]!,
    shell: fields[6] === "" ? "/bin/sh" : fields[6]!,
  };
}

/**
 * Looks up an OS user through the system's name service (`getpwnam_r` via FFI; `getent passwd`
 * when glibc cannot be loaded).
 *
 * @throws BadParameterError when `login` is not a valid user name (see {@link validateLogin}).
 * @throws NotFoundError when no such user exists on this node.
 * @throws ConnectionProblemError when the name service fails.
 */
export async function lookupOsUser(login: string): Promise<OsUser> {
  validateLogin(login);
  let user: OsUser | undefined;
  try {
    user = await lookupWithLibc(login);
  } catch (err) {
    if (!(err instanceof NotImplementedError)) throw err;
    user = await lookupWithGetent(login);
  }
  if (user === undefined) {
    throw new NotFoundError(
      `OS user "${login}" does not exist on this node; create it (useradd) or log in as ` +
        `one of the logins your role allows that exists here`,
    );
  }
  return user;
}

/** Looks up a group id by name (`getgrnam_r`); undefined when the group does not exist. */
export async function lookupGroupId(group: string): Promise<number | undefined> {
  validateLogin(group);
  const c = libc();
  const name = cstr(group);
  const grp = new Uint8Array(32); // struct group: gr_name, gr_passwd, gr_gid, gr_mem
  const result = new BigUint64Array(1);
  for (let size = 16 * 1024; size <= MAX_BUF; size *= 4) {
    const rc = await c.getgrnam_r(name, grp, new Uint8Array(size), BigInt(size), result);
    if (rc === ERANGE) continue;
    if (rc !== 0 || result[0] === 0n) return undefined;
    return new DataView(grp.buffer).getUint32(16, true);
  }
  return undefined;
}

/** True when this daemon runs as root (effective uid 0) and can start sessions as anyone. */
export function isDaemonRoot(): boolean {
  return Deno.uid() === 0;
}

/**
 * Checks that this daemon can start a process as `user`: a root daemon can run as anyone, a
 * non-root daemon only as its own uid.
 *
 * @throws AccessDeniedError otherwise.
 */
export function assertCanRunAs(user: OsUser): void {
  const uid = Deno.uid();
  if (uid === 0 || uid === user.uid) return;
  throw new AccessDeniedError(
    `this node's SSH service runs as uid ${uid}, not root, so it can only start sessions as ` +
      `its own user, not as OS user "${user.name}" (uid ${user.uid}); run teleport as root ` +
      `to allow other logins`,
  );
}
