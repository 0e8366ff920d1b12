/**
 * The proxy's SSH server (port 3023, or ALPN `teleport-proxy-ssh` on the web
 * port): users log in with their certificate, then reach registered nodes
 * through the `proxy:host:port` subsystem (tsh, `tsh proxy ssh`) or
 * `direct-tcpip` (`ssh -J`). The bytes are passed through untouched, so the
 * client does its own SSH handshake with the node and the node sees the real
 * user certificate. The proxy never runs shells, commands or other
 * subsystems, and dials only addresses from the node registry.
 *
 * Where the user is travels with the connection: on a direct TCP dial the
 * proxy first writes a PROXY v2 header signed with its host certificate
 * (lib/identity signClientAddrHeader), which the node verifies; through a
 * reverse tunnel the dial request names the client (the agent trusts the
 * proxy it authenticated). `source-address` of the user certificate is
 * checked here against the client's address, and again by the node.
 *
 * The own listener (3023) may sit behind a load balancer that adds PROXY headers:
 * `proxy_service.proxy_protocol` decides (lib/net readClientSource), as on the web port, and
 * the client it names is the one audited, checked and vouched for to nodes.
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Clock } from "../clock/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import { type ProxySigner, signClientAddrHeader } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  ConnectionGuard,
  type GuardedListener,
  listenGuarded,
  parseIp,
  type ProxyEndpoint,
  type ProxyProtocolMode,
  readClientSource,
} from "../net/mod.ts";
import type { ResourceEventSource, Role, ServerResource } from "../resource/mod.ts";
import { type CertifiedUser, RoleCache, verifyUserCertificate } from "../rbac/mod.ts";
import {
  type SocketAddresses,
  spliceChannel,
  type SshConnection,
  type SshServer,
  startSshServer,
} from "../ssh/mod.ts";
import type { NodeRegistry } from "./registry.ts";
import { assertVisible, parseProxySubsystem, splitAddr } from "./resolve.ts";

/** How long dialling a node may take. */
const DIAL_TIMEOUT_MS = 15_000;

/** Who is connected to the proxy. */
export interface ProxyUser extends CertifiedUser {
  /** The SSH user name given to the proxy (the login wanted on the node). */
  login: string;
}

/** Inputs of {@link SshProxy.start}. */
export interface SshProxyOptions {
  /** The proxy's host key and its host certificate (from the proxy's host identity). */
  hostKey: { privateKey: CryptoKey; publicKeyBlob: Uint8Array };
  hostCertificate: Uint8Array;
  /** Current user CA keys (they change on rotation). */
  userCaKeys: () => Uint8Array[];
  /** Reads a role from auth (cached here). */
  fetchRole: (name: string) => Promise<Role>;
  /**
   * Role events that keep the role cache current, and the listing it reloads with on each
   * watch `init` (see lib/rbac RoleCache). @default {none: roles are re-read by age}
   */
  roleWatch?: { source: ResourceEventSource; list: () => Promise<Role[]> };
  nodes: NodeRegistry;
  clusterName: string;
  clock: Clock;
  logger: Logger;
  /** Own listener (separate mode, port 3023); without it only `handleSocket` feeds it. */
  listen?: { hostname: string; port: number };
  /**
   * Admission control of the listener, shared with the process's other listeners.
   * @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /** Time a client has from connecting until authenticated. @default {30000} */
  loginTimeoutMs?: number;
  /**
   * PROXY headers on the own listener from a load balancer in front
   * (`proxy_service.proxy_protocol`): `on` requires one, `off` refuses them, `unspecified` takes
   * the client's IP from one with the port zeroed (and a warning).
   * @default {"off"}
   */
  proxyProtocol?: ProxyProtocolMode;
  /**
   * How long a client on the own listener may take to send its first bytes (or its PROXY header)
   * before it is served without a header.
   * @default {3000}
   */
  firstBytesTimeoutMs?: number;
  /**
   * Connects to a node for a client; the default dials its registered address over TCP with a
   * signed client address header (see {@linkcode dialRegisteredAddr}).
   */
  dialNode?: (node: ServerResource, client: NodeDialClient) => Promise<Duplex>;
}

/** Who a node connection is for. */
export interface NodeDialClient {
  /** The user's address as the proxy sees it; undefined when it is not an IP (in-memory pipes). */
  source?: ProxyEndpoint;
  /** The proxy address the user connected to, when known. */
  proxyAddr?: ProxyEndpoint;
}

/** Options of {@linkcode dialRegisteredAddr}. */
export interface DialRegisteredAddrOptions {
  /** The client to vouch for; without it (or `signer`) no header is sent. */
  source?: ProxyEndpoint;
  /** The proxy's host key and certificate, to sign the client address header. */
  signer?: ProxySigner;
  clock?: Clock;
}

/** An endpoint when `addr` is an IP literal and `port` a port, else undefined. */
export function endpointOf(
  addr: string | undefined,
  port: number | undefined,
): ProxyEndpoint | undefined {
  if (addr === undefined || port === undefined || parseIp(addr) === undefined) return undefined;
  return { addr, port };
}

/**
 * Dials a node's registered address (never anything a client typed). With `source` and `signer`,
 * the first bytes on the connection are a PROXY v2 header for `source` → the node's address,
 * signed by the proxy, so the node knows (and may check `source-address` against) the client.
 */
export async function dialRegisteredAddr(
  node: ServerResource,
  o: DialRegisteredAddrOptions = {},
): Promise<Duplex> {
  const sock = await connectRegisteredAddr(node);
  const dst = endpointOf(sock.remoteAddress, sock.remotePort);
  if (o.source === undefined || o.signer === undefined || dst === undefined) return sock;
  try {
    sock.write(
      await signClientAddrHeader({
        signer: o.signer,
        source: o.source,
        destination: dst,
        now: o.clock?.now() ?? new Date(),
      }),
    );
  } catch (err) {
    sock.destroy();
    throw err;
  }
  return sock;
}

function connectRegisteredAddr(node: ServerResource): Promise<net.Socket> {
  const addr = splitAddr(node.spec.addr);
  if (addr === undefined) {
    return Promise.reject(
      new Error(`node ${node.spec.hostname} has no usable address (${node.spec.addr})`),
    );
  }
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: addr.host, port: addr.port });
    sock.setNoDelay(true);
    const timer = setTimeout(
      () => sock.destroy(new Error(`connection to ${node.spec.addr} timed out`)),
      DIAL_TIMEOUT_MS,
    );
    sock.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      resolve(sock);
    });
  });
}

/** The proxy SSH server. */
export class SshProxy {
  #o: SshProxyOptions;
  readonly #server: SshServer<ProxyUser>;
  #listener: GuardedListener | undefined;
  /** Sockets on the own listener still waiting for their PROXY header. */
  readonly #deciding = new Set<Duplex>();
  readonly #roles: RoleCache;

  private constructor(o: SshProxyOptions, server: SshServer<ProxyUser>, roles: RoleCache) {
    this.#o = o;
    this.#server = server;
    this.#roles = roles;
  }

  /**
   * The user a certificate certifies, checked as an SSH login to this proxy is (CA, validity,
   * `source-address` against `remoteAddr`, roles): for callers that hold a user's certificate
   * themselves (the web terminal).
   */
  certifyUser(certificate: Uint8Array, remoteAddr: string): Promise<CertifiedUser> {
    return verifyUserCertificate({
      certificate,
      remoteAddr,
      userCaKeys: this.#o.userCaKeys(),
      now: this.#o.clock.now(),
      roles: (names) => this.#roles.get(names),
    });
  }

  /** The registered nodes `user`'s roles let them see (the node list tsh gets). */
  async visibleNodes(user: CertifiedUser): Promise<ServerResource[]> {
    return (await this.#o.nodes.nodes()).filter((n) =>
      user.checker.canSeeNode({ name: n.spec.hostname, labels: n.metadata.labels ?? {} })
    );
  }

  /**
   * Connects `user` to node `target` (UUID, name or address; `port` 0 = its registered port)
   * exactly as the `proxy:` subsystem does for tsh: registered nodes only, visible to the user,
   * direct dial with a signed client address or the node's reverse tunnel.
   */
  dialFor(
    user: ProxyUser,
    target: string,
    port: number,
    addrs: { remoteAddr: string; remotePort?: number; localAddr?: string; localPort?: number },
  ): Promise<{ node: ServerResource; socket: Duplex }> {
    return this.#dial(user, addrs, target, port);
  }

  /** Binds the own listener: each client is served once its PROXY header (if any) is read. */
  async #listen(listen: { hostname: string; port: number }): Promise<void> {
    const o = this.#o;
    this.#listener = await listenGuarded({
      host: listen.hostname,
      port: listen.port,
      name: "proxy SSH",
      guard: o.guard ?? new ConnectionGuard({ logger: o.logger }),
      logger: o.logger,
      handshakeTimeoutMs: o.loginTimeoutMs ?? 30_000,
      onConnection: (socket) => {
        this.#deciding.add(socket);
        const peer = `${socket.remoteAddress}:${socket.remotePort}`;
        readClientSource(socket, {
          mode: o.proxyProtocol ?? "off",
          setting: "proxy_service.proxy_protocol",
          logger: o.logger,
          timeoutMs: o.firstBytesTimeoutMs ?? 3000,
        }).then((found) => {
          if (socket.destroyed) return;
          if (!found.ok) {
            o.logger.info("Refused SSH connection to the proxy from {peer}: {reason}", {
              peer,
              reason: found.reason,
            });
            return void socket.destroy();
          }
          const { remoteAddr, remotePort } = found.source;
          this.#server.handleSocket(socket, { remoteAddr, remotePort });
        }).catch((err) => {
          o.logger.warn("Cannot serve SSH connection from {peer}: {reason}", {
            peer,
            reason: messageOf(err),
          });
          socket.destroy();
        }).finally(() => this.#deciding.delete(socket));
      },
    });
  }

  /** Stops the own listener and drops the clients not served yet. */
  async #stopListening(): Promise<void> {
    await this.#listener?.close();
    for (const s of this.#deciding) s.destroy();
  }

  /**
   * Presents another certificate of the same host key (a CA rotation re-issued it) from the next
   * connection on; open connections keep theirs.
   */
  setHostCertificate(certificate: Uint8Array): void {
    this.#server.setHostCertificate(certificate);
    this.#o = { ...this.#o, hostCertificate: certificate };
  }

  /** Starts the server (listening only when `listen` is given). */
  static async start(o: SshProxyOptions): Promise<SshProxy> {
    const roles = new RoleCache({
      fetch: o.fetchRole,
      clock: o.clock,
      logger: o.logger,
      ...(o.roleWatch === undefined ? {} : { watch: o.roleWatch.source, list: o.roleWatch.list }),
    });
    const log = o.logger;
    // Handlers run only after start() returns, once `self.proxy` is set.
    const self: { proxy?: SshProxy } = {};
    const server = await startSshServer<ProxyUser>({
      hostKey: o.hostKey,
      hostCertificate: o.hostCertificate,
      logger: log,
      ...(o.guard === undefined ? {} : { guard: o.guard }),
      ...(o.loginTimeoutMs === undefined ? {} : { handshakeTimeoutMs: o.loginTimeoutMs }),
      name: "proxy SSH",
      authenticate: async (req) => {
        try {
          const user = await verifyUserCertificate({
            certificate: req.certificate,
            remoteAddr: req.remoteAddr,
            remotePort: req.remotePort,
            userCaKeys: o.userCaKeys(),
            now: o.clock.now(),
            roles: (names) => roles.get(names),
          });
          return { ok: true, context: { ...user, login: req.username } };
        } catch (err) {
          return { ok: false, reason: messageOf(err) };
        }
      },
      onAuthFailure: (f) =>
        log.info("Refused SSH login to the proxy from {addr}: {reason}", {
          addr: f.remoteAddr,
          reason: f.reason,
        }),
      handlers: {
        session: (open) => {
          open.accept((req) => {
            switch (req.type) {
              case "subsystem":
                if (req.name.startsWith("proxy:")) {
                  // Returning the promise keeps the request open until it is answered.
                  return self.proxy!.#proxySubsystem(open.conn, req.name).then(
                    (sock) => {
                      try {
                        spliceChannel(req.accept(), sock);
                      } catch {
                        sock.destroy(); // the client went away meanwhile
                      }
                    },
                    (err) => req.reject({ stderr: `${messageOf(err)}\r\n` }),
                  );
                }
                return req.fail(
                  `the proxy serves only the proxy:<node>:<port> subsystem, not "${req.name}"\r\n`,
                );
              case "shell":
              case "exec":
                return req.fail(
                  "this is the Teleport proxy, it runs no shells or commands; connect to a node with tsh ssh <node>, or ssh -J through the proxy\r\n",
                );
              default:
                return req.reject();
            }
          });
        },
        directTcpip: async (open) => {
          try {
            const sock = await self.proxy!.#connect(
              open.conn,
              open.destHost,
              open.destPort,
            );
            spliceChannel(open.accept(), sock);
          } catch (err) {
            log.info("Cannot forward {user} to {host}:{port}: {reason}", {
              user: open.conn.username,
              host: open.destHost,
              port: open.destPort,
              reason: messageOf(err),
            });
            open.reject({ reason: "connect-failed", message: messageOf(err) });
          }
        },
      },
    });
    self.proxy = new SshProxy(o, server, roles);
    if (o.listen !== undefined) {
      try {
        await self.proxy.#listen(o.listen);
      } catch (err) {
        await server.close();
        throw err;
      }
    }
    return self.proxy;
  }

  /** Where the own listener is bound (separate mode only). */
  get addr(): { hostname: string; port: number } {
    if (this.#listener === undefined) {
      throw new BadParameterError("Cannot get the proxy SSH address: it has no own listener");
    }
    return { hostname: this.#listener.addr.host, port: this.#listener.addr.port };
  }

  /** SSH connections open (authenticated or not). */
  get connectionCount(): number {
    return this.#server.connectionCount;
  }

  /** Serves a connection handed over by the web port's router (TLS already terminated). */
  handleSocket(socket: Duplex, addrs?: SocketAddresses): void {
    this.#server.handleSocket(socket, addrs);
  }

  async #proxySubsystem(conn: SshConnection<ProxyUser>, name: string): Promise<Duplex> {
    const target = parseProxySubsystem(name);
    if (target.cluster !== undefined && target.cluster !== this.#o.clusterName) {
      throw new Error(
        `Cannot connect to cluster "${target.cluster}": this proxy serves only cluster "${this.#o.clusterName}"`,
      );
    }
    return await this.#connect(conn, target.host, target.port);
  }

  async #connect(conn: SshConnection<ProxyUser>, host: string, port: number): Promise<Duplex> {
    return (await this.#dial(conn.context, conn, host, port)).socket;
  }

  async #dial(
    user: ProxyUser,
    addrs: { remoteAddr: string; remotePort?: number; localAddr?: string; localPort?: number },
    host: string,
    port: number,
  ): Promise<{ node: ServerResource; socket: Duplex }> {
    const asked = port === 0 ? host : `${host}:${port}`;
    const node = await this.#o.nodes.resolve(host, port);
    assertVisible(node, (t) => user.checker.canSeeNode(t), asked);
    const source = endpointOf(addrs.remoteAddr, addrs.remotePort);
    const proxyAddr = endpointOf(addrs.localAddr, addrs.localPort);
    const o = this.#o;
    const dial = o.dialNode ??
      ((node: ServerResource, client: NodeDialClient) =>
        dialRegisteredAddr(node, {
          ...(client.source === undefined ? {} : { source: client.source }),
          signer: { ...o.hostKey, certificate: o.hostCertificate },
          clock: o.clock,
        }));
    try {
      const sock = await dial(node, {
        ...(source === undefined ? {} : { source }),
        ...(proxyAddr === undefined ? {} : { proxyAddr }),
      });
      this.#o.logger.debug("User {user} ({login}) connected through the proxy to {node}", {
        user: user.user,
        login: user.login,
        node: `${node.spec.hostname} (${node.metadata.name})`,
      });
      return { node, socket: sock };
    } catch (err) {
      throw new Error(
        `Cannot connect to node ${node.spec.hostname}: ${messageOf(err)} (${
          registeredWhere(node)
        })`,
      );
    }
  }

  /**
   * Graceful stop: no new connections; resolves once the connections in flight have ended by
   * themselves (those still deciding included), or when `deadline` aborts.
   */
  async drain(deadline: AbortSignal): Promise<void> {
    // Clients accepted already (still sending their PROXY header, or in their SSH handshake)
    // are served to their end, as the SSH server's drain does (a reload drops nothing).
    await this.#listener?.stopAccepting();
    await this.#server.drain(deadline);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    await this.#stopListening();
    await this.#server.close();
  }
}

/** Where a node said it can be reached, for errors: its address, or its reverse tunnel. */
export function registeredWhere(node: ServerResource): string {
  if (node.spec.use_tunnel === true || node.spec.addr === "") {
    return "the node is reached only through its reverse tunnel, which is not connected; is the node running?";
  }
  return `the node is registered at ${node.spec.addr}`;
}
