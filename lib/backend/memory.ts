/** In-process backend: a sorted map with in-process watchers. For tests and single-node demos. */

import { type Clock, RealClock } from "../clock/mod.ts";
import {
  AlreadyExistsError,
  CompareFailedError,
  ConnectionProblemError,
  NotFoundError,
} from "../errors/mod.ts";
import {
  type Backend,
  type BackendEvent,
  type GetRangeOptions,
  hasPrefix,
  type Item,
  type ItemInput,
  type Key,
  type KeyRange,
  type WatchOptions,
} from "./backend.ts";
import { encodeKey, encodeRange } from "./_key_codec.ts";
import { WatchQueue } from "./_watch_queue.ts";
import {
  isExpired,
  notFoundError,
  quoteKey,
  validateExpires,
  validateInput,
  validateKey,
  validateRange,
  validateWatch,
} from "./_validate.ts";

/** Options of {@link MemoryBackend}. */
export interface MemoryBackendOptions {
  /**
   * Clock for expiry checks.
   *
   * @default {new RealClock()}
   */
  clock?: Clock;
}

interface Entry {
  key: Key;
  value: Uint8Array;
  expires?: number;
  revision: string;
}

/** Writes between two sweeps of expired entries. */
const SWEEP_EVERY_WRITES = 1024;

/**
 * A {@link Backend} held in memory: a sorted array of encoded keys plus a map of entries.
 * Every operation runs synchronously inside its call, so concurrent callers cannot interleave.
 * Expired entries are filtered on read and swept every {@link SWEEP_EVERY_WRITES} writes.
 */
export class MemoryBackend implements Backend {
  #clock: Clock;
  #sorted: string[] = [];
  #entries = new Map<string, Entry>();
  #watchers = new Set<WatchQueue>();
  #lastRevision = 0;
  #writes = 0;
  #closed = false;

  constructor(options: MemoryBackendOptions = {}) {
    this.#clock = options.clock ?? new RealClock();
  }

  get(key: Key): Promise<Item> {
    return this.#run("get item", () => {
      validateKey(key, "get item");
      const entry = this.#live(encodeKey(key));
      if (entry === undefined) throw notFoundError("get", key);
      return toItem(entry);
    });
  }

  getRange(range: KeyRange, opts: GetRangeOptions = {}): Promise<Item[]> {
    return this.#run("get range", () => {
      const limit = validateRange(range, opts, "get range");
      const { start, end } = encodeRange(range);
      const now = this.#now();
      const items: Item[] = [];
      for (let i = this.#lowerBound(start); i < this.#sorted.length; i++) {
        const enc = this.#sorted[i]!;
        if (enc >= end) break;
        const entry = this.#entries.get(enc)!;
        if (isExpired(entry.expires, now)) continue;
        items.push(toItem(entry));
        if (items.length === limit) break;
      }
      return items;
    });
  }

  create(input: ItemInput): Promise<Item> {
    return this.#run("create item", () => {
      validateInput(input, "create");
      const enc = encodeKey(input.key);
      if (this.#live(enc) !== undefined) {
        throw new AlreadyExistsError(
          `Cannot create item ${quoteKey(input.key)}: item already exists`,
        );
      }
      return this.#write(enc, input);
    });
  }

  put(input: ItemInput): Promise<Item> {
    return this.#run("put item", () => {
      validateInput(input, "put");
      return this.#write(encodeKey(input.key), input);
    });
  }

  update(input: ItemInput): Promise<Item> {
    return this.#run("update item", () => {
      validateInput(input, "update");
      const enc = encodeKey(input.key);
      if (this.#live(enc) === undefined) throw notFoundError("update", input.key);
      return this.#write(enc, input);
    });
  }

  compareAndSwap(expectedRevision: string, input: ItemInput): Promise<Item> {
    return this.#run("compare and swap item", () => {
      validateInput(input, "compare and swap");
      const enc = encodeKey(input.key);
      const current = this.#live(enc);
      if (current === undefined) {
        throw new CompareFailedError(
          `Cannot compare and swap item ${quoteKey(input.key)}: item does not exist`,
        );
      }
      if (current.revision !== expectedRevision) {
        throw new CompareFailedError(
          `Cannot compare and swap item ${quoteKey(input.key)}: revision is ${
            JSON.stringify(current.revision)
          }, expected ${JSON.stringify(expectedRevision)}`,
        );
      }
      return this.#write(enc, input);
    });
  }

  delete(key: Key): Promise<void> {
    return this.#run("delete item", () => {
      validateKey(key, "delete item");
      const enc = encodeKey(key);
      const entry = this.#live(enc);
      if (entry === undefined) throw notFoundError("delete", key);
      this.#entries.delete(enc);
      this.#sorted.splice(this.#lowerBound(enc), 1);
      this.#notify(entry.key);
    });
  }

  deleteRange(range: KeyRange): Promise<number> {
    return this.#run("delete range", () => {
      validateRange(range, {}, "delete range");
      const { start, end } = encodeRange(range);
      const from = this.#lowerBound(start);
      const to = Math.max(from, this.#lowerBound(end));
      const now = this.#now();
      let deleted = 0;
      for (const enc of this.#sorted.splice(from, to - from)) {
        const entry = this.#entries.get(enc)!;
        this.#entries.delete(enc);
        if (isExpired(entry.expires, now)) continue;
        deleted++;
        this.#notify(entry.key);
      }
      return deleted;
    });
  }

  keepAlive(key: Key, expires: Date): Promise<Item> {
    return this.#run("keep item alive", () => {
      validateKey(key, "keep item alive");
      validateExpires(expires, `keep item ${quoteKey(key)} alive`);
      const enc = encodeKey(key);
      const current = this.#live(enc);
      if (current === undefined) {
        throw new NotFoundError(`Cannot keep item ${quoteKey(key)} alive: item does not exist`);
      }
      return this.#write(enc, { key: current.key, value: current.value, expires }, false);
    });
  }

  watch(opts: WatchOptions): AsyncIterable<BackendEvent> {
    validateWatch(opts);
    if (this.#closed) throw new ConnectionProblemError("Cannot watch backend: backend is closed");
    return this.#watch(opts.prefixes.map((p) => [...p]), opts.signal);
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const watcher of this.#watchers) watcher.stop();
    this.#watchers.clear();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async *#watch(prefixes: Key[], signal?: AbortSignal): AsyncGenerator<BackendEvent> {
    const watcher = new WatchQueue(prefixes);
    const onAbort = () => watcher.stop();
    if (signal?.aborted || this.#closed) return;
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#watchers.add(watcher);
    try {
      yield { type: "init" };
      yield* watcher.events();
    } finally {
      this.#watchers.delete(watcher);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  #run<T>(action: string, fn: () => T): Promise<T> {
    try {
      if (this.#closed) {
        throw new ConnectionProblemError(`Cannot ${action}: backend is closed`);
      }
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  /** The entry at `enc` unless it is absent or expired. */
  #live(enc: string): Entry | undefined {
    const entry = this.#entries.get(enc);
    if (entry === undefined || isExpired(entry.expires, this.#now())) return undefined;
    return entry;
  }

  /** Index of the first encoded key >= `enc`. */
  #lowerBound(enc: string): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#sorted[mid]! < enc) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #write(enc: string, input: ItemInput, copyValue = true): Item {
    const previous = this.#entries.get(enc);
    const entry: Entry = {
      key: previous?.key ?? Object.freeze([...input.key]),
      value: copyValue ? input.value.slice() : input.value,
      revision: (++this.#lastRevision).toString(16).padStart(16, "0"),
    };
    if (input.expires !== undefined) entry.expires = input.expires.getTime();
    if (previous === undefined) this.#sorted.splice(this.#lowerBound(enc), 0, enc);
    this.#entries.set(enc, entry);
    this.#notify(entry.key, entry);
    if (++this.#writes % SWEEP_EVERY_WRITES === 0) this.#sweep();
    return toItem(entry);
  }

  /** Queues a put (with `entry`) or delete event for every watcher of `key`. */
  #notify(key: Key, entry?: Entry): void {
    for (const watcher of this.#watchers) {
      if (watcher.done || !watcher.prefixes.some((p) => hasPrefix(key, p))) continue;
      watcher.push(
        entry === undefined ? { type: "delete", key } : { type: "put", item: toItem(entry) },
      );
    }
  }

  /** Drops expired entries (no events: expiry is not a delete). */
  #sweep(): void {
    const now = this.#now();
    const kept = this.#sorted.filter((enc) => {
      const entry = this.#entries.get(enc)!;
      if (!isExpired(entry.expires, now)) return true;
      this.#entries.delete(enc);
      return false;
    });
    this.#sorted = kept;
  }
}

function toItem(entry: Entry): Item {
  const item: Item = { key: entry.key, value: entry.value.slice(), revision: entry.revision };
  if (entry.expires !== undefined) item.expires = new Date(entry.expires);
  return item;
}
