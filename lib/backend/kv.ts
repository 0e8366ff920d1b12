/**
 * Deno KV backend.
 *
 * Layout inside the KV store:
 *
 * - `["d", ...key]` holds `{ v: value, e?: expiresMs }`; its versionstamp is the revision.
 * - `["w", "seq"]` holds the number of the last change-log entry.
 * - `["w", "log", seq]` holds one change (`put` with key, value, expiry; or `delete`).
 *
 * Every write commits the data, its log entry and the new `seq` in one atomic operation that
 * also checks the `seq` it read, so log order is commit order even with another process writing
 * the same file (commits are serialized inside a process; a commit that lost to another process
 * is retried). Watchers read `seq` and list the log entries after their cursor: at once after a
 * commit of this process, and every {@link KvBackendOptions.pollIntervalMs} for commits of
 * other processes (`kv.watch` fires only for writes of its own process). Log entries expire
 * after {@link LOG_TTL_MS}; a watcher that falls further behind ends with LimitExceededError.
 * SQLite answers "database is locked" while another process commits; every operation retries
 * that for up to {@link LOCKED_RETRY_MS}.
 *
 * A file-backed store has one owner: opening takes an exclusive non-blocking `flock` on
 * `<path>.lock` (`Deno.FsFile.tryLock`), which holds until {@link Backend.close}. The one
 * exception is a graceful restart: the new process opens the file while the old one still
 * holds it ({@link KvBackendOptions.successor}) and takes the lock when the old one lets go.
 */

import { type Clock, RealClock } from "../clock/mod.ts";
import {
  AlreadyExistsError,
  BadParameterError,
  CompareFailedError,
  ConnectionProblemError,
  LimitExceededError,
  messageOf,
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
import { isEmptyRange } from "./_key_codec.ts";
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

/** Options of {@link openKvBackend}. */
export interface KvBackendOptions {
  /** Path of the KV database file, or `":memory:"` for a throw-away store. */
  path: string;
  /**
   * Clock for expiry checks.
   *
   * @default {new RealClock()}
   */
  clock?: Clock;
  /**
   * Open even though another process holds the lock: this process takes over from it in a
   * graceful restart (HUP), both write the file for a while, and the lock passes to this
   * process once the other one closes the backend.
   *
   * @default {false}
   */
  successor?: boolean;
  /**
   * How often (ms, real time) watchers look for changes committed by another process on the
   * same file; changes of this process wake them at once.
   *
   * @default {250}
   */
  pollIntervalMs?: number;
}

/** How long change-log entries live (real time): how far behind a watcher may fall. */
const LOG_TTL_MS = 10 * 60_000;

/**
 * Extra real time added to KV's `expireIn`: reads filter expiry by the injected clock, so KV
 * must not delete an item before that clock says it expired (tests run on a fake clock).
 */
const EXPIRY_GRACE_MS = 60_000;

/** Keys deleted per atomic commit in deleteRange (KV allows 100 checks, one is `seq`). */
const DELETE_BATCH = 99;

/**
 * Attempts of a conditional commit before giving up: a commit fails only when another process
 * committed in between (every commit checks `seq`), so two busy processes may need several.
 */
const MAX_ATTEMPTS = 100;

/** How long an operation retries SQLite's "database is locked" (another process commits). */
const LOCKED_RETRY_MS = 10_000;

/** How often a successor tries to take the lock its predecessor holds. */
const LOCK_TAKEOVER_POLL_MS = 1000;

const DATA = "d";
const SEQ_KEY: Deno.KvKey = ["w", "seq"];
const LOG_PREFIX = ["w", "log"] as const;

interface StoredItem {
  v: Uint8Array;
  e?: number;
}

type LogEntry =
  | { t: "put"; k: string[]; v: Uint8Array; e?: number }
  | { t: "delete"; k: string[] };

/** What a write does to the current entry: store a new value, or delete it. */
type Plan = { put: StoredItem } | { delete: true };

/**
 * Opens a {@link Backend} on Deno KV. A file path is locked for this process until the
 * backend closes; a second opener fails with AlreadyExistsError naming the holder's pid.
 */
export async function openKvBackend(options: KvBackendOptions): Promise<Backend> {
  const { path } = options;
  if (typeof path !== "string" || path === "") {
    throw new BadParameterError('Cannot open backend: path must be a file path or ":memory:"');
  }
  const lock = path === ":memory:" ? undefined : await lockFile(path, options.successor ?? false);
  let kv: Deno.Kv;
  try {
    if (lock !== undefined) await makeDbFilesPrivate(path);
    kv = await Deno.openKv(path);
  } catch (err) {
    lock?.file.close();
    throw new ConnectionProblemError(
      `Cannot open backend ${JSON.stringify(path)}: ${messageOf(err)}`,
      { cause: err },
    );
  }
  return new KvBackend(kv, {
    clock: options.clock ?? new RealClock(),
    lock,
    pollIntervalMs: options.pollIntervalMs ?? 250,
  });
}

/** The owner lock `<path>.lock`: held, or (successor) still the predecessor's. */
interface OwnerLock {
  file: Deno.FsFile;
  held: boolean;
}

/**
 * Takes the owner lock `<path>.lock`, recording our pid in it. A successor opens the file
 * without the lock when another process holds it.
 */
async function lockFile(path: string, successor: boolean): Promise<OwnerLock> {
  const lockPath = `${path}.lock`;
  const file = await Deno.open(lockPath, { read: true, write: true, create: true, mode: 0o600 });
  try {
    if (!await file.tryLock(true)) {
      if (successor) return { file, held: false };
      const pid = await readPid(lockPath);
      throw new AlreadyExistsError(
        `Cannot open backend ${
          JSON.stringify(path)
        }: another teleport process (pid ${pid}) holds it; stop it first`,
      );
    }
    await writeOwnerPid(file);
    return { file, held: true };
  } catch (err) {
    file.close();
    throw err;
  }
}

async function writeOwnerPid(file: Deno.FsFile): Promise<void> {
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  const bytes = new TextEncoder().encode(`${Deno.pid}\n`);
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
}

/** True for SQLite's answer while another process holds the write lock. */
function isLocked(err: unknown): boolean {
  return err instanceof Error && /database is locked|SQLITE_BUSY/i.test(err.message);
}

/** Runs `fn` again while SQLite says "database is locked", for up to {@link LOCKED_RETRY_MS}. */
async function whileLocked<T>(fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  let delay = 1;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isLocked(err) || performance.now() - t0 > LOCKED_RETRY_MS) throw err;
      await new Promise((r) => setTimeout(r, delay * (1 + Math.random())));
      delay = Math.min(delay * 2, 50);
    }
  }
}

/**
 * Makes the database and every file beside it 0600 (owner only): the db file is created 0600
 * before SQLite opens it, because SQLite gives its `-wal` and `-shm` files the db file's
 * mode; files left more open by earlier versions are tightened on every open.
 */
async function makeDbFilesPrivate(path: string): Promise<void> {
  (await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 })).close();
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`, `${path}.lock`]) {
    let mode: number;
    try {
      mode = ((await Deno.stat(file)).mode ?? 0) & 0o777;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    if ((mode & 0o077) === 0) continue;
    try {
      await Deno.chmod(file, 0o600);
    } catch (err) {
      throw new ConnectionProblemError(
        `Cannot open backend ${JSON.stringify(path)}: ${file} has mode ${
          mode.toString(8).padStart(4, "0")
        } and cannot be made private (${messageOf(err)}); run "chmod 600 ${file}*"`,
        { cause: err },
      );
    }
  }
}

async function readPid(lockPath: string): Promise<string> {
  try {
    const text = (await Deno.readTextFile(lockPath)).trim();
    return /^\d+$/.test(text) ? text : "unknown";
  } catch {
    return "unknown";
  }
}

class KvBackend implements Backend {
  #kv: Deno.Kv;
  #clock: Clock;
  #lock: OwnerLock | undefined;
  #lockPoll: ReturnType<typeof setInterval> | undefined;
  #pollIntervalMs: number;
  #tail: Promise<unknown> = Promise.resolve();
  #inflight = new Set<Promise<unknown>>();
  #watchStops = new Set<() => void>();
  /** Watchers waiting for a change: woken by this process's commits. */
  #wakers = new Set<() => void>();
  /** Commits of this process so far (a watcher compares it across its read of `seq`). */
  #commits = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(
    kv: Deno.Kv,
    o: { clock: Clock; lock: OwnerLock | undefined; pollIntervalMs: number },
  ) {
    this.#kv = kv;
    this.#clock = o.clock;
    this.#lock = o.lock;
    this.#pollIntervalMs = o.pollIntervalMs;
    if (o.lock !== undefined && !o.lock.held) this.#takeLockWhenFree(o.lock);
  }

  /** A successor takes the owner lock once the predecessor has let it go. */
  #takeLockWhenFree(lock: OwnerLock): void {
    let trying = false;
    this.#lockPoll = setInterval(async () => {
      if (trying || this.#closed) return;
      trying = true;
      try {
        if (await lock.file.tryLock(true)) {
          clearInterval(this.#lockPoll);
          this.#lockPoll = undefined;
          lock.held = true;
          await writeOwnerPid(lock.file);
        }
      } catch {
        // tried again at the next tick
      } finally {
        trying = false;
      }
    }, LOCK_TAKEOVER_POLL_MS);
    Deno.unrefTimer(this.#lockPoll);
  }

  /** False while a successor still waits for its predecessor's lock. */
  get ownsLock(): boolean {
    return this.#lock?.held ?? true;
  }

  get(key: Key): Promise<Item> {
    return this.#op("get item", async () => {
      validateKey(key, "get item");
      const entry = await whileLocked(() => this.#kv.get<StoredItem>(dataKey(key)));
      if (!this.#isLive(entry)) throw notFoundError("get", key);
      return toItem(key, entry.value, entry.versionstamp);
    });
  }

  getRange(range: KeyRange, opts: GetRangeOptions = {}): Promise<Item[]> {
    return this.#op("get range", async () => {
      const limit = validateRange(range, opts, "get range");
      if (isEmptyRange(range)) return [];
      const now = this.#now();
      const batchSize = limit > 0 ? Math.min(1000, limit + 16) : 500;
      return await whileLocked(async () => {
        const items: Item[] = [];
        for await (const entry of this.#kv.list<StoredItem>(selector(range), { batchSize })) {
          if (isExpired(entry.value.e, now)) continue;
          items.push(toItem(entry.key.slice(1) as string[], entry.value, entry.versionstamp));
          if (items.length === limit) break;
        }
        return items;
      });
    });
  }

  create(input: ItemInput): Promise<Item> {
    return this.#op("create item", () => {
      validateInput(input, "create");
      return this.#write(input.key, (live) => {
        if (live) {
          throw new AlreadyExistsError(
            `Cannot create item ${quoteKey(input.key)}: item already exists`,
          );
        }
        return { put: stored(input) };
      });
    });
  }

  put(input: ItemInput): Promise<Item> {
    return this.#op("put item", () => {
      validateInput(input, "put");
      return this.#write(input.key, () => ({ put: stored(input) }));
    });
  }

  update(input: ItemInput): Promise<Item> {
    return this.#op("update item", () => {
      validateInput(input, "update");
      return this.#write(input.key, (live) => {
        if (!live) throw notFoundError("update", input.key);
        return { put: stored(input) };
      });
    });
  }

  compareAndSwap(expectedRevision: string, input: ItemInput): Promise<Item> {
    return this.#op("compare and swap item", () => {
      validateInput(input, "compare and swap");
      return this.#write(input.key, (live, current) => {
        if (!live) {
          throw new CompareFailedError(
            `Cannot compare and swap item ${quoteKey(input.key)}: item does not exist`,
          );
        }
        if (current.versionstamp !== expectedRevision) {
          throw new CompareFailedError(
            `Cannot compare and swap item ${quoteKey(input.key)}: revision is ${
              JSON.stringify(current.versionstamp)
            }, expected ${JSON.stringify(expectedRevision)}`,
          );
        }
        return { put: stored(input) };
      });
    });
  }

  delete(key: Key): Promise<void> {
    return this.#op("delete item", async () => {
      validateKey(key, "delete item");
      await this.#write(key, (live) => {
        if (!live) throw notFoundError("delete", key);
        return { delete: true };
      });
    });
  }

  deleteRange(range: KeyRange): Promise<number> {
    return this.#op("delete range", () => {
      validateRange(range, {}, "delete range");
      if (isEmptyRange(range)) return Promise.resolve(0);
      return this.#serial(() => this.#deleteRangeLocked(range));
    });
  }

  keepAlive(key: Key, expires: Date): Promise<Item> {
    return this.#op("keep item alive", () => {
      validateKey(key, "keep item alive");
      validateExpires(expires, `keep item ${quoteKey(key)} alive`);
      return this.#write(key, (live, current) => {
        if (!live || current.value === null) {
          throw new NotFoundError(`Cannot keep item ${quoteKey(key)} alive: item does not exist`);
        }
        return { put: { v: current.value.v, e: expires.getTime() } };
      });
    });
  }

  watch(opts: WatchOptions): AsyncIterable<BackendEvent> {
    validateWatch(opts);
    if (this.#closed) throw new ConnectionProblemError("Cannot watch backend: backend is closed");
    return this.#watch(opts.prefixes.map((p) => [...p]), opts.signal);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearInterval(this.#lockPoll);
      for (const stop of this.#watchStops) stop();
      await Promise.allSettled(this.#inflight);
      this.#kv.close();
      // Release the flock explicitly: closing the fd alone releases it only once Deno
      // drops the file resource, which a just-finished op can delay (a reopen right
      // after close() then still saw the lock held).
      if (this.#lock?.held) await this.#lock.file.unlock().catch(() => {});
      this.#lock?.file.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Runs a public operation: refused once closed, awaited by close(). */
  #op<T>(action: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new ConnectionProblemError(`Cannot ${action}: backend is closed`));
    }
    let promise: Promise<T>;
    try {
      promise = fn();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#inflight.add(promise);
    const forget = () => this.#inflight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /** Runs `fn` after every earlier serialized write has finished: commits happen in seq order. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => {});
    return result;
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  #isLive(
    entry: Deno.KvEntryMaybe<StoredItem>,
  ): entry is Deno.KvEntry<StoredItem> {
    return entry.versionstamp !== null && !isExpired(entry.value.e, this.#now());
  }

  /**
   * Reads the entry at `key`, lets `plan` decide (or throw), then commits the change together
   * with its log entry, conditional on the entry being unchanged.
   */
  #write(
    key: Key,
    plan: (live: boolean, current: Deno.KvEntryMaybe<StoredItem>) => Plan,
  ): Promise<Item> {
    return this.#serial(async () => {
      const dk = dataKey(key);
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const [current, last] = await whileLocked(() =>
          this.#kv.getMany<[StoredItem, number]>([dk, SEQ_KEY])
        );
        const decision = plan(this.#isLive(current), current);
        const seq = (last.value ?? 0) + 1;
        const op = this.#kv.atomic().check({ key: dk, versionstamp: current.versionstamp })
          .check(last);
        let log: LogEntry;
        if ("put" in decision) {
          const { v, e } = decision.put;
          op.set(dk, decision.put, e === undefined ? {} : { expireIn: this.#expireIn(e) });
          log = e === undefined ? { t: "put", k: [...key], v } : { t: "put", k: [...key], v, e };
        } else {
          op.delete(dk);
          log = { t: "delete", k: [...key] };
        }
        op.set([...LOG_PREFIX, seq], log, { expireIn: LOG_TTL_MS }).set(SEQ_KEY, seq);
        const result = await whileLocked(() => op.commit());
        if (!result.ok) continue;
        this.#wake();
        const value = "put" in decision ? decision.put : current.value!;
        return toItem(key, value, result.versionstamp);
      }
      throw new CompareFailedError(
        `Cannot write item ${quoteKey(key)}: another writer kept changing it`,
      );
    });
  }

  async #deleteRangeLocked(range: KeyRange): Promise<number> {
    let deleted = 0;
    // The list cursor moves past each key before it is deleted, so batches commit as it goes;
    // a listing cut short by "database is locked" starts over on what is left.
    await whileLocked(async () => {
      let batch: Deno.KvEntry<StoredItem>[] = [];
      for await (const entry of this.#kv.list<StoredItem>(selector(range), { batchSize: 500 })) {
        batch.push(entry);
        if (batch.length < DELETE_BATCH) continue;
        deleted += await this.#deleteBatchLocked(batch);
        batch = [];
      }
      if (batch.length > 0) deleted += await this.#deleteBatchLocked(batch);
    });
    return deleted;
  }

  /** Deletes listed entries in one commit; returns how many were live. */
  async #deleteBatchLocked(batch: Deno.KvEntry<StoredItem>[]): Promise<number> {
    const now = this.#now();
    const last = await whileLocked(() => this.#kv.get<number>(SEQ_KEY));
    const op = this.#kv.atomic().check(last);
    const first = last.value ?? 0;
    let seq = first;
    for (const entry of batch) {
      op.check(entry).delete(entry.key);
      if (isExpired(entry.value.e, now)) continue;
      const log: LogEntry = { t: "delete", k: entry.key.slice(1) as string[] };
      op.set([...LOG_PREFIX, ++seq], log, { expireIn: LOG_TTL_MS });
    }
    if (seq !== first) op.set(SEQ_KEY, seq);
    if ((await whileLocked(() => op.commit())).ok) {
      this.#wake();
      return seq - first;
    }
    // Another writer committed meanwhile: delete the keys one by one, as they are now.
    let live = 0;
    for (const entry of batch) live += await this.#deleteOneLocked(entry.key);
    return live;
  }

  async #deleteOneLocked(dk: Deno.KvKey): Promise<number> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const [current, last] = await whileLocked(() =>
        this.#kv.getMany<[StoredItem, number]>([dk, SEQ_KEY])
      );
      if (current.versionstamp === null) return 0;
      const op = this.#kv.atomic().check(current).delete(dk);
      const live = this.#isLive(current);
      if (live) {
        const seq = (last.value ?? 0) + 1;
        const log: LogEntry = { t: "delete", k: dk.slice(1) as string[] };
        op.check(last).set([...LOG_PREFIX, seq], log, { expireIn: LOG_TTL_MS }).set(SEQ_KEY, seq);
      }
      if (!(await whileLocked(() => op.commit())).ok) continue;
      if (live) this.#wake();
      return live ? 1 : 0;
    }
    throw new CompareFailedError(
      `Cannot delete range: another writer kept changing ${JSON.stringify(dk.slice(1))}`,
    );
  }

  /** Wakes the watchers of this process after a commit. */
  #wake(): void {
    this.#commits++;
    const wakers = [...this.#wakers];
    this.#wakers.clear();
    for (const w of wakers) w();
  }

  /**
   * Resolves at once if this process committed since {@link #commits} was `seen`, else at its
   * next commit, after the poll interval, or when `stopped`.
   */
  #nextChange(stopped: AbortSignal, seen: number): Promise<void> {
    if (this.#commits !== seen) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        stopped.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, this.#pollIntervalMs);
      this.#wakers.add(done);
      stopped.addEventListener("abort", done, { once: true });
    });
  }

  /** Real-time TTL handed to KV for an item expiring at `expires` by our clock. */
  #expireIn(expires: number): number {
    return Math.max(0, Math.ceil(expires - this.#now())) + EXPIRY_GRACE_MS;
  }

  async *#watch(prefixes: Key[], signal?: AbortSignal): AsyncGenerator<BackendEvent> {
    if (signal?.aborted || this.#closed) return;
    const stopper = new AbortController();
    const stop = () => stopper.abort();
    signal?.addEventListener("abort", stop, { once: true });
    this.#watchStops.add(stop);
    const ended = () => this.#closed || stopper.signal.aborted;
    const readSeq = async () => (await whileLocked(() => this.#kv.get<number>(SEQ_KEY))).value ?? 0;
    try {
      let cursor = await readSeq();
      if (ended()) return;
      yield { type: "init" };
      while (!ended()) {
        // Counted before reading seq: a commit of this process right after the read wakes
        // this watcher instead of waiting for the poll.
        const seen = this.#commits;
        const seq = await readSeq();
        if (ended()) return;
        if (seq <= cursor) {
          await this.#nextChange(stopper.signal, seen);
          continue;
        }
        const entries = this.#kv.list<LogEntry>({
          start: [...LOG_PREFIX, cursor + 1],
          end: [...LOG_PREFIX, seq + 1],
        }, { batchSize: 1000 });
        try {
          for await (const entry of entries) {
            const n = entry.key[2] as number;
            if (n !== cursor + 1) throw fellBehind(cursor);
            cursor = n;
            const event = toEvent(entry.value, entry.versionstamp);
            const key = event.type === "put" ? event.item.key : event.key;
            if (!prefixes.some((p) => hasPrefix(key, p))) continue;
            if (ended()) return;
            yield event;
          }
        } catch (err) {
          // Another process was committing: list again from the cursor.
          if (isLocked(err)) continue;
          throw err;
        }
        if (cursor !== seq) throw fellBehind(cursor);
      }
    } catch (err) {
      if (ended()) return;
      throw err;
    } finally {
      signal?.removeEventListener("abort", stop);
      this.#watchStops.delete(stop);
      stopper.abort();
    }
  }
}

function fellBehind(cursor: number): LimitExceededError {
  return new LimitExceededError(
    `Cannot watch backend: watcher fell behind the change log after entry ${cursor}`,
  );
}

function dataKey(key: Key): Deno.KvKey {
  return [DATA, ...key];
}

/** The KV list selector of a range; a prefix ends just above its children (`true` > strings). */
function selector(range: KeyRange): Deno.KvListSelector {
  if ("prefix" in range) {
    return { start: dataKey(range.prefix), end: [...dataKey(range.prefix), true] };
  }
  return { start: dataKey(range.start), end: dataKey(range.end) };
}

function stored(input: ItemInput): StoredItem {
  return input.expires === undefined
    ? { v: input.value }
    : { v: input.value, e: input.expires.getTime() };
}

function toItem(key: Key, value: StoredItem, revision: string): Item {
  const item: Item = { key: Object.freeze([...key]), value: value.v.slice(), revision };
  if (value.e !== undefined) item.expires = new Date(value.e);
  return item;
}

function toEvent(
  log: LogEntry,
  versionstamp: string,
): Exclude<BackendEvent, { type: "init" }> {
  if (log.t === "delete") return { type: "delete", key: Object.freeze(log.k) };
  return { type: "put", item: toItem(log.k, log, versionstamp) };
}
