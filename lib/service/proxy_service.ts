/**
 * Wiring of the proxy role: host identity (role Proxy), the HTTPS key pairs,
 * the web API (lib/web), the SSH proxy (lib/proxy), and the port router
 * (lib/multiplex) that puts all of them on the web port. In `separate` mode the
 * SSH proxy also gets its own listener (3023) and `/webapi/ping` reports TLS
 * routing off, so clients use that port.
 *
 * On the web port, by ALPN (the table lives in lib/multiplex): `http/1.1`, `h2`
 * or none → web API; `teleport-proxy-ssh` → SSH proxy inside TLS; plain `SSH-`
 * → SSH proxy; `teleport-auth@…` → raw TCP to the auth API, TLS untouched.
 *
 * Behind load balancers: `proxy_service.proxy_protocol` is passed to the port routers (the
 * client address of a PROXY header reaches the web API, the SSH proxy and auth's signed header,
 * so audit events name the real client), `--insecure-no-tls` lets the web port serve plain HTTP
 * to a TLS-terminating balancer, and `https_keypairs_reload_interval` re-reads the certificates.
 */
import net, { type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { AuthServer } from "../auth/mod.ts";
import { AuthClient, CaReader, ResourceFeed, UserCaKeys } from "../authclient/mod.ts";
import { formatAuthorizedKey, importSshPrivateKey, parseAuthorizedKey } from "../ca/mod.ts";
import { verifyHostCertificate } from "../client/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { type Addr, formatAddr, isUnspecifiedHost, type ProcessConfig } from "../config/mod.ts";
import { BadParameterError, ConnectionProblemError, messageOf } from "../errors/mod.ts";
import { type ProxySigner, signClientAddrHeader } from "../identity/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import type { MetricsRegistry } from "../metrics/mod.ts";
import { type ConnectionSource, type Multiplexer, startMultiplexer } from "../multiplex/mod.ts";
import { runPeriodic } from "../node/mod.ts";
import { type ConnectionGuard, guardOf, joinHostPort } from "../net/mod.ts";
import {
  dialRegisteredAddr,
  endpointOf,
  type NodeDialClient,
  NodeRegistry,
  SshProxy,
} from "../proxy/mod.ts";
import { TunnelServer } from "../tunnel/mod.ts";
import {
  type CertAuthority,
  type Resource,
  type Role,
  type ServerResource,
  trustedKeys,
} from "../resource/mod.ts";
import {
  createWebServer,
  makeProxySettings,
  type ProxySettings,
  type WebServer,
} from "../web/mod.ts";
import {
  hostCaKeyLines,
  hostIdentityPath,
  loadOrObtainHostIdentity,
  reRegisterWithAuth,
} from "./host_identity.ts";
import { VERSION } from "../config/mod.ts";
import { loadWebKeyPairs, WebKeyPairReloader } from "./web_cert.ts";
import { HostCredentials, type HostCredentialsChange } from "./host_credentials.ts";
import { WebUserApis } from "./web_user_api.ts";

/** What `proxy.ready` carries. */
export interface ProxyReady {
  /** Bound web address (the multiplexed port). */
  webHost: string;
  webPort: number;
  /** Bound SSH proxy port in separate mode; the web port in multiplex mode. */
  sshPort: number;
  tlsRouting: boolean;
  /** Bound reverse tunnel port in separate mode; the web port in multiplex mode. */
  tunnelPort: number;
  clusterName: string;
  hostId: string;
}

/**
 * How long a dial to a tunnel node without a tunnel here waits for its agent (which reconnects
 * within a second or two after this proxy started or its predecessor asked it to move).
 */
const TUNNEL_WAIT_MS = 10_000;

/** Inputs of {@link startProxyService}. */
export interface ProxyServiceOptions {
  config: ProcessConfig;
  hostId: string;
  clock: Clock;
  /** The auth server of this process, if any (identity without a token). */
  localAuth?: AuthServer;
  /** Where the auth API is reached (the local one, or the configured auth server). */
  authAddr: Addr;
  signal: AbortSignal;
  /** Admission control shared by every listener of the process. */
  guard: ConnectionGuard;
  /** Where `teleport_reverse_tunnels_connected` is reported. @default {not reported} */
  metrics?: MetricsRegistry;
  /**
   * True once a successor process took over (graceful restart): it announces the same proxy
   * (same host id), so this one does not withdraw the presence when it drains or stops.
   *
   * @default {() => false}
   */
  handedOver?: () => boolean;
  /** Told the outcome of each heartbeat to auth (readiness). */
  onHeartbeat?: (err?: unknown) => void;
}

/** A running proxy role. */
export interface ProxyService {
  readonly ready: ProxyReady;
  /**
   * Graceful stop: the listeners close at once, the proxy leaves the cluster's proxy list,
   * tunnel agents are told to move to another proxy (each keeps its tunnel here until the
   * sessions on it end), and it resolves once the SSH connections, web requests and tunnels in
   * flight have ended, or when `deadline` aborts.
   */
  drain(deadline: AbortSignal): Promise<void>;
  /** Live counters for the diagnostic report. */
  stats(): Record<string, unknown>;
  close(): Promise<void>;
}

const DIAL_TIMEOUT_NS = 30_000_000_000;
const HEARTBEAT_INTERVAL_MS = 60_000;
const HEARTBEAT_TTL_MS = 10 * 60_000;

/** Time allowed for the TCP connection to auth. */
const AUTH_DIAL_TIMEOUT_MS = 10_000;

/** Opens a TCP connection to the auth API (for agents' `@remote-auth-server` channels). */
function dialAuthAddr(auth: Addr): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const up = net.connect({ host: auth.host, port: auth.port });
    up.setNoDelay(true);
    const fail = (why: string) => {
      clearTimeout(timer);
      up.destroy();
      reject(new ConnectionProblemError(`Cannot connect to auth at ${formatAddr(auth)}: ${why}`));
    };
    // A black-holed auth address must not hold the client's descriptors for minutes.
    const timer = setTimeout(
      () => fail(`no answer in ${AUTH_DIAL_TIMEOUT_MS} ms`),
      AUTH_DIAL_TIMEOUT_MS,
    );
    up.once("error", (err) => fail(err.message));
    up.once("connect", () => {
      clearTimeout(timer);
      up.removeAllListeners("error");
      resolve(up);
    });
  });
}

/**
 * Pipes a routed socket to the auth API, bytes untouched (the client's TLS ends at auth), after
 * a PROXY v2 header signed by this proxy that tells auth the client's address.
 */
function passToAuth(
  sock: Duplex,
  client: ConnectionSource,
  auth: Addr,
  sign: { signer: ProxySigner; clock: Clock; guard?: ConnectionGuard },
  log: ReturnType<typeof getComponentLogger>,
): void {
  sock.once("error", () => sock.destroy());
  // The client as the port router saw it (a load balancer's PROXY header, when trusted).
  const source = endpointOf(client.remoteAddr, client.remotePort);
  // The upstream socket is one more descriptor this client holds.
  const guarded = guardOf(sock);
  const hold = guarded?.holdDescriptor();
  sock.once("close", () => hold?.release());
  dialAuthAddr(auth).then(async (up) => {
    hold?.opened();
    if (guarded !== undefined) {
      if (sign.guard !== undefined) {
        // Auth runs in this process: it declares the client established at its first request.
        const s = up as Socket;
        const unlink = sign.guard.link(s.localAddress, s.localPort, guarded);
        up.once("close", unlink);
      } else {
        // A remote auth server times the handshake itself.
        guarded.established();
      }
    }
    try {
      const destination = endpointOf((up as Socket).remoteAddress, (up as Socket).remotePort);
      if (source !== undefined && destination !== undefined) {
        up.write(
          await signClientAddrHeader({ ...sign, source, destination, now: sign.clock.now() }),
        );
      }
    } catch (err) {
      up.destroy();
      throw err;
    }
    if (sock.destroyed) return up.destroy();
    up.on("error", () => up.destroy());
    sock.pipe(up);
    up.pipe(sock);
    up.once("close", () => sock.destroy());
    sock.once("close", () => up.destroy());
  }).catch((err) => {
    log.warn("Cannot pass a client through to the auth API: {reason}", { reason: messageOf(err) });
    sock.destroy();
  });
}

/** Starts the proxy role; resolves once every listener is bound. */
export async function startProxyService(o: ProxyServiceOptions): Promise<ProxyService> {
  const cfg = o.config;
  const log = getComponentLogger("proxy");
  const p = cfg.proxy;
  if (p.publicAddrs.length > 1) {
    log.warn(
      "proxy_service.public_addr has {count} entries; clients and agents are told only the first ({first}); set one public address unless you know you need more",
      { count: p.publicAddrs.length, first: formatAddr(p.publicAddrs[0]!) },
    );
  }
  // Agents check that the proxy's host certificate names the host they dialled (seed 003).
  const principalHosts = [...p.publicAddrs, ...p.sshPublicAddrs, ...p.tunnelPublicAddrs]
    .map((a) => a.host)
    .concat(
      [p.webListenAddr, p.sshListenAddr, p.tunnelListenAddr].map((a) => a.host).filter((h) =>
        !isUnspecifiedHost(h)
      ),
    );
  const identityPath = hostIdentityPath(cfg.dataDir, "proxy");
  const identity = await loadOrObtainHostIdentity({
    dataDir: cfg.dataDir,
    role: "proxy",
    hostId: o.hostId,
    nodeName: cfg.nodeName,
    additionalPrincipals: [...new Set(principalHosts)],
    ...(o.localAuth !== undefined ? { localAuth: o.localAuth } : {}),
    authServer: o.authAddr,
    ...(cfg.joinToken !== undefined ? { joinToken: cfg.joinToken } : {}),
    caPins: cfg.caPins,
    reRegister: reRegisterWithAuth(o.authAddr),
    logger: log,
  });
  if (identity.sshCert === undefined) {
    throw new BadParameterError(
      `Cannot start the proxy service: ${identityPath} has no SSH host certificate; remove it and join again with a new token`,
    );
  }
  const auth = new AuthClient({
    host: o.authAddr.host,
    port: o.authAddr.port,
    caCertPems: identity.tlsCaCertPems,
    identity: { certPem: identity.tlsCertPem, keyPem: identity.keyPem },
  });
  const cleanups: Array<() => Promise<void> | void> = [() => auth.close()];
  const close = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // best effort
      }
    }
  };
  try {
    const ping = await auth.ping();
    const clusterName = ping.cluster_name;
    const late: { web?: WebServer; onCredentials?: (change: HostCredentialsChange) => void } = {};
    let hostCertLine = identity.sshCert;
    // The identity file's one owner from here on; follows host CA rotations (see below).
    // One watch of CAs, roles and nodes; the caches below follow it and poll only while it is
    // down. A CA event (a rotation) runs the CA refreshes at once.
    const feedStop = new AbortController();
    const feed = new ResourceFeed({
      client: auth,
      kinds: ["cert_authority", "role", "node"],
      logger: log,
      signal: AbortSignal.any([o.signal, feedStop.signal]),
    });
    cleanups.push(async () => {
      feedStop.abort();
      await feed.done;
    });
    const cas = new CaReader({
      list: () => auth.listResources("cert_authority"),
      clock: o.clock,
      clusterName,
      ttlMs: Math.min(5000, cfg.caRefreshIntervalMs / 2),
      watch: feed,
      onChange: () => {
        void (async () => {
          try {
            await userCa.refresh();
            await hostCa.refresh();
            await creds.refresh();
          } catch (err) {
            log.warn("Cannot follow a certificate authority change: {reason}", {
              reason: messageOf(err),
            });
          }
        })();
      },
    });
    const creds = new HostCredentials({
      role: "proxy",
      path: identityPath,
      identity,
      nodeName: cfg.nodeName,
      additionalPrincipals: [...new Set(principalHosts)],
      readHostCa: () => cas.read("host"),
      reRegister: reRegisterWithAuth(o.authAddr),
      logger: log,
      onChange: (change) => late.onCredentials?.(change),
    });
    const userCa = new UserCaKeys({
      initial: identity.sshUserCaKeys ?? [],
      read: () => cas.read("user"),
      onChange: (lines) => creds.setUserCaKeys(lines),
    });
    await userCa.refresh();

    const nodes = new NodeRegistry({
      list: () => auth.listResources("node"),
      clock: o.clock,
      logger: log,
      watch: feed,
    });
    // The cluster's auth decides the listener mode; a proxy with auth in-process has it in config.
    const mode = o.localAuth !== undefined
      ? cfg.auth.proxyListenerMode
      : ping.proxy_listener_mode ?? cfg.auth.proxyListenerMode;
    const separate = mode === "separate";
    // A proxy told "separate" by auth while its file was written for multiplex gets the
    // standard ports on the web host rather than a clash on the web port.
    const ownPort = (a: Addr, port: number): Addr =>
      a.host === p.webListenAddr.host && a.port === p.webListenAddr.port
        ? { host: p.webListenAddr.host, port }
        : a;
    const sshListen = ownPort(p.sshListenAddr, 3023);
    const tunnelListen = ownPort(p.tunnelListenAddr, 3024);
    const hostKey = await importSshPrivateKey(identity.keyPem);
    const hostCertBlob = parseAuthorizedKey(identity.sshCert).blob;
    const hostCa = new UserCaKeys({
      initial: hostCaKeyLines(identity),
      read: () => cas.read("host"),
    });
    await hostCa.refresh();
    const tunnel = await TunnelServer.start({
      hostKey,
      hostCertificate: hostCertBlob,
      hostCaKeys: () => hostCa.blobs,
      clusterName,
      proxyId: o.hostId,
      listProxies: async () => (await auth.listProxies()).map((r) => r.metadata.name),
      dialAuth: () => dialAuthAddr(o.authAddr),
      version: VERSION,
      clock: o.clock,
      logger: getComponentLogger("proxy:tunnel"),
    });
    cleanups.push(() => tunnel.close());
    if (o.metrics !== undefined) {
      const tunnels = o.metrics.gauge({
        name: "teleport_reverse_tunnels_connected",
        help: "Reverse tunnel connections from agents to this proxy, by agent type",
        labelNames: ["type"],
      });
      cleanups.push(
        o.metrics.addCollector(() => tunnels.set(tunnel.connectionCount, { type: "node" })),
      );
    }
    // Mutable: a re-issued certificate (CA rotation) signs client addresses from then on.
    const signer = { ...hostKey, certificate: hostCertBlob };
    const dialNode = (node: ServerResource, client: NodeDialClient): Promise<Duplex> => {
      if (tunnel.has(node.metadata.name)) {
        // The agent authenticated this proxy, so it believes the client address in the request.
        return tunnel.dial(node.metadata.name, {
          ...(client.source === undefined
            ? {}
            : { clientSrcAddr: joinHostPort(client.source.addr, client.source.port) }),
          ...(client.proxyAddr === undefined
            ? {}
            : { clientDstAddr: joinHostPort(client.proxyAddr.addr, client.proxyAddr.port) }),
        });
      }
      if (node.spec.use_tunnel === true) {
        return waitForTunnel(node, client);
      }
      return dialRegisteredAddr(node, {
        ...(client.source === undefined ? {} : { source: client.source }),
        signer,
        clock: o.clock,
      });
    };
    /**
     * A tunnel node with no tunnel here yet: its agent may be on its way (this proxy just
     * started or took over from a restarting one, or the node is reconnecting), so wait a
     * little before giving up.
     */
    const waitForTunnel = async (
      node: ServerResource,
      client: NodeDialClient,
    ): Promise<Duplex> => {
      if (await tunnel.waitFor(node.metadata.name, TUNNEL_WAIT_MS)) return dialNode(node, client);
      throw new ConnectionProblemError(
        `node ${node.spec.hostname} is reachable only through a reverse tunnel, and it has ` +
          "none to this proxy now: it is offline, restarting, or still connecting; try again " +
          "in a few seconds, and ask your administrator if it stays unreachable",
      );
    };
    const sshProxy = await SshProxy.start({
      dialNode,
      hostKey,
      hostCertificate: hostCertBlob,
      userCaKeys: () => userCa.blobs,
      fetchRole: async (name) => await auth.getResource("role", name) as Role,
      roleWatch: {
        source: feed,
        list: async () => await auth.listResources("role") as Role[],
      },
      nodes,
      clusterName,
      clock: o.clock,
      logger: getComponentLogger("proxy:ssh"),
      ...(separate ? { listen: { hostname: sshListen.host, port: sshListen.port } } : {}),
      guard: o.guard,
      loginTimeoutMs: cfg.connectionLimits.sshLoginTimeoutMs,
      proxyProtocol: p.proxyProtocol,
    });
    cleanups.push(() => sshProxy.close());

    const keyPairs = await loadWebKeyPairs({
      configured: p.httpsKeyPairs,
      dataDir: cfg.dataDir,
      names: [
        ...p.publicAddrs.map((a) => a.host),
        cfg.nodeName,
        "localhost",
        "127.0.0.1",
        "::1",
        ...(isUnspecifiedHost(p.webListenAddr.host) ? [] : [p.webListenAddr.host]),
      ],
      clock: o.clock,
      logger: log,
    });

    if (p.disableTls) {
      log.warn(
        "--insecure-no-tls: the web port {addr} serves plain HTTP and SSH; only run it behind a load balancer that terminates TLS",
        { addr: formatAddr(p.webListenAddr) },
      );
    }
    const addrs = (s: ConnectionSource) => ({ remoteAddr: s.remoteAddr, remotePort: s.remotePort });

    // Listen addresses are filled in once the router is bound (port 0 in tests).
    const first = (list: Addr[]) => list[0] === undefined ? "" : formatAddr(list[0]);
    const settings: ProxySettings = makeProxySettings({
      ssh: {
        public_addr: first(p.publicAddrs),
        ssh_public_addr: first(p.sshPublicAddrs),
        ssh_tunnel_public_addr: first(p.tunnelPublicAddrs),
        dial_timeout: DIAL_TIMEOUT_NS,
      },
      tls_routing_enabled: !separate,
    });
    // The web server is made once the router is bound: ping reports the bound port.
    const mux: Multiplexer = await startMultiplexer({
      listen: { host: p.webListenAddr.host, port: p.webListenAddr.port },
      logger: getComponentLogger("proxy:mux"),
      guard: o.guard,
      name: "proxy web",
      handshakeTimeoutMs: cfg.connectionLimits.handshakeTimeoutMs,
      sshLoginTimeoutMs: cfg.connectionLimits.sshLoginTimeoutMs,
      proxyProtocol: p.proxyProtocol,
      plainHttp: p.disableTls,
      tls: { keyPairs },
      handlers: {
        web: (sock, src) =>
          late.web === undefined ? sock.destroy() : late.web.handleConnection(sock, {
            remoteAddr: src.remoteAddr,
            ...(src.remotePort === undefined ? {} : { remotePort: src.remotePort }),
          }),
        proxySsh: (sock, src) => sshProxy.handleSocket(sock, addrs(src)),
        ssh: (sock, src) => sshProxy.handleSocket(sock, addrs(src)),
        auth: (sock, _hello, src) =>
          passToAuth(sock, src, o.authAddr, {
            signer,
            clock: o.clock,
            ...(o.localAuth === undefined ? {} : { guard: o.guard }),
          }, log),
        reverseTunnel: (sock) => tunnel.handleSocket(sock),
      },
    });
    cleanups.push(() => mux.close());
    // Separate mode: the tunnel port takes SSH tunnels, TLS tunnels and the web API (agents with
    // proxy_server pointing at it join and discover there, seed 003).
    const tunnelMux = separate
      ? await startMultiplexer({
        listen: { host: tunnelListen.host, port: tunnelListen.port },
        logger: getComponentLogger("proxy:tunnel-mux"),
        guard: o.guard,
        name: "proxy tunnel",
        handshakeTimeoutMs: cfg.connectionLimits.handshakeTimeoutMs,
        sshLoginTimeoutMs: cfg.connectionLimits.sshLoginTimeoutMs,
        proxyProtocol: p.proxyProtocol,
        plainHttp: p.disableTls,
        tls: { keyPairs },
        handlers: {
          web: (sock, src) =>
            late.web === undefined ? sock.destroy() : late.web.handleConnection(sock, {
              remoteAddr: src.remoteAddr,
              ...(src.remotePort === undefined ? {} : { remotePort: src.remotePort }),
            }),
          ssh: (sock) => tunnel.handleSocket(sock),
          reverseTunnel: (sock) => tunnel.handleSocket(sock),
        },
      })
      : undefined;
    if (tunnelMux !== undefined) cleanups.push(() => tunnelMux.close());
    // Runs first on close: agents are told to go elsewhere while the listeners still work.
    const withdraw = async () => {
      if (o.handedOver?.() === true) return;
      await auth.request("DELETE", `/v1/proxies/${encodeURIComponent(o.hostId)}`).catch(() => {});
    };
    cleanups.push(async () => {
      await withdraw();
      await tunnel.drain(3000);
    });
    const webAddr = { host: p.webListenAddr.host, port: mux.addr.port };
    const sshAddr = separate ? { host: sshListen.host, port: sshProxy.addr.port } : webAddr;
    settings.ssh.web_listen_addr = formatAddr(webAddr);
    settings.ssh.listen_addr = formatAddr(sshAddr);
    const tunnelAddr = tunnelMux !== undefined
      ? { host: tunnelListen.host, port: tunnelMux.addr.port }
      : webAddr;
    settings.ssh.tunnel_listen_addr = formatAddr(tunnelAddr);
    const userApis = new WebUserApis({
      authAddr: o.authAddr,
      caCertPems: () => creds.identity.tlsCaCertPems,
    });
    cleanups.push(() => userApis.close());
    const webServer = createWebServer({
      auth,
      cluster: {
        clusterName,
        certifyUser: (cert, remoteAddr) => sshProxy.certifyUser(cert, remoteAddr),
        nodes: () => nodes.nodes(),
        hasTunnel: (name) => tunnel.has(name),
        dial: (user, serverId, addrs) => sshProxy.dialFor(user, serverId, 0, addrs),
        verifyHostKey: async (node, presentedKey) => {
          await verifyHostCertificate({
            hostCert: node.spec.host_cert,
            presentedKey,
            trustedCaKeys: hostCa.blobs.map((b) => formatAuthorizedKey(b)),
            clusterName,
            role: "Node",
            principal: node.metadata.name,
            now: o.clock.now(),
            hostLabel: `node ${JSON.stringify(node.spec.hostname)} (${node.metadata.name})`,
          });
        },
        userApi: (session) => userApis.for(session),
      },
      clock: o.clock,
      logger: getComponentLogger("proxy:web"),
      proxySettings: settings,
      publicAddrs: p.publicAddrs.map(formatAddr),
      serverVersion: VERSION,
      // `/webapi/connectionupgrade` (L7 load balancers): back to the router, TLS inside.
      onUpgrade: (req, sock, head) => mux.upgrade(req, sock, head),
      // tsh refreshes its trusted host CAs here during a host CA rotation (lib/client host_ca.ts).
      hostCertAuthority: async () => {
        const keys = trustedKeys(await auth.getResource("cert_authority", "host") as CertAuthority);
        return { sshKeys: keys.ssh, tlsCerts: keys.tls };
      },
    });
    late.web = webServer;
    cleanups.push(() => webServer.close());

    // Presence: the proxy announces itself (with its host certificate, which tsh checks).
    const announce = (): Resource => ({
      kind: "proxy",
      version: "v2",
      metadata: {
        name: o.hostId,
        expires: new Date(o.clock.now().getTime() + HEARTBEAT_TTL_MS).toISOString(),
      },
      spec: {
        addr: formatAddr(
          p.publicAddrs[0] ?? {
            host: isUnspecifiedHost(webAddr.host) ? cfg.nodeName : webAddr.host,
            port: webAddr.port,
          },
        ),
        hostname: cfg.nodeName,
        ...(p.publicAddrs[0] === undefined ? {} : { public_addr: formatAddr(p.publicAddrs[0]) }),
        version: VERSION,
        host_cert: hostCertLine,
      },
    } as Resource);
    const reloader = p.httpsKeyPairs.length > 0 && p.httpsKeyPairsReloadIntervalMs > 0
      ? new WebKeyPairReloader({
        configured: p.httpsKeyPairs,
        served: keyPairs,
        apply: (pairs) => {
          mux.setKeyPairs(pairs);
          tunnelMux?.setKeyPairs(pairs);
        },
        logger: log,
      })
      : undefined;
    const tasks = [
      runPeriodic({
        name: "Proxy heartbeat",
        task: async () => {
          try {
            await auth.heartbeatProxy(announce());
          } catch (err) {
            o.onHeartbeat?.(err);
            throw err;
          }
          o.onHeartbeat?.();
        },
        intervalMs: HEARTBEAT_INTERVAL_MS,
        clock: o.clock,
        logger: log,
        signal: o.signal,
      }),
      runPeriodic({
        name: "User CA refresh",
        task: () => userCa.refresh(),
        intervalMs: Math.min(5 * 60_000, cfg.caRefreshIntervalMs),
        clock: o.clock,
        logger: log,
        signal: o.signal,
      }),
      runPeriodic({
        name: "Host CA rotation check",
        task: async () => {
          await hostCa.refresh();
          await creds.refresh();
        },
        intervalMs: cfg.caRefreshIntervalMs,
        clock: o.clock,
        logger: log,
        signal: o.signal,
      }),
      ...(reloader === undefined ? [] : [
        runPeriodic({
          name: "HTTPS key pair reload",
          task: async () => void await reloader.check(),
          intervalMs: p.httpsKeyPairsReloadIntervalMs,
          clock: o.clock,
          logger: log,
          signal: o.signal,
        }),
      ]),
    ];
    // New credentials go into every part that presents or checks them; open connections keep
    // what they negotiated.
    late.onCredentials = (change) => {
      const id = change.identity;
      auth.setCredentials({
        caCertPems: id.tlsCaCertPems,
        identity: { certPem: id.tlsCertPem, keyPem: id.keyPem },
      });
      if (change.certificates && id.sshCert !== undefined) {
        const blob = parseAuthorizedKey(id.sshCert).blob;
        signer.certificate = blob;
        tunnel.setHostCertificate(blob);
        sshProxy.setHostCertificate(blob);
        hostCertLine = id.sshCert;
        log.info("The proxy presents its re-issued host certificate to new connections");
      }
    };
    cleanups.push(async () => {
      await Promise.allSettled(tasks);
    });
    log.info(
      "Proxy service {version} is listening on {web} (web, TLS routing {routing}){ssh}, cluster {cluster}",
      {
        version: VERSION,
        web: formatAddr(webAddr),
        routing: separate ? "off" : "on",
        ssh: separate
          ? `, SSH proxy on ${formatAddr(sshAddr)}, reverse tunnels on ${formatAddr(tunnelAddr)}`
          : "",
        cluster: clusterName,
      },
    );
    const drain = async (deadline: AbortSignal) => {
      // Stop listening; what was accepted already is still routed and served (a restart's
      // successor takes the new connections, SIGHUP). Tunnel agents are told to reconnect at
      // once, so that they reach the successor before users need them there.
      await Promise.all([
        tunnel.drain(Number.MAX_SAFE_INTEGER, deadline),
        (async () => {
          await Promise.all([mux.stopAccepting(), tunnelMux?.stopAccepting()]);
          await withdraw();
          await sshProxy.drain(deadline);
        })(),
        (async () => {
          await mux.stopAccepting();
          // Web connections serve one request each; browser terminals (WebSockets) last like
          // SSH sessions: wait for both to end by themselves, up to the drain deadline.
          while (webServer.connections > 0 && !deadline.aborted) {
            await new Promise((r) => setTimeout(r, 100));
          }
          await webServer.close();
        })(),
      ]);
    };
    return {
      ready: {
        webHost: webAddr.host,
        webPort: webAddr.port,
        sshPort: sshAddr.port,
        tlsRouting: !separate,
        tunnelPort: tunnelAddr.port,
        clusterName,
        hostId: o.hostId,
      },
      drain,
      stats: () => ({
        listeners: [webAddr, ...(separate ? [sshAddr, tunnelAddr] : [])].map(formatAddr),
        ssh_connections: sshProxy.connectionCount,
        tunnels: tunnel.connectionCount,
        tunnel_hosts: new Set(tunnel.tunnels().map((t) => t.hostId)).size,
      }),
      close,
    };
  } catch (err) {
    log.error("Cannot start the proxy service: {reason}", { reason: messageOf(err) });
    await close();
    throw err;
  }
}
