/**
 * One resource watch per process, fanned out to its caches (Teleport's model: one event stream
 * per client, caches fed by it). The CA reader, role cache and node registry subscribe; the
 * feed keeps one {@link AuthClient.watch} running, reconnecting with backoff.
 */
import type { Logger } from "../log/mod.ts";
import type { ResourceEvent, ResourceEventSource, WatchKind } from "../resource/mod.ts";
import type { AuthClient } from "./client.ts";

/** Options of {@link ResourceFeed}. */
export interface ResourceFeedOptions {
  client: AuthClient;
  /** Kinds to watch (a node: `cert_authority`, `role`; a proxy also `node`). */
  kinds: readonly WatchKind[];
  logger: Logger;
  /** Stops the feed. */
  signal: AbortSignal;
  /** Time without a line (keep-alives come every 10 s) before the stream counts as dead. @default {35000} */
  idleTimeoutMs?: number;
  /** Random source in [0, 1) for the reconnect jitter. @default {Math.random} */
  random?: () => number;
}

/** A running watch whose events go to every subscriber. */
export class ResourceFeed implements ResourceEventSource {
  readonly #listeners = new Set<(event: ResourceEvent) => void>();
  readonly #logger: Logger;
  #healthy = false;
  /** Resolves when the feed's loop ended (its signal aborted). */
  readonly done: Promise<void>;

  constructor(o: ResourceFeedOptions) {
    this.#logger = o.logger;
    this.done = this.#run(o);
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** A subscriber that comes while the feed is healthy gets an `init` of its own first. */
  subscribe(listener: (event: ResourceEvent) => void): () => void {
    this.#listeners.add(listener);
    if (this.#healthy) {
      queueMicrotask(() => {
        if (this.#healthy && this.#listeners.has(listener)) listener({ type: "init" });
      });
    }
    return () => this.#listeners.delete(listener);
  }

  async #run(o: ResourceFeedOptions): Promise<void> {
    let lostLogged = false;
    for await (
      const ev of o.client.watch(o.kinds, {
        signal: o.signal,
        ...(o.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: o.idleTimeoutMs }),
        ...(o.random === undefined ? {} : { random: o.random }),
      })
    ) {
      if (ev.type === "init") {
        if (lostLogged) this.#logger.info("The resource watch on auth works again");
        lostLogged = false;
        this.#healthy = true;
      } else if (ev.type === "lost") {
        const props = { reason: ev.reason };
        const text = "The resource watch on auth is down, caches poll until it is back: {reason}";
        if (!lostLogged) this.#logger.warn(text, props);
        else this.#logger.debug(text, props);
        lostLogged = true;
        // Subscribers hear about a loss once, not once per failed attempt.
        if (!this.#healthy) continue;
        this.#healthy = false;
      }
      for (const l of this.#listeners) {
        try {
          l(ev);
        } catch (err) {
          this.#logger.error("A resource watch subscriber failed: {error}", { error: err });
        }
      }
    }
    this.#healthy = false;
  }
}
