/**
 * What a role's wiring (auth_service.ts, node_service.ts) needs from the process that runs it:
 * config, supervisor, the shared connection guard, and where to register its release steps.
 */
import type { AuthServer } from "../auth/mod.ts";
import type { Clock } from "../clock/mod.ts";
import type { Addr, ProcessConfig } from "../config/mod.ts";
import type { ConnectionGuard } from "../net/mod.ts";
import type { NodeService } from "../node/mod.ts";
import type { Supervisor } from "./supervisor.ts";
import type { Backend } from "../backend/mod.ts";
import type { MetricsRegistry } from "../metrics/mod.ts";
import type { ProcessHealth } from "./health.ts";

/** Inputs of {@link TeleportProcess.start}. */
export interface TeleportProcessOptions {
  config: ProcessConfig;
  /** The machine's host name (default cluster name). */
  hostname: string;
  clock?: Clock;
  /** Backend URI override (tests use "memory:"). Default: KV in the data dir. */
  backendUri?: string;
  /**
   * How often the auth service checks its backend (readiness); recovery takes two periods.
   * @default {HEARTBEAT_CHECK_PERIOD_MS}
   */
  healthCheckIntervalMs?: number;
  /**
   * This process takes over from a running one (graceful restart, handover.ts): the addresses
   * are not checked for exclusive use (the old process holds them, bound with SO_REUSEPORT),
   * the embedded backend is opened beside the old process, and the pid file is replaced once
   * every service is ready.
   *
   * @default {false}
   */
  successor?: boolean;
}

/** The process as the roles see it. */
export interface ServiceHost {
  readonly config: ProcessConfig;
  readonly supervisor: Supervisor;
  /** Admission control shared by every listener of the process. */
  readonly guard: ConnectionGuard;
  /** The process's metrics. */
  readonly metrics: MetricsRegistry;
  /** Readiness of each service. */
  readonly health: ProcessHealth;
  /** The auth service's backend, once it runs. */
  backend?: Backend;
  auth?: AuthServer;
  node?: NodeService;
  /** Registers a release step; they run in reverse order when the process closes. */
  addCleanup(fn: () => Promise<void>): void;
  /** The auth API address services of this process talk to. */
  authAddr(service: string): Promise<Addr>;
}
