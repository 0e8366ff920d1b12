/**
 * A {@linkcode Backend} that reports every call to a metrics registry, under Teleport's names
 * (`teleport_backend_*`): requests and failures per kind of call, latency histograms, and
 * write requests that failed a precondition (the item exists, is missing, or changed), which
 * are expected outcomes rather than failures of the backend.
 *
 * | call | kind |
 * |---|---|
 * | get | read |
 * | getRange | batch_read |
 * | create, put, update, delete, keepAlive | write |
 * | deleteRange | batch_write |
 * | compareAndSwap | atomic_write |
 *
 * @module
 */
import { isKind } from "../errors/mod.ts";
import type { Counter, Histogram, MetricsRegistry } from "../metrics/mod.ts";
import type {
  Backend,
  BackendEvent,
  GetRangeOptions,
  Item,
  ItemInput,
  Key,
  KeyRange,
  WatchOptions,
} from "./backend.ts";

/** The kinds of backend call, as Teleport's backend metrics name them. */
export type BackendRequestKind = "read" | "batch_read" | "write" | "batch_write" | "atomic_write";

const KINDS: readonly BackendRequestKind[] = [
  "read",
  "batch_read",
  "write",
  "batch_write",
  "atomic_write",
];

const KIND_TEXT: Record<BackendRequestKind, string> = {
  read: "reads",
  batch_read: "range reads",
  write: "writes",
  batch_write: "range deletes",
  atomic_write: "compare-and-swap writes",
};

/** Options of {@linkcode ReportingBackend}. */
export interface ReportingBackendOptions {
  metrics: MetricsRegistry;
  /** Value of the `component` label. @default {"backend"} */
  component?: string;
}

interface KindMetrics {
  requests: Counter;
  failed: Counter;
  seconds: Histogram;
}

/** Wraps a backend and reports each call; see the module doc. */
export class ReportingBackend implements Backend {
  readonly #inner: Backend;
  readonly #labels: { component: string };
  readonly #kinds: Record<BackendRequestKind, KindMetrics>;
  readonly #precondition: Counter;

  constructor(inner: Backend, o: ReportingBackendOptions) {
    this.#inner = inner;
    this.#labels = { component: o.component ?? "backend" };
    const labelNames = ["component"];
    const m = o.metrics;
    this.#kinds = Object.fromEntries(KINDS.map((k) => [k, {
      requests: m.counter({
        name: `teleport_backend_${k}_requests_total`,
        help: `Backend ${KIND_TEXT[k]} requested`,
        labelNames,
      }),
      failed: m.counter({
        name: `teleport_backend_${k}_requests_failed_total`,
        help: `Backend ${KIND_TEXT[k]} that failed`,
        labelNames,
      }),
      seconds: m.histogram({
        name: `teleport_backend_${k}_seconds`,
        help: `Latency of backend ${KIND_TEXT[k]} in seconds`,
        labelNames,
      }),
    }])) as Record<BackendRequestKind, KindMetrics>;
    this.#precondition = m.counter({
      name: "teleport_backend_write_requests_failed_precondition_total",
      help:
        "Backend writes refused by their precondition (item exists, is missing, or changed): expected outcomes, not failures",
      labelNames,
    });
    // Every series exists from the start, so a dashboard sees 0 rather than no data.
    for (const k of KINDS) {
      this.#kinds[k].requests.inc(this.#labels, 0);
      this.#kinds[k].failed.inc(this.#labels, 0);
    }
    this.#precondition.inc(this.#labels, 0);
  }

  async #report<T>(kind: BackendRequestKind, call: () => Promise<T>): Promise<T> {
    const m = this.#kinds[kind];
    m.requests.inc(this.#labels);
    const start = performance.now();
    try {
      return await call();
    } catch (err) {
      if (isPrecondition(kind, err)) this.#precondition.inc(this.#labels);
      else if (!(kind === "read" && isKind(err, "NotFound"))) m.failed.inc(this.#labels);
      throw err;
    } finally {
      m.seconds.observe((performance.now() - start) / 1000, this.#labels);
    }
  }

  get(key: Key): Promise<Item> {
    return this.#report("read", () => this.#inner.get(key));
  }
  getRange(range: KeyRange, opts?: GetRangeOptions): Promise<Item[]> {
    return this.#report("batch_read", () => this.#inner.getRange(range, opts));
  }
  create(item: ItemInput): Promise<Item> {
    return this.#report("write", () => this.#inner.create(item));
  }
  put(item: ItemInput): Promise<Item> {
    return this.#report("write", () => this.#inner.put(item));
  }
  update(item: ItemInput): Promise<Item> {
    return this.#report("write", () => this.#inner.update(item));
  }
  compareAndSwap(expectedRevision: string, item: ItemInput): Promise<Item> {
    return this.#report("atomic_write", () => this.#inner.compareAndSwap(expectedRevision, item));
  }
  delete(key: Key): Promise<void> {
    return this.#report("write", () => this.#inner.delete(key));
  }
  deleteRange(range: KeyRange): Promise<number> {
    return this.#report("batch_write", () => this.#inner.deleteRange(range));
  }
  keepAlive(key: Key, expires: Date): Promise<Item> {
    return this.#report("write", () => this.#inner.keepAlive(key, expires));
  }
  watch(opts: WatchOptions): AsyncIterable<BackendEvent> {
    return this.#inner.watch(opts);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A write refused by its own condition (exists / missing / changed). */
function isPrecondition(kind: BackendRequestKind, err: unknown): boolean {
  if (kind === "read" || kind === "batch_read") return false;
  return isKind(err, "AlreadyExists") || isKind(err, "NotFound") || isKind(err, "CompareFailed");
}
