/**
 * {@linkcode openPostgresRecordingStore}: finished session recordings in PostgreSQL, so that
 * every auth server can serve every recording (`auth_service.audit_sessions_uri:
 * postgresql://…`).
 *
 * Tables `session_recordings(sid uuid PRIMARY KEY, size, created)` and
 * `session_recording_chunks(sid, seq, data bytea)` with chunks of {@link CHUNK_BYTES}. A
 * save runs in one transaction that first inserts the `session_recordings` row (a concurrent
 * upload of the same session waits on that key and then fails with AlreadyExists), checks the
 * recording header, streams the chunks and commits: readers never see half a recording,
 * and uploading a session twice keeps the first copy (the node treats AlreadyExists as done).
 */

import postgres from "postgres";
import { applyPostgresMigrations, parsePostgresConnString } from "../backend/mod.ts";
import {
  AccessDeniedError,
  AlreadyExistsError,
  BadParameterError,
  ConnectionProblemError,
  LimitExceededError,
  messageOf,
  NotFoundError,
} from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { readRecordingHeader, validateSessionId } from "./recording.ts";
import type { RecordingStorage, SaveRecordingOptions } from "./recording_store.ts";

/** Options of {@linkcode openPostgresRecordingStore}. */
export interface PostgresRecordingStoreOptions {
  /** `postgresql://user@host/database?sslmode=…` (parameters as for the backend). */
  uri: string;
  /** Rejected uploads are logged here at debug level. */
  logger: Logger;
  /**
   * File holding the password, when the URI has none.
   *
   * @default {undefined}
   */
  passwordFile?: string;
}

/** Bytes per stored chunk. */
export const CHUNK_BYTES = 256 * 1024;

/** Compressed bytes the header check reads (the header line is well under 1 KiB). */
const HEADER_CHECK_BYTES = 64 * 1024;

const MIGRATIONS: readonly string[] = [
  `
CREATE TABLE session_recordings (
  sid uuid PRIMARY KEY,
  size bigint NOT NULL,
  created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE session_recording_chunks (
  sid uuid NOT NULL REFERENCES session_recordings (sid) ON DELETE CASCADE,
  seq integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (sid, seq)
);
`,
];

/** Advisory lock key serializing migrations (the ASCII of "tp_recsd"). */
const MIGRATION_LOCK = 0x74705f7265637364n;

type Sql = ReturnType<typeof postgres>;

/** Opens the store: connects and creates or migrates its tables. */
export async function openPostgresRecordingStore(
  options: PostgresRecordingStoreOptions,
): Promise<RecordingStorage & AsyncDisposable & { close(): Promise<void> }> {
  const conn = await parsePostgresConnString(options.uri, {
    what: "recording store",
    ...(options.passwordFile === undefined ? {} : { passwordFile: options.passwordFile }),
  });
  const thing = `recording store ${conn.masked}`;
  if ([...conn.fragment.keys()].length > 0) {
    throw new BadParameterError(`Cannot open ${thing}: the URL takes no #options`);
  }
  const sql = postgres(conn.url, conn.options);
  try {
    await applyPostgresMigrations(sql, {
      table: "teleport_recordings_schema_version",
      lock: MIGRATION_LOCK,
      migrations: MIGRATIONS,
      what: thing,
    });
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {});
    if (err instanceof BadParameterError || err instanceof AccessDeniedError) throw err;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "42501") {
      throw new BadParameterError(
        `Cannot open ${thing}: ${messageOf(err)}; the role needs CREATE on schema public ` +
          "for the first start, then SELECT, INSERT on session_recordings and its chunks",
      );
    }
    throw new ConnectionProblemError(`Cannot open ${thing}: ${messageOf(err)}`, { cause: err });
  }
  return new PostgresRecordingStore(sql, thing, options.logger);
}

class PostgresRecordingStore implements RecordingStorage, AsyncDisposable {
  readonly #sql: Sql;
  readonly #thing: string;
  readonly #logger: Logger;

  constructor(sql: Sql, thing: string, logger: Logger) {
    this.#sql = sql;
    this.#thing = thing;
    this.#logger = logger;
  }

  async save(
    sid: string,
    body: ReadableStream<Uint8Array>,
    options: SaveRecordingOptions,
  ): Promise<{ size: number }> {
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      validateSessionId(sid);
      const { maxBytes } = options;
      if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
        throw new BadParameterError(
          `RecordingStore.save: maxBytes must be a positive integer, got ${maxBytes}`,
        );
      }
      if (await this.has(sid)) {
        throw new AlreadyExistsError(`session ${sid} already has a recording; it is kept`);
      }
      reader = body.getReader();
      const input = reader;
      let size = 0;
      await this.#sql.begin(async (tx) => {
        await tx`INSERT INTO session_recordings (sid, size) VALUES (${sid}::uuid, 0)`;
        let seq = 0;
        let checked = false;
        let pending: Uint8Array[] = [];
        let pendingBytes = 0;
        const joined = () => {
          const data = new Uint8Array(pendingBytes);
          let at = 0;
          for (const part of pending) {
            data.set(part, at);
            at += part.length;
          }
          return data;
        };
        // The header is checked on the first HEADER_CHECK_BYTES (or the whole body if shorter),
        // before anything is stored.
        const check = async () => {
          checked = true;
          try {
            await readRecordingHeader(ReadableStream.from([joined()]), sid);
          } catch (err) {
            const detail = err instanceof Error ? err.message : String(err);
            throw new BadParameterError(
              `upload for session ${sid} is not a valid recording: ${detail}`,
              { cause: err },
            );
          }
        };
        const flush = async () => {
          if (pendingBytes === 0) return;
          const data = joined();
          pending = [];
          pendingBytes = 0;
          await tx`INSERT INTO session_recording_chunks (sid, seq, data)
            VALUES (${sid}::uuid, ${seq++}, ${data})`;
        };
        for (;;) {
          const chunk = await input.read();
          if (chunk.done) break;
          size += chunk.value.length;
          if (size > maxBytes) {
            throw new LimitExceededError(
              `recording of session ${sid} is larger than the limit of ${maxBytes} bytes`,
            );
          }
          pending.push(chunk.value);
          pendingBytes += chunk.value.length;
          if (!checked && pendingBytes >= HEADER_CHECK_BYTES) await check();
          if (checked && pendingBytes >= CHUNK_BYTES) await flush();
        }
        if (!checked) await check();
        await flush();
        await tx`UPDATE session_recordings SET size = ${size} WHERE sid = ${sid}::uuid`;
      });
      reader.releaseLock();
      reader = undefined;
      return { size };
    } catch (err) {
      this.#logger.debug("Recording upload for session {sid} refused: {error}", {
        sid: String(sid).slice(0, 64),
        error: err instanceof Error ? err.message : String(err),
      });
      if (reader) await reader.cancel().catch(() => {});
      else if (!body.locked) await body.cancel().catch(() => {});
      if ((err as { code?: unknown } | null)?.code === "23505") {
        throw new AlreadyExistsError(`session ${sid} already has a recording; it is kept`);
      }
      throw this.#mapped("store the recording", err);
    }
  }

  async open(sid: string): Promise<ReadableStream<Uint8Array>> {
    validateSessionId(sid);
    if (!(await this.has(sid))) throw new NotFoundError(`session ${sid} has no recording`);
    const sql = this.#sql;
    let seq = 0;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const rows = await sql<{ data: Uint8Array }[]>`
          SELECT data FROM session_recording_chunks WHERE sid = ${sid}::uuid AND seq = ${seq++}`;
        if (rows.length === 0) controller.close();
        else controller.enqueue(new Uint8Array(rows[0]!.data));
      },
    });
  }

  async has(sid: string): Promise<boolean> {
    validateSessionId(sid);
    try {
      const rows = await this.#sql`SELECT 1 FROM session_recordings WHERE sid = ${sid}::uuid`;
      return rows.length > 0;
    } catch (err) {
      throw this.#mapped("look up the recording", err);
    }
  }

  async list(): Promise<string[]> {
    try {
      const rows = await this.#sql<{ sid: string }[]>`
        SELECT sid::text AS sid FROM session_recordings ORDER BY sid::text`;
      return rows.map((r) => r.sid);
    } catch (err) {
      throw this.#mapped("list recordings", err);
    }
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #mapped(action: string, err: unknown): unknown {
    if (err instanceof Error && "kind" in err) return err;
    return new ConnectionProblemError(`Cannot ${action} in ${this.#thing}: ${messageOf(err)}`, {
      cause: err,
    });
  }
}
