/**
 * TeleportProcess: turns a ProcessConfig into running services: auth (backend,
 * CAs, mTLS API, admin identity), proxy (proxy_service.ts) and node, in that
 * order, each announcing readiness (`auth.ready`, `proxy.ready`, `node.ready`).
 *
 * Start-up (auth role), in order:
 *  1. data dir checked/created 0700 (data_dir.ts), pid file written (pid_file.ts);
 *  2. backend opened: Deno KV at `<data_dir>/backend/kv.db`, single writer (lib/backend);
 *  3. AuthServer.init(): cluster name checked, CAs and built-in roles created (lib/auth);
 *  4. auth's TLS identity issued from the host CA, HTTPS API bound (lib/auth/listener.ts);
 *  5. admin identity written to `<data_dir>/admin.identity` (0600) for tctl;
 *  6. `auth.ready` broadcast with the bound address.
 */
import { AuthServer, CLUSTER_LOCAL_DNS, startAuthApiServer } from "../auth/mod.ts";
import { type Backend, openBackend } from "../backend/mod.ts";
import {
  generateTlsKeyPair,
  importSshPrivateKey,
  parseAuthorizedKey,
  parseSshCertificate,
} from "../ca/mod.ts";
import { WebClient } from "../client/mod.ts";
import { ConnectionGuard, dialTcp, readOpenFilesLimit } from "../net/mod.ts";
import { AgentPool, type FindSettings, parseHostPort, resolveTunnelAddr } from "../tunnel/mod.ts";
import { type Clock, RealClock } from "../clock/mod.ts";
import {
  type Addr,
  defaultClusterName,
  formatAddr,
  isUnspecifiedHost,
  NODE_HEARTBEAT_INTERVAL_MS,
  type ProcessConfig,
  SERVER_ANNOUNCE_TTL_MS,
  USER_INVITE_TTL_MS,
} from "../config/mod.ts";
import { AUTH_SERVER_NAME, AuthClient, type RegisterResponse } from "../authclient/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import { NodeService, runPeriodic } from "../node/mod.ts";
import {
  hostCaKeyLines,
  hostIdentityPath,
  type HostRenewRequest,
  loadOrObtainHostIdentity,
  renewHostIdentityIfNamesChanged,
  reRegisterWithAuth,
} from "./host_identity.ts";
import { type ProxyReady, startProxyService } from "./proxy_service.ts";
import { HostCredentials, type HostCredentialsChange } from "./host_credentials.ts";
import { FileAuditLog, RecordingStore } from "../events/mod.ts";
import { type IdentityFile, writeIdentityFile } from "../identity/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import { ensureDataDir, loadHostUuid } from "./data_dir.ts";
import { writePidFile } from "./pid_file.ts";
import { Supervisor } from "./supervisor.ts";
import { VERSION } from "../config/mod.ts";

/** Inputs of {@link TeleportProcess.start}. */
export interface TeleportProcessOptions {
  config: ProcessConfig;
  /** The machine's host name (default cluster name). */
  hostname: string;
  clock?: Clock;
  /** Backend URI override (tests use "memory:"). Default: KV in the data dir. */
  backendUri?: string;
}

/** What `auth.ready` carries. */
export interface AuthReady {
  host: string;
  port: number;
  clusterName: string;
  adminIdentityPath: string;
}

/** What `node.ready` carries. */
export interface NodeReady {
  /** Bound SSH address; "" and 0 in reverse tunnel mode. */
  host: string;
  port: number;
  /** Reverse tunnel mode: the proxy the node joined through. */
  tunnelVia?: string;
  hostId: string;
  nodeName: string;
  clusterName: string;
}

/** Below this open-files limit the process warns at start. */
const LOW_OPEN_FILES_LIMIT = 8192;

/** File name of the admin identity inside the data dir. */
export const ADMIN_IDENTITY_FILE = "admin.identity";

/** The fixed-port listen addresses the config asks for, each with the key that sets it. */
export function listenAddrsOf(cfg: ProcessConfig): Array<{ key: string; addr: Addr }> {
  const out: Array<{ key: string; addr: Addr }> = [];
  if (cfg.roles.auth) out.push({ key: "auth_service.listen_addr", addr: cfg.auth.listenAddr });
  if (cfg.roles.proxy) {
    const p = cfg.proxy;
    out.push({ key: "proxy_service.web_listen_addr", addr: p.webListenAddr });
    // SSH and tunnel ports of their own only in separate mode (known here with auth in-process;
    // a remote auth decides later, and a bind failure then still names the address).
    if (cfg.roles.auth && cfg.auth.proxyListenerMode === "separate") {
      out.push({ key: "proxy_service.listen_addr", addr: p.sshListenAddr });
      out.push({ key: "proxy_service.tunnel_listen_addr", addr: p.tunnelListenAddr });
    }
  }
  const tunnelNode = !cfg.roles.auth && cfg.authServers.length === 0 &&
    cfg.proxyServer !== undefined;
  if (cfg.roles.node && !tunnelNode) {
    out.push({ key: "ssh_service.listen_addr", addr: cfg.ssh.listenAddr });
  }
  // Port 0 picks a free port; an address shared by two keys (TLS routing) is checked once.
  const seen = new Set<string>();
  return out.filter(({ addr }) => {
    const id = formatAddr(addr);
    if (addr.port === 0 || seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * Binds and releases each address, so that one that cannot be bound fails the start with its
 * config key and the fix, before anything is created.
 */
export function checkListenAddrs(addrs: Array<{ key: string; addr: Addr }>): void {
  for (const { key, addr } of addrs) {
    let listener: Deno.Listener | undefined;
    try {
      listener = Deno.listen({ hostname: addr.host, port: addr.port });
    } catch (err) {
      const where = `${key} ${formatAddr(addr)}`;
      let why = messageOf(err);
      if (err instanceof Deno.errors.AddrInUse) {
        why = `the port is in use (another teleport or service holds it); stop it or change ${key}`;
      } else if (err instanceof Deno.errors.AddrNotAvailable) {
        why = `no network interface of this machine has address ${addr.host}; change ${key}`;
      } else if (err instanceof Deno.errors.PermissionDenied) {
        why = `ports below 1024 need root (or CAP_NET_BIND_SERVICE); change ${key} or run as root`;
      } else if (err instanceof Deno.errors.NotFound || /lookup|resolve/i.test(why)) {
        why = `host ${addr.host} does not resolve; change ${key}`;
      }
      throw new BadParameterError(`Cannot listen on ${where}: ${why}`, { cause: err });
    } finally {
      listener?.close();
    }
  }
}

/** One teleport process and its services. */
export class TeleportProcess implements AsyncDisposable {
  readonly supervisor: Supervisor;
  readonly config: ProcessConfig;
  auth?: AuthServer;
  node?: NodeService;
  proxy?: ProxyReady;
  /** Admission control shared by every listener of the process. */
  readonly guard: ConnectionGuard;
  #cleanups: Array<() => Promise<void>> = [];

  private constructor(config: ProcessConfig, guard: ConnectionGuard) {
    this.config = config;
    this.guard = guard;
    this.supervisor = new Supervisor({ logger: getComponentLogger("service") });
  }

  /** Starts every configured service; resolves once all are ready. */
  static async start(opts: TeleportProcessOptions): Promise<TeleportProcess> {
    const cfg = opts.config;
    if (!cfg.roles.auth && !cfg.roles.node && !cfg.roles.proxy) {
      throw new BadParameterError("Cannot start: no role to run; use --roles=auth,proxy,node");
    }
    const limits = cfg.connectionLimits;
    const log = getComponentLogger("service");
    // Deno raises the soft open-files limit to the hard limit when it starts (checked by
    // lib/net/guard_test.ts); the hard limit is the operator's (LimitNOFILE= in the unit).
    const nofile = readOpenFilesLimit();
    if (nofile !== undefined && nofile < LOW_OPEN_FILES_LIMIT) {
      log.warn(
        "The open-files limit is {limit}: few connections fit; raise the hard limit " +
          "(LimitNOFILE=524288 in the systemd unit, or ulimit -Hn)",
        { limit: nofile },
      );
    }
    const guard = new ConnectionGuard({
      logger: getComponentLogger("limits"),
      maxConnectionsPerIp: limits.maxConnectionsPerIp,
      maxPendingPerIp: limits.maxPendingPerIp,
      ...(limits.maxTotalConnections === undefined
        ? {}
        : { maxConnections: limits.maxTotalConnections }),
      ...(limits.descriptorReserve === undefined
        ? {}
        : { descriptorReserve: limits.descriptorReserve }),
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    });
    const proc = new TeleportProcess(cfg, guard);
    try {
      // Before anything is created (data dir contents, CAs): a port that cannot be bound is a
      // config error naming its key.
      checkListenAddrs(listenAddrsOf(cfg));
      await ensureDataDir(cfg.dataDir);
      if (cfg.pidFile !== undefined) proc.#cleanups.push(await writePidFile(cfg.pidFile));
      if (cfg.roles.auth) await proc.#startAuth(opts);
      if (cfg.roles.proxy) await proc.#startProxy(opts);
      if (cfg.roles.node) await proc.#startNode(opts);
    } catch (err) {
      await proc.close();
      throw err;
    }
    return proc;
  }

  async #startAuth(opts: TeleportProcessOptions): Promise<void> {
    const cfg = this.config;
    const clock = opts.clock ?? new RealClock();
    const log = getComponentLogger("auth");
    let backendUri = opts.backendUri;
    if (backendUri === undefined) {
      await Deno.mkdir(`${cfg.dataDir}/backend`, { recursive: true, mode: 0o700 });
      backendUri = `kv:${cfg.dataDir}/backend/kv.db`;
    }
    const backend: Backend = await openBackend(backendUri, { clock });
    this.#cleanups.push(() => backend.close());
    const clusterName = cfg.auth.clusterName ?? defaultClusterName(opts.hostname);
    // Audit events and recordings are files under <data_dir>/log, never in the backend.
    const auditLog = new FileAuditLog({
      dir: `${cfg.dataDir}/log/events`,
      clock,
      logger: getComponentLogger("auth:audit"),
    });
    this.#cleanups.push(() => auditLog.close());
    const recordings = new RecordingStore({
      dir: `${cfg.dataDir}/log/records`,
      logger: getComponentLogger("auth:recordings"),
    });
    const auth = new AuthServer({
      backend,
      clock,
      logger: log,
      clusterName,
      version: VERSION,
      staticTokens: cfg.auth.staticTokens,
      secondFactor: cfg.auth.secondFactor,
      proxyListenerMode: cfg.auth.proxyListenerMode,
      userTokenTtlMs: USER_INVITE_TTL_MS,
      auditLog,
      recordings,
    });
    await auth.init();
    this.auth = auth;
    const hostUuid = await loadHostUuid(cfg.dataDir);

    // The auth API's own certificate: clients verify `teleport.cluster.local`;
    // the other names let tools that verify the dialled name work too.
    const hosts = [cfg.auth.listenAddr, ...cfg.auth.publicAddrs]
      .map((a: Addr) => a.host)
      .filter((h) => h !== "" && !isUnspecifiedHost(h));
    const apiKey = await generateTlsKeyPair();
    const issueApiCert = () =>
      auth.generateHostTlsCert({
        hostId: hostUuid,
        role: "Auth",
        tlsPublicKeyPem: apiKey.publicKeyPem,
        names: [...CLUSTER_LOCAL_DNS, cfg.nodeName, "localhost", "127.0.0.1", "::1", ...hosts],
      });
    const apiCert = await issueApiCert();
    const api = await startAuthApiServer({
      server: auth,
      logger: getComponentLogger("auth:api"),
      host: cfg.auth.listenAddr.host,
      port: cfg.auth.listenAddr.port,
      certPem: apiCert,
      keyPem: apiKey.privateKeyPem,
      guard: this.guard,
      handshakeTimeoutMs: cfg.connectionLimits.handshakeTimeoutMs,
      ...(cfg.connectionLimits.unauthenticatedRate === undefined
        ? {}
        : { unauthenticatedRateLimit: cfg.connectionLimits.unauthenticatedRate }),
    });
    this.#cleanups.push(() => api.close());
    log.info("Auth service {version} is listening on {host}:{port}, cluster {cluster}", {
      version: VERSION,
      host: api.host,
      port: api.port,
      cluster: clusterName,
    });

    const adminKey = await generateTlsKeyPair();
    const adminIdentityPath = `${cfg.dataDir}/${ADMIN_IDENTITY_FILE}`;
    /** tctl's identity on this host: a certificate of the signing key, trusting every host CA. */
    const writeAdminIdentity = async () => {
      const adminCert = await auth.generateHostTlsCert({
        hostId: hostUuid,
        role: "Admin",
        tlsPublicKeyPem: adminKey.publicKeyPem,
      });
      await writeIdentityFile(adminIdentityPath, {
        keyPem: adminKey.privateKeyPem,
        tlsCertPem: adminCert,
        tlsCaCertPems: auth.hostCaCertPems(),
        sshCaKeys: [],
      });
    };
    await writeAdminIdentity();
    // A host CA rotation: from update_servers on (and on rollback) the API serves a certificate
    // of the signing key; clients trust both generations by then (they did since init).
    let hostCaChange = Promise.resolve();
    const unwatch = auth.watchAuthorities((type) => {
      if (type !== "host") return;
      hostCaChange = hostCaChange.then(async () => {
        await writeAdminIdentity();
        const phase = auth.rotationPhase("host");
        if (phase === "update_servers" || phase === "rollback" || phase === "standby") {
          api.setCertificate({ certPem: await issueApiCert(), keyPem: apiKey.privateKeyPem });
          log.info("The auth API certificate was re-issued (host CA rotation phase {phase})", {
            phase,
          });
        }
      }).catch((err) => {
        log.error("Cannot follow the host CA rotation: {error}", { error: err });
      });
    });
    this.#cleanups.push(() => {
      unwatch();
      return Promise.resolve();
    });

    this.supervisor.run("auth.api", async (signal) => {
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      await api.close();
    });
    // Moves semi-automatic rotations on, and picks up rotations made by another auth server.
    this.supervisor.run("auth.rotation", (signal) =>
      runPeriodic({
        name: "CA rotation check",
        task: () => auth.advanceRotations(),
        intervalMs: cfg.caRefreshIntervalMs,
        clock,
        logger: log,
        signal,
      }));
    const ready: AuthReady = { host: api.host, port: api.port, clusterName, adminIdentityPath };
    this.supervisor.broadcast("auth.ready", ready);
  }

  /** The auth API address services of this process talk to. */
  async #authAddr(service: string): Promise<Addr> {
    const local = this.auth !== undefined
      ? (await this.supervisor.waitFor("auth.ready")) as AuthReady
      : undefined;
    const authAddr = local !== undefined
      ? { host: isUnspecifiedHost(local.host) ? "127.0.0.1" : local.host, port: local.port }
      : this.config.authServers[0];
    if (authAddr === undefined) {
      throw new BadParameterError(
        `Cannot start the ${service} service: no auth server is configured; pass --auth-server=HOST:3025`,
      );
    }
    return authAddr;
  }

  async #startProxy(opts: TeleportProcessOptions): Promise<void> {
    const cfg = this.config;
    const stop = new AbortController();
    const proxy = await startProxyService({
      config: cfg,
      hostId: await loadHostUuid(cfg.dataDir),
      clock: opts.clock ?? new RealClock(),
      ...(this.auth !== undefined ? { localAuth: this.auth } : {}),
      authAddr: await this.#authAddr("proxy"),
      signal: stop.signal,
      guard: this.guard,
    });
    this.#cleanups.push(async () => {
      stop.abort();
      await proxy.close();
    });
    this.supervisor.run("proxy", async (signal) => {
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      stop.abort();
    });
    this.proxy = proxy.ready;
    this.supervisor.broadcast("proxy.ready", proxy.ready);
  }

  async #startNode(opts: TeleportProcessOptions): Promise<void> {
    if (this.auth === undefined && this.config.authServers.length === 0) {
      if (this.config.proxyServer !== undefined) {
        return await this.#startTunnelNode(opts, this.config.proxyServer);
      }
    }
    const cfg = this.config;
    const clock = opts.clock ?? new RealClock();
    const log = getComponentLogger("node");
    const hostId = await loadHostUuid(cfg.dataDir);
    const authAddr = await this.#authAddr("node");
    const identityPath = hostIdentityPath(cfg.dataDir, "node");
    const identity = await loadOrObtainHostIdentity({
      dataDir: cfg.dataDir,
      role: "node",
      hostId,
      nodeName: cfg.nodeName,
      additionalPrincipals: cfg.ssh.publicAddrs.map((a) => a.host),
      ...(this.auth !== undefined ? { localAuth: this.auth } : {}),
      authServer: { host: authAddr.host, port: authAddr.port },
      ...(cfg.joinToken !== undefined ? { joinToken: cfg.joinToken } : {}),
      caPins: cfg.caPins,
      reRegister: reRegisterWithAuth(authAddr),
      logger: log,
    });
    if (identity.sshCert === undefined) {
      throw new BadParameterError(
        `Cannot start the node service: ${identityPath} has no SSH host certificate; remove it and join again with a new token`,
      );
    }
    const client = new AuthClient({
      host: authAddr.host,
      port: authAddr.port,
      caCertPems: identity.tlsCaCertPems,
      identity: { certPem: identity.tlsCertPem, keyPem: identity.keyPem },
    });
    this.#cleanups.push(() => Promise.resolve(client.close()));
    const node = await this.#serveNode({
      identity: { ...identity, sshCert: identity.sshCert },
      identityPath,
      hostId,
      auth: client,
      clock,
      log,
      reRegister: reRegisterWithAuth(authAddr),
      listen: { hostname: cfg.ssh.listenAddr.host, port: cfg.ssh.listenAddr.port },
      ...(cfg.ssh.publicAddrs[0] !== undefined
        ? { advertiseAddr: formatAddr(cfg.ssh.publicAddrs[0]) }
        : {}),
    });
    log.info("Node {node} ({host}) is serving SSH on {addr}, cluster {cluster}", {
      node: cfg.nodeName,
      host: hostId,
      addr: `${node.addr.hostname}:${node.addr.port}`,
      cluster: node.clusterName,
    });
    this.supervisor.broadcast(
      "node.ready",
      {
        host: node.addr.hostname,
        port: node.addr.port,
        hostId,
        nodeName: cfg.nodeName,
        clusterName: node.clusterName,
      } satisfies NodeReady,
    );
  }

  /**
   * Starts the node service on `identity` and stops it with the process; follows CA rotations
   * (new trusted keys, re-issued certificates) without a restart.
   */
  async #serveNode(o: {
    identity: IdentityFile & { sshCert: string };
    identityPath: string;
    hostId: string;
    auth: AuthClient;
    clock: Clock;
    log: Logger;
    listen?: { hostname: string; port: number };
    advertiseAddr?: string;
    onStop?: () => Promise<void>;
    /** Asks auth for certificates of the same key (CA rotation), authenticated by `current`. */
    reRegister: (current: IdentityFile, req: HostRenewRequest) => Promise<RegisterResponse>;
    /** Told about new credentials after the node and auth client took them. */
    onCredentials?: (change: HostCredentialsChange) => void;
  }): Promise<NodeService> {
    const cfg = this.config;
    const late: { node?: NodeService } = {};
    const creds = new HostCredentials({
      role: "node",
      path: o.identityPath,
      identity: o.identity,
      nodeName: cfg.nodeName,
      additionalPrincipals: cfg.ssh.publicAddrs.map((a) => a.host),
      readHostCa: () => o.auth.getResource("cert_authority", "host"),
      reRegister: o.reRegister,
      logger: o.log,
      onChange: (change) => {
        const id = change.identity;
        o.auth.setCredentials({
          caCertPems: id.tlsCaCertPems,
          identity: { certPem: id.tlsCertPem, keyPem: id.keyPem },
        });
        if (change.certificates && id.sshCert !== undefined) {
          late.node?.setHostCertificate(id.sshCert);
          o.log.info("The node presents its re-issued host certificate to new connections");
        }
        o.onCredentials?.(change);
      },
    });
    const recordingsDir = `${cfg.dataDir}/log/upload`;
    await Deno.mkdir(recordingsDir, { recursive: true, mode: 0o700 });
    const node = await NodeService.start({
      keyPem: o.identity.keyPem,
      sshCert: o.identity.sshCert,
      userCaKeys: o.identity.sshUserCaKeys ?? [],
      hostCaKeys: hostCaKeyLines(o.identity),
      hostId: o.hostId,
      nodeName: cfg.nodeName,
      auth: o.auth,
      ...(o.listen !== undefined ? { listen: o.listen } : {}),
      ...(o.advertiseAddr !== undefined ? { advertiseAddr: o.advertiseAddr } : {}),
      labels: cfg.ssh.labels,
      guard: this.guard,
      loginTimeoutMs: cfg.connectionLimits.sshLoginTimeoutMs,
      // tsh ls tells offline nodes by these (NODE_OFFLINE_AFTER_MS).
      heartbeatIntervalMs: NODE_HEARTBEAT_INTERVAL_MS,
      heartbeatTtlMs: SERVER_ANNOUNCE_TTL_MS,
      recordingsDir,
      version: VERSION,
      clock: o.clock,
      logger: o.log,
      caRefreshIntervalMs: cfg.caRefreshIntervalMs,
      onUserCaKeys: (keys) => creds.setUserCaKeys(keys),
    });
    late.node = node;
    this.node = node;
    this.supervisor.run("node.rotation", (signal) =>
      runPeriodic({
        name: "Host CA rotation check",
        task: () => creds.refresh(),
        intervalMs: cfg.caRefreshIntervalMs,
        clock: o.clock,
        logger: o.log,
        signal,
      }));
    this.#cleanups.push(() => node.close());
    this.supervisor.run("node.ssh", async (signal) => {
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      await node.close();
      await o.onStop?.();
    });
    return node;
  }

  /**
   * Reverse tunnel mode (`--proxy-server`): join through the proxy's web API, hold tunnels to
   * every proxy, reach auth through them, and serve SSH only on tunnel channels (no port).
   */
  async #startTunnelNode(opts: TeleportProcessOptions, proxyAddr: Addr): Promise<void> {
    const cfg = this.config;
    const clock = opts.clock ?? new RealClock();
    const log = getComponentLogger("node");
    const hostId = await loadHostUuid(cfg.dataDir);
    const identityPath = hostIdentityPath(cfg.dataDir, "node");
    const dial = (host: string, port: number) => dialTcp(host, port, { proxy: cfg.proxyEnv });
    const web = new WebClient({
      addr: proxyAddr,
      trust: cfg.insecure ? { insecure: true } : {},
    });
    if (cfg.insecure) {
      log.warn(
        "--insecure: the certificate of the proxy's web port at {addr} is not verified during the join; the CA pin still checks the cluster CA it hands out",
        { addr: formatAddr(proxyAddr) },
      );
    }
    const identity = await loadOrObtainHostIdentity({
      dataDir: cfg.dataDir,
      role: "node",
      hostId,
      nodeName: cfg.nodeName,
      additionalPrincipals: cfg.ssh.publicAddrs.map((a) => a.host),
      joinViaProxy: (req) => web.request("POST", "/webapi/host/credentials", req),
      proxyAddr,
      ...(cfg.joinToken !== undefined ? { joinToken: cfg.joinToken } : {}),
      caPins: cfg.caPins,
      logger: log,
    });
    if (identity.sshCert === undefined) {
      throw new BadParameterError(
        `Cannot start the node service: ${identityPath} has no SSH host certificate; remove it and join again with a new token`,
      );
    }
    let hostCaBlobs = hostCaKeyLines(identity).map((k) => parseAuthorizedKey(k).blob);
    const envTunnel = cfg.tunnelPublicAddr === undefined
      ? undefined
      : formatAddr(cfg.tunnelPublicAddr);
    const late: { node?: NodeService } = {};
    let findCache: { at: number; value: FindSettings } | undefined;
    const pool = AgentPool.start({
      hostId,
      clusterName: parseSshCertificate(identity.sshCert).extensions["x-teleport-authority"] ?? "",
      key: await importSshPrivateKey(identity.keyPem),
      certificate: parseAuthorizedKey(identity.sshCert).blob,
      hostCaKeys: () => hostCaBlobs,
      resolve: async () => {
        // Cached: through a round-robin load balancer, a find before every attempt would steer
        // every tunnel attempt to the same proxy.
        let find = findCache !== undefined && clock.now().getTime() - findCache.at < 60_000
          ? findCache.value
          : undefined;
        try {
          if (find === undefined) {
            find = await web.request<FindSettings>("GET", "/webapi/find");
            findCache = { at: clock.now().getTime(), value: find };
          }
        } catch (err) {
          if (envTunnel === undefined) throw err;
          // TELEPORT_TUNNEL_PUBLIC_ADDR works even when the web API cannot be reached.
          find = { proxy: { ssh: {}, tls_routing_enabled: cfg.tunnelPublicAddr!.port !== 3024 } };
        }
        return resolveTunnelAddr({
          find,
          proxyServer: proxyAddr,
          ...(envTunnel !== undefined ? { envAddr: envTunnel } : {}),
        });
      },
      dial,
      serveLocalNode: (stream, req) => {
        const node = late.node;
        if (node === undefined) return stream.destroy();
        const src = parseHostPort(req.client_src_addr ?? "", 0);
        node.handleSocket(
          stream,
          src === undefined ? {} : { remoteAddr: src.host, remotePort: src.port },
        );
      },
      version: VERSION,
      clock,
      logger: getComponentLogger("node:tunnel"),
    });
    this.#cleanups.push(() => pool.close());
    log.info("Waiting for a reverse tunnel to the proxy at {addr}", {
      addr: formatAddr(proxyAddr),
    });
    await pool.ready();
    // The stream comes from the tunnel; the address only names auth in errors.
    const tunnelAuth = { host: AUTH_SERVER_NAME, port: 3025 };
    const renewAuth = reRegisterWithAuth(tunnelAuth, () => pool.dialAuth());
    // Renewed names take effect for SSH logins now; the tunnels keep the certificate they
    // logged in with (the proxy checks only its authority) until the next start.
    const renewed = await renewHostIdentityIfNamesChanged(
      identity,
      {
        role: "node",
        hostId,
        nodeName: cfg.nodeName,
        additionalPrincipals: cfg.ssh.publicAddrs.map((a) => a.host),
        logger: log,
      },
      identityPath,
      (req) => renewAuth(identity, req),
    );
    const sshCert = renewed.sshCert;
    if (sshCert === undefined) {
      throw new BadParameterError(
        `Cannot start the node service: the renewed ${identityPath} has no SSH host certificate`,
      );
    }
    const client = new AuthClient({
      ...tunnelAuth,
      caCertPems: renewed.tlsCaCertPems,
      identity: { certPem: renewed.tlsCertPem, keyPem: renewed.keyPem },
      dial: () => pool.dialAuth(),
    });
    this.#cleanups.push(() => Promise.resolve(client.close()));
    const node = await this.#serveNode({
      identity: { ...renewed, sshCert },
      identityPath,
      hostId,
      auth: client,
      clock,
      log,
      onStop: () => pool.close(),
      reRegister: renewAuth,
      // Tunnels check proxies against the host CA keys trusted now, and new ones log in with
      // the re-issued certificate; tunnels already up stay.
      onCredentials: (change) => {
        hostCaBlobs = hostCaKeyLines(change.identity).map((k) => parseAuthorizedKey(k).blob);
        if (change.certificates && change.identity.sshCert !== undefined) {
          pool.setCertificate(parseAuthorizedKey(change.identity.sshCert).blob);
        }
      },
    });
    late.node = node;
    log.info("Node {node} ({host}) is serving SSH through reverse tunnels, cluster {cluster}", {
      node: cfg.nodeName,
      host: hostId,
      cluster: node.clusterName,
    });
    this.supervisor.broadcast(
      "node.ready",
      {
        host: "",
        port: 0,
        tunnelVia: formatAddr(proxyAddr),
        hostId,
        nodeName: cfg.nodeName,
        clusterName: node.clusterName,
      } satisfies NodeReady,
    );
  }

  /** Stops every service and releases the backend and pid file. Idempotent. */
  async close(): Promise<void> {
    this.supervisor.stop();
    await this.supervisor.wait();
    const cleanups = this.#cleanups.reverse();
    this.#cleanups = [];
    for (const c of cleanups) {
      try {
        await c();
      } catch {
        // best effort during shutdown
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
