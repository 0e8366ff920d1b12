/**
 * The {@linkcode AuditLog} interface (emit + search), the search query rules shared by every
 * implementation, and {@linkcode MemoryAuditLog}.
 */

import type { Clock } from "../clock/mod.ts";
import { BadParameterError, ConnectionProblemError } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  type AuditEvent,
  eventTimeMs,
  fitAuditEvent,
  MAX_EVENT_BYTES,
  validateAuditEvent,
} from "./event.ts";

/** Anything events can be sent to: an {@linkcode AuditLog} or a buffered remote emitter. */
export interface Emitter {
  /** Records one event. */
  emit(event: AuditEvent): Promise<void>;
}

/** What {@linkcode AuditLog.search} looks for. */
export interface SearchQuery {
  /** Earliest event time, inclusive. */
  from: Date;
  /** Latest event time, inclusive. */
  to: Date;
  /** Only these event names (any when absent or empty). */
  types?: string[];
  /** Only events of this session. */
  sid?: string;
  /** Page size: default {@linkcode DEFAULT_SEARCH_LIMIT}, at most {@linkcode MAX_SEARCH_LIMIT}. */
  limit?: number;
  /** Oldest first (`asc`, the default) or newest first. */
  order?: "asc" | "desc";
  /** `lastKey` of the previous page, to get the next one (same query otherwise). */
  startKey?: string;
}

/** One page of search results. */
export interface SearchResult {
  /** Matching events in the requested order. */
  events: AuditEvent[];
  /** Set when more events match: pass it as `startKey` to get the next page. */
  lastKey?: string;
}

/** Stores audit events and finds them again. */
export interface AuditLog extends Emitter {
  /**
   * Validates (see `validateAuditEvent`), masks secrets and stores one event. An event over
   * {@linkcode MAX_EVENT_BYTES} is stored with its longest fields cut and `truncated: true`
   * (see `fitAuditEvent`), never dropped.
   */
  emit(event: AuditEvent): Promise<void>;
  /** Events whose `time` is within [from, to] matching the filters, one page at a time. */
  search(query: SearchQuery): Promise<SearchResult>;
  /** Waits for pending writes and releases files; later calls fail. */
  close(): Promise<void>;
}

/**
 * The event as a store keeps it: validated, secrets masked, and cut to
 * {@linkcode MAX_EVENT_BYTES} with a warning when it is larger. Throws BadParameterError for
 * a malformed event.
 */
export function storableEvent(event: AuditEvent, logger?: Logger): AuditEvent {
  const fit = fitAuditEvent(validateAuditEvent(event));
  if (fit.truncated) {
    logger?.warn(
      "Audit event {event} {uid} is {bytes} bytes of JSON, more than {limit}: " +
        "stored with its longest fields cut and truncated: true",
      { event: fit.event.event, uid: fit.event.uid, bytes: fit.bytes, limit: MAX_EVENT_BYTES },
    );
  }
  return fit.event;
}

/** Page size when a query has no `limit`. */
export const DEFAULT_SEARCH_LIMIT = 500;
/** Largest `limit` a query may ask for. */
export const MAX_SEARCH_LIMIT = 10_000;

/** A search query with defaults applied and the bounds in milliseconds. */
export interface NormalizedQuery {
  fromMs: number;
  toMs: number;
  types: ReadonlySet<string> | undefined;
  sid: string | undefined;
  limit: number;
  order: "asc" | "desc";
  start: Position | undefined;
}

/**
 * Where an event sits in the total order of a log: its time, then a sequence number unique
 * among events of the same millisecond (insertion order).
 */
export interface Position {
  t: number;
  seq: number;
}

/** An event with its position, as implementations collect them before paging. */
export interface Positioned {
  pos: Position;
  event: AuditEvent;
}

/** Checks a query and applies defaults; BadParameterError when it is malformed. */
export function normalizeQuery(query: SearchQuery): NormalizedQuery {
  if (!(query.from instanceof Date) || Number.isNaN(query.from.getTime())) {
    throw new BadParameterError('audit search: "from" must be a valid Date');
  }
  if (!(query.to instanceof Date) || Number.isNaN(query.to.getTime())) {
    throw new BadParameterError('audit search: "to" must be a valid Date');
  }
  const fromMs = query.from.getTime();
  const toMs = query.to.getTime();
  if (fromMs > toMs) {
    throw new BadParameterError(
      `audit search: "from" (${query.from.toISOString()}) is after "to" ` +
        `(${query.to.toISOString()}): swap them`,
    );
  }
  const limit = query.limit ?? DEFAULT_SEARCH_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT) {
    throw new BadParameterError(
      `audit search: limit ${limit} is out of range: use an integer from 1 to ${MAX_SEARCH_LIMIT}`,
    );
  }
  const order = query.order ?? "asc";
  if (order !== "asc" && order !== "desc") {
    throw new BadParameterError(`audit search: order ${JSON.stringify(order)} must be asc or desc`);
  }
  if (query.types !== undefined && !Array.isArray(query.types)) {
    throw new BadParameterError("audit search: types must be an array of event names");
  }
  return {
    fromMs,
    toMs,
    types: query.types && query.types.length > 0 ? new Set(query.types) : undefined,
    sid: query.sid,
    limit,
    order,
    start: query.startKey === undefined ? undefined : decodeKey(query.startKey),
  };
}

/** True when `event` (at time `t`) passes the filters of `q` (not the paging). */
export function matchesQuery(q: NormalizedQuery, t: number, event: AuditEvent): boolean {
  if (!(t >= q.fromMs && t <= q.toMs)) return false;
  if (q.types !== undefined && !q.types.has(event.event)) return false;
  if (q.sid !== undefined && event.sid !== q.sid) return false;
  return true;
}

/** Orders positions ascending. */
export function comparePositions(a: Position, b: Position): number {
  return a.t - b.t || a.seq - b.seq;
}

/**
 * Sorts the matching events of `q` into order, skips up to `startKey` and cuts one page.
 * `matched` must already be filtered with {@linkcode matchesQuery}.
 */
export function pageOf(q: NormalizedQuery, matched: Positioned[]): SearchResult {
  const sign = q.order === "asc" ? 1 : -1;
  matched.sort((a, b) => sign * comparePositions(a.pos, b.pos));
  let begin = 0;
  if (q.start !== undefined) {
    const start = q.start;
    begin = matched.findIndex((m) => sign * comparePositions(m.pos, start) > 0);
    if (begin < 0) begin = matched.length;
  }
  const page = matched.slice(begin, begin + q.limit);
  const result: SearchResult = { events: page.map((m) => structuredClone(m.event)) };
  if (begin + q.limit < matched.length) result.lastKey = encodeKey(page[page.length - 1]!.pos);
  return result;
}

const KEY = /^v1\.(-?\d{1,16})\.(\d{1,16})$/;

function encodeKey(pos: Position): string {
  return `v1.${pos.t}.${pos.seq}`;
}

function decodeKey(key: string): Position {
  const m = typeof key === "string" ? KEY.exec(key) : null;
  if (m === null) {
    throw new BadParameterError(
      `audit search: startKey ${JSON.stringify(String(key).slice(0, 40))} is malformed: ` +
        `pass the lastKey of the previous page unchanged`,
    );
  }
  return { t: Number(m[1]), seq: Number(m[2]) };
}

/** Options of {@linkcode MemoryAuditLog}. */
export interface MemoryAuditLogOptions {
  /** Kept for symmetry with the file log; events carry their own time. */
  clock?: Clock;
  /** Warnings (events cut to the size limit) go here. */
  logger?: Logger;
}

/** An {@linkcode AuditLog} in memory, for tests. Same rules as the file log. */
export class MemoryAuditLog implements AuditLog {
  #events: Positioned[] = [];
  #seq = 0;
  #closed = false;

  readonly #logger: Logger | undefined;

  /** An empty log. */
  constructor(options: MemoryAuditLogOptions = {}) {
    this.#logger = options.logger;
  }

  emit(event: AuditEvent): Promise<void> {
    try {
      this.#checkOpen();
      const stored = storableEvent(structuredClone(event), this.#logger);
      this.#events.push({ pos: { t: eventTimeMs(stored), seq: this.#seq++ }, event: stored });
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  search(query: SearchQuery): Promise<SearchResult> {
    try {
      this.#checkOpen();
      const q = normalizeQuery(query);
      const matched = this.#events.filter((m) => matchesQuery(q, m.pos.t, m.event));
      return Promise.resolve(pageOf(q, matched));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ConnectionProblemError("audit log is closed: open a new one");
  }
}
