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
 */
import type { Clock } from "../clock/mod.ts";
import { isKind, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Resource, ServerResource } from "../resource/mod.ts";
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

  constructor(o: NodeRegistryOptions) {
    this.#o = o;
  }

  #now(): number {
    return this.#o.clock.now().getTime();
  }

  /** Current nodes (refreshed when stale). */
  async nodes(): Promise<ServerResource[]> {
    if (this.#now() - this.#fetchedAt < (this.#o.ttlMs ?? 5000)) return this.#nodes;
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
      try {
        this.#nodes = nodesOf(await this.#o.list());
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
      }
      return this.#nodes;
    })();
    return this.#inflight;
  }
}
