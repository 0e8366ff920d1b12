/**
 * The proxy's view of the registered nodes: the auth service's node list,
 * refreshed at most every `ttlMs`, and once more on a miss (a node that just
 * joined is reachable without waiting). When auth is unreachable the last list
 * keeps serving.
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
}

/** A cached node list with resolution by UUID, name or address. */
export class NodeRegistry {
  readonly #o: NodeRegistryOptions;
  #nodes: ServerResource[] = [];
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<ServerResource[]> | undefined;

  constructor(o: NodeRegistryOptions) {
    this.#o = o;
  }

  /** Current nodes (refreshed when stale). */
  async nodes(): Promise<ServerResource[]> {
    if (this.#o.clock.now().getTime() - this.#fetchedAt < (this.#o.ttlMs ?? 5000)) {
      return this.#nodes;
    }
    return await this.#refresh();
  }

  /** The node a client means; see {@link resolveNode}. */
  async resolve(host: string, port: number): Promise<ServerResource> {
    try {
      return resolveNode(await this.nodes(), host, port);
    } catch (err) {
      const age = this.#o.clock.now().getTime() - this.#fetchedAt;
      if (!isKind(err, "NotFound") || age < (this.#o.missRefreshMs ?? 1000)) throw err;
      return resolveNode(await this.#refresh(), host, port);
    }
  }

  #refresh(): Promise<ServerResource[]> {
    this.#inflight ??= (async () => {
      try {
        this.#nodes = nodesOf(await this.#o.list());
        this.#fetchedAt = this.#o.clock.now().getTime();
      } catch (err) {
        if (this.#fetchedAt === Number.NEGATIVE_INFINITY) throw err;
        this.#o.logger.warn(
          "Cannot refresh the node list from auth, using the last one: {reason}",
          {
            reason: messageOf(err),
          },
        );
      } finally {
        this.#inflight = undefined;
      }
      return this.#nodes;
    })();
    return this.#inflight;
  }
}
