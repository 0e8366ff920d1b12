/**
 * Storage backends: the {@linkcode Backend} interface (sorted keys, revisions,
 * compare-and-swap, TTLs, prefix watches), {@linkcode MemoryBackend}, a Deno KV backend
 * ({@linkcode openKvBackend}), {@linkcode openBackend} to pick one from a URI (including
 * `postgresql://…` for several auth servers, see postgres.ts), and
 * {@linkcode runBackendConformance}, the suite every implementation must pass.
 *
 * ```ts
 * import { openBackend } from "./mod.ts";
 * await using backend = await openBackend("memory:");
 * await backend.put({ key: ["users", "alice"], value: new TextEncoder().encode("{}") });
 * const items = await backend.getRange({ prefix: ["users"] }); // [{ key: ["users", "alice"], … }]
 * ```
 *
 * @module
 */
export {
  type Backend,
  type BackendEvent,
  compareKeys,
  formatKey,
  type GetRangeOptions,
  hasPrefix,
  type Item,
  type ItemInput,
  type Key,
  type KeyRange,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  type WatchOptions,
} from "./backend.ts";
export { MemoryBackend, type MemoryBackendOptions } from "./memory.ts";
export { type KvBackendOptions, openKvBackend } from "./kv.ts";
export { openBackend, type OpenBackendOptions } from "./open.ts";
export { type BackendFactory, type BackendFixture, runBackendConformance } from "./_suite.ts";
export { type PgServer, startPostgres, type StartPostgresOptions } from "./_pg_testing.ts";
export { applyPostgresMigrations, type PostgresMigrations } from "./_pg_migrate.ts";
export {
  maskConnString,
  type ParseConnStringOptions,
  type ParsedConn,
  parsePostgresConnString,
  type PostgresTls,
} from "./_conn_string.ts";
export {
  type BackendRequestKind,
  ReportingBackend,
  type ReportingBackendOptions,
} from "./reporter.ts";
