/**
 * The storage abstraction every service writes through: a sorted key/value store with
 * revisions, compare-and-swap, TTLs and prefix watches. Implementations: memory (memory.ts),
 * Deno KV (kv.ts) and PostgreSQL (postgres.ts); all of them pass the conformance suite in
 * _suite.ts.
 */

import { encodeKey } from "./_key_codec.ts";

/**
 * A key: a list of non-empty string segments, e.g. `["users", "alice"]`.
 *
 * Keys sort segment by segment; segments compare by their UTF-8 bytes and a key that is a
 * prefix of another sorts first (the order Deno KV uses for string-only keys).
 */
export type Key = readonly string[];

/** A stored item as read back from a backend. */
export interface Item {
  /** The item's key. */
  key: Key;
  /** The item's value (at most {@link MAX_VALUE_BYTES} bytes). */
  value: Uint8Array;
  /** When the item expires; absent for items that never expire. */
  expires?: Date;
  /** Opaque revision; changes on every write of the item. */
  revision: string;
}

/** An item to write. */
export interface ItemInput {
  /** The item's key. */
  key: Key;
  /** The item's value (at most {@link MAX_VALUE_BYTES} bytes). */
  value: Uint8Array;
  /** When the item expires; omit for an item that never expires. */
  expires?: Date;
}

/**
 * A range of keys: every key under `prefix` (the prefix key itself included), or the keys
 * from `start` (inclusive) to `end` (exclusive).
 */
export type KeyRange = { prefix: Key } | { start: Key; end: Key };

/** Options of {@link Backend.getRange}. */
export interface GetRangeOptions {
  /**
   * The most items to return; 0 means no limit.
   *
   * @default {0}
   */
  limit?: number;
}

/** An event delivered by {@link Backend.watch}. */
export type BackendEvent =
  /**
   * First event of every watch: the watch is established. A network backend sends it again
   * after it lost and re-established its change feed (resync): events may have been missed,
   * so the watcher reloads its state as at the start.
   */
  | { type: "init" }
  /** An item was written (created, put, updated, swapped or kept alive). */
  | { type: "put"; item: Item }
  /** An item was deleted (expiry produces no event). */
  | { type: "delete"; key: Key };

/** Options of {@link Backend.watch}. */
export interface WatchOptions {
  /** Deliver events for keys under any of these prefixes; `[[]]` watches everything. */
  prefixes: Key[];
  /** Ends the watch when aborted. */
  signal?: AbortSignal;
}

/**
 * A sorted key/value store with revisions, TTLs and prefix watches.
 *
 * Every write returns the stored item with its new revision. Expired items are never
 * returned and count as absent. All methods are safe to call concurrently.
 */
export interface Backend extends AsyncDisposable {
  /** Returns the item at `key`; NotFoundError if it is absent or expired. */
  get(key: Key): Promise<Item>;
  /** Returns the live items in `range`, ordered by key, at most `opts.limit` of them. */
  getRange(range: KeyRange, opts?: GetRangeOptions): Promise<Item[]>;
  /** Writes an item that must not exist yet; AlreadyExistsError if it does. */
  create(item: ItemInput): Promise<Item>;
  /** Writes an item whether or not it exists. */
  put(item: ItemInput): Promise<Item>;
  /** Overwrites an existing item; NotFoundError if it is absent. */
  update(item: ItemInput): Promise<Item>;
  /**
   * Overwrites the item only if its current revision is `expectedRevision`;
   * CompareFailedError if it is absent or its revision differs.
   */
  compareAndSwap(expectedRevision: string, item: ItemInput): Promise<Item>;
  /** Deletes the item at `key`; NotFoundError if it is absent. */
  delete(key: Key): Promise<void>;
  /** Deletes every item in `range` and returns how many live items it deleted. */
  deleteRange(range: KeyRange): Promise<number>;
  /** Sets a new expiry on a live item, keeping its value; NotFoundError if absent. */
  keepAlive(key: Key, expires: Date): Promise<Item>;
  /**
   * Streams events for keys under any of `opts.prefixes` in commit order, starting with
   * `{ type: "init" }` once the watch is established. Ends when `opts.signal` aborts or the
   * backend closes.
   */
  watch(opts: WatchOptions): AsyncIterable<BackendEvent>;
  /** Ends every watch and releases the backend's resources. Idempotent. */
  close(): Promise<void>;
}

/** Largest accepted key: 1.5 KiB in the KV key encoding (segment bytes plus 2 per segment). */
export const MAX_KEY_BYTES = 1536;

/** Largest accepted value: 60 KiB, so that whatever fits the memory backend fits Deno KV. */
export const MAX_VALUE_BYTES = 60 * 1024;

/** Orders two keys: negative if `a` sorts first, 0 if equal, positive if `b` sorts first. */
export function compareKeys(a: Key, b: Key): number {
  const ea = encodeKey(a);
  const eb = encodeKey(b);
  return ea < eb ? -1 : ea > eb ? 1 : 0;
}

/** True when `key` equals `prefix` or lies below it, segment-wise. */
export function hasPrefix(key: Key, prefix: Key): boolean {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (key[i] !== prefix[i]) return false;
  }
  return true;
}

/** Formats a key for messages and logs, e.g. `/users/alice`. */
export function formatKey(key: Key): string {
  return "/" + key.join("/");
}
