/**
 * Roles by name as the node (or proxy) last saw them. Fresh entries are served from memory;
 * stale ones are refreshed from auth, and kept when auth cannot be reached, so logins keep
 * working through an auth outage (with the last known policy). A failed refresh of a role is
 * not tried again before a jittered backoff (1 s doubling to 30 s) passes, and with a stale
 * entry at hand a login waits at most `staleWaitMs` for auth (a vanished auth host) before the
 * stale entry answers it; concurrent logins share one request per role.
 *
 * With a resource watch (`watch`), entries do not go stale while the watch is healthy: role
 * events replace them as auth writes them, and after each `init` the next login reloads every
 * cached role in one listing (`list`). While the watch is down, entries age by `ttlMs` and are fetched as above.
 */
import type { Clock } from "../clock/mod.ts";
import { isKind, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { ResourceEvent, ResourceEventSource, Role } from "../resource/mod.ts";

/** Inputs of {@link RoleCache}. */
export interface RoleCacheOptions {
  /** Reads one role from auth. */
  fetch: (name: string) => Promise<Role>;
  clock: Clock;
  logger: Logger;
  /** How long a fetched role is used without asking auth again. @default {30000} */
  ttlMs?: number;
  /**
   * With a stale entry at hand, how long a caller waits for auth before the stale entry
   * answers it (the refresh goes on in the background).
   * @default {2000}
   */
  staleWaitMs?: number;
  /** First and longest wait before a failed refresh is tried again. @default {1000, 30000} */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Random source in [0, 1) for the backoff jitter. @default {Math.random} */
  random?: () => number;
  /** Role events that keep entries current. @default {none: entries age by ttlMs} */
  watch?: ResourceEventSource;
  /** Reads every role (one request per watch `init`). @default {none: entries refetch} */
  list?: () => Promise<Role[]>;
  /**
   * Told the names of roles an event or a reload changed (after a reload, also when none did:
   * tests wait for it).
   */
  onChange?: (names: string[]) => void;
}

interface Entry {
  /** The role; null when auth said it does not exist. */
  role: Role | null;
  fetched: number;
  /** Set from an event (number of the event): newer than any read started before it. */
  event?: number;
}

/** A read-through cache of roles. */
export class RoleCache {
  readonly #o: RoleCacheOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Role | null>>();
  /** Per role: consecutive failed refreshes and when the next may start. */
  readonly #failures = new Map<string, { count: number; retryAt: number }>();
  /** Entries follow the watch (healthy, and reloaded since its last `init`). */
  #watched = false;
  /** Events applied so far; reads started before an entry's event do not overwrite it. */
  #events = 0;
  #inits = 0;
  /** The reload after the last `init`, started by the first `get` after it. */
  #reloading: Promise<void> | undefined;

  constructor(o: RoleCacheOptions) {
    this.#o = o;
    o.watch?.subscribe((ev) => this.#onEvent(ev));
  }

  #onEvent(ev: ResourceEvent): void {
    if (ev.type === "lost") {
      this.#watched = false;
      return;
    }
    if (ev.type === "init") {
      // Reloaded by the next login (a fleet that reconnects at once does not list at once).
      this.#watched = false;
      this.#inits++;
      this.#reloading = undefined;
      return;
    }
    const name = ev.type === "put" ? ev.resource.metadata.name : ev.name;
    if ((ev.type === "put" ? ev.resource.kind : ev.kind) !== "role") return;
    const n = ++this.#events;
    const role = ev.type === "put" ? ev.resource as Role : null;
    this.#entries.set(name, { role, fetched: this.#o.clock.now().getTime(), event: n });
    this.#failures.delete(name);
    this.#o.onChange?.([name]);
  }

  /**
   * After an `init`: every cached role in one listing (or, without `list`, entries refetch);
   * with none cached, nothing is read.
   */
  async #reload(inits: number): Promise<void> {
    // Nothing cached, nothing to reload: roles are read as logins need them, then followed.
    if (this.#entries.size === 0) {
      this.#watched = this.#o.watch?.healthy === true;
      this.#o.onChange?.([]);
      return;
    }
    if (this.#o.list === undefined) {
      for (const e of this.#entries.values()) e.fetched = Number.NEGATIVE_INFINITY;
      this.#watched = this.#o.watch?.healthy === true;
      return;
    }
    const started = this.#events;
    try {
      const roles = await this.#o.list();
      if (inits !== this.#inits) return;
      const now = this.#o.clock.now().getTime();
      const byName = new Map(roles.map((r) => [r.metadata.name, r]));
      const names = new Set([...byName.keys(), ...this.#entries.keys()]);
      const changed: string[] = [];
      for (const name of names) {
        const old = this.#entries.get(name);
        if (old?.event !== undefined && old.event > started) continue;
        const role = byName.get(name) ?? null;
        if (!sameRole(old?.role ?? null, role)) changed.push(name);
        this.#entries.set(name, { role, fetched: now });
        this.#failures.delete(name);
      }
      this.#watched = this.#o.watch?.healthy === true;
      this.#o.onChange?.(changed);
    } catch (err) {
      this.#o.logger.warn("Cannot reload roles after the watch (re)started: {reason}", {
        reason: messageOf(err),
      });
    }
  }

  /** The roles that exist among `names` (missing roles are left out, with a warning). */
  async get(names: string[]): Promise<Role[]> {
    if (this.#o.watch?.healthy === true && !this.#watched) {
      this.#reloading ??= this.#reload(this.#inits);
      await this.#reloading;
    }
    const out: Role[] = [];
    for (const name of names) {
      const role = await this.#one(name);
      if (role !== null) out.push(role);
    }
    return out;
  }

  async #one(name: string): Promise<Role | null> {
    const now = this.#o.clock.now().getTime();
    const cached = this.#entries.get(name);
    if (
      cached !== undefined &&
      (this.#watched || now - cached.fetched < (this.#o.ttlMs ?? 30_000))
    ) {
      return cached.role;
    }
    if (cached !== undefined && now < (this.#failures.get(name)?.retryAt ?? -Infinity)) {
      return cached.role;
    }
    const refresh = this.#refresh(name, cached);
    if (cached === undefined) return await refresh;
    const ac = new AbortController();
    try {
      return await Promise.race([
        refresh,
        // Aborted once the race is decided: either way the answer is the entry at hand.
        this.#o.clock.sleep(this.#o.staleWaitMs ?? 2000, ac.signal).then(
          () => cached.role,
          () => cached.role,
        ),
      ]);
    } finally {
      ac.abort();
    }
  }

  /** One shared fetch of `name`; with a stale entry, that entry when auth cannot answer. */
  #refresh(name: string, cached: Entry | undefined): Promise<Role | null> {
    let p = this.#inflight.get(name);
    if (p !== undefined) return p;
    p = (async () => {
      const now = () => this.#o.clock.now().getTime();
      const started = this.#events;
      // An event that came during the fetch is newer than its answer.
      const newer = () => (this.#entries.get(name)?.event ?? 0) > started;
      try {
        const role = await this.#o.fetch(name);
        if (newer()) return this.#entries.get(name)!.role;
        this.#entries.set(name, { role, fetched: now() });
        this.#failures.delete(name);
        return role;
      } catch (err) {
        if (isKind(err, "NotFound")) {
          if (newer()) return this.#entries.get(name)!.role;
          this.#o.logger.warn("Certificate names role {role}, which does not exist", {
            role: name,
          });
          this.#entries.set(name, { role: null, fetched: now() });
          this.#failures.delete(name);
          return null;
        }
        const count = (this.#failures.get(name)?.count ?? 0) + 1;
        const max = this.#o.backoffMaxMs ?? 30_000;
        const d = Math.min(max, (this.#o.backoffMinMs ?? 1000) * 2 ** (count - 1));
        const delay = Math.round(d / 2 + (this.#o.random ?? Math.random)() * d / 2);
        this.#failures.set(name, { count, retryAt: now() + delay });
        if (cached === undefined) throw err;
        const props = { role: name, reason: messageOf(err), delay };
        const text =
          "Using cached role {role}: auth is unreachable ({reason}); asking again in {delay} ms";
        if (count === 1) this.#o.logger.warn(text, props);
        else this.#o.logger.debug(text, props);
        return cached.role;
      } finally {
        this.#inflight.delete(name);
      }
    })();
    this.#inflight.set(name, p);
    return p;
  }
}

/** Equal policies (revisions aside). */
function sameRole(a: Role | null, b: Role | null): boolean {
  const text = (r: Role | null) =>
    r === null ? "null" : JSON.stringify({ ...r, metadata: { ...r.metadata, revision: "" } });
  return text(a) === text(b);
}
