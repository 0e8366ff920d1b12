/**
 * Session recordings: the file format, {@linkcode SessionRecorder} (node side, writes as the
 * session runs), gzip for upload, {@linkcode readRecording} for playback, and
 * {@linkcode listPendingRecordings} to retry uploads after a restart.
 *
 * Format "teleport-deno-recording" version 1: JSON Lines, gzip-compressed when uploaded and
 * stored (`<sid>.rec.gz`), plain while being written on the node (`<sid>.rec.part`, then
 * `<sid>.rec`). Line 1 is the header
 * `{"format":"teleport-deno-recording","version":1,"sid","cluster_name","server_id","user",
 * "login","started","cols","rows"}` (`started` RFC 3339 UTC). Then records, `t` being whole
 * milliseconds since `started`, never decreasing:
 * `{"t","type":"print","data":"<base64>"}`, `{"t","type":"resize","cols","rows"}`, and last
 * `{"t","type":"end"}`. A recording without `end` is one whose session crashed. Readers skip
 * records of unknown types.
 */

import type { Clock } from "../clock/mod.ts";
import { AlreadyExistsError, BadParameterError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { type Line, readLines, writeAll } from "./_lines.ts";
import { isRfc3339 } from "./event.ts";
import { exists } from "./_fs.ts";

/** The `format` of the header line. */
export const RECORDING_FORMAT = "teleport-deno-recording";
/** The `version` of the header line this code writes and reads. */
export const RECORDING_VERSION = 1;

/** The first line of a recording. */
export interface RecordingHeader {
  /** Always {@linkcode RECORDING_FORMAT}. */
  format: typeof RECORDING_FORMAT;
  /** Always {@linkcode RECORDING_VERSION}. */
  version: typeof RECORDING_VERSION;
  /** Session id (lowercase UUID). */
  sid: string;
  /** Cluster name. */
  cluster_name: string;
  /** Host id of the node that recorded it. */
  server_id: string;
  /** Teleport user. */
  user: string;
  /** OS login. */
  login: string;
  /** Session start, RFC 3339 UTC. */
  started: string;
  /** Terminal width at the start. */
  cols: number;
  /** Terminal height at the start. */
  rows: number;
}

/** One record after the header, as {@linkcode readRecording} yields it. */
export type RecordingRecord =
  | { t: number; type: "print"; data: Uint8Array }
  | { t: number; type: "resize"; cols: number; rows: number }
  | { t: number; type: "end" };

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ENCODER = new TextEncoder();
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_LINE_CHARS = 1024 * 1024;
const MAX_TERMINAL = 65535;

/**
 * Returns `sid` when it is a lowercase canonical UUID (8-4-4-4-12 hex digits, as
 * `crypto.randomUUID()` makes); otherwise throws BadParameterError. Call it before a session
 * id touches a path.
 */
export function validateSessionId(sid: unknown): string {
  if (typeof sid !== "string" || !SESSION_ID.test(sid)) {
    const shown = typeof sid === "string" ? JSON.stringify(sid.slice(0, 64)) : typeof sid;
    throw new BadParameterError(
      `session id ${shown} is not a lowercase UUID such as ` +
        `"0f8fad5b-d9cb-469f-a165-70867728950e"`,
    );
  }
  return sid;
}

/** A fresh random session id. */
export function newSessionId(): string {
  return crypto.randomUUID();
}

function terminalSize(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_TERMINAL) {
    throw new BadParameterError(
      `recording ${name} ${JSON.stringify(value)} must be an integer from 0 to ${MAX_TERMINAL}`,
    );
  }
  return value;
}

/**
 * Checks a parsed header line (and, when given, that it belongs to session `sid`); returns it
 * with only the known fields. Throws BadParameterError.
 */
export function validateRecordingHeader(x: unknown, sid?: string): RecordingHeader {
  if (x === null || typeof x !== "object" || Array.isArray(x)) {
    throw new BadParameterError("recording header must be a JSON object");
  }
  const h = x as Record<string, unknown>;
  if (h.format !== RECORDING_FORMAT) {
    throw new BadParameterError(
      `recording header format ${JSON.stringify(h.format)} is not "${RECORDING_FORMAT}"`,
    );
  }
  if (h.version !== RECORDING_VERSION) {
    throw new BadParameterError(
      `recording version ${JSON.stringify(h.version)} is not supported: this build reads ` +
        `version ${RECORDING_VERSION}`,
    );
  }
  validateSessionId(h.sid);
  if (sid !== undefined && h.sid !== sid) {
    throw new BadParameterError(
      `recording header is for session ${h.sid}, not ${sid}: upload it under its own id`,
    );
  }
  for (const field of ["cluster_name", "server_id", "user", "login"] as const) {
    if (typeof h[field] !== "string" || (h[field] as string).length > 1024) {
      throw new BadParameterError(`recording header field "${field}" must be a string`);
    }
  }
  if (
    typeof h.started !== "string" || !isRfc3339(h.started)
  ) {
    throw new BadParameterError(
      `recording header field "started" must be an RFC 3339 time, got ${JSON.stringify(h.started)}`,
    );
  }
  return {
    format: RECORDING_FORMAT,
    version: RECORDING_VERSION,
    sid: h.sid as string,
    cluster_name: h.cluster_name as string,
    server_id: h.server_id as string,
    user: h.user as string,
    login: h.login as string,
    started: h.started,
    cols: terminalSize("cols", h.cols),
    rows: terminalSize("rows", h.rows),
  };
}

/** Options of {@linkcode SessionRecorder.create}. */
export interface SessionRecorderOptions {
  /** Directory of in-progress and finished recordings on the node (created 0700). */
  dir: string;
  /** Session id; validated. */
  sid: string;
  /** Cluster name for the header. */
  clusterName: string;
  /** Host id of this node. */
  serverId: string;
  /** Teleport user. */
  user: string;
  /** OS login. */
  login: string;
  /** Terminal size at the start. */
  cols: number;
  rows: number;
  /** Time source for `started` and `t`. */
  clock: Clock;
  /** Disk errors are reported here (once). */
  logger?: Logger;
  /** Prints closer together than this (from the first of a record) share one record. Default 10. */
  coalesceMs?: number;
  /** Largest print record, in bytes of output. Default 32 KiB, at most 64 KiB. */
  maxChunkBytes?: number;
  /** Bytes waiting for the disk above which `print()`'s promise waits. Default 4 MiB. */
  maxBufferedBytes?: number;
}

/**
 * Records one session to `<dir>/<sid>.rec.part` (plain JSON Lines) while it runs; `close()`
 * writes the end record and renames the file to `<dir>/<sid>.rec`, ready for upload.
 *
 * `print()` and `resize()` return at once and never reject: records are written by a
 * background writer. Their promise waits only while more than `maxBufferedBytes` wait for the
 * disk, so a caller that awaits it gets backpressure and nothing is dropped. A disk error
 * stops recording (reported once to the logger) and is thrown by `close()`.
 */
export class SessionRecorder {
  readonly #sid: string;
  readonly #dir: string;
  readonly #file: Deno.FsFile;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #startedMs: number;
  readonly #coalesceMs: number;
  readonly #maxChunk: number;
  readonly #maxBuffered: number;

  #lastT = 0;
  #chunk: Uint8Array[] = [];
  #chunkBytes = 0;
  #chunkT = 0;
  #chunkStartMs = 0;
  #timer: AbortController | undefined;

  #lines: Uint8Array[] = [];
  #buffered = 0;
  #writing: Promise<void> | undefined;
  #spaceWaiters: (() => void)[] = [];
  #error: unknown;
  #closing: Promise<string> | undefined;
  #warnedAfterClose = false;

  private constructor(
    options: SessionRecorderOptions,
    file: Deno.FsFile,
    startedMs: number,
  ) {
    this.#sid = options.sid;
    this.#dir = options.dir;
    this.#file = file;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#startedMs = startedMs;
    this.#coalesceMs = options.coalesceMs ?? 10;
    this.#maxChunk = options.maxChunkBytes ?? 32 * 1024;
    this.#maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
  }

  /**
   * Starts a recording: validates the options, creates `<dir>/<sid>.rec.part` (0600; the
   * directory 0700) and writes the header. AlreadyExistsError when the session already has a
   * recording in `dir`.
   */
  static async create(options: SessionRecorderOptions): Promise<SessionRecorder> {
    const sid = validateSessionId(options.sid);
    const coalesce = options.coalesceMs ?? 10;
    const maxChunk = options.maxChunkBytes ?? 32 * 1024;
    const maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    if (!Number.isFinite(coalesce) || coalesce < 0) {
      throw new BadParameterError(`SessionRecorder: coalesceMs must be >= 0, got ${coalesce}`);
    }
    if (!Number.isInteger(maxChunk) || maxChunk < 1 || maxChunk > 64 * 1024) {
      throw new BadParameterError(
        `SessionRecorder: maxChunkBytes must be an integer from 1 to 65536, got ${maxChunk}`,
      );
    }
    if (!Number.isInteger(maxBuffered) || maxBuffered < 1) {
      throw new BadParameterError(
        `SessionRecorder: maxBufferedBytes must be a positive integer, got ${maxBuffered}`,
      );
    }
    const started = options.clock.now();
    const header = validateRecordingHeader({
      format: RECORDING_FORMAT,
      version: RECORDING_VERSION,
      sid,
      cluster_name: options.clusterName,
      server_id: options.serverId,
      user: options.user,
      login: options.login,
      started: started.toISOString(),
      cols: options.cols,
      rows: options.rows,
    });
    await Deno.mkdir(options.dir, { recursive: true, mode: 0o700 });
    const done = `${options.dir}/${sid}.rec`;
    if (await exists(done)) {
      throw new AlreadyExistsError(`session ${sid} already has a recording on this node`);
    }
    const part = `${done}.part`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(part, { write: true, createNew: true, mode: 0o600 });
      // Held while the session runs: another process scanning for crashed recordings (a
      // successor during a graceful restart) sees the file is alive (listPendingRecordings).
      await file.tryLock(true);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) {
        throw new AlreadyExistsError(
          `session ${sid} is already being recorded on this node: use a new session id`,
        );
      }
      throw err;
    }
    try {
      await writeAll(file, ENCODER.encode(JSON.stringify(header) + "\n"));
    } catch (err) {
      file.close();
      await Deno.remove(part).catch(() => {});
      throw err;
    }
    return new SessionRecorder({ ...options, sid }, file, started.getTime());
  }

  /** The session id. */
  get sid(): string {
    return this.#sid;
  }

  /** Path of the file being written. */
  get partPath(): string {
    return `${this.#dir}/${this.#sid}.rec.part`;
  }

  /** Path the recording gets at `close()`. */
  get path(): string {
    return `${this.#dir}/${this.#sid}.rec`;
  }

  /** Records session output (copied; the caller may reuse `data`). */
  print(data: Uint8Array): Promise<void> {
    if (!this.#accepting()) return Promise.resolve();
    if (data.length === 0) return this.#room();
    const now = this.#clock.now().getTime();
    const t = this.#tick(now);
    if (this.#chunkBytes > 0 && now - this.#chunkStartMs > this.#coalesceMs) this.#flushChunk();
    let off = 0;
    while (off < data.length) {
      if (this.#chunkBytes === 0) this.#startChunk(t, now);
      const take = Math.min(this.#maxChunk - this.#chunkBytes, data.length - off);
      this.#chunk.push(data.slice(off, off + take));
      this.#chunkBytes += take;
      off += take;
      if (this.#chunkBytes >= this.#maxChunk) this.#flushChunk();
    }
    return this.#room();
  }

  /** Records a terminal resize. */
  resize(cols: number, rows: number): Promise<void> {
    if (!this.#accepting()) return Promise.resolve();
    terminalSize("cols", cols);
    terminalSize("rows", rows);
    this.#flushChunk();
    const t = this.#tick(this.#clock.now().getTime());
    this.#push({ t, type: "resize", cols, rows });
    return this.#room();
  }

  /**
   * Writes the end record, waits for the disk, renames the file to `<sid>.rec` and returns
   * that path. Throws the disk error if one happened (the `.rec.part` file is kept).
   */
  close(): Promise<string> {
    this.#closing ??= (async () => {
      this.#flushChunk();
      this.#push({ t: this.#tick(this.#clock.now().getTime()), type: "end" });
      while (this.#writing) await this.#writing;
      try {
        if (this.#error === undefined) await this.#file.sync();
        // Renamed while still open and locked: no scanner can take it for a crashed one.
        if (this.#error === undefined) await Deno.rename(this.partPath, this.path);
      } catch (err) {
        this.#error ??= err;
      } finally {
        this.#file.close();
      }
      if (this.#error !== undefined) {
        throw new Error(
          `recording of session ${this.#sid} to ${this.partPath} failed: ${messageOf(this.#error)}`,
          { cause: this.#error },
        );
      }
      return this.path;
    })();
    return this.#closing;
  }

  #accepting(): boolean {
    if (this.#closing === undefined) return true;
    if (!this.#warnedAfterClose) {
      this.#warnedAfterClose = true;
      this.#logger?.warn("Session {sid}: output after the recording was closed is not recorded", {
        sid: this.#sid,
      });
    }
    return false;
  }

  /** `t` for an event at `nowMs`: ms since start, never below the previous one. */
  #tick(nowMs: number): number {
    this.#lastT = Math.max(this.#lastT, Math.floor(nowMs - this.#startedMs));
    return this.#lastT;
  }

  #startChunk(t: number, nowMs: number): void {
    this.#chunkT = t;
    this.#chunkStartMs = nowMs;
    const timer = new AbortController();
    this.#timer = timer;
    this.#clock.sleep(this.#coalesceMs, timer.signal).then(
      () => {
        if (this.#timer === timer) this.#flushChunk();
      },
      () => {},
    );
  }

  #flushChunk(): void {
    this.#timer?.abort();
    this.#timer = undefined;
    if (this.#chunkBytes === 0) return;
    const data = new Uint8Array(this.#chunkBytes);
    let off = 0;
    for (const part of this.#chunk) {
      data.set(part, off);
      off += part.length;
    }
    this.#chunk = [];
    this.#chunkBytes = 0;
    this.#push({ t: this.#chunkT, type: "print", data: data.toBase64() });
  }

  #push(record: Record<string, unknown>): void {
    if (this.#error !== undefined) return;
    const line = ENCODER.encode(JSON.stringify(record) + "\n");
    this.#lines.push(line);
    this.#buffered += line.length;
    this.#kickWriter();
  }

  #kickWriter(): void {
    if (this.#writing) return;
    this.#writing = this.#writeLoop().finally(() => {
      this.#writing = undefined;
      // A record pushed while the loop was finishing.
      if (this.#lines.length > 0 && this.#error === undefined) this.#kickWriter();
    });
  }

  async #writeLoop(): Promise<void> {
    while (this.#lines.length > 0 && this.#error === undefined) {
      // Write up to 1 MiB at a time.
      let take = 0;
      let size = 0;
      while (
        take < this.#lines.length && (take === 0 || size + this.#lines[take]!.length <= 1 << 20)
      ) {
        size += this.#lines[take]!.length;
        take++;
      }
      const lines = this.#lines.splice(0, take);
      const bytes = new Uint8Array(size);
      let off = 0;
      for (const l of lines) {
        bytes.set(l, off);
        off += l.length;
      }
      try {
        await writeAll(this.#file, bytes);
        this.#buffered -= size;
      } catch (err) {
        this.#error = err;
        this.#lines = [];
        this.#buffered = 0;
        this.#logger?.error("Session {sid}: writing the recording {path} failed: {error}", {
          sid: this.#sid,
          path: this.partPath,
          error: messageOf(err),
        });
      }
      if (this.#buffered <= this.#maxBuffered) this.#wakeWriters();
    }
    this.#wakeWriters();
  }

  #wakeWriters(): void {
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once the buffered bytes are at most `maxBufferedBytes`. */
  #room(): Promise<void> {
    if (this.#buffered <= this.#maxBuffered) return Promise.resolve();
    return new Promise((resolve) => this.#spaceWaiters.push(resolve));
  }
}

/**
 * The gzip body of a finished recording file (`<sid>.rec`), for upload. The file is closed
 * when the stream ends or is cancelled.
 */
export async function gzipRecordingFile(path: string): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  return file.readable.pipeThrough(new CompressionStream("gzip"));
}

/** A recording being read: the header at once, the records as they are decompressed. */
export interface RecordingReader {
  /** The checked header line. */
  header: RecordingHeader;
  /** The records in order; ends after `end`, or at the end of the data when `end` is missing. */
  records: AsyncIterable<RecordingRecord>;
  /** Stops reading and releases the stream (needed only when `records` is not read to the end). */
  cancel(): Promise<void>;
}

/**
 * Reads a gzip-compressed recording. Resolves once the header is read and checked
 * (BadParameterError when the data is not gzip or the header is invalid). Iterating
 * `records` throws BadParameterError on a malformed record or corrupt gzip data; a missing end
 * record or a cut-off last line (crashed session) just ends the records.
 */
export async function readRecording(gzip: ReadableStream<Uint8Array>): Promise<RecordingReader> {
  return await readPlainRecording(gunzip(gzip));
}

async function readPlainRecording(
  plain: ReadableStream<Uint8Array>,
  sid?: string,
): Promise<RecordingReader> {
  const lines = readLines(plain, "recording", MAX_LINE_CHARS);
  const cancel = async () => {
    await lines.return(undefined).catch(() => {});
  };
  let first: IteratorResult<Line>;
  try {
    first = await lines.next();
  } catch (err) {
    await cancel();
    throw corrupt(err);
  }
  let header: RecordingHeader;
  try {
    if (first.done || !first.value.complete) {
      throw new BadParameterError("recording has no header line: the data is empty or cut off");
    }
    header = validateRecordingHeader(parseJson(first.value.text, 1), sid);
  } catch (err) {
    await cancel();
    throw err;
  }
  async function* records(): AsyncGenerator<RecordingRecord> {
    let n = 1;
    try {
      while (true) {
        let next: IteratorResult<Line>;
        try {
          next = await lines.next();
        } catch (err) {
          throw corrupt(err);
        }
        if (next.done) return;
        n++;
        const { text, complete } = next.value;
        if (text === "") continue;
        let record: RecordingRecord | undefined;
        try {
          record = parseRecord(parseJson(text, n), n);
        } catch (err) {
          if (!complete) return; // cut off mid-line: the session crashed
          throw err;
        }
        if (record === undefined) continue;
        yield record;
        if (record.type === "end") return;
      }
    } finally {
      await cancel();
    }
  }
  return { header, records: records(), cancel };
}

function corrupt(err: unknown): Error {
  if (err instanceof BadParameterError) return err;
  return new BadParameterError(`recording is not valid gzip data: ${messageOf(err)}`, {
    cause: err,
  });
}

function parseJson(text: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new BadParameterError(`recording line ${line} is not JSON: the recording is corrupt`);
  }
}

function parseRecord(x: unknown, line: number): RecordingRecord | undefined {
  if (x === null || typeof x !== "object" || Array.isArray(x)) {
    throw new BadParameterError(`recording line ${line} is not a JSON object`);
  }
  const r = x as Record<string, unknown>;
  const t = r.t;
  if (typeof t !== "number" || !Number.isInteger(t) || t < 0) {
    throw new BadParameterError(`recording line ${line}: "t" must be a whole number of ms >= 0`);
  }
  switch (r.type) {
    case "print": {
      if (typeof r.data !== "string") {
        throw new BadParameterError(`recording line ${line}: print "data" must be base64`);
      }
      try {
        return { t, type: "print", data: Uint8Array.fromBase64(r.data) };
      } catch {
        throw new BadParameterError(`recording line ${line}: print "data" is not valid base64`);
      }
    }
    case "resize":
      try {
        return {
          t,
          type: "resize",
          cols: terminalSize("cols", r.cols),
          rows: terminalSize("rows", r.rows),
        };
      } catch (err) {
        throw new BadParameterError(`recording line ${line}: ${messageOf(err)}`);
      }
    case "end":
      return { t, type: "end" };
    default:
      return undefined; // a newer record type: skip it
  }
}

function gunzip(gzip: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  return gzip.pipeThrough(
    new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
}

/** Reads and checks the header of a gzip recording, then stops reading. */
export async function readRecordingHeader(
  gzip: ReadableStream<Uint8Array>,
  sid?: string,
): Promise<RecordingHeader> {
  const reader = await readPlainRecording(gunzip(gzip), sid);
  await reader.cancel();
  return reader.header;
}

/** A recording on the node waiting for upload. */
export interface PendingRecording {
  /** Session id. */
  sid: string;
  /** The `<sid>.rec` file (plain JSON Lines). */
  path: string;
  /** True when it was finalized from a stale `.rec.part` (no end record). */
  crashed: boolean;
}

/** Options of {@linkcode listPendingRecordings}. */
export interface ListPendingOptions {
  /** To tell how old a `.rec.part` file is. */
  clock: Clock;
  /** Warnings about corrupt files go here. */
  logger?: Logger;
  /**
   * A `.rec.part` file not modified for this long belongs to a dead session. Default one hour;
   * pass 0 at process start, when no session of this process is running yet.
   */
  staleAfterMs?: number;
  /** Sessions still running: their `.rec.part` files are never touched. */
  activeSids?: ReadonlySet<string>;
}

const PART_TAIL_BYTES = 256 * 1024;

/**
 * Finished recordings in `dir` that still need uploading: every `<sid>.rec`, plus every stale
 * `<sid>.rec.part` (see `staleAfterMs`), which is finalized first as a crashed session — a
 * cut-off last line is removed and the file renamed to `<sid>.rec`, without an end record. A
 * part file without a valid header is renamed to `<sid>.rec.corrupted` and skipped with a
 * warning. Sorted by session id; a missing `dir` gives an empty list.
 */
export async function listPendingRecordings(
  dir: string,
  options: ListPendingOptions,
): Promise<PendingRecording[]> {
  const staleAfter = options.staleAfterMs ?? 3600_000;
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  const found = new Map<string, PendingRecording>();
  for (const name of names) {
    const m = /^(.+)\.rec$/.exec(name);
    if (m && SESSION_ID.test(m[1]!)) {
      found.set(m[1]!, { sid: m[1]!, path: `${dir}/${name}`, crashed: false });
    }
  }
  const now = options.clock.now().getTime();
  for (const name of names) {
    const m = /^(.+)\.rec\.part$/.exec(name);
    if (!m || !SESSION_ID.test(m[1]!)) continue;
    const sid = m[1]!;
    if (options.activeSids?.has(sid)) continue;
    const part = `${dir}/${name}`;
    // A live session's recorder holds its part file locked, in this process or another one
    // (the old process of a graceful restart); the kernel drops the lock of a dead one.
    let lock: Deno.FsFile;
    try {
      lock = await Deno.open(part, { read: true, write: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue; // finished meanwhile
      throw err;
    }
    try {
      if (!(await lock.tryLock(true))) continue;
      const stat = await lock.stat();
      if (staleAfter > 0 && stat.mtime !== null && now - stat.mtime.getTime() < staleAfter) {
        continue;
      }
      const done = `${dir}/${sid}.rec`;
      const problem = found.has(sid)
        ? `${done} exists as well`
        : await finalizePart(part, sid).then(() => undefined, (err) => messageOf(err));
      if (problem !== undefined) {
        const corrupted = `${dir}/${sid}.rec.corrupted`;
        options.logger?.warn(
          "Recording {path} cannot be uploaded ({problem}); moved to {corrupted}",
          {
            path: part,
            problem,
            corrupted,
          },
        );
        await Deno.rename(part, corrupted);
        continue;
      }
      await Deno.rename(part, done);
      found.set(sid, { sid, path: done, crashed: true });
    } finally {
      lock.close();
    }
  }
  return [...found.values()].sort((a, b) => a.sid < b.sid ? -1 : a.sid > b.sid ? 1 : 0);
}

/** Checks the header of a `.rec.part` file and cuts off a partial last line. */
async function finalizePart(path: string, sid: string): Promise<void> {
  using file = await Deno.open(path, { read: true, write: true });
  const { size } = await file.stat();
  const head = await readAt(file, 0, Math.min(size, MAX_HEADER_BYTES));
  const nl = head.indexOf(0x0a);
  if (nl < 0) throw new BadParameterError("it has no complete header line");
  validateRecordingHeader(parseJson(new TextDecoder().decode(head.subarray(0, nl)), 1), sid);
  const tailStart = Math.max(0, size - PART_TAIL_BYTES);
  const tail = await readAt(file, tailStart, size - tailStart);
  const last = tail.lastIndexOf(0x0a);
  if (last < 0) throw new BadParameterError("its last line is longer than any record");
  const cut = tailStart + last + 1;
  if (cut < size) await file.truncate(cut);
  await file.sync();
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return buf.subarray(0, got);
}
