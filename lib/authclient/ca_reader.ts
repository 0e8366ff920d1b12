/**
 * One read of both certificate authorities for every reader in a process. A node process
 * follows the CAs in three loops (user CA keys, host CA keys, host CA rotation), each once a
 * minute; reading each CA on its own costs auth three requests per node per minute, which at
 * a thousand nodes is most of auth's load. {@link CaReader} answers all of them from one
 * `GET /v1/resources/cert_authority` at most every `ttlMs`; concurrent readers share the
 * request in flight, and a failed read is not kept (the next reader asks again).
 *
 * With a resource watch (`watch`, see {@link ResourceFeed}) the listing follows CA events
 * instead: it is read once after each `init` (by the next reader) and then only every
 * `watchedTtlMs` (a safety re-read),
 * so a node's CA loops stop costing auth requests while the watch is healthy, and a rotation
 * reaches `onChange` as soon as auth writes it. While the watch is down, `ttlMs` applies again.
 */
import type { Clock } from "../clock/mod.ts";
import { NotFoundError } from "../errors/mod.ts";
import type { Resource, ResourceEvent, ResourceEventSource } from "../resource/mod.ts";

/** Options of {@link CaReader}. */
export interface CaReaderOptions {
  /** Lists the CAs (`AuthClient.listResources("cert_authority")`). */
  list: () => Promise<Resource[]>;
  clock: Clock;
  /** Only CAs of this cluster (`spec.cluster_name`). @default {any cluster} */
  clusterName?: string;
  /**
   * How long one listing answers readers. Readers in the same minute loop run within
   * milliseconds of each other; a few seconds keep them on one request.
   * @default {5000}
   */
  ttlMs?: number;
  /** CA events that keep the listing current. @default {none: the listing is polled} */
  watch?: ResourceEventSource;
  /**
   * With a healthy watch, how long one listing answers readers (less up to a seventh, at
   * random).
   * @default {600000}
   */
  watchedTtlMs?: number;
  /** Told after an event or a reload changed a CA (a rotation): readers should read again. */
  onChange?: () => void;
  /** Random source in [0, 1) for the jitter. @default {Math.random} */
  random?: () => number;
}

/** Reads the host or user CA from a shared, briefly cached listing. */
export class CaReader {
  readonly #o: CaReaderOptions;
  #listing: { at: number; ttl: number; items: Resource[] } | undefined;
  #inflight: Promise<Resource[]> | undefined;
  /** Events that came while a listing was in flight, applied on top of it. */
  #pending: ResourceEvent[] | undefined;
  /** The listing at hand was read after the watch's last `init` and the watch is healthy. */
  #watched = false;
  /** Counts `init`s, so a listing started before the last one does not count as watched. */
  #inits = 0;

  constructor(o: CaReaderOptions) {
    this.#o = o;
    o.watch?.subscribe((ev) => this.#onEvent(ev));
  }

  /** The CA of `type` (`spec.type`), as `getResource("cert_authority", type)` returns it. */
  async read(type: "host" | "user"): Promise<Resource> {
    const cluster = this.#o.clusterName;
    const found = (await this.#items()).find((r) => {
      const spec = r.spec as { type?: string; cluster_name?: string };
      return r.kind === "cert_authority" && spec.type === type &&
        (cluster === undefined || spec.cluster_name === cluster);
    });
    if (found === undefined) {
      throw new NotFoundError(`Cannot read the ${type} certificate authority: auth listed none`);
    }
    return found;
  }

  #items(): Promise<Resource[]> {
    const now = this.#o.clock.now().getTime();
    if (this.#listing !== undefined && now - this.#listing.at < this.#listing.ttl) {
      return Promise.resolve(this.#listing.items);
    }
    return this.#load();
  }

  #load(): Promise<Resource[]> {
    if (this.#inflight !== undefined) return this.#inflight;
    const inits = this.#inits;
    this.#pending = [];
    this.#inflight = this.#o.list().then((items) => {
      const before = this.#listing?.items;
      this.#watched = this.#o.watch?.healthy === true && inits === this.#inits;
      const ttl = this.#watched
        ? Math.round(
          (this.#o.watchedTtlMs ?? 600_000) * (1 - (this.#o.random ?? Math.random)() / 7),
        )
        : this.#o.ttlMs ?? 5000;
      this.#listing = { at: this.#o.clock.now().getTime(), ttl, items };
      for (const ev of this.#pending ?? []) this.#apply(ev);
      if (before !== undefined && revisions(before) !== revisions(this.#listing.items)) {
        this.#o.onChange?.();
      }
      return this.#listing.items;
    }).finally(() => {
      this.#inflight = undefined;
      this.#pending = undefined;
    });
    return this.#inflight;
  }

  #onEvent(ev: ResourceEvent): void {
    if (ev.type === "init") {
      this.#inits++;
      this.#watched = false;
      // One listing per init, by the next reader (the CA loops read every minute, at random
      // points, so a fleet that reconnects at once does not list at once); from then on the
      // listing follows the watch.
      if (this.#listing !== undefined) this.#listing.ttl = 0;
      return;
    }
    if (ev.type === "lost") {
      this.#watched = false;
      if (this.#listing !== undefined) this.#listing.ttl = this.#o.ttlMs ?? 5000;
      return;
    }
    if (ev.type === "put" ? ev.resource.kind !== "cert_authority" : ev.kind !== "cert_authority") {
      return;
    }
    if (this.#pending !== undefined) this.#pending.push(ev);
    if (this.#listing !== undefined && this.#apply(ev)) this.#o.onChange?.();
  }

  /** Applies a CA event to the listing; true when it changed a CA. */
  #apply(ev: ResourceEvent): boolean {
    const listing = this.#listing;
    if (listing === undefined) return false;
    const key = (r: Resource) => (r.spec as { type?: string }).type;
    if (ev.type === "put") {
      const type = key(ev.resource);
      const i = listing.items.findIndex((r) =>
        key(r) === type &&
        (r.spec as { cluster_name?: string }).cluster_name ===
          (ev.resource.spec as { cluster_name?: string }).cluster_name
      );
      if (i >= 0 && listing.items[i]!.metadata.revision === ev.resource.metadata.revision) {
        return false;
      }
      listing.items = i < 0
        ? [...listing.items, ev.resource]
        : listing.items.map((r, j) => j === i ? ev.resource : r);
      return true;
    }
    if (ev.type === "delete") {
      const items = listing.items.filter((r) => key(r) !== ev.name);
      const changed = items.length !== listing.items.length;
      listing.items = items;
      return changed;
    }
    return false;
  }
}

function revisions(items: Resource[]): string {
  return items.map((r) => r.metadata.revision ?? JSON.stringify(r.spec)).join(",");
}
