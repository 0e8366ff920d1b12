/**
 * Roles by name as the node last saw them. Fresh entries are served from memory;
 * stale ones are refreshed from auth, and kept when auth cannot be reached, so
 * logins keep working through an auth outage (with the last known policy).
 */
import type { Clock } from "../clock/mod.ts";
import { isKind, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Role } from "../resource/mod.ts";

/** Inputs of {@link RoleCache}. */
export interface RoleCacheOptions {
  /** Reads one role from auth. */
  fetch: (name: string) => Promise<Role>;
  clock: Clock;
  logger: Logger;
  /** How long a fetched role is used without asking auth again. @default {30000} */
  ttlMs?: number;
}

/** A read-through cache of roles. */
export class RoleCache {
  readonly #o: RoleCacheOptions;
  readonly #entries = new Map<string, { role: Role | null; fetched: number }>();

  constructor(o: RoleCacheOptions) {
    this.#o = o;
  }

  /** The roles that exist among `names` (missing roles are left out, with a warning). */
  async get(names: string[]): Promise<Role[]> {
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
    if (cached !== undefined && now - cached.fetched < (this.#o.ttlMs ?? 30_000)) {
      return cached.role;
    }
    try {
      const role = await this.#o.fetch(name);
      this.#entries.set(name, { role, fetched: now });
      return role;
    } catch (err) {
      if (isKind(err, "NotFound")) {
        this.#o.logger.warn("Certificate names role {role}, which does not exist", { role: name });
        this.#entries.set(name, { role: null, fetched: now });
        return null;
      }
      if (cached !== undefined) {
        this.#o.logger.warn("Using cached role {role}: auth is unreachable ({reason})", {
          role: name,
          reason: messageOf(err),
        });
        return cached.role;
      }
      throw err;
    }
  }
}
