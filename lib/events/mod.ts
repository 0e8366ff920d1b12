/**
 * Audit events and session recordings: the event model (Teleport's names and codes),
 * {@linkcode AuditLog} storage and search ({@linkcode FileAuditLog}, {@linkcode MemoryAuditLog},
 * {@linkcode openPostgresAuditLog} for several auth servers,
 * {@linkcode runAuditLogConformance}), {@linkcode BufferedEmitter} for senders on other hosts,
 * and recordings ({@linkcode SessionRecorder} on the node, {@linkcode RecordingStore} or
 * {@linkcode openPostgresRecordingStore} on auth,
 * {@linkcode readRecording} for playback). The recording format is described in
 * `recording.ts`.
 *
 * ```ts
 * import { FakeClock } from "../clock/mod.ts";
 * import { EventType, MemoryAuditLog, newAuditEvent } from "./mod.ts";
 * const clock = new FakeClock();
 * const log = new MemoryAuditLog({ clock });
 * await log.emit(newAuditEvent(EventType.UserLogin, { user: "alice", method: "local" }, { clock }));
 * const { events } = await log.search({ from: new Date(0), to: clock.now(), types: ["user.login"] });
 * // events[0].code === "T1000I"
 * ```
 *
 * @module
 */
export {
  type AuditEvent,
  EVENT_CODES,
  EventCode,
  eventTimeMs,
  EventType,
  fitAuditEvent,
  type FittedAuditEvent,
  isKnownEventType,
  isRfc3339,
  isSecretFieldName,
  type KnownEventType,
  maskSecretFields,
  MAX_EVENT_BYTES,
  MAX_EVENT_DEPTH,
  newAuditEvent,
  type NewAuditEventOptions,
  validateAuditEvent,
} from "./event.ts";
export {
  type AuditLog,
  DEFAULT_SEARCH_LIMIT,
  type Emitter,
  MAX_SEARCH_LIMIT,
  MemoryAuditLog,
  type MemoryAuditLogOptions,
  type SearchQuery,
  type SearchResult,
} from "./audit_log.ts";
export { FileAuditLog, type FileAuditLogOptions } from "./file_audit_log.ts";
export {
  DEFAULT_AUDIT_RETENTION_MS,
  openPostgresAuditLog,
  type PostgresAuditLogOptions,
} from "./pg_audit_log.ts";
export {
  type AuditLogFactory,
  type AuditLogFixture,
  runAuditLogConformance,
} from "./_audit_log_suite.ts";
export { BufferedEmitter, type BufferedEmitterOptions } from "./emitter.ts";
export {
  gzipRecordingFile,
  type ListPendingOptions,
  listPendingRecordings,
  newSessionId,
  type PendingRecording,
  readRecording,
  readRecordingHeader,
  RECORDING_FORMAT,
  RECORDING_VERSION,
  type RecordingHeader,
  type RecordingReader,
  type RecordingRecord,
  SessionRecorder,
  type SessionRecorderOptions,
  validateRecordingHeader,
  validateSessionId,
} from "./recording.ts";
export {
  type RecordingStorage,
  RecordingStore,
  type RecordingStoreOptions,
  type SaveRecordingOptions,
} from "./recording_store.ts";
export {
  CHUNK_BYTES,
  openPostgresRecordingStore,
  type PostgresRecordingStoreOptions,
} from "./pg_recording_store.ts";
