/**
 * {@linkcode openPostgresAuditLog}: audit events in PostgreSQL, shared by every auth server
 * (`auth_service.audit_events_uri: postgresql://…`).
 *
 * Table `audit_events(id bigserial, time_ms bigint, event text, sid text, data text)`: the
 * event JSON is kept as text, byte for byte as emitted (after masking and fitting), with
 * the columns searches filter on beside it. Indexes `(time_ms, id)` and `(sid, time_ms, id)`
 * serve every search as an index range scan in the requested order, so a page of
 * `tctl audit ls --since=24h` reads only its own rows, however many events are stored.
 * Paging keys are `v1.<time_ms>.<id>` (the id orders events of the same millisecond).
 *
 * Retention (Teleport's URL fragment options): `#retention_period=8766h` (the default, about
 * a year) and `disable_cleanup=true`. A sweep deletes older events at open and hourly.
 */

import postgres from "postgres";
import { applyPostgresMigrations, parsePostgresConnString } from "../backend/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  ConnectionProblemError,
  messageOf,
} from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  type AuditLog,
  normalizeQuery,
  type SearchQuery,
  type SearchResult,
  storableEvent,
} from "./audit_log.ts";
import { type AuditEvent, eventTimeMs } from "./event.ts";

/** Options of {@linkcode openPostgresAuditLog}. */
export interface PostgresAuditLogOptions {
  /**
   * `postgresql://user@host/database?sslmode=…#retention_period=8766h&disable_cleanup=false`
   * (connection parameters as for the backend, see lib/backend/_conn_string.ts).
   */
  uri: string;
  /** Warnings (events cut to the size limit, failed sweeps) go here. */
  logger: Logger;
  /**
   * File holding the password, when the URI has none.
   *
   * @default {undefined}
   */
  passwordFile?: string;
  /**
   * How often old events are swept, in ms.
   *
   * @default {3600000}
   */
  cleanupIntervalMs?: number;
}

/** Default retention: 8766 h, Teleport's default for its PostgreSQL audit log. */
export const DEFAULT_AUDIT_RETENTION_MS = 8766 * 3600_000;

/** Schema migrations of the audit tables; entry i brings the schema to version i + 1. */
const MIGRATIONS: readonly string[] = [
  `
CREATE TABLE audit_events (
  id bigserial PRIMARY KEY,
  time_ms bigint NOT NULL,
  event text NOT NULL,
  sid text,
  data text NOT NULL
);
CREATE INDEX audit_events_time_idx ON audit_events (time_ms, id);
CREATE INDEX audit_events_sid_idx ON audit_events (sid, time_ms, id) WHERE sid IS NOT NULL;
`,
];

/** Advisory lock key serializing audit migrations (the ASCII of "tp_audit"). */
const MIGRATION_LOCK = 0x74705f6175646974n;

const KEY = /^v1\.(-?\d{1,16})\.(\d{1,19})$/;

/** Parses `retention_period` (`8766h`, `30d`, `90m`, `45s`) into ms. */
function parseRetention(text: string, thing: string): number {
  const m = /^(\d+)(h|d|m|s)$/.exec(text.trim());
  const unit = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };
  if (m === null || Number(m[1]) <= 0) {
    throw new BadParameterError(
      `Cannot open ${thing}: retention_period ${
        JSON.stringify(text)
      } must be a positive duration such as 8766h, 30d, 90m`,
    );
  }
  return Number(m[1]) * unit[m[2] as keyof typeof unit];
}

/**
 * Opens the PostgreSQL audit log: connects, creates or migrates its tables, and sweeps
 * events past the retention. ConnectionProblemError when the server cannot be reached;
 * AccessDeniedError-like PostgreSQL errors name the missing privilege.
 */
export async function openPostgresAuditLog(
  options: PostgresAuditLogOptions,
): Promise<AuditLog & AsyncDisposable> {
  const conn = await parsePostgresConnString(options.uri, {
    what: "audit log",
    ...(options.passwordFile === undefined ? {} : { passwordFile: options.passwordFile }),
  });
  const thing = `audit log ${conn.masked}`;
  let retentionMs = DEFAULT_AUDIT_RETENTION_MS;
  let cleanup = true;
  for (const [name, value] of conn.fragment) {
    if (name === "retention_period") retentionMs = parseRetention(value, thing);
    else if (name === "disable_cleanup") {
      if (value !== "true" && value !== "false") {
        throw new BadParameterError(
          `Cannot open ${thing}: disable_cleanup must be true or false, received ${
            JSON.stringify(value)
          }`,
        );
      }
      cleanup = value === "false";
    } else {
      throw new BadParameterError(
        `Cannot open ${thing}: unknown option #${name}; known: retention_period, disable_cleanup`,
      );
    }
  }
  const sql = postgres(conn.url, conn.options);
  try {
    await migrate(sql, thing);
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {});
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "42501") {
      throw new BadParameterError(
        `Cannot open ${thing}: ${messageOf(err)}; the role needs CREATE on schema public ` +
          "for the first start, then SELECT, INSERT and DELETE on audit_events",
      );
    }
    if (err instanceof BadParameterError || err instanceof AccessDeniedError) throw err;
    throw new ConnectionProblemError(`Cannot open ${thing}: ${messageOf(err)}`, { cause: err });
  }
  const log = new PostgresAuditLog(sql, thing, options.logger, retentionMs);
  if (cleanup) log.startCleanup(options.cleanupIntervalMs ?? 3600_000);
  return log;
}

async function migrate(sql: ReturnType<typeof postgres>, thing: string): Promise<void> {
  await applyPostgresMigrations(sql, {
    table: "teleport_audit_schema_version",
    lock: MIGRATION_LOCK,
    migrations: MIGRATIONS,
    what: thing,
  });
}

interface EventRow {
  id: string;
  time_ms: string;
  data: string;
}

/** The PostgreSQL {@linkcode AuditLog}; open it with {@linkcode openPostgresAuditLog}. */
class PostgresAuditLog implements AuditLog, AsyncDisposable {
  readonly #sql: ReturnType<typeof postgres>;
  readonly #thing: string;
  readonly #logger: Logger;
  readonly #retentionMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(
    sql: ReturnType<typeof postgres>,
    thing: string,
    logger: Logger,
    retentionMs: number,
  ) {
    this.#sql = sql;
    this.#thing = thing;
    this.#logger = logger;
    this.#retentionMs = retentionMs;
  }

  /** Sweeps now and every `intervalMs`. */
  startCleanup(intervalMs: number): void {
    void this.cleanup();
    this.#timer = setInterval(() => void this.cleanup(), intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  /** Deletes events older than the retention (in batches); returns how many. */
  async cleanup(now = Date.now()): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        if (this.#closed) return total;
        const rows = await this.#sql<{ n: string }[]>`
          WITH d AS (DELETE FROM audit_events WHERE id = ANY(ARRAY(
            SELECT id FROM audit_events WHERE time_ms < ${now - this.#retentionMs}
            ORDER BY time_ms LIMIT 10000)) RETURNING 1)
          SELECT count(*)::text AS n FROM d`;
        const n = Number(rows[0]!.n);
        total += n;
        if (n < 10000) return total;
      }
    } catch (err) {
      if (!this.#closed) {
        this.#logger.warn("Cannot sweep old audit events of {log}: {error}", {
          log: this.#thing,
          error: messageOf(err),
        });
      }
      return total;
    }
  }

  async emit(event: AuditEvent): Promise<void> {
    this.#checkOpen();
    const stored = storableEvent(event, this.#logger);
    const sid = typeof stored.sid === "string" && stored.sid !== "" ? stored.sid : null;
    try {
      await this.#sql`INSERT INTO audit_events (time_ms, event, sid, data)
        VALUES (${eventTimeMs(stored)}, ${stored.event}, ${sid}, ${JSON.stringify(stored)})`;
    } catch (err) {
      throw this.#failed("store audit event", err);
    }
  }

  async search(query: SearchQuery): Promise<SearchResult> {
    this.#checkOpen();
    const q = normalizeQuery(query);
    let start: { t: number; id: string } | undefined;
    if (query.startKey !== undefined) {
      const m = KEY.exec(query.startKey);
      if (m === null) {
        throw new BadParameterError(
          `audit search: startKey ${JSON.stringify(query.startKey.slice(0, 40))} is ` +
            "malformed: pass the lastKey of the previous page unchanged",
        );
      }
      start = { t: Number(m[1]), id: m[2]! };
    }
    const sql = this.#sql;
    const asc = q.order === "asc";
    const conditions = [sql`time_ms >= ${q.fromMs} AND time_ms <= ${q.toMs}`];
    if (q.types !== undefined) conditions.push(sql`event IN ${sql([...q.types])}`);
    if (q.sid !== undefined) conditions.push(sql`sid = ${q.sid}`);
    if (start !== undefined) {
      conditions.push(
        asc
          ? sql`(time_ms, id) > (${start.t}, ${start.id}::bigint)`
          : sql`(time_ms, id) < (${start.t}, ${start.id}::bigint)`,
      );
    }
    const where = conditions.reduce((acc, c) => sql`${acc} AND ${c}`);
    const order = asc ? sql`ORDER BY time_ms ASC, id ASC` : sql`ORDER BY time_ms DESC, id DESC`;
    let rows: EventRow[];
    try {
      rows = await sql<EventRow[]>`
        SELECT id::text AS id, time_ms::text AS time_ms, data FROM audit_events
        WHERE ${where} ${order} LIMIT ${q.limit + 1}`;
    } catch (err) {
      throw this.#failed("search audit events", err);
    }
    const page = rows.slice(0, q.limit);
    const result: SearchResult = { events: page.map((r) => JSON.parse(r.data) as AuditEvent) };
    if (rows.length > q.limit) {
      const last = page.at(-1)!;
      result.lastKey = `v1.${last.time_ms}.${last.id}`;
    }
    return result;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#sql.end({ timeout: 5 }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ConnectionProblemError("audit log is closed: open a new one");
  }

  #failed(action: string, err: unknown): Error {
    if (this.#closed) return new ConnectionProblemError("audit log is closed: open a new one");
    return new ConnectionProblemError(`Cannot ${action} in ${this.#thing}: ${messageOf(err)}`, {
      cause: err,
    });
  }
}
