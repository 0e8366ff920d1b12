/**
 * Process wiring: the supervisor, data dir and pid file handling, and
 * {@link TeleportProcess}, which turns a ProcessConfig into running services.
 *
 * ```ts
 * import { TeleportProcess } from "./mod.ts";
 * // await using proc = await TeleportProcess.start({ config, hostname: Deno.hostname() });
 * // await proc.supervisor.waitFor("auth.ready");
 * ```
 *
 * @module
 */
export { ensureDataDir, loadHostUuid } from "./data_dir.ts";
export { type PidFile, replacePidFile, writePidFile } from "./pid_file.ts";
export {
  HANDOVER_ENV,
  HANDOVER_TIMEOUT_MS,
  predecessorFromEnv,
  type PredecessorLink,
  startSuccessor,
  type Successor,
} from "./handover.ts";
export { TeleportProcess } from "./process.ts";
export type { TeleportProcessOptions } from "./service_host.ts";
export { ADMIN_IDENTITY_FILE, type AuthReady } from "./auth_service.ts";
export type { NodeReady } from "./node_service.ts";
export { type DrainFn, type ServiceFn, type SignalOptions, Supervisor } from "./supervisor.ts";
export { VERSION } from "../config/mod.ts";
export { hostIdentityPath, resolveJoinToken } from "./host_identity.ts";
export type { ProxyReady } from "./proxy_service.ts";
export { SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE } from "./web_cert.ts";
export {
  DEFAULT_DIAG_RATE_LIMIT,
  type DiagResponse,
  type DiagServer,
  type DiagServerOptions,
  handleDiagRequest,
  READYZ_STATUS,
  startDiagServer,
} from "./diag.ts";
export {
  type HealthState,
  ProcessHealth,
  type ProcessHealthOptions,
  STATE_VALUES,
} from "./health.ts";
