/**
 * Wiring of the node role: a direct node (host identity from auth, SSH on its own port) or a
 * reverse tunnel node (`--proxy-server`: joins through the proxy, holds tunnels to every proxy,
 * reaches auth through them, serves SSH only on tunnel channels).
 */
import { importSshPrivateKey, parseAuthorizedKey, parseSshCertificate } from "../ca/mod.ts";
import { dialTlsRoutingStream, WebClient } from "../client/mod.ts";
import { dialTcp } from "../net/mod.ts";
import { AgentPool, type FindSettings, parseHostPort, resolveTunnelAddr } from "../tunnel/mod.ts";
import { type Clock, RealClock } from "../clock/mod.ts";
import {
  type Addr,
  formatAddr,
  NODE_HEARTBEAT_INTERVAL_MS,
  SERVER_ANNOUNCE_TTL_MS,
  VERSION,
} from "../config/mod.ts";
import {
  AUTH_SERVER_NAME,
  AuthClient,
  CaReader,
  type RegisterResponse,
  ResourceFeed,
} from "../authclient/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import { type NodeAuthApi, NodeService, runPeriodic } from "../node/mod.ts";
import {
  hostCaKeyLines,
  hostIdentityPath,
  type HostRenewRequest,
  loadOrObtainHostIdentity,
  renewHostIdentityIfNamesChanged,
  reRegisterWithAuth,
} from "./host_identity.ts";
import type { IdentityFile } from "../identity/mod.ts";
import type { Role } from "../resource/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import { loadHostUuid } from "./data_dir.ts";
import { HostCredentials, type HostCredentialsChange } from "./host_credentials.ts";
import type { ServiceHost, TeleportProcessOptions } from "./service_host.ts";

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

/** Starts the node role on `host` (direct, or through reverse tunnels); broadcasts `node.ready`. */
export async function startNodeService(
  host: ServiceHost,
  opts: TeleportProcessOptions,
): Promise<void> {
  if (host.auth === undefined && host.config.authServers.length === 0) {
    if (host.config.proxyServer !== undefined) {
      return await startTunnelNode(host, opts, host.config.proxyServer);
    }
  }
  const cfg = host.config;
  const clock = opts.clock ?? new RealClock();
  const log = getComponentLogger("node");
  const hostId = await loadHostUuid(cfg.dataDir);
  const authAddr = await host.authAddr("node");
  const identityPath = hostIdentityPath(cfg.dataDir, "node");
  const identity = await loadOrObtainHostIdentity({
    dataDir: cfg.dataDir,
    role: "node",
    hostId,
    nodeName: cfg.nodeName,
    additionalPrincipals: cfg.ssh.publicAddrs.map((a) => a.host),
    ...(host.auth !== undefined ? { localAuth: host.auth } : {}),
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
  host.addCleanup(() => Promise.resolve(client.close()));
  const node = await serveNode(host, {
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
  host.supervisor.broadcast(
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
async function serveNode(host: ServiceHost, o: {
  identity: IdentityFile & { sshCert: string };
  identityPath: string;
  hostId: string;
  auth: AuthClient;
  clock: Clock;
  log: Logger;
  listen?: { hostname: string; port: number };
  advertiseAddr?: string;
  onStop?: () => Promise<void>;
  /** More fields for the node's section of the diagnostic report. */
  report?: () => Record<string, unknown>;
  /** Asks auth for certificates of the same key (CA rotation), authenticated by `current`. */
  reRegister: (current: IdentityFile, req: HostRenewRequest) => Promise<RegisterResponse>;
  /** Told about new credentials after the node and auth client took them. */
  onCredentials?: (change: HostCredentialsChange) => void;
}): Promise<NodeService> {
  const cfg = host.config;
  const late: { node?: NodeService } = {};
  // One watch of CAs and roles (through the same route as every call: direct or tunnel); the
  // caches follow it and poll only while it is down.
  const feedStop = new AbortController();
  const feed = new ResourceFeed({
    client: o.auth,
    kinds: ["cert_authority", "role"],
    logger: o.log,
    signal: feedStop.signal,
  });
  host.addCleanup(async () => {
    feedStop.abort();
    await feed.done;
  });
  // The user CA, host CA and rotation loops read the CAs from one listing, kept current by the
  // watch (without it, read at most every few seconds); a CA event runs them at once.
  const cas = new CaReader({
    list: () => o.auth.listResources("cert_authority"),
    clock: o.clock,
    clusterName: parseSshCertificate(o.identity.sshCert).extensions["x-teleport-authority"],
    // The loops run within milliseconds of each other; a fast refresh (tests) stays fast.
    ttlMs: Math.min(5000, cfg.caRefreshIntervalMs / 2),
    watch: feed,
    onChange: () => {
      void (async () => {
        try {
          await late.node?.refreshAuthorities();
          await creds.refresh();
        } catch (err) {
          o.log.warn("Cannot follow a certificate authority change: {reason}", {
            reason: messageOf(err),
          });
        }
      })();
    },
  });
  const creds = new HostCredentials({
    role: "node",
    path: o.identityPath,
    identity: o.identity,
    nodeName: cfg.nodeName,
    additionalPrincipals: cfg.ssh.publicAddrs.map((a) => a.host),
    readHostCa: () => cas.read("host"),
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
  // Readiness follows the heartbeats to auth.
  const auth: NodeAuthApi = {
    getResource: (kind, name) =>
      kind === "cert_authority" && (name === "host" || name === "user")
        ? cas.read(name)
        : o.auth.getResource(kind, name),
    emitEvents: (events) => o.auth.emitEvents(events),
    uploadRecording: (sid, body) => o.auth.uploadRecording(sid, body),
    upsertSessionTracker: (tracker) => o.auth.upsertSessionTracker(tracker),
    deleteSessionTracker: (sid) => o.auth.deleteSessionTracker(sid),
    listRoles: async () => await o.auth.listResources("role") as Role[],
    heartbeatNode: async (node) => {
      try {
        await o.auth.heartbeatNode(node);
      } catch (err) {
        host.health.degraded("node", `heartbeat to auth failed: ${messageOf(err)}`);
        throw err;
      }
      host.health.ok("node");
    },
  };
  await Deno.mkdir(recordingsDir, { recursive: true, mode: 0o700 });
  const node = await NodeService.start({
    keyPem: o.identity.keyPem,
    sshCert: o.identity.sshCert,
    userCaKeys: o.identity.sshUserCaKeys ?? [],
    hostCaKeys: hostCaKeyLines(o.identity),
    hostId: o.hostId,
    nodeName: cfg.nodeName,
    auth,
    ...(o.listen !== undefined ? { listen: o.listen } : {}),
    ...(o.advertiseAddr !== undefined ? { advertiseAddr: o.advertiseAddr } : {}),
    labels: cfg.ssh.labels,
    proxyProtocol: cfg.ssh.proxyProtocol,
    guard: host.guard,
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
    watch: feed,
    onRolesChange: (names) => {
      if (names.length === 0) return;
      o.log.info("Roles {roles} changed on auth; logins from now on use them", {
        roles: names.join(", "),
      });
    },
  });
  late.node = node;
  host.node = node;
  host.supervisor.run("node.rotation", (signal) =>
    runPeriodic({
      name: "Host CA rotation check",
      task: () => creds.refresh(),
      intervalMs: cfg.caRefreshIntervalMs,
      clock: o.clock,
      logger: o.log,
      signal,
    }));
  host.addCleanup(() => node.close());
  const sessions = host.metrics.gauge({
    name: "server_interactive_sessions_total",
    help: "Interactive SSH sessions open on this node now",
  });
  const unreport = host.metrics.addCollector(() => sessions.set(node.activeSessions));
  host.addCleanup(() => Promise.resolve(unreport()));
  host.supervisor.onDrain("node", (deadline) => node.drain(deadline));
  host.supervisor.onReport("node", () => ({
    listener: o.listen === undefined
      ? "reverse tunnels"
      : `${node.addr.hostname}:${node.addr.port}`,
    ssh_connections: node.stats.connections,
    ssh_sessions: node.stats.sessions,
    recorded_sessions: node.stats.recorded,
    ...o.report?.(),
  }));
  host.supervisor.run("node.ssh", async (signal) => {
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
async function startTunnelNode(
  host: ServiceHost,
  opts: TeleportProcessOptions,
  proxyAddr: Addr,
): Promise<void> {
  const cfg = host.config;
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
    // The tunnel's own TLS is not checked against web PKI (SSH inside authenticates the proxy),
    // and neither is a load balancer's in front (conn_upgrade.ts in lib/client).
    dialTls: (host, port) =>
      dialTlsRoutingStream({
        addr: { host, port },
        trust: { insecure: true },
        proxy: cfg.proxyEnv,
      }),
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
  host.addCleanup(() => pool.close());
  // Without a tunnel the node reaches neither auth nor its users: degraded at once rather
  // than at the next heartbeat; a tunnel back counts as one good report.
  host.supervisor.run("node.tunnels", async (signal) => {
    let up = false;
    const stopped = new Promise<void>((r) => signal.addEventListener("abort", () => r()));
    while (!signal.aborted) {
      const now = pool.proxies.length > 0;
      if (now !== up) {
        up = now;
        if (up) host.health.ok("node");
        else host.health.degraded("node", "no reverse tunnel to any proxy is up");
      }
      await Promise.race([pool.changed(), stopped]);
    }
  }, { critical: false });
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
  host.addCleanup(() => Promise.resolve(client.close()));
  const node = await serveNode(host, {
    identity: { ...renewed, sshCert },
    identityPath,
    hostId,
    auth: client,
    clock,
    log,
    onStop: () => pool.close(),
    report: () => ({ tunnels_to: pool.proxies }),
    reRegister: renewAuth,
    // Tunnels check proxies against the host CA keys trusted now, and new ones log in with the
    // re-issued certificate; tunnels already up stay.
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
  host.supervisor.broadcast(
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
