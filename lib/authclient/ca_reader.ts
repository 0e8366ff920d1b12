/**
 * One read of both certificate authorities for every reader in a process. A node process
 * follows the CAs in three loops (user CA keys, host CA keys, host CA rotation), each once a
 * minute; reading each CA on its own costs auth three requests per node per minute, which at
 * a thousand nodes is most of auth's load. {@link CaReader} answers all of them from one
 * `GET /v1/resources/cert_authority` at most every `ttlMs`; concurrent readers share the
 * request in flight, and a failed read is not kept (the next reader asks again).
 */
import type { Clock } from "../clock/mod.ts";
import { NotFoundError } from "../errors/mod.ts";
import type { Resource } from "../resource/mod.ts";

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
}

/** Reads the host or user CA from a shared, briefly cached listing. */
export class CaReader {
  readonly #o: CaReaderOptions;
  #listing: { at: number; items: Resource[] } | undefined;
  #inflight: Promise<Resource[]> | undefined;

  constructor(o: CaReaderOptions) {
    this.#o = o;
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
    if (this.#listing !== undefined && now - this.#listing.at < (this.#o.ttlMs ?? 5000)) {
      return Promise.resolve(this.#listing.items);
    }
    this.#inflight ??= this.#o.list().then((items) => {
      this.#listing = { at: this.#o.clock.now().getTime(), items };
      return items;
    }).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }
}
