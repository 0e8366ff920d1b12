/**
 * {@linkcode FileAuditLog}: audit events as JSON Lines, one file per UTC day of the event's
 * `time` (`<dir>/2026-11-21.log`).
 */

import type { Clock } from "../clock/mod.ts";
import { ConnectionProblemError } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { readLines, writeAll } from "./_lines.ts";
import {
  type AuditLog,
  matchesQuery,
  normalizeQuery,
  pageOf,
  type Positioned,
  type SearchQuery,
  type SearchResult,
  storableEvent,
} from "./audit_log.ts";
import { type AuditEvent, eventTimeMs, MAX_EVENT_BYTES } from "./event.ts";
import { directoryOption } from "./_fs.ts";

/** Options of {@linkcode FileAuditLog}. */
export interface FileAuditLogOptions {
  /** Directory of the day files; created 0700 when missing. */
  dir: string;
  /** Warnings (corrupt lines, events cut to the size limit) go here. */
  logger: Logger;
  /** Kept for symmetry with the other stores; events carry their own time. */
  clock?: Clock;
}

const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.log$/;
const MAX_OPEN_FILES = 2;
const ENCODER = new TextEncoder();
const NEWLINE = new Uint8Array([0x0a]);

/**
 * An {@linkcode AuditLog} in JSON Lines day files. Appends go through one queue, so
 * concurrent emits never interleave; files are 0600 and the directory 0700. Search reads only
 * the day files overlapping the query. A line that does not parse (a crash mid-write) is
 * skipped with one warning per file, and the next append starts on a fresh line.
 */
export class FileAuditLog implements AuditLog {
  readonly #dir: string;
  readonly #logger: Logger;
  #ready: Promise<void> | undefined;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;
  #closed = false;
  /** Open day files, oldest first (a small LRU). */
  #files = new Map<string, Deno.FsFile>();
  #warned = new Set<string>();

  /** Opens the log lazily: the directory is created on first use. */
  constructor(options: FileAuditLogOptions) {
    this.#dir = directoryOption(options.dir, "FileAuditLog");
    this.#logger = options.logger;
  }

  /** The directory of the day files. */
  get dir(): string {
    return this.#dir;
  }

  emit(event: AuditEvent): Promise<void> {
    let line: Uint8Array;
    let day: string;
    try {
      this.#checkOpen();
      const stored = storableEvent(event, this.#logger);
      day = dayOf(eventTimeMs(stored));
      line = ENCODER.encode(JSON.stringify(stored) + "\n");
    } catch (err) {
      return Promise.reject(err);
    }
    this.#pending++;
    const write = this.#tail.then(() => this.#append(day, line)).finally(() => this.#pending--);
    this.#tail = write.catch(() => {});
    return write;
  }

  async search(query: SearchQuery): Promise<SearchResult> {
    this.#checkOpen();
    const q = normalizeQuery(query);
    // Emits issued before this search are visible to it.
    await this.#tail;
    await this.#init();
    const fromDay = dayOf(Math.max(q.fromMs, -62167219200000));
    const toDay = dayOf(Math.min(q.toMs, 253402300799999));
    const days: string[] = [];
    for await (const entry of Deno.readDir(this.#dir)) {
      const m = DAY_FILE.exec(entry.name);
      if (entry.isFile && m && m[1]! >= fromDay && m[1]! <= toDay) days.push(m[1]!);
    }
    days.sort();
    const matched: Positioned[] = [];
    for (const day of days) {
      await this.#scan(day, (p) => {
        if (matchesQuery(q, p.pos.t, p.event)) matched.push(p);
      });
    }
    return pageOf(q, matched);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail;
    for (const file of this.#files.values()) file.close();
    this.#files.clear();
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new ConnectionProblemError("audit log is closed: open a new one");
    }
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await Deno.chmod(this.#dir, 0o700);
    })();
    this.#ready.catch(() => this.#ready = undefined);
    return this.#ready;
  }

  #path(day: string): string {
    return `${this.#dir}/${day}.log`;
  }

  async #append(day: string, line: Uint8Array): Promise<void> {
    const file = await this.#open(day);
    await writeAll(file, line);
  }

  async #open(day: string): Promise<Deno.FsFile> {
    const open = this.#files.get(day);
    if (open) {
      this.#files.delete(day);
      this.#files.set(day, open);
      return open;
    }
    await this.#init();
    const path = this.#path(day);
    const file = await Deno.open(path, { append: true, create: true, mode: 0o600 });
    try {
      await Deno.chmod(path, 0o600);
      await this.#endPartialLine(path, file);
    } catch (err) {
      file.close();
      throw err;
    }
    this.#files.set(day, file);
    if (this.#files.size > MAX_OPEN_FILES) {
      const [oldest, handle] = this.#files.entries().next().value!;
      this.#files.delete(oldest);
      handle.close();
    }
    return file;
  }

  /** A file whose last line lacks "\n" (crash mid-write) gets one, so new lines stay whole. */
  async #endPartialLine(path: string, file: Deno.FsFile): Promise<void> {
    const { size } = await file.stat();
    if (size === 0) return;
    using reader = await Deno.open(path, { read: true });
    await reader.seek(size - 1, Deno.SeekMode.Start);
    const last = new Uint8Array(1);
    if ((await reader.read(last)) === 1 && last[0] !== 0x0a) {
      this.#logger.warn("Audit log {path} ends in a partial line; it will be skipped", { path });
      await writeAll(file, NEWLINE);
    }
  }

  async #scan(day: string, onEvent: (p: Positioned) => void): Promise<void> {
    const path = this.#path(day);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    let seq = 0;
    let corrupt = 0;
    for await (const line of readLines(file.readable, `audit log ${path}`, 4 * MAX_EVENT_BYTES)) {
      const index = seq++;
      if (line.text === "") continue;
      if (!line.complete && this.#pending > 0) continue; // an append in progress
      const event = parseLine(line.text);
      if (event === undefined) {
        corrupt++;
        continue;
      }
      onEvent({ pos: { t: eventTimeMs(event), seq: index }, event });
    }
    if (corrupt > 0 && !this.#warned.has(path)) {
      this.#warned.add(path);
      this.#logger.warn("Skipped {count} corrupt line(s) in audit log {path}", {
        count: corrupt,
        path,
      });
    }
  }
}

function parseLine(text: string): AuditEvent | undefined {
  try {
    const event = JSON.parse(text) as AuditEvent;
    if (
      event === null || typeof event !== "object" || typeof event.event !== "string" ||
      typeof event.time !== "string" || Number.isNaN(eventTimeMs(event))
    ) {
      return undefined;
    }
    return event;
  } catch {
    return undefined;
  }
}

/** `YYYY-MM-DD` (UTC) of a time in milliseconds. */
function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
