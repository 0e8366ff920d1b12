/**
 * PostgreSQL backend on `npm:postgres`, shared by several auth servers.
 *
 * Schema (versioned migrations in {@link MIGRATIONS}, applied at open under an advisory lock,
 * the version kept in `teleport_schema_version`):
 *
 * - `kv(key bytea PRIMARY KEY, value bytea, expires timestamptz NULL, revision uuid)`: the
 *   key is the byte encoding of _key_codec.ts, so bytea order is the backend's key order;
 * - `kv_events(id bigserial, key, value, expires, revision, created)`: the change feed. A put
 *   event has a revision, a delete event has none.
 *
 * Every write is one call of a PL/pgSQL function (one round trip, one transaction) that
 * changes `kv`, then takes the transaction-level advisory lock {@link EVENT_LOCK}, appends its
 * events and sends `NOTIFY kv_events`. The lock is held until commit, so event ids are
 * assigned in commit order and a reader never sees id n+1 before id n: a watcher can keep a
 * plain "last id" cursor. Row changes run before the lock, so writers to different keys
 * overlap; only the event append and the commit are serialized.
 *
 * Watches: one LISTEN connection per backend; a notification (or a re-established feed)
 * makes the backend read the events after its cursor and hand them to its watchers in id
 * order. When the LISTEN connection drops (Postgres restarted, network cut) the feed
 * reconnects with backoff and, once it listens again, every watcher receives `{type:"init"}`
 * anew: its earlier state may be stale and must be reloaded, like at the start of a watch.
 *
 * This design (an events table written in the writing transaction, plus LISTEN/NOTIFY) was
 * chosen over wal2json logical decoding: it needs no REPLICATION attribute, no
 * `wal_level=logical`, no extra server package and no replication slot per auth server, works
 * on managed Postgres, and wakes watchers without polling.
 *
 * Expiry: reads filter `expires > now` with the backend's clock; a sweep deletes expired rows
 * (no events, as expiry is not a delete) and events older than {@link EVENT_RETENTION_MS}.
 *
 * Outages: a connection failure marks the backend down; calls then fail at once with
 * ConnectionProblemError while a probe retries with exponential backoff, and succeed again
 * once the probe gets through. The process never exits for it.
 */

import postgres from "postgres";
import { type Clock, RealClock } from "../clock/mod.ts";
import {
  AccessDeniedError,
  AlreadyExistsError,
  BadParameterError,
  CompareFailedError,
  ConnectionProblemError,
  messageOf,
  NotFoundError,
} from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
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
import { encodeKey, encodeRange, isEmptyRange } from "./_key_codec.ts";
import {
  notFoundError,
  quoteKey,
  validateExpires,
  validateInput,
  validateKey,
  validateRange,
  validateWatch,
} from "./_validate.ts";
import { applyPostgresMigrations } from "./_pg_migrate.ts";
import { WatchQueue } from "./_watch_queue.ts";
import { type ParsedConn, parsePostgresConnString } from "./_conn_string.ts";

/** Options of {@link openPostgresBackend}. */
export interface PostgresBackendOptions {
  /**
   * `postgresql://user[:password]@host[:port]/database?params`. Understood params:
   * `sslmode` (disable, require, verify-ca, verify-full), `sslrootcert`, `sslcert`, `sslkey`
   * (PEM file paths), `pool_max_conns`, `connect_timeout` (seconds),
   * `application_name`.
   */
  connString: string;
  /**
   * File holding the password (trailing newline ignored); wins over a password in the URL.
   *
   * @default {undefined}
   */
  passwordFile?: string;
  /**
   * Clock for expiry checks.
   *
   * @default {new RealClock()}
   */
  clock?: Clock;
  /**
   * How often expired items and old events are swept, in ms.
   *
   * @default {30000}
   */
  expiryIntervalMs?: number;
  /**
   * Logger for outages and recoveries (connection strings appear masked).
   *
   * @default {getComponentLogger("backend:postgres")}
   */
  logger?: Logger;
}

/** Advisory lock key serializing event appends (the ASCII of "tp_kv_ev"). */
export const EVENT_LOCK = 0x74705f6b765f6576n;

/** Advisory lock key serializing migrations. */
const MIGRATION_LOCK = 0x74705f6d69677261n;

/** How long events stay in `kv_events`: how far behind a watcher's cursor may fall. */
const EVENT_RETENTION_MS = 10 * 60_000;

/** Events read per query from `kv_events`. */
const EVENT_BATCH = 1000;

/** Backoff of the reconnect probes: first and largest delay, in ms. */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

/** Attempts of a write that hit a serialization failure or deadlock. */
const MAX_ATTEMPTS = 5;

const NOTIFY_CHANNEL = "kv_events";

/** Schema migrations; entry i brings the schema to version i + 1. Never edit a shipped one. */
export const MIGRATIONS: readonly string[] = [
  `
CREATE TABLE kv (
  key bytea PRIMARY KEY,
  value bytea NOT NULL,
  expires timestamptz,
  revision uuid NOT NULL
);
CREATE INDEX kv_expires_idx ON kv (expires) WHERE expires IS NOT NULL;
CREATE TABLE kv_events (
  id bigserial PRIMARY KEY,
  key bytea NOT NULL,
  value bytea,
  expires timestamptz,
  revision uuid,
  created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kv_events_created_idx ON kv_events (created);

CREATE FUNCTION kv_append_event(p_key bytea, p_value bytea, p_expires timestamptz, p_revision uuid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(${EVENT_LOCK});
  INSERT INTO kv_events (key, value, expires, revision) VALUES (p_key, p_value, p_expires, p_revision);
  PERFORM pg_notify('${NOTIFY_CHANNEL}', '');
END $$;

-- p_mode: create, put, update, cas, keepalive. Returns the written row, or none when the
-- condition failed (create: a live item exists; update, cas, keepalive: no live match).
CREATE FUNCTION kv_write(p_mode text, p_key bytea, p_value bytea, p_expires timestamptz,
  p_now timestamptz, p_expected uuid)
RETURNS TABLE (value bytea, expires timestamptz, revision uuid) LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF p_mode = 'create' THEN
    INSERT INTO kv AS t (key, value, expires, revision)
      VALUES (p_key, p_value, p_expires, gen_random_uuid())
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires,
        revision = EXCLUDED.revision
      WHERE t.expires IS NOT NULL AND t.expires <= p_now
      RETURNING t.value, t.expires, t.revision INTO r;
  ELSIF p_mode = 'put' THEN
    INSERT INTO kv AS t (key, value, expires, revision)
      VALUES (p_key, p_value, p_expires, gen_random_uuid())
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires,
        revision = EXCLUDED.revision
      RETURNING t.value, t.expires, t.revision INTO r;
  ELSIF p_mode = 'update' THEN
    UPDATE kv AS t SET value = p_value, expires = p_expires, revision = gen_random_uuid()
      WHERE t.key = p_key AND (t.expires IS NULL OR t.expires > p_now)
      RETURNING t.value, t.expires, t.revision INTO r;
  ELSIF p_mode = 'cas' THEN
    UPDATE kv AS t SET value = p_value, expires = p_expires, revision = gen_random_uuid()
      WHERE t.key = p_key AND t.revision = p_expected AND (t.expires IS NULL OR t.expires > p_now)
      RETURNING t.value, t.expires, t.revision INTO r;
  ELSIF p_mode = 'keepalive' THEN
    UPDATE kv AS t SET expires = p_expires, revision = gen_random_uuid()
      WHERE t.key = p_key AND (t.expires IS NULL OR t.expires > p_now)
      RETURNING t.value, t.expires, t.revision INTO r;
  ELSE
    RAISE EXCEPTION 'kv_write: unknown mode %', p_mode;
  END IF;
  IF r IS NULL OR r.revision IS NULL THEN
    RETURN;
  END IF;
  PERFORM kv_append_event(p_key, r.value, r.expires, r.revision);
  value := r.value;
  expires := r.expires;
  revision := r.revision;
  RETURN NEXT;
END $$;

-- Deletes the keys in [p_start, p_end) and returns how many of them were live; one delete
-- event per live key, in key order.
CREATE FUNCTION kv_delete_range(p_start bytea, p_end bytea, p_now timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  live bytea[];
BEGIN
  WITH d AS (
    DELETE FROM kv WHERE key >= p_start AND key < p_end RETURNING key, expires
  )
  SELECT array_agg(d.key ORDER BY d.key) FILTER (WHERE d.expires IS NULL OR d.expires > p_now)
    INTO live FROM d;
  IF live IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM pg_advisory_xact_lock(${EVENT_LOCK});
  INSERT INTO kv_events (key) SELECT k FROM unnest(live) WITH ORDINALITY AS u(k, n) ORDER BY n;
  PERFORM pg_notify('${NOTIFY_CHANNEL}', '');
  RETURN cardinality(live);
END $$;
`,
];

/** What each table needs; checked at open so a missing grant fails there, by name. */
const TABLE_PRIVILEGES: readonly [string, string][] = [
  ["kv", "SELECT, INSERT, UPDATE, DELETE"],
  ["kv_events", "SELECT, INSERT, DELETE"],
];

type Sql = ReturnType<typeof postgres>;

interface Row {
  key?: Uint8Array;
  value: Uint8Array | null;
  expires: Date | null;
  revision: string | null;
}

interface EventRow extends Row {
  id: string;
  key: Uint8Array;
}

class Watcher extends WatchQueue {
  /** Id of the newest event before this watch started; undefined until it has started. */
  from?: bigint;
}

/** True for errors that mean the server is unreachable or the connection died. */
function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string") return false;
  if (/^(08|57P0)/.test(code)) return true; // connection exception, admin/crash shutdown
  return [
    "ECONNREFUSED",
    "ECONNRESET",
    "EPIPE",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "ENOTFOUND",
    "EAI_AGAIN",
    "CONNECTION_CLOSED",
    "CONNECTION_DESTROYED",
    "CONNECTION_ENDED",
    "CONNECT_TIMEOUT",
    "NOT_TAGGED_CALL",
  ].includes(code) || /^ERR_TLS|^ERR_SSL|CERT|SELF_SIGNED/.test(code);
}

function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "40001" || code === "40P01";
}

const DECODER = new TextDecoder("utf-8", { fatal: true });

/** Inverse of encodeKey(): the key whose encoding is `bytes`. */
export function decodeKey(bytes: Uint8Array): Key {
  const key: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    if (bytes[i] !== 0x02) throw new Error(`Cannot decode backend key: bad tag at byte ${i}`);
    i++;
    const segment: number[] = [];
    for (;;) {
      if (i >= bytes.length) throw new Error("Cannot decode backend key: unterminated segment");
      const b = bytes[i++]!;
      if (b !== 0) {
        segment.push(b);
      } else if (bytes[i] === 0xff) {
        segment.push(0);
        i++;
      } else break;
    }
    key.push(DECODER.decode(new Uint8Array(segment)));
  }
  return Object.freeze(key);
}

/** The encoding of a key (or range bound) as bytes for a bytea parameter. */
function keyBytes(encoded: string): Uint8Array {
  const out = new Uint8Array(encoded.length);
  for (let i = 0; i < encoded.length; i++) out[i] = encoded.charCodeAt(i);
  return out;
}

function toItem(key: Key, row: Row): Item {
  const item: Item = {
    key,
    value: new Uint8Array(row.value!),
    revision: row.revision!,
  };
  if (row.expires !== null) item.expires = new Date(row.expires.getTime());
  return item;
}

/**
 * Opens a {@link Backend} on PostgreSQL: connects, applies pending schema migrations and
 * checks the role's privileges. Fails with ConnectionProblemError when the server cannot be
 * reached and AccessDeniedError naming the missing privilege when the role lacks one.
 */
export async function openPostgresBackend(options: PostgresBackendOptions): Promise<Backend> {
  const conn = await parsePostgresConnString(options.connString, {
    what: "backend",
    ...(options.passwordFile === undefined ? {} : { passwordFile: options.passwordFile }),
  });
  if ([...conn.fragment.keys()].length > 0) {
    throw new BadParameterError(
      `Cannot open backend ${conn.masked}: the URL fragment (#…) is for audit_events_uri only`,
    );
  }
  const sql = postgres(conn.url, conn.options);
  try {
    await migrate(sql, conn.masked);
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {});
    if (isConnectionError(err)) {
      throw new ConnectionProblemError(
        `Cannot open backend ${conn.masked}: ${messageOf(err)}`,
        { cause: err },
      );
    }
    throw err;
  }
  return new PostgresBackend(sql, conn, options);
}

async function migrate(sql: Sql, masked: string): Promise<void> {
  await applyPostgresMigrations(sql, {
    table: "teleport_schema_version",
    lock: MIGRATION_LOCK,
    migrations: MIGRATIONS,
    what: `backend ${masked}`,
  });
  const role = (await sql<{ r: string }[]>`SELECT current_user AS r`)[0]!;
  const denied = (what: string, grant: string) =>
    new AccessDeniedError(
      `Cannot open backend ${masked}: role ${JSON.stringify(role.r)} lacks ${what}; as an ` +
        `administrator run: ${grant}`,
    );
  for (const [table, privileges] of TABLE_PRIVILEGES) {
    const ok = (await sql<{ ok: boolean }[]>`
      SELECT has_table_privilege(${table}, ${privileges}) AS ok`)[0]!.ok;
    if (!ok) {
      throw denied(
        `${privileges} on table ${table}`,
        `GRANT ${privileges} ON ${table} TO ${role.r};`,
      );
    }
  }
}

/** The PostgreSQL {@link Backend}; open it with {@link openPostgresBackend}. */
class PostgresBackend implements Backend {
  #sql: Sql;
  #conn: ParsedConn;
  #clock: Clock;
  #log: Logger;
  #closed = false;
  /** Set while the server is unreachable: why, and the running probe. */
  #down: { error: unknown; probe: Promise<void> } | undefined;
  #sweepTimer: ReturnType<typeof setInterval>;
  #watchers = new Set<Watcher>();
  /** The LISTEN connection, while any watcher runs. */
  #feed: Sql | undefined;
  /** The feed's state: listening (cursor valid) or reconnecting. */
  #feedReady: Promise<void> | undefined;
  #cursor = 0n;
  #listening = false;
  #relisten = false;
  #polling = false;
  #pollAgain = false;
  /** Pending backoff sleeps: their timers and how to end them early (on close). */
  #sleeps = new Map<ReturnType<typeof setTimeout>, () => void>();

  constructor(sql: Sql, conn: ParsedConn, options: PostgresBackendOptions) {
    this.#sql = sql;
    this.#conn = conn;
    this.#clock = options.clock ?? new RealClock();
    this.#log = options.logger ?? getComponentLogger("backend:postgres");
    this.#sweepTimer = setInterval(() => void this.#sweep(), options.expiryIntervalMs ?? 30_000);
    Deno.unrefTimer(this.#sweepTimer);
  }

  get(key: Key): Promise<Item> {
    return this.#run("get item", async (sql) => {
      validateKey(key, "get item");
      const rows = await sql<Row[]>`SELECT value, expires, revision::text AS revision FROM kv
        WHERE key = ${keyBytes(encodeKey(key))}
          AND (expires IS NULL OR expires > ${this.#clock.now()})`;
      if (rows.length === 0) throw notFoundError("get", key);
      return toItem(Object.freeze([...key]), rows[0]!);
    });
  }

  getRange(range: KeyRange, opts: GetRangeOptions = {}): Promise<Item[]> {
    return this.#run("get range", async (sql) => {
      const limit = validateRange(range, opts, "get range");
      if (isEmptyRange(range)) return [];
      const { start, end } = encodeRange(range);
      const rows = await sql<(Row & { key: Uint8Array })[]>`
        SELECT key, value, expires, revision::text AS revision FROM kv
        WHERE key >= ${keyBytes(start)} AND key < ${keyBytes(end)}
          AND (expires IS NULL OR expires > ${this.#clock.now()})
        ORDER BY key LIMIT ${limit === 0 ? null : limit}`;
      return rows.map((row) => toItem(decodeKey(row.key), row));
    });
  }

  create(input: ItemInput): Promise<Item> {
    return this.#write("create", input, undefined);
  }

  put(input: ItemInput): Promise<Item> {
    return this.#write("put", input, undefined);
  }

  update(input: ItemInput): Promise<Item> {
    return this.#write("update", input, undefined);
  }

  compareAndSwap(expectedRevision: string, input: ItemInput): Promise<Item> {
    return this.#write("compare and swap", input, String(expectedRevision));
  }

  keepAlive(key: Key, expires: Date): Promise<Item> {
    return this.#run("keep item alive", async (sql) => {
      validateKey(key, "keep item alive");
      validateExpires(expires, `keep item ${quoteKey(key)} alive`);
      const rows = await this.#retry(() =>
        sql<Row[]>`SELECT value, expires, revision::text AS revision FROM
          kv_write('keepalive', ${keyBytes(encodeKey(key))}, NULL, ${expires},
            ${this.#clock.now()}, NULL)`
      );
      if (rows.length === 0) {
        throw new NotFoundError(`Cannot keep item ${quoteKey(key)} alive: item does not exist`);
      }
      return toItem(Object.freeze([...key]), rows[0]!);
    });
  }

  delete(key: Key): Promise<void> {
    return this.#run("delete item", async (sql) => {
      validateKey(key, "delete item");
      const enc = encodeKey(key);
      const count = await this.#deleteEncoded(sql, enc, enc + "\x00");
      if (count === 0) throw notFoundError("delete", key);
    });
  }

  deleteRange(range: KeyRange): Promise<number> {
    return this.#run("delete range", async (sql) => {
      validateRange(range, {}, "delete range");
      if (isEmptyRange(range)) return 0;
      const { start, end } = encodeRange(range);
      return await this.#deleteEncoded(sql, start, end);
    });
  }

  watch(opts: WatchOptions): AsyncIterable<BackendEvent> {
    validateWatch(opts);
    if (this.#closed) throw new ConnectionProblemError("Cannot watch backend: backend is closed");
    return this.#watch(opts.prefixes.map((p) => [...p]), opts.signal);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    for (const [timer, wake] of this.#sleeps) {
      clearTimeout(timer);
      wake();
    }
    this.#sleeps.clear();
    for (const watcher of this.#watchers) watcher.stop();
    this.#watchers.clear();
    const feed = this.#feed;
    this.#feed = undefined;
    await Promise.all([
      feed?.end({ timeout: 1 }).catch(() => {}),
      this.#sql.end({ timeout: 5 }).catch(() => {}),
    ]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #deleteEncoded(sql: Sql, start: string, end: string): Promise<number> {
    const rows = await this.#retry(() =>
      sql<{ n: string }[]>`SELECT kv_delete_range(${keyBytes(start)}, ${keyBytes(end)},
        ${this.#clock.now()})::text AS n`
    );
    return Number(rows[0]!.n);
  }

  #write(verb: string, input: ItemInput, expected: string | undefined): Promise<Item> {
    const action = `${verb} item`;
    return this.#run(action, async (sql) => {
      validateInput(input, verb);
      const key = Object.freeze([...input.key]);
      const mode = verb === "compare and swap" ? "cas" : verb;
      // A revision is a uuid; anything else can never match.
      if (expected !== undefined && !/^[0-9a-f-]{36}$/i.test(expected)) {
        throw this.#casFailed(key, expected);
      }
      const rows = await this.#retry(() =>
        sql<Row[]>`SELECT value, expires, revision::text AS revision FROM
          kv_write(${mode}, ${keyBytes(encodeKey(key))}, ${input.value},
            ${input.expires ?? null}, ${this.#clock.now()}, ${expected ?? null}::uuid)`
      );
      if (rows.length === 0) {
        if (mode === "create") {
          throw new AlreadyExistsError(`Cannot create item ${quoteKey(key)}: item already exists`);
        }
        if (mode === "cas") throw this.#casFailed(key, expected!);
        throw notFoundError(verb, key);
      }
      return toItem(key, rows[0]!);
    });
  }

  #casFailed(key: Key, expected: string): CompareFailedError {
    return new CompareFailedError(
      `Cannot compare and swap item ${quoteKey(key)}: item does not exist or its revision is ` +
        `not ${JSON.stringify(expected)}`,
    );
  }

  async #retry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!isRetryable(err) || attempt >= MAX_ATTEMPTS) throw err;
      }
    }
  }

  /** Runs one call: fails fast while closed or down, maps driver errors to kinded ones. */
  async #run<T>(action: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
    if (this.#closed) throw new ConnectionProblemError(`Cannot ${action}: backend is closed`);
    if (this.#down !== undefined) {
      throw new ConnectionProblemError(
        `Cannot ${action}: PostgreSQL at ${this.#conn.masked} is unreachable (${
          messageOf(this.#down.error)
        }); reconnecting`,
      );
    }
    try {
      return await fn(this.#sql);
    } catch (err) {
      throw this.#mapError(action, err);
    }
  }

  #mapError(action: string, err: unknown): unknown {
    if (this.#closed) {
      return new ConnectionProblemError(`Cannot ${action}: backend is closed`, { cause: err });
    }
    if (isConnectionError(err)) {
      this.#markDown(err);
      return new ConnectionProblemError(
        `Cannot ${action}: PostgreSQL at ${this.#conn.masked} is unreachable (${
          messageOf(err)
        }); reconnecting`,
        { cause: err },
      );
    }
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "42501") {
      return new AccessDeniedError(`Cannot ${action}: ${messageOf(err)}`, { cause: err });
    }
    if (isRetryable(err)) {
      return new CompareFailedError(`Cannot ${action}: ${messageOf(err)}`, { cause: err });
    }
    return err;
  }

  /** Marks the server down and probes it with exponential backoff until it answers. */
  #markDown(error: unknown): void {
    if (this.#down !== undefined || this.#closed) return;
    this.#log.warn("PostgreSQL at {target} is unreachable, reconnecting: {error}", {
      target: this.#conn.masked,
      error: messageOf(error),
    });
    const probe = (async () => {
      let delay = BACKOFF_MIN_MS;
      while (!this.#closed) {
        await this.#sleep(delay);
        if (this.#closed) return;
        try {
          await this.#sql`SELECT 1`;
          this.#log.info("PostgreSQL at {target} is reachable again", {
            target: this.#conn.masked,
          });
          this.#down = undefined;
          this.#schedulePoll();
          return;
        } catch (err) {
          if (this.#down !== undefined) this.#down.error = err;
          delay = Math.min(BACKOFF_MAX_MS, delay * 2);
        }
      }
    })();
    this.#down = { error, probe };
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const jittered = ms / 2 + Math.random() * ms / 2;
      const timer = setTimeout(() => {
        this.#sleeps.delete(timer);
        resolve();
      }, jittered);
      this.#sleeps.set(timer, resolve);
    });
  }

  async #sweep(): Promise<void> {
    if (this.#closed || this.#down !== undefined) return;
    try {
      await this.#sql`DELETE FROM kv WHERE key = ANY(ARRAY(
        SELECT key FROM kv WHERE expires <= ${this.#clock.now()} LIMIT 1000))`;
      await this.#sql`DELETE FROM kv_events WHERE id = ANY(ARRAY(
        SELECT id FROM kv_events WHERE created < now() - ${
        EVENT_RETENTION_MS / 1000
      } * interval '1 second'
        LIMIT 10000))`;
    } catch (err) {
      if (this.#closed) return;
      if (isConnectionError(err)) this.#markDown(err);
      else this.#log.warn("Cannot sweep expired items: {error}", { error: messageOf(err) });
    }
  }

  /** Starts the LISTEN connection (once); resolves once it listens with a valid cursor. */
  #ensureFeed(): Promise<void> {
    if (this.#feedReady !== undefined) return this.#feedReady;
    const feed = postgres(this.#conn.url, {
      ...this.#conn.options,
      max: 1,
      max_lifetime: null,
      onnotify: () => this.#schedulePoll(),
      onclose: () => {
        if (this.#closed || this.#feed !== feed) return;
        if (this.#listening) {
          this.#relisten = true;
          return;
        }
        this.#log.warn("Lost the PostgreSQL change feed of {target}, reconnecting", {
          target: this.#conn.masked,
        });
        this.#feedReady = this.#listen(feed, true);
      },
    });
    this.#feed = feed;
    this.#feedReady = this.#listen(feed, false);
    return this.#feedReady;
  }

  /**
   * LISTENs on `feed`, retrying with backoff, then moves the cursor to the newest event.
   * After a lost connection (`resync`), every started watcher receives a fresh init event.
   */
  async #listen(feed: Sql, resync: boolean): Promise<void> {
    this.#listening = true;
    let delay = BACKOFF_MIN_MS;
    try {
      while (!this.#closed && this.#feed === feed) {
        this.#relisten = false;
        try {
          await feed.unsafe(`LISTEN ${NOTIFY_CHANNEL}`);
          const rows = await feed<{ id: string }[]>`
            SELECT coalesce(max(id), 0)::text AS id FROM kv_events`;
          if (this.#relisten) continue;
          this.#cursor = BigInt(rows[0]!.id);
          break;
        } catch {
          if (this.#closed) return;
          await this.#sleep(delay);
          delay = Math.min(BACKOFF_MAX_MS, delay * 2);
        }
      }
    } finally {
      this.#listening = false;
    }
    if (!resync || this.#closed) return;
    this.#log.info("PostgreSQL change feed of {target} resumed; watchers resync", {
      target: this.#conn.masked,
    });
    this.#resync(this.#cursor);
  }

  /** Moves the cursor to `id` and sends every started watcher a fresh init event. */
  #resync(id: bigint): void {
    this.#cursor = id;
    for (const watcher of this.#watchers) {
      if (watcher.from === undefined) continue;
      watcher.from = id;
      this.#enqueue(watcher, { type: "init" });
    }
  }

  /** Reads new events after a notification; one reader at a time, re-run if woken meanwhile. */
  #schedulePoll(): void {
    if (this.#closed) return;
    if (this.#polling) {
      this.#pollAgain = true;
      return;
    }
    this.#polling = true;
    void (async () => {
      try {
        do {
          this.#pollAgain = false;
          await this.#poll();
        } while (this.#pollAgain && !this.#closed);
      } catch (err) {
        if (!this.#closed && isConnectionError(err)) this.#markDown(err);
        else if (!this.#closed) {
          this.#log.warn("Cannot read the change feed: {error}", { error: messageOf(err) });
        }
      } finally {
        this.#polling = false;
      }
    })();
  }

  async #poll(): Promise<void> {
    for (;;) {
      const from = this.#cursor;
      if (![...this.#watchers].some((w) => w.from !== undefined)) return;
      const rows = await this.#sql<EventRow[]>`
        SELECT id::text AS id, key, value, expires, revision::text AS revision FROM kv_events
        WHERE id > ${from.toString()}::bigint ORDER BY kv_events.id LIMIT ${EVENT_BATCH}`;
      // A resync moved the cursor meanwhile: these rows belong to the old stream.
      if (this.#cursor !== from) continue;
      if (rows.length > 0 && from > 0n && BigInt(rows[0]!.id) > from + 1n) {
        // A gap: a rolled-back write, or events this backend never read were swept away
        // (nothing at or before the cursor is left). Then only a resync is safe.
        const kept = await this.#sql<{ kept: boolean }[]>`
          SELECT EXISTS (SELECT 1 FROM kv_events WHERE id <= ${from.toString()}::bigint) AS kept`;
        if (this.#cursor !== from) continue;
        if (!kept[0]!.kept) {
          this.#log.warn("The PostgreSQL change feed of {target} fell behind; watchers resync", {
            target: this.#conn.masked,
          });
          this.#resync(BigInt(rows.at(-1)!.id));
          continue;
        }
      }
      for (const row of rows) {
        const id = BigInt(row.id);
        const key = decodeKey(row.key);
        const event: BackendEvent = row.revision === null
          ? { type: "delete", key }
          : { type: "put", item: toItem(key, row) };
        for (const watcher of this.#watchers) {
          if (watcher.from === undefined || id <= watcher.from) continue;
          if (watcher.prefixes.some((p) => hasPrefix(key, p))) this.#enqueue(watcher, event);
        }
      }
      if (rows.length > 0) this.#cursor = BigInt(rows.at(-1)!.id);
      if (rows.length < EVENT_BATCH) return;
    }
  }

  #enqueue(watcher: Watcher, event: BackendEvent): void {
    watcher.push(event.type === "put" ? { type: "put", item: copyItem(event.item) } : event);
  }

  async *#watch(prefixes: Key[], signal?: AbortSignal): AsyncGenerator<BackendEvent> {
    const watcher = new Watcher(prefixes);
    if (signal?.aborted || this.#closed) return;
    const onAbort = () => watcher.stop();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#watchers.add(watcher);
    try {
      // Wait for the feed (it may be reconnecting), unless the watch ends first.
      await Promise.race([this.#ensureFeed(), watcher.changed()]);
      if (watcher.done || this.#closed) return;
      // Events up to the newest committed one predate this watch; deliver only later ones.
      const rows = await this.#sql<{ id: string }[]>`
        SELECT coalesce(max(id), 0)::text AS id FROM kv_events`;
      if (watcher.done || this.#closed) return;
      const from = BigInt(rows[0]!.id);
      const others = [...this.#watchers].some((w) => w !== watcher && w.from !== undefined);
      if (!others && !this.#polling && this.#cursor < from) this.#cursor = from;
      watcher.from = from;
      yield { type: "init" };
      yield* watcher.events();
    } catch (err) {
      if (watcher.done || this.#closed) return;
      throw this.#mapError("watch backend", err);
    } finally {
      this.#watchers.delete(watcher);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

function copyItem(item: Item): Item {
  const copy: Item = { key: item.key, value: item.value.slice(), revision: item.revision };
  if (item.expires !== undefined) copy.expires = new Date(item.expires.getTime());
  return copy;
}
