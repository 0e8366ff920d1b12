/**
 * Events of a resource watch (`GET /v1/watch` on the auth API, Teleport's event stream): what
 * caches of CAs, roles and nodes apply, and the source they subscribe to.
 */
import type { Resource, ResourceKind } from "./types.ts";

/** The kinds a cache may watch. */
export const WATCH_KINDS = ["cert_authority", "role", "node"] as const;
/** One of {@link WATCH_KINDS}. */
export type WatchKind = typeof WATCH_KINDS[number];

/** One event of a resource watch. */
export type ResourceEvent =
  /**
   * The watch is (re-)established: the subscriber's view is now current only after it reloads
   * once (events before this one may have been missed).
   */
  | { type: "init" }
  /** A resource was written; CAs carry public parts only. */
  | { type: "put"; resource: Resource }
  /** A resource was deleted (expiry of a heartbeat produces no event). */
  | { type: "delete"; kind: ResourceKind; name: string }
  /**
   * The watch broke (auth unreachable, stream cut): until the next `init`, the subscriber's
   * view may be stale and it falls back to polling.
   */
  | { type: "lost"; reason: string };

/** Where a cache hears about changes: one shared stream per process, fanned out. */
export interface ResourceEventSource {
  /** Calls `listener` for every event from now on; returns the function that stops it. */
  subscribe(listener: (event: ResourceEvent) => void): () => void;
  /** True between an `init` and the next `lost`: subscribers' views follow auth. */
  readonly healthy: boolean;
}
