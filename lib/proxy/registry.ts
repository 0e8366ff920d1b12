/**
 * The proxy's view of the registered nodes: the auth service's node list,
 * refreshed at most every `ttlMs`, and once more on a miss (a node that just
 * joined is reachable without waiting). When auth is unreachable the last list
 * keeps serving: a failed refresh is not tried again before a jittered backoff
 * (1 s doubling to 30 s) passes, so an outage costs auth one request per
 * backoff period instead of one per client, and a client of a node in the last
 * list waits at most `staleWaitMs` for a refresh that hangs (a vanished auth
 * host) before that list answers it; a client of a node missing from it waits
 * for the refresh.
 *
 * With a resource watch (`watch`), the list follows node events while the watch is healthy
 * (read once per `init`, no refresh by age; a miss still refreshes, at most every
 * `missRefreshMs`); nodes whose heartbeat expired are left out (expiry sends no event). While
 * the watch is down the list is refreshed by age as above.
 */
import type { Clock } from "../clock/mod.ts";
import { isKind, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type {
  Resource,
  ResourceEvent,
  ResourceEventSource,
  ServerResource,
} from "../resource/mod.ts";
import { nodesOf, resolveNode } from "./resolve.ts";

/** Inputs of {@link NodeRegistry}. */
export interface NodeRegistryOptions {
  /** Reads the node list from auth. */
  list: () => Promise<Resource[]>;
  clock: Clock;
  logger: Logger;
  /** Age after which the list is read again. @default {5000} */
  ttlMs?: number;
  /** Shortest interval between two refreshes forced by misses. @default {1000} */
  missRefreshMs?: number;
  /**
   * With a list at hand, how long a caller waits for a refresh before the last list answers
   * it (the refresh goes on in the background).
   * @default {2000}
   */
  staleWaitMs?: number;
  /** First and longest wait before a failed refresh is tried again. @default {1000, 30000} */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Random source in [0, 1) for the backoff jitter. @default {Math.random} */
  random?: () => number;
  /** Node events that keep the list current. @default {none: the list is polled} */
  watch?: ResourceEventSource;
  /** Told after an event or a reload changed the list (tests wait for it). */
  onChange?: () => void;
}

/** A cached node list with resolution by UUID, name or address. */
export class NodeRegistry {
  readonly #o: NodeRegistryOptions;
  #nodes: ServerResource[] = [];
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<ServerResource[]> | undefined;
  /** Consecutive failed refreshes, and when the next may start. */
  #failures = 0;
  #retryAt = Number.NEGATIVE_INFINITY;
  /** The list follows the watch (healthy, and read since its last `init`). */
  #watched = false;
  #inits = 0;
  /** The `init` the next listing answers: once read, the list follows the watch. */
  #reloadFor: number | undefined;
  /** Events that came while a refresh was in flight, applied on top of its answer. */
  #pending: ResourceEvent[] | undefined;

  constructor(o: NodeRegistryOptions) {
    this.#o = o;
    o.watch?.subscribe((ev) => this.#onEvent(ev));
  }

  #onEvent(ev: ResourceEvent): void {
    if (ev.type === "lost") {
      this.#watched = false;
      return;
    }
    if (ev.type === "init") {
      this.#watched = false;
      const inits = ++this.#inits;
      // Joins the refresh in flight, if any: its answer may predate the watch, so read again.
      void (async () => {
        try {
          await this.#inflight;
        } catch {
          // Its failure is logged where it happened.
        }
        if (inits !== this.#inits) return;
        this.#reloadFor = inits;
        await this.#refresh().catch(() => {});
      })();
      return;
    }
    if ((ev.type === "put" ? ev.resource.kind : ev.kind) !== "node") return;
    if (this.#pending !== undefined) this.#pending.push(ev);
    this.#apply(ev);
    this.#o.onChange?.();
  }

  #apply(ev: ResourceEvent): void {
    if (ev.type === "put") {
      const node = ev.resource as ServerResource;
      const i = this.#nodes.findIndex((n) => n.metadata.name === node.metadata.name);
      this.#nodes = i < 0 ? [...this.#nodes, node] : this.#nodes.map((n, j) => j === i ? node : n);
    } else if (ev.type === "delete") {
      this.#nodes = this.#nodes.filter((n) => n.metadata.name !== ev.name);
    }
  }

  /** The list without nodes whose heartbeat expired. */
  #live(): ServerResource[] {
    const now = this.#now();
    if (!this.#nodes.some((n) => expiresAt(n) <= now)) return this.#nodes;
    this.#nodes = this.#nodes.filter((n) => expiresAt(n) > now);
    return this.#nodes;
  }

  #now(): number {
    return this.#o.clock.now().getTime();
  }

  /** Current nodes (refreshed when stale). */
  async nodes(): Promise<ServerResource[]> {
    if (this.#watched || this.#now() - this.#fetchedAt < (this.#o.ttlMs ?? 5000)) {
      return this.#live();
    }
    return await this.#refreshOrStale();
  }

  /** The node a client means; see {@link resolveNode}. */
  async resolve(host: string, port: number): Promise<ServerResource> {
    try {
      return resolveNode(await this.nodes(), host, port);
    } catch (err) {
      const age = this.#now() - this.#fetchedAt;
      if (!isKind(err, "NotFound") || age < (this.#o.missRefreshMs ?? 1000)) throw err;
      // The last list lacks the node: only a refresh can help, so wait for it (a node that just
      // joined), unless auth failed moments ago.
      if (this.#now() < this.#retryAt) throw err;
      return resolveNode(await this.#refresh(), host, port);
    }
  }

  /**
   * A refresh's result; with a list at hand, that list instead while a failed refresh backs
   * off, or once `staleWaitMs` passed.
   */
  async #refreshOrStale(): Promise<ServerResource[]> {
    const have = this.#fetchedAt !== Number.NEGATIVE_INFINITY;
    if (have && this.#now() < this.#retryAt) return this.#nodes;
    const refresh = this.#refresh();
    if (!have) return await refresh;
    const ac = new AbortController();
    try {
      return await Promise.race([
        refresh,
        // Aborted once the race is decided: either way the answer is the list at hand.
        this.#o.clock.sleep(this.#o.staleWaitMs ?? 2000, ac.signal).then(
          () => this.#nodes,
          () => this.#nodes,
        ),
      ]);
    } finally {
      ac.abort();
    }
  }

  #refresh(): Promise<ServerResource[]> {
    this.#inflight ??= (async () => {
      this.#pending = [];
      try {
        const reloadFor = this.#reloadFor;
        this.#nodes = nodesOf(await this.#o.list());
        for (const ev of this.#pending) this.#apply(ev);
        if (reloadFor !== undefined && reloadFor === this.#inits) {
          this.#watched = this.#o.watch?.healthy === true;
          this.#reloadFor = undefined;
        }
        this.#o.onChange?.();
        this.#fetchedAt = this.#now();
        this.#failures = 0;
        this.#retryAt = Number.NEGATIVE_INFINITY;
      } catch (err) {
        this.#failures++;
        const max = this.#o.backoffMaxMs ?? 30_000;
        const d = Math.min(max, (this.#o.backoffMinMs ?? 1000) * 2 ** (this.#failures - 1));
        const delay = Math.round(d / 2 + (this.#o.random ?? Math.random)() * d / 2);
        this.#retryAt = this.#now() + delay;
        if (this.#fetchedAt === Number.NEGATIVE_INFINITY) throw err;
        const props = { reason: messageOf(err), failures: this.#failures, delay };
        const text =
          "Cannot refresh the node list from auth (attempt {failures}), using the last one and trying again in {delay} ms: {reason}";
        if (this.#failures === 1) this.#o.logger.warn(text, props);
        else this.#o.logger.debug(text, props);
      } finally {
        this.#inflight = undefined;
        this.#pending = undefined;
      }
      return this.#nodes;
    })();
    return this.#inflight;
  }
}

function expiresAt(n: ServerResource): number {
  const e = n.metadata.expires;
  return e === undefined ? Number.POSITIVE_INFINITY : Date.parse(e);
}
