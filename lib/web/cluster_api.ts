/**
 * The web UI's cluster views: active sessions, the audit log, the recordings list and the
 * player's recording. Every call goes to auth as the session's user (their TLS certificate), so
 * auth's RBAC decides what they see; this module only checks parameters (before anything
 * touches storage) and shapes the answers.
 */
import { BadParameterError, LimitExceededError } from "../errors/mod.ts";
import {
  type AuditEvent,
  readRecording,
  type SearchQuery,
  validateSessionId,
} from "../events/mod.ts";
import type { SessionTracker } from "../resource/mod.ts";

/** Largest page of the audit log. */
export const MAX_EVENTS_PAGE = 1000;
/** Output bytes a recording may hold to be sent to the player as JSON. */
export const MAX_PLAYER_BYTES = 32 * 1024 * 1024;
/** Records a recording may hold to be sent to the player. */
export const MAX_PLAYER_EVENTS = 500_000;

const EVENT_TYPE = /^[a-z][a-z0-9._-]{0,63}$/;

/** Checks a session id from a path (lowercase UUID) before it touches storage. */
export function checkSid(sid: string, action: string): string {
  try {
    return validateSessionId(sid);
  } catch {
    throw new BadParameterError(`Cannot ${action}: the session id must be a lowercase UUID`);
  }
}

/**
 * Reads `from`, `to` (RFC 3339, required), `limit` (1–1000, default 100), `startKey`,
 * `include` (event types, comma-separated) and `order` (`desc` default: newest first).
 */
export function parseEventSearch(params: URLSearchParams, action: string): SearchQuery {
  const bad = (why: string): never => {
    throw new BadParameterError(`Cannot ${action}: ${why}`);
  };
  const time = (name: string): Date => {
    const v = params.get(name);
    if (v === null || v === "") return bad(`the "${name}" parameter (RFC 3339 time) is required`);
    const t = Date.parse(v);
    if (Number.isNaN(t)) {
      return bad(`"${name}" is not a time: use RFC 3339, e.g. 2026-01-02T15:04:05Z`);
    }
    return new Date(t);
  };
  const q: SearchQuery = { from: time("from"), to: time("to") };
  if (q.from.getTime() > q.to.getTime()) bad(`"from" is after "to"`);
  const limit = params.get("limit");
  q.limit = limit === null || limit === "" ? 100 : Number(limit);
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > MAX_EVENTS_PAGE) {
    bad(`"limit" must be a whole number from 1 to ${MAX_EVENTS_PAGE}`);
  }
  const startKey = params.get("startKey") ?? "";
  if (startKey !== "") {
    if (startKey.length > 512 || !/^[\x21-\x7e]+$/.test(startKey)) {
      bad(`"startKey" must be the startKey of the previous page`);
    }
    q.startKey = startKey;
  }
  const include = params.get("include") ?? "";
  if (include !== "") {
    const types = include.split(",").map((t) => t.trim()).filter((t) => t !== "");
    if (types.length > 64 || !types.every((t) => EVENT_TYPE.test(t))) {
      bad(`"include" must be event types separated by commas, e.g. session.start,user.login`);
    }
    q.types = types;
  }
  const order = params.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc") bad(`"order" must be asc or desc`);
  q.order = order as "asc" | "desc";
  return q;
}

/** An active session as the UI lists it. */
export function formatTracker(t: SessionTracker): Record<string, unknown> {
  return {
    sid: t.spec.session_id,
    kind: t.spec.kind,
    login: t.spec.login,
    server_id: t.spec.node_id,
    server_hostname: t.spec.hostname,
    cluster_name: t.spec.cluster_name,
    created: t.spec.created,
    parties: t.spec.participants.map((p) => ({ user: p.user, mode: p.mode, joined: p.joined })),
  };
}

/** A recording in the list (from its `session.end` event). */
export function formatRecordingEvent(e: AuditEvent): Record<string, unknown> {
  const start = Date.parse(String(e.session_start ?? ""));
  const stop = Date.parse(String(e.session_stop ?? ""));
  return {
    sid: e.sid,
    user: e.user,
    login: e.login,
    server_id: e.server_id,
    server_hostname: e.server_hostname,
    participants: e.participants,
    interactive: e.interactive,
    session_start: e.session_start,
    session_stop: e.session_stop,
    durationMs: Number.isNaN(start) || Number.isNaN(stop) ? 0 : Math.max(0, stop - start),
  };
}

/** What the player gets: the size it starts at, and timed output and resizes. */
export interface PlayerRecording {
  sid: string;
  user: string;
  login: string;
  server_id: string;
  size: { cols: number; rows: number };
  durationMs: number;
  events: Array<
    { ms: number; type: "print"; data: string } | {
      ms: number;
      type: "resize";
      cols: number;
      rows: number;
    }
  >;
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Decodes a gzip recording for the player; LimitExceededError beyond the player's bounds. */
export async function playerRecording(gzip: Uint8Array): Promise<PlayerRecording> {
  const reader = await readRecording(new Blob([new Uint8Array(gzip)]).stream());
  const h = reader.header;
  const out: PlayerRecording = {
    sid: h.sid,
    user: h.user,
    login: h.login,
    server_id: h.server_id,
    size: { cols: h.cols, rows: h.rows },
    durationMs: 0,
    events: [],
  };
  let bytes = 0;
  for await (const r of reader.records) {
    out.durationMs = Math.max(out.durationMs, r.t);
    if (r.type === "print") {
      bytes += r.data.length;
      out.events.push({ ms: r.t, type: "print", data: base64(r.data) });
    } else if (r.type === "resize") {
      out.events.push({ ms: r.t, type: "resize", cols: r.cols, rows: r.rows });
    }
    if (bytes > MAX_PLAYER_BYTES || out.events.length > MAX_PLAYER_EVENTS) {
      await reader.cancel();
      throw new LimitExceededError(
        `Cannot play session ${h.sid} in the browser: it holds more than ${MAX_PLAYER_BYTES} ` +
          `bytes or ${MAX_PLAYER_EVENTS} records; play it with "tsh play ${h.sid}"`,
      );
    }
  }
  return out;
}
