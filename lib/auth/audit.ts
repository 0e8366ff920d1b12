/**
 * Audit of the auth server: emitting its own events, storing events sent by cluster members,
 * session recordings (upload, read, list) and searching the audit log.
 */
import { BadParameterError, NotImplementedError } from "../errors/mod.ts";
import {
  type AuditEvent,
  type AuditLog,
  newAuditEvent,
  type RecordingStorage,
  type SearchQuery,
  type SearchResult,
  validateAuditEvent,
} from "../events/mod.ts";
import { hostIdOf, type Identity } from "../identity/mod.ts";
import type { AuthContext } from "./_shared.ts";

/** Most events one API call may carry. */
const MAX_EVENTS_PER_CALL = 1000;

/** Options of {@link AuthAudit}. */
export interface AuthAuditOptions {
  /** Where audit events go. */
  auditLog: AuditLog;
  /** Where uploaded session recordings are kept; without it uploads are refused. */
  recordings?: RecordingStorage;
  /** Largest recording accepted. @default {1 GiB} */
  maxRecordingBytes?: number;
}

/** Audit events and session recordings. */
export class AuthAudit {
  readonly #ctx: AuthContext;
  readonly #audit: AuditLog;
  readonly #recordings: RecordingStorage | undefined;
  readonly #maxRecordingBytes: number;

  constructor(ctx: AuthContext, opts: AuthAuditOptions) {
    this.#ctx = ctx;
    this.#audit = opts.auditLog;
    this.#recordings = opts.recordings;
    this.#maxRecordingBytes = opts.maxRecordingBytes ?? 1024 ** 3;
  }

  /**
   * Records an event of this auth server. Never throws: a failing audit log is
   * logged as an error (the request it describes has already happened).
   */
  async emitAudit(
    type: string,
    fields: Record<string, unknown>,
    opts: { failure?: boolean } = {},
  ): Promise<void> {
    try {
      await this.#audit.emit(newAuditEvent(type, fields, {
        clock: this.#ctx.clock,
        clusterName: this.#ctx.clusterName,
        ...(opts.failure ? { failure: true } : {}),
      }));
    } catch (err) {
      this.#ctx.log.error("Cannot write audit event {type}: {error}", { type, error: err });
    }
  }

  /**
   * Stores events sent by a cluster member. Each is validated; `cluster_name`
   * is this cluster's and, for a host, `server_id` is the caller's own host
   * UUID, whatever the sender claimed.
   */
  async ingestEvents(caller: Identity, events: unknown[]): Promise<number> {
    if (events.length > MAX_EVENTS_PER_CALL) {
      throw new BadParameterError(
        `Cannot store ${events.length} events in one call: send at most ${MAX_EVENTS_PER_CALL}`,
      );
    }
    const checked: AuditEvent[] = events.map((e) => {
      const ev = validateAuditEvent(e);
      ev.cluster_name = this.#ctx.clusterName;
      if (caller.kind === "host" && !caller.roles.includes("Admin")) {
        ev.server_id = hostIdOf(caller);
      }
      return ev;
    });
    for (const ev of checked) await this.#audit.emit(ev);
    return checked.length;
  }

  /**
   * Stores a finished session recording (gzip body, see lib/events) uploaded
   * by the node that recorded it, and audits the upload.
   */
  async saveRecording(
    caller: Identity,
    sid: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ size: number }> {
    const store = this.#recordingStore();
    const { size } = await store.save(sid, body, {
      maxBytes: this.#maxRecordingBytes,
    });
    await this.emitAudit("session.upload", {
      sid,
      server_id: caller.kind === "host" ? hostIdOf(caller) : "",
      user: caller.username,
      size,
      url: `file://records/${sid}.rec.gz`,
    });
    return { size };
  }

  /** A stored recording's gzip bytes. */
  openRecording(sid: string): Promise<ReadableStream<Uint8Array>> {
    return this.#recordingStore().open(sid);
  }

  /** Session IDs with a stored recording. */
  listRecordings(): Promise<string[]> {
    return this.#recordingStore().list();
  }

  #recordingStore(): RecordingStorage {
    if (this.#recordings === undefined) {
      throw new NotImplementedError("this auth server keeps no session recordings");
    }
    return this.#recordings;
  }

  /** Searches the audit log. */
  searchEvents(q: SearchQuery): Promise<SearchResult> {
    return this.#audit.search(q);
  }
}
