/**
 * {@linkcode RecordingStore}: finished session recordings on the auth service, one
 * `<sid>.rec.gz` file each (never in the backend).
 */

import {
  AlreadyExistsError,
  BadParameterError,
  LimitExceededError,
  NotFoundError,
} from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { writeAll } from "./_lines.ts";
import { readRecordingHeader, validateSessionId } from "./recording.ts";
import { directoryOption, exists } from "./_fs.ts";

/** Options of {@linkcode RecordingStore}. */
export interface RecordingStoreOptions {
  /** Directory of the recordings (created 0700). */
  dir: string;
  /** Rejected uploads are logged here at debug level. */
  logger: Logger;
}

/**
 * Where auth keeps finished recordings: {@linkcode RecordingStore} (files) or the PostgreSQL
 * store of pg_recording_store.ts, which every auth server shares.
 */
export interface RecordingStorage {
  /**
   * Stores the gzip `body` of session `sid` and returns its size; AlreadyExists when the
   * session has a recording (the first is kept), BadParameter for a body that is not its
   * recording, LimitExceeded past `maxBytes`. Nothing partial is ever visible.
   */
  save(
    sid: string,
    body: ReadableStream<Uint8Array>,
    options: SaveRecordingOptions,
  ): Promise<{ size: number }>;
  /** The gzip bytes of session `sid`'s recording; NotFoundError when there is none. */
  open(sid: string): Promise<ReadableStream<Uint8Array>>;
  /** True when session `sid` has a recording. */
  has(sid: string): Promise<boolean>;
  /** Session ids with a recording, sorted. */
  list(): Promise<string[]>;
}

/** Options of {@linkcode RecordingStore.save}. */
export interface SaveRecordingOptions {
  /** Largest accepted body (compressed bytes); larger uploads fail with LimitExceeded. */
  maxBytes: number;
}

const STORED = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.rec\.gz$/;

/**
 * Stores uploaded recordings as `<dir>/<sid>.rec.gz` (0600). A save writes a temporary file,
 * checks it and then links it into place atomically, so readers never see half a recording and
 * a recording is never replaced.
 */
export class RecordingStore implements RecordingStorage {
  readonly #dir: string;
  readonly #logger: Logger;
  #ready: Promise<void> | undefined;

  /** A store over `options.dir`; the directory is created on the first save. */
  constructor(options: RecordingStoreOptions) {
    this.#dir = directoryOption(options.dir, "RecordingStore");
    this.#logger = options.logger;
  }

  /** The directory of the recordings. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Stores the gzip `body` of session `sid` and returns its size. Fails with BadParameter for
   * a malformed sid, a body that is not a gzip recording or whose header names another session;
   * AlreadyExists when `sid` has a recording; LimitExceeded past `maxBytes`. On failure nothing
   * is left behind and the body is cancelled.
   */
  async save(
    sid: string,
    body: ReadableStream<Uint8Array>,
    options: SaveRecordingOptions,
  ): Promise<{ size: number }> {
    let tmp: string | undefined;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      validateSessionId(sid);
      const { maxBytes } = options;
      if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
        throw new BadParameterError(
          `RecordingStore.save: maxBytes must be a positive integer, got ${maxBytes}`,
        );
      }
      await this.#init();
      const final = this.#path(sid);
      if (await exists(final)) {
        throw new AlreadyExistsError(`session ${sid} already has a recording; it is kept`);
      }
      tmp = `${this.#dir}/.upload-${sid}-${crypto.randomUUID()}.tmp`;
      let size = 0;
      {
        using file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
        reader = body.getReader();
        while (true) {
          const chunk = await reader.read();
          if (chunk.done) break;
          size += chunk.value.length;
          if (size > maxBytes) {
            throw new LimitExceededError(
              `recording of session ${sid} is larger than the limit of ${maxBytes} bytes`,
            );
          }
          await writeAll(file, chunk.value);
        }
        reader.releaseLock();
        reader = undefined;
        await file.sync();
      }
      using check = await Deno.open(tmp, { read: true });
      try {
        await readRecordingHeader(check.readable, sid);
      } catch (err) {
        if (err instanceof BadParameterError) {
          throw new BadParameterError(
            `upload for session ${sid} is not a valid recording: ${err.message}`,
            { cause: err },
          );
        }
        throw err;
      }
      try {
        // link() never replaces an existing file, unlike rename().
        await Deno.link(tmp, final);
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) {
          throw new AlreadyExistsError(`session ${sid} already has a recording; it is kept`);
        }
        throw err;
      }
      return { size };
    } catch (err) {
      this.#logger.debug("Recording upload for session {sid} refused: {error}", {
        sid: String(sid).slice(0, 64),
        error: err instanceof Error ? err.message : String(err),
      });
      if (reader) await reader.cancel().catch(() => {});
      else if (!body.locked) await body.cancel().catch(() => {});
      throw err;
    } finally {
      if (tmp !== undefined) await Deno.remove(tmp).catch(() => {});
    }
  }

  /** The gzip bytes of session `sid`'s recording; NotFoundError when there is none. */
  async open(sid: string): Promise<ReadableStream<Uint8Array>> {
    validateSessionId(sid);
    try {
      const file = await Deno.open(this.#path(sid), { read: true });
      return file.readable;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new NotFoundError(`session ${sid} has no recording`);
      }
      throw err;
    }
  }

  /** True when session `sid` has a recording. */
  async has(sid: string): Promise<boolean> {
    validateSessionId(sid);
    return await exists(this.#path(sid));
  }

  /** Session ids with a recording, sorted. */
  async list(): Promise<string[]> {
    const sids: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.#dir)) {
        const m = STORED.exec(entry.name);
        if (entry.isFile && m) sids.push(m[1]!);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    return sids.sort();
  }

  #path(sid: string): string {
    return `${this.#dir}/${sid}.rec.gz`;
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await Deno.chmod(this.#dir, 0o700);
    })();
    this.#ready.catch(() => this.#ready = undefined);
    return this.#ready;
  }
}
