/**
 * teleport.yaml schema (a Teleport v1–v3 subset), every default of the
 * program, strict validation with line numbers, `teleport start` flag
 * overrides and the sample config of `teleport configure`.
 *
 * ```ts
 * import { parseFileConfig, resolveProcessConfig } from "./mod.ts";
 * const file = parseFileConfig("version: v3\nauth_service:\n  cluster_name: example\n");
 * const cfg = resolveProcessConfig({ file, flags: {}, hostname: "host1", env: {} });
 * ```
 *
 * @module
 */
export {
  type Addr,
  type AddrParseResult,
  dialAddrOf,
  formatAddr,
  isUnspecifiedHost,
  parseAddr,
  tryParseAddr,
} from "./addr.ts";
export {
  AUTH_PORT,
  AUTH_TYPE,
  CA_TTL_MS,
  CERT_BACKDATE_MS,
  CERT_TTL_MS,
  CONFIG_FILE_ENV,
  CONFIG_PATH,
  CONFIG_VERSION,
  DATA_DIR,
  DEBUG_ENV,
  defaultClusterName,
  defaultNodeName,
  DEFAULTS,
  DESKTOP_PORT,
  DIAG_PORT,
  FORK_READY_TIMEOUT_MS,
  GRACEFUL_SHUTDOWN_TIMEOUT_MS,
  HANDSHAKE_TIMEOUT_MS,
  HEARTBEAT_CHECK_PERIOD_MS,
  KEEP_ALIVE_COUNT_MAX,
  KEEP_ALIVE_INTERVAL_MS,
  KUBE_PROXY_PORT,
  KUBE_SERVICE_PORT,
  LISTEN_HOST,
  LOG_EXTRA_FIELDS,
  LOG_FORMAT,
  LOG_OUTPUT,
  LOG_SEVERITY,
  LOOPBACK_HOST,
  MAX_CERT_TTL_MS,
  MAX_CONNECTIONS_PER_IP,
  MAX_PENDING_CONNECTIONS_PER_IP,
  MIN_CERT_TTL_MS,
  MYSQL_PORT,
  NODE_SSH_PORT,
  PEER_PORT,
  PROXY_LISTENER_MODE,
  PROXY_PING_INTERVAL_MS,
  PROXY_SSH_PORT,
  RECORDING_IDLE_FLUSH_MS,
  RECORDING_SCAN_INTERVAL_MS,
  RECORDING_UPLOAD_PART_BYTES,
  ROLES,
  SAMPLE_CONFIG_VERSION,
  SAMPLE_PROXY_LISTENER_MODE,
  SECOND_FACTOR,
  SERVER_ANNOUNCE_INTERVAL_MS,
  SERVER_ANNOUNCE_TTL_MS,
  SERVER_KEEP_ALIVE_TTL_MS,
  SSH_DIAL_TIMEOUT_MS,
  SSH_LOGIN_TIMEOUT_MS,
  TCP_KEEP_ALIVE_MS,
  TOKEN_LEN_BYTES,
  TOKEN_TTL_MS,
  TUNNEL_BACKOFF_MAX_MS,
  TUNNEL_BACKOFF_MIN_MS,
  TUNNEL_PORT,
  TUNNEL_PUBLIC_ADDR_ENV,
  USER_INVITE_TTL_MS,
  WEB_PORT,
  WEB_SESSION_TTL_MS,
  WEB_TOKEN_TTL_MS,
} from "./defaults.ts";
export {
  type AuthServiceSection,
  CLUSTER_NAME,
  type ConfigVersion,
  type FileConfig,
  type KeyPair,
  LABEL_KEY,
  loadConfigFile,
  type LogSeverity,
  parseFileConfig,
  type ProxyListenerMode,
  type ProxyServiceSection,
  type Role,
  type SecondFactor,
  type ServiceSection,
  type SshServiceSection,
  type StaticToken,
  type TeleportSection,
  VALID_ROLES,
} from "./file_config.ts";
export {
  loadConfigForStart,
  parseLabels,
  parseRoles,
  type ProcessConfig,
  type ProxyEnv,
  resolveProcessConfig,
  type ResolveProcessConfigOptions,
  type StartFlags,
} from "./process_config.ts";
export { formatSampleConfig, type SampleConfigOptions } from "./sample.ts";
export { VERSION } from "./version.ts";
