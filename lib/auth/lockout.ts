/**
 * Login lockout policy, pure (no I/O): failed logins are counted per user AND source address,
 * so an attacker at one address can lock only themselves out of an account, never its owner at
 * another; a ceiling over all sources locks the user entirely when a guess campaign comes from
 * many addresses. The state is one {@link LoginAttempts} record per user (lib/services).
 *
 * @module
 */
import type { LoginAttempts } from "../services/mod.ts";
import { clientKey } from "../net/mod.ts";

/** Failed logins from one source (within {@link LOGIN_ATTEMPT_WINDOW_MS}) that lock it out (Teleport: 5). */
export const MAX_LOGIN_ATTEMPTS = 5;
/**
 * Failed logins of one user from all sources together (within the window) that lock the user
 * for everyone: the ceiling against guessing from many addresses.
 */
export const MAX_USER_LOGIN_FAILURES = 50;
/** Failures older than this no longer count towards a lock. */
export const LOGIN_ATTEMPT_WINDOW_MS = 30 * 60_000;
/** How long a lock lasts (Teleport's AccountLockInterval: 20 min). */
export const ACCOUNT_LOCK_INTERVAL_MS = 20 * 60_000;

/** Which lock refuses a login right now. */
export interface ActiveLock {
  /** `source`: this user from this address; `user`: this user from anywhere (the ceiling). */
  scope: "source" | "user";
  until: Date;
}

/** The outcome of counting one failure. */
export interface FailureOutcome {
  /** What to store, and until when. */
  attempts: LoginAttempts;
  expires: Date;
  /** The lock this failure set, if it set one. */
  locked?: ActiveLock;
}

/**
 * The key failed logins are counted under: the client IP without its port; IPv6 addresses by
 * their /64 (one host usually holds a whole /64); IPv4-mapped IPv6 as IPv4; `unknown` without
 * an address. `remoteAddr` is `host:port`, `[v6]:port` or a bare address.
 */
export function loginSource(remoteAddr: string | undefined): string {
  if (remoteAddr === undefined || remoteAddr.trim() === "") return "unknown";
  let host = remoteAddr.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed !== null) host = bracketed[1]!;
  else if (/^[^:]+:\d+$/.test(host)) host = host.slice(0, host.lastIndexOf(":"));
  return clientKey(host);
}

function lockEnd(lockedUntil: string | undefined, now: Date): Date | undefined {
  if (lockedUntil === undefined) return undefined;
  const until = Date.parse(lockedUntil);
  return until > now.getTime() ? new Date(until) : undefined;
}

/** The lock that refuses logins of this user from `source` at `now`, if any. */
export function activeLock(
  attempts: LoginAttempts | undefined,
  source: string,
  now: Date,
): ActiveLock | undefined {
  const user = lockEnd(attempts?.locked_until, now);
  if (user !== undefined) return { scope: "user", until: user };
  const src = lockEnd(attempts?.sources?.[source]?.locked_until, now);
  return src === undefined ? undefined : { scope: "source", until: src };
}

/** Drops failures outside the window and sources with nothing left to remember. */
function prune(attempts: LoginAttempts | undefined, now: Date): LoginAttempts {
  const since = now.getTime() - LOGIN_ATTEMPT_WINDOW_MS;
  const recent = (times: string[] | undefined) =>
    (times ?? []).filter((t) => Date.parse(t) > since);
  const sources: NonNullable<LoginAttempts["sources"]> = {};
  for (const [key, s] of Object.entries(attempts?.sources ?? {})) {
    const failures = recent(s.failures);
    const locked = lockEnd(s.locked_until, now);
    if (failures.length === 0 && locked === undefined) continue;
    sources[key] = { failures, ...(locked === undefined ? {} : { locked_until: s.locked_until }) };
  }
  const locked = lockEnd(attempts?.locked_until, now);
  return {
    failures: recent(attempts?.failures),
    ...(locked === undefined ? {} : { locked_until: attempts!.locked_until }),
    sources,
  };
}

/** When a record can be forgotten: its last failure leaves the window and every lock ended. */
function expiryOf(a: LoginAttempts, now: Date): Date | undefined {
  const times = [
    ...a.failures.map((t) => Date.parse(t) + LOGIN_ATTEMPT_WINDOW_MS),
    ...(a.locked_until === undefined ? [] : [Date.parse(a.locked_until)]),
    ...Object.values(a.sources ?? {}).flatMap((s) => [
      ...s.failures.map((t) => Date.parse(t) + LOGIN_ATTEMPT_WINDOW_MS),
      ...(s.locked_until === undefined ? [] : [Date.parse(s.locked_until)]),
    ]),
  ];
  const last = Math.max(...times);
  return last > now.getTime() ? new Date(last) : undefined;
}

/**
 * Counts one failed login from `source`: {@link MAX_LOGIN_ATTEMPTS} in the window lock that
 * source out of this user, {@link MAX_USER_LOGIN_FAILURES} from all sources lock the user.
 */
export function recordLoginFailure(
  current: LoginAttempts | undefined,
  source: string,
  now: Date,
): FailureOutcome {
  const a = prune(current, now);
  const at = now.toISOString();
  const sources = a.sources!;
  const src = sources[source] ?? { failures: [] };
  src.failures.push(at);
  a.failures.push(at);
  let locked: ActiveLock | undefined;
  const until = new Date(now.getTime() + ACCOUNT_LOCK_INTERVAL_MS);
  if (src.failures.length >= MAX_LOGIN_ATTEMPTS) {
    // The source's count restarts after its lock; its failures still count towards the ceiling.
    sources[source] = { failures: [], locked_until: until.toISOString() };
    locked = { scope: "source", until };
  } else {
    sources[source] = src;
  }
  if (a.failures.length >= MAX_USER_LOGIN_FAILURES) {
    a.failures = [];
    a.locked_until = until.toISOString();
    locked = { scope: "user", until };
  }
  return { attempts: a, expires: expiryOf(a, now) ?? until, ...(locked ? { locked } : {}) };
}

/**
 * Forgets the failures of `source` after a successful login from it, in its own count and in
 * the ceiling's (they were the user's typos). Other sources' failures and locks stay: a real
 * user logging in must not reset the count of someone guessing from elsewhere. Returns
 * undefined when nothing is left to remember.
 */
export function recordLoginSuccess(
  current: LoginAttempts | undefined,
  source: string,
  now: Date,
): { attempts: LoginAttempts; expires: Date } | undefined {
  const a = prune(current, now);
  const mine = a.sources![source]?.failures ?? [];
  delete a.sources![source];
  for (const t of mine) {
    const i = a.failures.indexOf(t);
    if (i >= 0) a.failures.splice(i, 1);
  }
  const expires = expiryOf(a, now);
  return expires === undefined ? undefined : { attempts: a, expires };
}
