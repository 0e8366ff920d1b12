/**
 * Every default value of the program, in one place (house rule 3).
 *
 * Other modules import these through `lib/config/mod.ts` instead of writing
 * numbers of their own. Durations are milliseconds (`*_MS`), sizes are bytes.
 * Ports follow Teleport's defaults (`lib/defaults` in Teleport; seeds 000–002).
 */

const SECOND_MS = 1_000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;

// ---------------------------------------------------------------------------
// Ports

/** Proxy web/HTTPS port (web UI, `/webapi`, TLS routing in multiplex mode). */
export const WEB_PORT = 3080;
/** Node SSH port: the SSH service (Teleport's port 22). */
export const NODE_SSH_PORT = 3022;
/** Proxy SSH port that clients connect to (separate listener mode). */
export const PROXY_SSH_PORT = 3023;
/** Reverse tunnel port that agents dial (separate listener mode). */
export const TUNNEL_PORT = 3024;
/** Auth API port. */
export const AUTH_PORT = 3025;
/** Proxy peering port (`peer_listen_addr`). */
export const PEER_PORT = 3021;
/** Kubernetes proxy port (`proxy_service.kube_listen_addr`). */
export const KUBE_PROXY_PORT = 3026;
/** Kubernetes service port (`kubernetes_service.listen_addr`). */
export const KUBE_SERVICE_PORT = 3027;
/** Desktop service port (`windows_desktop_service.listen_addr`). */
export const DESKTOP_PORT = 3028;
/** MySQL proxy port (`proxy_service.mysql_listen_addr`). */
export const MYSQL_PORT = 3036;
/** Metrics/diagnostics port (`diag_addr`) when an address is given without one. */
export const DIAG_PORT = 3081;
/** Host that listeners bind to when a listen address gives none: all IPv4 interfaces. */
export const LISTEN_HOST = "0.0.0.0";
/** Host used to reach a service of this process that listens on all interfaces. */
export const LOOPBACK_HOST = "127.0.0.1";

// ---------------------------------------------------------------------------
// Files and process

/** Data directory (host identity, process storage, backend, logs). */
export const DATA_DIR = "/var/lib/teleport";
/** Config file read by `teleport start` when `--config` is not given (and it exists). */
export const CONFIG_PATH = "/etc/teleport.yaml";
/** Environment variable naming the config file when `--config` is not given. */
export const CONFIG_FILE_ENV = "TELEPORT_CONFIG_FILE";
/** Environment variable that, when truthy ("1", "true", "yes"), turns on debug logging. */
export const DEBUG_ENV = "TELEPORT_DEBUG";
/**
 * Environment variable that overrides the address an agent expects the proxy's
 * reverse-tunnel certificate to carry (seed 003).
 */
export const TUNNEL_PUBLIC_ADDR_ENV = "TELEPORT_TUNNEL_PUBLIC_ADDR";
/** Roles of `teleport start` without `--roles` and without a config file: all-in-one. */
export const ROLES: readonly ("auth" | "proxy" | "node")[] = Object.freeze([
  "auth",
  "proxy",
  "node",
]);
/** Config file version assumed when `version` is missing (Teleport: v1). */
export const CONFIG_VERSION = "v1";
/** Config file version written by `teleport configure`. */
export const SAMPLE_CONFIG_VERSION = "v3";

/**
 * Node name when neither `--nodename` nor `teleport.nodename` is set: the
 * host name, or `localhost` when the host name is empty.
 */
export function defaultNodeName(hostname: string): string {
  const h = hostname.trim();
  return h === "" ? "localhost" : h;
}

/**
 * Cluster name when neither `--cluster-name` nor `auth_service.cluster_name` is
 * set. It is decided at runtime by the auth service, not by the config
 * resolver: a cluster name already stored in the backend wins (it can never
 * change); on first start the auth service uses this rule, the host name
 * (`localhost` when empty).
 */
export function defaultClusterName(hostname: string): string {
  return defaultNodeName(hostname);
}

// ---------------------------------------------------------------------------
// Logging

/** Log severity. */
export const LOG_SEVERITY = "INFO";
/** Log output: `stderr`, `stdout` or a file path. */
export const LOG_OUTPUT = "stderr";
/** Log format. */
export const LOG_FORMAT = "text";
/** Extra fields written with every log line. */
export const LOG_EXTRA_FIELDS: readonly string[] = Object.freeze([
  "level",
  "timestamp",
  "component",
  "caller",
]);

// ---------------------------------------------------------------------------
// Cluster behaviour

/**
 * `auth_service.proxy_listener_mode` when a config file (or no config at all)
 * omits it: separate ports 3080/3023/3024 (Teleport's behaviour).
 */
export const PROXY_LISTENER_MODE = "separate";
/** `proxy_listener_mode` written by `teleport configure`: TLS routing on one port. */
export const SAMPLE_PROXY_LISTENER_MODE = "multiplex";
/** `auth_service.authentication.type`. */
export const AUTH_TYPE = "local";
/** `auth_service.authentication.second_factor`. */
export const SECOND_FACTOR = "otp";

// ---------------------------------------------------------------------------
// TTLs and certificates

/** TTL of a join token made by `tctl tokens add` (`ProvisioningTokenTTL`). */
export const TOKEN_TTL_MS = 30 * MINUTE_MS;
/** TTL of a node join token made through the web UI. */
export const WEB_TOKEN_TTL_MS = 4 * HOUR_MS;
/** Length of a generated join token in random bytes (hex-encoded: 32 characters). */
export const TOKEN_LEN_BYTES = 16;
/** TTL of a user invite / password reset token (`tctl users add`, `reset`). */
export const USER_INVITE_TTL_MS = 1 * HOUR_MS;
/** Default TTL of a user certificate (`CertDuration`). */
export const CERT_TTL_MS = 12 * HOUR_MS;
/** Longest user certificate TTL a client may ask for. */
export const MAX_CERT_TTL_MS = 30 * HOUR_MS;
/** Shortest user certificate TTL a client may ask for. */
export const MIN_CERT_TTL_MS = 1 * MINUTE_MS;
/** Certificates are valid from this long before "now" (clock skew allowance). */
export const CERT_BACKDATE_MS = 1 * MINUTE_MS;
/** Validity of a self-signed CA certificate (10 years). */
export const CA_TTL_MS = 10 * 365 * 24 * HOUR_MS;
/** TTL of a web session (same as a user certificate). */
export const WEB_SESSION_TTL_MS = CERT_TTL_MS;

// ---------------------------------------------------------------------------
// Heartbeats, keep-alives, timeouts

/** TTL of a server (node/proxy/auth) presence record (`ServerAnnounceTTL`). */
export const SERVER_ANNOUNCE_TTL_MS = 10 * MINUTE_MS;
/** How often a server re-announces itself fully. */
export const SERVER_ANNOUNCE_INTERVAL_MS = SERVER_ANNOUNCE_TTL_MS / 2;
/** How often a node heartbeats its presence record (which lives SERVER_ANNOUNCE_TTL_MS). */
export const NODE_HEARTBEAT_INTERVAL_MS = 1 * MINUTE_MS;
/**
 * How often auth moves semi-automatic CA rotations on and hosts check the CAs (new trusted keys,
 * certificates to re-issue). Teleport polls rotation state about as often.
 */
export const CA_REFRESH_INTERVAL_MS = 1 * MINUTE_MS;
/**
 * A node whose last heartbeat is older than this is shown offline (`tsh ls`): three missed
 * heartbeats, long before its record expires.
 */
export const NODE_OFFLINE_AFTER_MS = 3 * NODE_HEARTBEAT_INTERVAL_MS;
/** TTL extension sent by a heartbeat keep-alive (`ServerKeepAliveTTL`). */
export const SERVER_KEEP_ALIVE_TTL_MS = 1 * MINUTE_MS;
/** How often a heartbeat checks whether its state changed. */
export const HEARTBEAT_CHECK_PERIOD_MS = 5 * SECOND_MS;
/** SSH / reverse-tunnel keep-alive interval (`keep_alive_interval`). */
export const KEEP_ALIVE_INTERVAL_MS = 5 * MINUTE_MS;
/** Missed keep-alives before a connection is dropped (`keep_alive_count_max`). */
export const KEEP_ALIVE_COUNT_MAX = 3;
/** Reverse-tunnel agent reconnect backoff: first step. */
export const TUNNEL_BACKOFF_MIN_MS = 1 * SECOND_MS;
/** Reverse-tunnel agent reconnect backoff: ceiling (plus jitter). */
export const TUNNEL_BACKOFF_MAX_MS = 8 * SECOND_MS;
/**
 * Deadline from accept until a connection is established: first bytes recognised, TLS handshake
 * done and first request in (`connection_limits.handshake_timeout`).
 */
export const HANDSHAKE_TIMEOUT_MS = 5 * SECOND_MS;
/** Time an SSH client has to authenticate (`connection_limits.ssh_login_timeout`). */
export const SSH_LOGIN_TIMEOUT_MS = 30 * SECOND_MS;
/** Connections from one client IP, over every listener (`connection_limits.max_connections`). */
export const MAX_CONNECTIONS_PER_IP = 15000;
/**
 * Connections from one client IP still in their handshake
 * (`connection_limits.max_pending_connections`).
 */
export const MAX_PENDING_CONNECTIONS_PER_IP = 512;
/** TCP keep-alive period for accepted connections. */
export const TCP_KEEP_ALIVE_MS = 3 * MINUTE_MS;
/** Ping interval of `-ping` ALPN connections (`proxy_ping_interval`). */
export const PROXY_PING_INTERVAL_MS = 30 * SECOND_MS;
/** Timeout of a proxy → node dial (`ssh_dial_timeout`). */
export const SSH_DIAL_TIMEOUT_MS = 30 * SECOND_MS;
/** Graceful shutdown (SIGQUIT/SIGHUP) drain limit (`DefaultGracefulShutdownTimeout`). */
export const GRACEFUL_SHUTDOWN_TIMEOUT_MS = 5 * MINUTE_MS;
/** SIGTERM/SIGINT: time the services get to close before the process exits anyway. */
export const FAST_SHUTDOWN_TIMEOUT_MS = 3 * SECOND_MS;
/** How long a parent waits for a forked child to report ready (SIGHUP/SIGUSR2). */
export const FORK_READY_TIMEOUT_MS = 2 * MINUTE_MS;

// ---------------------------------------------------------------------------
// Session recordings

/** Minimum size of one recording upload part. */
export const RECORDING_UPLOAD_PART_BYTES = 5 * 1024 * 1024;
/** How often the uploader scans for finished recordings. */
export const RECORDING_SCAN_INTERVAL_MS = 5 * SECOND_MS;
/** An idle session's recording buffer is flushed after this long. */
export const RECORDING_IDLE_FLUSH_MS = 5 * MINUTE_MS;

/**
 * All defaults above as one frozen object, for callers that prefer
 * `DEFAULTS.webPort` over importing each constant.
 */
export const DEFAULTS = Object.freeze({
  webPort: WEB_PORT,
  nodeSshPort: NODE_SSH_PORT,
  proxySshPort: PROXY_SSH_PORT,
  tunnelPort: TUNNEL_PORT,
  authPort: AUTH_PORT,
  peerPort: PEER_PORT,
  kubeProxyPort: KUBE_PROXY_PORT,
  kubeServicePort: KUBE_SERVICE_PORT,
  desktopPort: DESKTOP_PORT,
  mysqlPort: MYSQL_PORT,
  diagPort: DIAG_PORT,
  listenHost: LISTEN_HOST,
  loopbackHost: LOOPBACK_HOST,
  dataDir: DATA_DIR,
  configPath: CONFIG_PATH,
  configFileEnv: CONFIG_FILE_ENV,
  debugEnv: DEBUG_ENV,
  tunnelPublicAddrEnv: TUNNEL_PUBLIC_ADDR_ENV,
  roles: ROLES,
  configVersion: CONFIG_VERSION,
  sampleConfigVersion: SAMPLE_CONFIG_VERSION,
  logSeverity: LOG_SEVERITY,
  logOutput: LOG_OUTPUT,
  logFormat: LOG_FORMAT,
  logExtraFields: LOG_EXTRA_FIELDS,
  proxyListenerMode: PROXY_LISTENER_MODE,
  sampleProxyListenerMode: SAMPLE_PROXY_LISTENER_MODE,
  authType: AUTH_TYPE,
  secondFactor: SECOND_FACTOR,
  tokenTtlMs: TOKEN_TTL_MS,
  webTokenTtlMs: WEB_TOKEN_TTL_MS,
  tokenLenBytes: TOKEN_LEN_BYTES,
  userInviteTtlMs: USER_INVITE_TTL_MS,
  certTtlMs: CERT_TTL_MS,
  maxCertTtlMs: MAX_CERT_TTL_MS,
  minCertTtlMs: MIN_CERT_TTL_MS,
  certBackdateMs: CERT_BACKDATE_MS,
  caTtlMs: CA_TTL_MS,
  webSessionTtlMs: WEB_SESSION_TTL_MS,
  serverAnnounceTtlMs: SERVER_ANNOUNCE_TTL_MS,
  serverAnnounceIntervalMs: SERVER_ANNOUNCE_INTERVAL_MS,
  serverKeepAliveTtlMs: SERVER_KEEP_ALIVE_TTL_MS,
  heartbeatCheckPeriodMs: HEARTBEAT_CHECK_PERIOD_MS,
  keepAliveIntervalMs: KEEP_ALIVE_INTERVAL_MS,
  keepAliveCountMax: KEEP_ALIVE_COUNT_MAX,
  tunnelBackoffMinMs: TUNNEL_BACKOFF_MIN_MS,
  tunnelBackoffMaxMs: TUNNEL_BACKOFF_MAX_MS,
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  sshLoginTimeoutMs: SSH_LOGIN_TIMEOUT_MS,
  maxConnectionsPerIp: MAX_CONNECTIONS_PER_IP,
  maxPendingConnectionsPerIp: MAX_PENDING_CONNECTIONS_PER_IP,
  tcpKeepAliveMs: TCP_KEEP_ALIVE_MS,
  proxyPingIntervalMs: PROXY_PING_INTERVAL_MS,
  sshDialTimeoutMs: SSH_DIAL_TIMEOUT_MS,
  gracefulShutdownTimeoutMs: GRACEFUL_SHUTDOWN_TIMEOUT_MS,
  fastShutdownTimeoutMs: FAST_SHUTDOWN_TIMEOUT_MS,
  forkReadyTimeoutMs: FORK_READY_TIMEOUT_MS,
  recordingUploadPartBytes: RECORDING_UPLOAD_PART_BYTES,
  recordingScanIntervalMs: RECORDING_SCAN_INTERVAL_MS,
  recordingIdleFlushMs: RECORDING_IDLE_FLUSH_MS,
});
