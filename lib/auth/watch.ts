/**
 * Resource watches for the auth API (`GET /v1/watch?kinds=cert_authority,role,node`):
 * Teleport's event stream, so proxies and nodes keep caches current without polling.
 *
 * One backend watch per auth server feeds every client stream. A stream is NDJSON, one event a
 * line: first `{"type":"init"}` (the client reloads its view once), then `put` and `delete`
 * events of the kinds asked for, in commit order, and `{"type":"keepalive"}` every
 * `keepAliveMs` so that either side notices a dead connection. A resync of the backend's feed
 * becomes a new `init` for every client. Bounded: each stream queues at most `queueLimit`
 * events (a client that does not read them is cut and reconnects), at most `maxWatchers`
 * streams are open, and {@link WatchHub.close} (drain start, shutdown) ends them all so
 * clients reconnect to another auth server.
 */
import {
  BadParameterError,
  ConnectionProblemError,
  LimitExceededError,
  messageOf,
} from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { type ResourceEvent, WATCH_KINDS, type WatchKind } from "../resource/mod.ts";
import type { AuthServer } from "./server.ts";

/** Options of {@link WatchHub}. */
export interface WatchHubOptions {
  server: AuthServer;
  logger: Logger;
  /** Most streams open at once; over it a client gets 429. @default {20000} */
  maxWatchers?: number;
  /** Most events waiting for one client; over it the stream is cut. @default {4096} */
  queueLimit?: number;
  /** Interval of keep-alive lines. @default {10000} */
  keepAliveMs?: number;
}

/** The content type of a watch stream. */
export const WATCH_CONTENT_TYPE = "application/x-ndjson";

const enc = new TextEncoder();

interface Watcher {
  kinds: ReadonlySet<WatchKind>;
  controller: ReadableStreamDefaultController<Uint8Array>;
  /** Told `init` already (events go out only after it). */
  initialized: boolean;
}

/** The kinds of a watch request (`kinds=a,b`); every watchable kind when absent. */
export function parseWatchKinds(text: string | null): WatchKind[] {
  if (text === null || text === "") return [...WATCH_KINDS];
  const out: WatchKind[] = [];
  for (const part of text.split(",")) {
    const kind = part.trim();
    if (!(WATCH_KINDS as readonly string[]).includes(kind)) {
      throw new BadParameterError(
        `Cannot watch resources: "${kind}" is not a watchable kind; use ${WATCH_KINDS.join(", ")}`,
      );
    }
    if (!out.includes(kind as WatchKind)) out.push(kind as WatchKind);
  }
  return out;
}

/** Every open watch stream of one auth API listener, fed by one backend watch. */
export class WatchHub {
  readonly #o: WatchHubOptions;
  readonly #watchers = new Set<Watcher>();
  #feed: AbortController | undefined;
  /** The backend watch delivered its first `init`: new streams may start with theirs. */
  #feedReady = false;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(o: WatchHubOptions) {
    this.#o = o;
  }

  /** Streams open now. */
  get size(): number {
    return this.#watchers.size;
  }

  /**
   * A new stream of `kinds` (the caller is authorized already); LimitExceededError when
   * `maxWatchers` are open, ConnectionProblemError once the hub is closed (a draining server).
   */
  open(kinds: readonly WatchKind[]): Response {
    if (this.#closed) {
      throw new ConnectionProblemError(
        "Cannot watch resources: this auth server is shutting down; connect again",
      );
    }
    const max = this.#o.maxWatchers ?? 20_000;
    if (this.#watchers.size >= max) {
      throw new LimitExceededError(
        `Cannot watch resources: this auth server serves ${max} watches already; try again later`,
      );
    }
    let watcher: Watcher | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        watcher = { kinds: new Set(kinds), controller, initialized: false };
        this.#watchers.add(watcher);
        if (this.#feedReady) this.#send(watcher, { type: "init" });
      },
      cancel: () => {
        if (watcher !== undefined) this.#watchers.delete(watcher);
      },
    }, new CountQueuingStrategy({ highWaterMark: this.#o.queueLimit ?? 4096 }));
    this.#startFeed();
    return new Response(body, {
      headers: { "content-type": WATCH_CONTENT_TYPE, "cache-control": "no-store" },
    });
  }

  /** Ends every stream and refuses new ones. Idempotent. */
  /**
   * Ends every open stream; their clients reconnect (with the certificates they hold now) and
   * start over with `init`. New streams are welcome.
   */
  endAll(): void {
    for (const w of [...this.#watchers]) this.#end(w);
  }

  close(): void {
    this.#closed = true;
    this.#feed?.abort();
    clearInterval(this.#keepAlive);
    for (const w of this.#watchers) this.#end(w);
  }

  #startFeed(): void {
    if (this.#feed !== undefined) return;
    const ac = new AbortController();
    this.#feed = ac;
    this.#keepAlive = setInterval(() => {
      for (const w of this.#watchers) if (w.initialized) this.#line(w, { type: "keepalive" });
    }, this.#o.keepAliveMs ?? 10_000);
    void (async () => {
      try {
        for await (const ev of this.#o.server.watchResources(WATCH_KINDS, ac.signal)) {
          if (ev.type === "init") {
            if (this.#feedReady) {
              this.#o.logger.info(
                "The backend's change feed resynced; {count} watch clients reload",
                { count: this.#watchers.size },
              );
            }
            this.#feedReady = true;
          }
          for (const w of this.#watchers) this.#send(w, ev);
        }
      } catch (err) {
        if (!ac.signal.aborted) {
          this.#o.logger.warn("The backend watch behind resource watches failed: {reason}", {
            reason: messageOf(err),
          });
        }
      }
      if (ac.signal.aborted) return;
      // The backend closed its watch: end the streams (their clients reconnect and get `init`
      // from a new feed).
      clearInterval(this.#keepAlive);
      this.#feed = undefined;
      this.#feedReady = false;
      for (const w of this.#watchers) this.#end(w);
    })();
  }

  #send(w: Watcher, ev: ResourceEvent): void {
    if (ev.type === "init") {
      w.initialized = true;
      this.#line(w, ev);
      return;
    }
    if (!w.initialized) return;
    const kind = ev.type === "put" ? ev.resource.kind : ev.type === "delete" ? ev.kind : undefined;
    if (kind === undefined || !w.kinds.has(kind as WatchKind)) return;
    this.#line(w, ev);
  }

  #line(w: Watcher, value: unknown): void {
    try {
      w.controller.enqueue(enc.encode(JSON.stringify(value) + "\n"));
    } catch {
      // Closed or cancelled meanwhile.
      this.#watchers.delete(w);
      return;
    }
    if ((w.controller.desiredSize ?? 1) < 0) {
      this.#watchers.delete(w);
      this.#o.logger.warn(
        "Cut a resource watch: its client left {limit} events unread; it reconnects and reloads",
        { limit: this.#o.queueLimit ?? 4096 },
      );
      w.controller.error(
        new LimitExceededError("Cannot deliver resource events: the client does not read them"),
      );
    }
  }

  #end(w: Watcher): void {
    this.#watchers.delete(w);
    try {
      w.controller.close();
    } catch {
      // Already closed, errored or cancelled.
    }
  }
}
