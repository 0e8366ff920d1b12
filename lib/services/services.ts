/**
 * Repositories over the Backend: users (and their password hashes, TOTP devices and
 * login attempts), roles, provisioning tokens, user invite/reset tokens, certificate
 * authorities and node and proxy presence. Names are validated before they become part
 * of a key.
 */
import type { Backend } from "../backend/mod.ts";
import { CompareFailedError, isKind, NotFoundError } from "../errors/mod.ts";
import {
  type CertAuthority,
  type ProvisionToken,
  type ProxyResource,
  type Role,
  type ServerResource,
  type User,
  validateName,
} from "../resource/mod.ts";
import { decodeJson, encodeJson, JsonStore } from "./_store.ts";

const USERS_PREFIX = "users";
const ROLES_PREFIX = "roles";
const TOKENS_PREFIX = "tokens";
const USER_TOKENS_PREFIX = "usertokens";
const AUTHORITIES_PREFIX = "authorities";
const NODES_PREFIX = "nodes";
const PROXIES_PREFIX = "proxies";
/** Per-user records kept apart from the user resource (`users/<part>/<name>`). */
const PASSWORD_PART = "pwd";
const TOTP_PART = "totp";
const LOGIN_ATTEMPTS_PART = "login";
/** How often a read-modify-write retries after losing a race. */
const MAX_CAS_RETRIES = 16;

/** Moves the store revision into metadata.revision (what `tctl get` shows). */
function withRevision<T extends { metadata: { revision?: string } }>(
  r: T & { revision: string },
): T {
  const { revision, ...rest } = r;
  const out = rest as unknown as T;
  return { ...out, metadata: { ...out.metadata, revision } };
}

/** The value as stored: without a revision. */
function stored<T extends { metadata: { revision?: string } }>(r: T): T {
  const { revision: _r, ...metadata } = r.metadata;
  return { ...r, metadata };
}

function expiresOf(r: { metadata: { expires?: string } }): Date | undefined {
  return r.metadata.expires === undefined ? undefined : new Date(r.metadata.expires);
}

/** Roles. */
export class RolesService {
  readonly #store: JsonStore<Role>;
  constructor(backend: Backend) {
    this.#store = new JsonStore(backend, [ROLES_PREFIX], (n) => `role "${n}"`);
  }
  async get(name: string): Promise<Role> {
    return withRevision(await this.#store.get(validateName(name, "role")));
  }
  list(): Promise<Role[]> {
    return this.#store.list();
  }
  create(role: Role): Promise<void> {
    return this.#store.create(validateName(role.metadata.name, "role"), stored(role));
  }
  /** Replaces or creates; with metadata.revision set, only if unchanged since read. */
  upsert(role: Role): Promise<void> {
    const name = validateName(role.metadata.name, "role");
    const rev = role.metadata.revision;
    return rev === undefined
      ? this.#store.put(name, stored(role))
      : this.#store.compareAndSwap(name, stored(role), rev);
  }
  delete(name: string): Promise<void> {
    return this.#store.delete(validateName(name, "role"));
  }
}

/** Local users and their password hashes (kept apart from the resource). */
export class UsersService {
  readonly #backend: Backend;
  readonly #store: JsonStore<User>;
  constructor(backend: Backend) {
    this.#backend = backend;
    this.#store = new JsonStore(backend, [USERS_PREFIX, "params"], (n) => `user "${n}"`);
  }
  async get(name: string): Promise<User> {
    return withRevision(await this.#store.get(validateName(name, "user")));
  }
  list(): Promise<User[]> {
    return this.#store.list();
  }
  create(user: User): Promise<void> {
    return this.#store.create(validateName(user.metadata.name, "user"), stored(user));
  }
  /** Replaces or creates; with metadata.revision set, only if unchanged since read. */
  upsert(user: User): Promise<void> {
    const name = validateName(user.metadata.name, "user");
    const rev = user.metadata.revision;
    return rev === undefined
      ? this.#store.put(name, stored(user))
      : this.#store.compareAndSwap(name, stored(user), rev);
  }
  /** Deletes the user with its password hash, TOTP device and login attempts. */
  async delete(name: string): Promise<void> {
    await this.#store.delete(validateName(name, "user"));
    await this.deleteCredentials(name);
    await this.#backend.deleteRange({ prefix: [USERS_PREFIX, LOGIN_ATTEMPTS_PART, name] });
  }
  /** Removes the password hash and the TOTP device (`tctl users reset`). */
  async deleteCredentials(name: string): Promise<void> {
    validateName(name, "user");
    await this.#backend.deleteRange({ prefix: [USERS_PREFIX, PASSWORD_PART, name] });
    await this.#backend.deleteRange({ prefix: [USERS_PREFIX, TOTP_PART, name] });
  }
  /** Stores a password hash (an encoded KDF string, never a password). */
  async setPasswordHash(name: string, hash: string): Promise<void> {
    await this.#backend.put({
      key: [USERS_PREFIX, PASSWORD_PART, validateName(name, "user")],
      value: encodeJson({ hash }),
    });
  }
  /** The stored hash; NotFoundError when the user has no password yet. */
  async getPasswordHash(name: string): Promise<string> {
    try {
      const item = await this.#backend.get([
        USERS_PREFIX,
        PASSWORD_PART,
        validateName(name, "user"),
      ]);
      return decodeJson<{ hash: string }>(item).hash;
    } catch (err) {
      if (isKind(err, "NotFound")) throw new NotFoundError(`user "${name}" has no password set`);
      throw err;
    }
  }

  /** Stores (or replaces) the user's TOTP device. */
  async setTotpDevice(name: string, device: TotpDevice): Promise<void> {
    await this.#backend.put({
      key: [USERS_PREFIX, TOTP_PART, validateName(name, "user")],
      value: encodeJson(device),
    });
  }
  /** The user's TOTP device with its revision; undefined when none is enrolled. */
  async getTotpDevice(name: string): Promise<(TotpDevice & { revision: string }) | undefined> {
    try {
      const item = await this.#backend.get([USERS_PREFIX, TOTP_PART, validateName(name, "user")]);
      return { ...decodeJson<TotpDevice>(item), revision: item.revision };
    } catch (err) {
      if (isKind(err, "NotFound")) return undefined;
      throw err;
    }
  }
  /**
   * Records the last time step a TOTP code was accepted for, only if the device is unchanged
   * since it was read at `revision` (CompareFailedError otherwise: a concurrent login used it).
   */
  async markTotpUsed(
    name: string,
    device: TotpDevice,
    step: number,
    revision: string,
  ): Promise<void> {
    try {
      await this.#backend.compareAndSwap(revision, {
        key: [USERS_PREFIX, TOTP_PART, validateName(name, "user")],
        value: encodeJson({ ...device, last_used_step: step }),
      });
    } catch (err) {
      if (isKind(err, "CompareFailed")) {
        throw new CompareFailedError(
          `the TOTP device of user "${name}" was used or changed concurrently`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** The user's recent failed logins and lock; undefined when there are none. */
  async getLoginAttempts(name: string): Promise<LoginAttempts | undefined> {
    try {
      return decodeJson<LoginAttempts>(
        await this.#backend.get([USERS_PREFIX, LOGIN_ATTEMPTS_PART, validateName(name, "user")]),
      );
    } catch (err) {
      if (isKind(err, "NotFound")) return undefined;
      throw err;
    }
  }
  /**
   * Read-modify-write of the user's login attempts, safe against concurrent logins: `change`
   * gets the current value and returns the new one with its expiry, or undefined to delete it.
   * Returns what was stored.
   */
  async updateLoginAttempts(
    name: string,
    change: (current: LoginAttempts | undefined) =>
      | { attempts: LoginAttempts; expires: Date }
      | undefined,
  ): Promise<LoginAttempts | undefined> {
    const key = [USERS_PREFIX, LOGIN_ATTEMPTS_PART, validateName(name, "user")];
    for (let i = 0; i < MAX_CAS_RETRIES; i++) {
      let current: { value: LoginAttempts; revision: string } | undefined;
      try {
        const item = await this.#backend.get(key);
        current = { value: decodeJson<LoginAttempts>(item), revision: item.revision };
      } catch (err) {
        if (!isKind(err, "NotFound")) throw err;
      }
      const next = change(current?.value);
      try {
        if (next === undefined) {
          if (current !== undefined) await this.#backend.delete(key);
        } else {
          const item = { key, value: encodeJson(next.attempts), expires: next.expires };
          if (current === undefined) await this.#backend.create(item);
          else await this.#backend.compareAndSwap(current.revision, item);
        }
        return next?.attempts;
      } catch (err) {
        if (next === undefined && isKind(err, "NotFound")) return undefined;
        if (!isKind(err, "CompareFailed") && !isKind(err, "AlreadyExists")) throw err;
      }
    }
    throw new CompareFailedError(
      `Cannot record login attempt of user "${name}": too many concurrent logins; try again`,
    );
  }
  /** Forgets the user's failed logins and lifts a lock. */
  async clearLoginAttempts(name: string): Promise<void> {
    await this.#backend.deleteRange({
      prefix: [USERS_PREFIX, LOGIN_ATTEMPTS_PART, validateName(name, "user")],
    });
  }
}

/** A user's TOTP (RFC 6238) device: the shared secret and replay protection. */
export interface TotpDevice {
  /** Base32 shared secret. Never logged or returned by the API. */
  secret: string;
  /** When it was enrolled (RFC 3339). */
  added: string;
  /** Last time step a code was accepted for; codes of this step or earlier are refused. */
  last_used_step?: number;
}

/**
 * Recent failed logins of a user and the locks they caused (policy: lib/auth lockout.ts):
 * per source address, and over all sources for the user-wide ceiling.
 */
export interface LoginAttempts {
  /** Times (RFC 3339) of recent failed attempts from every source (the ceiling's count). */
  failures: string[];
  /** Until when logins are refused from everywhere (RFC 3339). */
  locked_until?: string;
  /** Per source address (see lib/auth `loginSource`): its recent failures and lock. */
  sources?: Record<string, { failures: string[]; locked_until?: string }>;
}

/** Join tokens (`tctl tokens add`). The token value is the resource name. */
export class ProvisionTokensService {
  readonly #store: JsonStore<ProvisionToken>;
  constructor(backend: Backend) {
    // The describe function never prints the token value: errors must not leak secrets.
    this.#store = new JsonStore(backend, [TOKENS_PREFIX], () => "token");
  }
  async get(token: string): Promise<ProvisionToken> {
    return withRevision(await this.#store.get(token));
  }
  list(): Promise<ProvisionToken[]> {
    return this.#store.list();
  }
  create(token: ProvisionToken): Promise<void> {
    return this.#store.create(token.metadata.name, stored(token), expiresOf(token));
  }
  upsert(token: ProvisionToken): Promise<void> {
    return this.#store.put(token.metadata.name, stored(token), expiresOf(token));
  }
  delete(token: string): Promise<void> {
    return this.#store.delete(token);
  }
}

/** A one-time token for setting a user's password (invite or reset). */
export interface UserToken {
  token: string;
  user: string;
  kind: "invite" | "reset";
  expires: string;
  /**
   * TOTP enrollment offered with the token: the new device's base32 secret (never logged)
   * and whether the user must enroll it to set the password.
   */
  totp?: { secret: string; required: boolean };
}

/** Invite and reset tokens for local users. */
export class UserTokensService {
  readonly #store: JsonStore<UserToken>;
  constructor(backend: Backend) {
    this.#store = new JsonStore(backend, [USER_TOKENS_PREFIX], () => "user token");
  }
  async get(token: string): Promise<UserToken> {
    const { revision: _r, ...t } = await this.#store.get(token);
    return t;
  }
  list(): Promise<UserToken[]> {
    return this.#store.list();
  }
  create(t: UserToken): Promise<void> {
    return this.#store.create(t.token, t, new Date(t.expires));
  }
  delete(token: string): Promise<void> {
    return this.#store.delete(token);
  }
  /** Removes every token of a user (a new reset replaces old ones). */
  async deleteForUser(user: string): Promise<void> {
    for (const t of await this.list()) {
      if (t.user === user) await this.delete(t.token).catch(() => {});
    }
  }
}

/** Certificate authorities, keyed by type and cluster. */
export class CertAuthoritiesService {
  readonly #backend: Backend;
  constructor(backend: Backend) {
    this.#backend = backend;
  }
  async get(type: "host" | "user", clusterName: string): Promise<CertAuthority> {
    try {
      const item = await this.#backend.get([AUTHORITIES_PREFIX, type, clusterName]);
      return withRevision({ ...decodeJson<CertAuthority>(item), revision: item.revision });
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new NotFoundError(
          `${type} certificate authority of cluster "${clusterName}" is not found`,
        );
      }
      throw err;
    }
  }
  /**
   * Replaces a CA read by {@link get} (its `metadata.revision` set) only if nobody changed it
   * since; CompareFailedError otherwise.
   */
  async compareAndSwap(ca: CertAuthority): Promise<void> {
    const revision = ca.metadata.revision;
    if (revision === undefined) {
      throw new CompareFailedError(
        `Cannot update the ${ca.spec.type} certificate authority: it was not read with a revision`,
      );
    }
    try {
      await this.#backend.compareAndSwap(revision, {
        key: [AUTHORITIES_PREFIX, ca.spec.type, ca.spec.cluster_name],
        value: encodeJson(stored(ca)),
      });
    } catch (err) {
      if (isKind(err, "CompareFailed") || isKind(err, "NotFound")) {
        throw new CompareFailedError(
          `Cannot update the ${ca.spec.type} certificate authority: it changed meanwhile; try again`,
          { cause: err },
        );
      }
      throw err;
    }
  }
  async list(): Promise<CertAuthority[]> {
    const items = await this.#backend.getRange({ prefix: [AUTHORITIES_PREFIX] });
    return items.map((i) => decodeJson<CertAuthority>(i));
  }
  /** Creates the CA; AlreadyExistsError if another process created it first. */
  async create(ca: CertAuthority): Promise<void> {
    await this.#backend.create({
      key: [AUTHORITIES_PREFIX, ca.spec.type, ca.spec.cluster_name],
      value: encodeJson(ca),
    });
  }
}

/** Heartbeated nodes and proxies; each entry expires unless renewed. */
export class PresenceService {
  readonly #store: JsonStore<ServerResource>;
  readonly #proxies: JsonStore<ProxyResource>;
  constructor(backend: Backend) {
    this.#store = new JsonStore(backend, [NODES_PREFIX, "default"], (n) => `node "${n}"`);
    this.#proxies = new JsonStore(backend, [PROXIES_PREFIX], (n) => `proxy "${n}"`);
  }
  async upsertProxy(proxy: ProxyResource): Promise<void> {
    await this.#proxies.put(proxy.metadata.name, stored(proxy), expiresOf(proxy));
  }
  listProxies(): Promise<ProxyResource[]> {
    return this.#proxies.list();
  }
  async getProxy(name: string): Promise<ProxyResource> {
    return withRevision(await this.#proxies.get(name));
  }
  deleteProxy(name: string): Promise<void> {
    return this.#proxies.delete(name);
  }
  async upsertNode(server: ServerResource): Promise<void> {
    await this.#store.put(server.metadata.name, stored(server), expiresOf(server));
  }
  listNodes(): Promise<ServerResource[]> {
    return this.#store.list();
  }
  async getNode(name: string): Promise<ServerResource> {
    return withRevision(await this.#store.get(name));
  }
  deleteNode(name: string): Promise<void> {
    return this.#store.delete(name);
  }
}
