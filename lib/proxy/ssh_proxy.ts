/**
 * The proxy's SSH server (port 3023, or ALPN `teleport-proxy-ssh` on the web
 * port): users log in with their certificate, then reach registered nodes
 * through the `proxy:host:port` subsystem (tsh, `tsh proxy ssh`) or
 * `direct-tcpip` (`ssh -J`). The bytes are passed through untouched, so the
 * client does its own SSH handshake with the node and the node sees the real
 * user certificate. The proxy never runs shells, commands or other
 * subsystems, and dials only addresses from the node registry.
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Clock } from "../clock/mod.ts";
import { messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Role, ServerResource } from "../resource/mod.ts";
import { type CertifiedUser, RoleCache, verifyUserCertificate } from "../rbac/mod.ts";
import { type SocketAddresses, spliceChannel, type SshServer, startSshServer } from "../ssh/mod.ts";
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
  nodes: NodeRegistry;
  clusterName: string;
  clock: Clock;
  logger: Logger;
  /** Own listener (separate mode, port 3023); without it only `handleSocket` feeds it. */
  listen?: { hostname: string; port: number };
  /** Connects to a node; the default dials its registered address over TCP. */
  dialNode?: (node: ServerResource) => Promise<Duplex>;
}

/** Dials a node's registered address (never anything a client typed). */
export function dialRegisteredAddr(node: ServerResource): Promise<Duplex> {
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
  readonly #o: SshProxyOptions;
  readonly #server: SshServer<ProxyUser>;

  private constructor(o: SshProxyOptions, server: SshServer<ProxyUser>) {
    this.#o = o;
    this.#server = server;
  }

  /** Starts the server (listening only when `listen` is given). */
  static async start(o: SshProxyOptions): Promise<SshProxy> {
    const roles = new RoleCache({ fetch: o.fetchRole, clock: o.clock, logger: o.logger });
    const log = o.logger;
    // Handlers run only after start() returns, once `self.proxy` is set.
    const self: { proxy?: SshProxy } = {};
    const server = await startSshServer<ProxyUser>({
      hostKey: o.hostKey,
      hostCertificate: o.hostCertificate,
      logger: log,
      ...(o.listen === undefined ? {} : { listen: o.listen }),
      authenticate: async (req) => {
        try {
          const user = await verifyUserCertificate({
            certificate: req.certificate,
            remoteAddr: req.remoteAddr,
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
                  return self.proxy!.#proxySubsystem(open.conn.context, req.name).then(
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
              open.conn.context,
              open.destHost,
              open.destPort,
            );
            spliceChannel(open.accept(), sock);
          } catch (err) {
            open.reject({ reason: "connect-failed", message: messageOf(err) });
          }
        },
      },
    });
    self.proxy = new SshProxy(o, server);
    return self.proxy;
  }

  /** Where the own listener is bound (separate mode only). */
  get addr(): { hostname: string; port: number } {
    return this.#server.addr;
  }

  /** Serves a connection handed over by the web port's router (TLS already terminated). */
  handleSocket(socket: Duplex, addrs?: SocketAddresses): void {
    this.#server.handleSocket(socket, addrs);
  }

  async #proxySubsystem(user: ProxyUser, name: string): Promise<Duplex> {
    const target = parseProxySubsystem(name);
    if (target.cluster !== undefined && target.cluster !== this.#o.clusterName) {
      throw new Error(
        `Cannot connect to cluster "${target.cluster}": this proxy serves only cluster "${this.#o.clusterName}"`,
      );
    }
    return await this.#connect(user, target.host, target.port);
  }

  async #connect(user: ProxyUser, host: string, port: number): Promise<Duplex> {
    const asked = port === 0 ? host : `${host}:${port}`;
    const node = await this.#o.nodes.resolve(host, port);
    assertVisible(node, (t) => user.checker.canSeeNode(t), asked);
    const dial = this.#o.dialNode ?? dialRegisteredAddr;
    try {
      const sock = await dial(node);
      this.#o.logger.debug("User {user} ({login}) connected through the proxy to {node}", {
        user: user.user,
        login: user.login,
        node: `${node.spec.hostname} (${node.metadata.name})`,
      });
      return sock;
    } catch (err) {
      throw new Error(
        `Cannot connect to node ${node.spec.hostname}: ${
          messageOf(err)
        } (the node is registered at ${node.spec.addr})`,
      );
    }
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    await this.#server.close();
  }
}
