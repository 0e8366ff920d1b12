/**
 * The resolved runtime configuration of `teleport start`: file values,
 * overridden by flags, with every default applied. Pure data.
 */
import { BadParameterError, isKind } from "../errors/mod.ts";
import { type Addr, dialAddrOf, parseAddr } from "./addr.ts";
import {
  AUTH_PORT,
  CA_REFRESH_INTERVAL_MS,
  CONFIG_FILE_ENV,
  CONFIG_PATH,
  DATA_DIR,
  DEBUG_ENV,
  defaultNodeName,
  DIAG_PORT,
  GRACEFUL_SHUTDOWN_TIMEOUT_MS,
  HANDSHAKE_TIMEOUT_MS,
  LISTEN_HOST,
  LOG_EXTRA_FIELDS,
  LOG_FORMAT,
  LOG_OUTPUT,
  LOG_SEVERITY,
  MAX_CONNECTIONS_PER_IP,
  MAX_PENDING_CONNECTIONS_PER_IP,
  NODE_SSH_PORT,
  PROXY_LISTENER_MODE,
  PROXY_SSH_PORT,
  ROLES,
  SECOND_FACTOR,
  SSH_LOGIN_TIMEOUT_MS,
  TUNNEL_PORT,
  TUNNEL_PUBLIC_ADDR_ENV,
  WEB_PORT,
} from "./defaults.ts";
import {
  CLUSTER_NAME,
  type FileConfig,
  type KeyPair,
  LABEL_KEY,
  loadConfigFile,
  type LogSeverity,
  type ProxyListenerMode,
  type ProxyProtocolMode,
  type Role,
  type SecondFactor,
  type StaticToken,
  type StorageSection,
  VALID_ROLES,
} from "./file_config.ts";

/** Flags of `teleport start` that take part in configuration. Absent = not given. */
export interface StartFlags {
  /** `--roles=auth,proxy,node`: exactly these services run. */
  roles?: string;
  config?: string;
  pidFile?: string;
  token?: string;
  caPins?: string[];
  authServer?: string;
  proxyServer?: string;
  dataDir?: string;
  nodename?: string;
  /** `--labels=k=v,k2=v2` (replaces `ssh_service.labels`). */
  labels?: string;
  insecure?: boolean;
  /**
   * `--insecure-no-tls`: the proxy's web port speaks plain HTTP and plain SSH, for a load
   * balancer in front that terminates TLS.
   */
  insecureNoTls?: boolean;
  debug?: boolean;
  clusterName?: string;
  /** `--diag-addr=HOST:PORT`: the diagnostics endpoint (overrides `teleport.diag_addr`). */
  diagAddr?: string;
}

/** HTTP CONNECT proxy settings from the environment (upper case wins over lower case). */
export interface ProxyEnv {
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
}

/** What the rest of the program consumes. See {@link resolveProcessConfig}. */
export interface ProcessConfig {
  nodeName: string;
  dataDir: string;
  pidFile?: string;
  debug: boolean;
  log: {
    output: string;
    severity: LogSeverity;
    format: "text" | "json";
    extraFields: string[];
  };
  roles: { auth: boolean; proxy: boolean; node: boolean };
  /** Join token (or a path to a file holding it, as `auth_token` allows). */
  joinToken?: string;
  caPins: string[];
  /**
   * Auth servers to connect to. When the auth role runs in this process and
   * none is configured, this is the auth listen address with an unspecified
   * host turned into 127.0.0.1 (with port 0 the wiring must use the bound port).
   */
  authServers: Addr[];
  /** Join and connect through this proxy instead of an auth server. */
  proxyServer?: Addr;
  diagAddr?: Addr;
  /** Upper bound of a graceful stop (SIGQUIT): sessions and tunnels get this long to end. */
  drainTimeoutMs: number;
  insecure: boolean;
  /** How often CA rotation state is checked (auth moves it on, hosts follow it). */
  caRefreshIntervalMs: number;
  /**
   * Where the auth role keeps cluster state (`teleport.storage`); unset means Deno KV under
   * `<dataDir>/backend`, as `type: dir` without a path.
   */
  storage?: StorageSection;
  /** Admission control shared by every listener (`teleport.connection_limits`). */
  connectionLimits: {
    maxConnectionsPerIp: number;
    maxPendingPerIp: number;
    handshakeTimeoutMs: number;
    sshLoginTimeoutMs: number;
    /** Unset: a tenth of the open-files limit (at least 256, at most half). */
    descriptorReserve?: number;
    /** Connections of the whole process; unset: bounded by the descriptor reserve only. */
    maxTotalConnections?: number;
    /** Per-address limit of auth API calls without credentials; unset: the API's default. */
    unauthenticatedRate?: { burst: number; perMinute: number };
  };
  auth: {
    listenAddr: Addr;
    /** Unset: the auth service decides at runtime (see `defaultClusterName`). */
    clusterName?: string;
    publicAddrs: Addr[];
    staticTokens: StaticToken[];
    proxyListenerMode: ProxyListenerMode;
    secondFactor: SecondFactor;
    webauthnRpId?: string;
    /** `audit_events_uri`: `postgresql://…` or `file:///dir`; unset, `<dataDir>/log/events`. */
    auditEventsUri?: string;
    /** `audit_sessions_uri`: `postgresql://…` or `file:///dir`; unset, `<dataDir>/log/records`. */
    auditSessionsUri?: string;
  };
  proxy: {
    /**
     * Proxy SSH listener. In multiplex mode, when not set in the file, it
     * equals `webListenAddr`: SSH is then served by TLS routing on the web
     * port, and the wiring opens no separate listener. Same for the tunnel.
     */
    sshListenAddr: Addr;
    webListenAddr: Addr;
    tunnelListenAddr: Addr;
    publicAddrs: Addr[];
    sshPublicAddrs: Addr[];
    tunnelPublicAddrs: Addr[];
    httpsKeyPairs: KeyPair[];
    /** How often the `httpsKeyPairs` files are re-read; 0 never. */
    httpsKeyPairsReloadIntervalMs: number;
    /** PROXY headers on the proxy's listeners (`proxy_service.proxy_protocol`). */
    proxyProtocol: ProxyProtocolMode;
    /** `--insecure-no-tls`: the web port serves plain HTTP (a TLS-terminating LB in front). */
    disableTls: boolean;
  };
  ssh: {
    listenAddr: Addr;
    publicAddrs: Addr[];
    labels: Record<string, string>;
    /** PROXY headers from a load balancer on the node's port (`ssh_service.proxy_protocol`). */
    proxyProtocol: "on" | "off";
  };
  /** `TELEPORT_TUNNEL_PUBLIC_ADDR`: the proxy address an agent's tunnel expects (seed 003). */
  tunnelPublicAddr?: Addr;
  /** `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` as found in the environment (unparsed). */
  proxyEnv: ProxyEnv;
  configFile?: string;
}

/** Input of {@link resolveProcessConfig}. */
export interface ResolveProcessConfigOptions {
  /** The parsed config file, if any. */
  file?: FileConfig;
  flags: StartFlags;
  /** The machine's host name (node name default). */
  hostname: string;
  env: Record<string, string | undefined>;
}

/**
 * Parses a `--roles` value (`"auth,proxy,node"`, case-insensitive).
 * Throws BadParameterError naming `where` for an unknown or missing role.
 */
export function parseRoles(text: string, where = "--roles"): Role[] {
  const roles: Role[] = [];
  for (const raw of text.split(",")) {
    const r = raw.trim().toLowerCase();
    if (r === "") continue;
    if (!(VALID_ROLES as readonly string[]).includes(r)) {
      throw new BadParameterError(
        `Cannot parse ${where} "${text}": unknown role "${raw.trim()}"; valid roles are ${
          VALID_ROLES.join(", ")
        }`,
      );
    }
    if (!roles.includes(r as Role)) roles.push(r as Role);
  }
  if (roles.length === 0) {
    throw new BadParameterError(
      `Cannot parse ${where} "${text}": give at least one of ${VALID_ROLES.join(", ")}`,
    );
  }
  return roles;
}

/**
 * Parses a `--labels` value: `key=value` pairs separated by commas. Keys use
 * letters, digits and `. - _ / :`; values may be empty. Dynamic labels
 * (`key=[1h:command]`) are not supported.
 */
export function parseLabels(text: string, where = "--labels"): Record<string, string> {
  const out: [string, string][] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq < 0) {
      throw new BadParameterError(`Cannot parse ${where} "${text}": "${item}" is not key=value`);
    }
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (!LABEL_KEY.test(key)) {
      throw new BadParameterError(
        `Cannot parse ${where} "${text}": invalid label key "${key}" (use letters, digits and . - _ / : only)`,
      );
    }
    if (value.startsWith("[")) {
      throw new BadParameterError(
        `Cannot parse ${where} "${text}": dynamic label "${key}" (command labels) is not supported`,
      );
    }
    out.push([key, value]);
  }
  return Object.fromEntries(out);
}

function checkClusterName(name: string, where: string): string {
  if (!CLUSTER_NAME.test(name)) {
    throw new BadParameterError(
      `Cannot parse ${where} "${name}": a cluster name uses letters, digits and . _ - : only`,
    );
  }
  return name;
}

function envValue(env: Record<string, string | undefined>, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n]?.trim();
    if (v) return v;
  }
  return undefined;
}

function isTruthy(v: string | undefined): boolean {
  return v !== undefined && ["1", "true", "yes", "on"].includes(v.trim().toLowerCase());
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

/**
 * Builds the runtime configuration. Precedence: flags, then the file, then
 * the defaults in `defaults.ts`.
 *
 * - Roles: `--roles` gives exactly the services to run. Without it, each
 *   `*_service` section's `enabled` decides (absent section ⇒ enabled). With
 *   no file at all: auth, proxy and node.
 * - `--auth-server` replaces the file's auth servers and proxy server;
 *   `--proxy-server` replaces both too. Giving both flags is an error.
 * - A process without the auth role needs an auth server or proxy server.
 * - In multiplex mode, proxy SSH and tunnel listen addresses not set in the
 *   file equal the web listen address.
 *
 * Throws BadParameterError; flag errors name the flag, file errors the file.
 */
export function resolveProcessConfig(opts: ResolveProcessConfigOptions): ProcessConfig {
  const { file, flags, env } = opts;
  const where = file?.path === undefined ? "" : ` ${file.path}`;

  // Roles.
  let roles: ProcessConfig["roles"];
  if (flags.roles !== undefined) {
    const list = parseRoles(flags.roles, "--roles");
    roles = {
      auth: list.includes("auth"),
      proxy: list.includes("proxy"),
      node: list.includes("node"),
    };
  } else if (file) {
    roles = {
      auth: file.authService.enabled,
      proxy: file.proxyService.enabled,
      node: file.sshService.enabled,
    };
    if (!roles.auth && !roles.proxy && !roles.node) {
      throw new BadParameterError(
        `Cannot load config${where}: no service is enabled; enable auth_service, proxy_service or ssh_service (or pass --roles)`,
      );
    }
  } else {
    roles = {
      auth: ROLES.includes("auth"),
      proxy: ROLES.includes("proxy"),
      node: ROLES.includes("node"),
    };
  }

  const t = file?.teleport;
  const fa = file?.authService;
  const fp = file?.proxyService;
  const fs = file?.sshService;

  const debug = flags.debug ?? isTruthy(env[DEBUG_ENV]);
  const listen = (port: number): Addr => ({ host: LISTEN_HOST, port });

  // Auth.
  const clusterName = nonEmpty(flags.clusterName) !== undefined
    ? checkClusterName(flags.clusterName!.trim(), "--cluster-name")
    : fa?.clusterName;
  const authListen = fa?.listenAddr ?? listen(AUTH_PORT);
  const proxyListenerMode = fa?.proxyListenerMode ?? PROXY_LISTENER_MODE;

  // Where to find the auth API.
  const authFlag = nonEmpty(flags.authServer);
  const proxyFlag = nonEmpty(flags.proxyServer);
  if (authFlag && proxyFlag) {
    throw new BadParameterError(
      "Cannot use --auth-server and --proxy-server together: an agent joins through one of them",
    );
  }
  let authServers: Addr[] = t?.authServers ?? [];
  let proxyServer = t?.proxyServer;
  if (authFlag) {
    authServers = [parseAddr(authFlag, AUTH_PORT, "--auth-server")];
    proxyServer = undefined;
  } else if (proxyFlag) {
    proxyServer = parseAddr(proxyFlag, WEB_PORT, "--proxy-server");
    authServers = [];
  }
  if (authServers.length === 0 && proxyServer === undefined) {
    if (roles.auth) {
      authServers = [dialAddrOf(authListen)];
    } else {
      throw new BadParameterError(
        "Cannot start without the auth role and without an auth server: pass --auth-server " +
          "(or set teleport.auth_server or teleport.proxy_server in the config file)",
      );
    }
  }

  // Proxy.
  const webListen = fp?.webListenAddr ?? listen(WEB_PORT);
  const multiplex = proxyListenerMode === "multiplex";
  const sshListen = fp?.listenAddr ?? (multiplex ? webListen : listen(PROXY_SSH_PORT));
  const tunnelListen = fp?.tunnelListenAddr ?? (multiplex ? webListen : listen(TUNNEL_PORT));

  // Environment.
  const tunnelEnv = nonEmpty(env[TUNNEL_PUBLIC_ADDR_ENV]);
  const proxyEnv: ProxyEnv = {};
  const httpsProxy = envValue(env, "HTTPS_PROXY", "https_proxy");
  const httpProxy = envValue(env, "HTTP_PROXY", "http_proxy");
  const noProxy = envValue(env, "NO_PROXY", "no_proxy");
  if (httpsProxy) proxyEnv.httpsProxy = httpsProxy;
  if (httpProxy) proxyEnv.httpProxy = httpProxy;
  if (noProxy) proxyEnv.noProxy = noProxy;

  const caPins = (flags.caPins?.length ? flags.caPins : t?.caPins ?? [])
    .map((p) => p.trim())
    .filter((p) => p !== "");

  const cfg: ProcessConfig = {
    nodeName: nonEmpty(flags.nodename) ?? t?.nodeName ?? defaultNodeName(opts.hostname),
    dataDir: nonEmpty(flags.dataDir) ?? t?.dataDir ?? DATA_DIR,
    debug,
    log: {
      output: t?.log.output ?? LOG_OUTPUT,
      severity: debug ? "DEBUG" : t?.log.severity ?? LOG_SEVERITY,
      format: t?.log.format ?? LOG_FORMAT,
      extraFields: [...(t?.log.extraFields ?? LOG_EXTRA_FIELDS)],
    },
    roles,
    caPins,
    authServers,
    insecure: flags.insecure ?? false,
    caRefreshIntervalMs: CA_REFRESH_INTERVAL_MS,
    ...(t?.storage === undefined ? {} : { storage: t.storage }),
    connectionLimits: {
      maxConnectionsPerIp: t?.connectionLimits.maxConnections ?? MAX_CONNECTIONS_PER_IP,
      maxPendingPerIp: t?.connectionLimits.maxPendingConnections ??
        MAX_PENDING_CONNECTIONS_PER_IP,
      handshakeTimeoutMs: t?.connectionLimits.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      sshLoginTimeoutMs: t?.connectionLimits.sshLoginTimeoutMs ?? SSH_LOGIN_TIMEOUT_MS,
      ...(t?.connectionLimits.descriptorReserve === undefined
        ? {}
        : { descriptorReserve: t.connectionLimits.descriptorReserve }),
      ...(t?.connectionLimits.maxTotalConnections === undefined
        ? {}
        : { maxTotalConnections: t.connectionLimits.maxTotalConnections }),
      ...(t?.connectionLimits.unauthenticatedRate === undefined
        ? {}
        : { unauthenticatedRate: t.connectionLimits.unauthenticatedRate }),
    },
    auth: {
      listenAddr: authListen,
      publicAddrs: fa?.publicAddrs ?? [],
      staticTokens: fa?.tokens ?? [],
      proxyListenerMode,
      secondFactor: fa?.authentication.secondFactor ?? SECOND_FACTOR,
    },
    proxy: {
      sshListenAddr: sshListen,
      webListenAddr: webListen,
      tunnelListenAddr: tunnelListen,
      publicAddrs: fp?.publicAddrs ?? [],
      sshPublicAddrs: fp?.sshPublicAddrs ?? [],
      tunnelPublicAddrs: fp?.tunnelPublicAddrs ?? [],
      httpsKeyPairs: fp?.httpsKeyPairs ?? [],
      httpsKeyPairsReloadIntervalMs: fp?.httpsKeyPairsReloadIntervalMs ?? 0,
      proxyProtocol: fp?.proxyProtocol ?? "unspecified",
      disableTls: flags.insecureNoTls ?? false,
    },
    ssh: {
      listenAddr: fs?.listenAddr ?? listen(NODE_SSH_PORT),
      publicAddrs: fs?.publicAddrs ?? [],
      labels: flags.labels !== undefined
        ? parseLabels(flags.labels, "--labels")
        : { ...fs?.labels },
      proxyProtocol: fs?.proxyProtocol ?? "off",
    },
    proxyEnv,
    drainTimeoutMs: t?.drainTimeoutMs ?? GRACEFUL_SHUTDOWN_TIMEOUT_MS,
  };
  const pidFile = nonEmpty(flags.pidFile) ?? t?.pidFile;
  if (pidFile !== undefined) cfg.pidFile = pidFile;
  const joinToken = nonEmpty(flags.token) ?? t?.authToken ?? t?.joinParams?.tokenName;
  if (joinToken !== undefined) cfg.joinToken = joinToken;
  if (proxyServer !== undefined) cfg.proxyServer = proxyServer;
  const diagFlag = nonEmpty(flags.diagAddr);
  if (diagFlag !== undefined) cfg.diagAddr = parseAddr(diagFlag, DIAG_PORT, "--diag-addr");
  else if (t?.diagAddr !== undefined) cfg.diagAddr = t.diagAddr;
  if (clusterName !== undefined) cfg.auth.clusterName = clusterName;
  if (fa?.auditEventsUri !== undefined) cfg.auth.auditEventsUri = fa.auditEventsUri;
  if (fa?.auditSessionsUri !== undefined) cfg.auth.auditSessionsUri = fa.auditSessionsUri;
  if (fa?.authentication.webauthnRpId !== undefined) {
    cfg.auth.webauthnRpId = fa.authentication.webauthnRpId;
  }
  if (tunnelEnv !== undefined) {
    cfg.tunnelPublicAddr = parseAddr(tunnelEnv, TUNNEL_PORT, TUNNEL_PUBLIC_ADDR_ENV);
  }
  if (file?.path !== undefined) cfg.configFile = file.path;
  return cfg;
}

/**
 * Finds and loads the config file for `teleport start`: `--config`, else
 * `$TELEPORT_CONFIG_FILE` (both must exist), else `defaultPath`
 * (`/etc/teleport.yaml`) when it exists. Returns undefined when there is none.
 */
export async function loadConfigForStart(
  flags: StartFlags,
  env: Record<string, string | undefined>,
  defaultPath: string = CONFIG_PATH,
): Promise<FileConfig | undefined> {
  const explicit = nonEmpty(flags.config) ?? nonEmpty(env[CONFIG_FILE_ENV]);
  if (explicit !== undefined) return await loadConfigFile(explicit);
  try {
    return await loadConfigFile(defaultPath);
  } catch (err) {
    if (isKind(err, "NotFound")) return undefined;
    throw err;
  }
}
