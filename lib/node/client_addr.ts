/**
 * The node's SSH listener and where its clients are. A proxy that relays a user writes a PROXY v2
 * header signed with its host certificate first (lib/identity signClientAddrHeader); the node
 * believes the client address in it only when it verifies, and a signed header that does not
 * verify closes the connection with a warning naming why: the node never falls back to trusting
 * it, and never to the proxy's address either.
 *
 * Unsigned headers come from a load balancer in front of the port and follow
 * `ssh_service.proxy_protocol` (lib/net readClientSource): `off` (the default here: nodes are
 * not expected behind one, so nobody can claim another address) refuses them, `on` requires
 * one, `unspecified` takes its address with the port zeroed. A signed header may follow the load
 * balancer's, and its client wins. A connection without a header is a direct client, at the
 * socket's own address.
 */
import type { Socket } from "node:net";
import { messageOf } from "../errors/mod.ts";
import { type ClientAddrVerifier, PP2_TYPE_SIGNED_CLIENT_ADDR } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  ConnectionGuard,
  listenGuarded,
  type ProxyProtocolMode,
  readClientSource,
} from "../net/mod.ts";
import type { SocketAddresses } from "../ssh/mod.ts";

/** Options of {@linkcode listenWithClientAddr}. */
export interface ClientAddrListenerOptions {
  listen: { hostname: string; port: number };
  verifier: ClientAddrVerifier;
  /** Serves an SSH connection from the given client. */
  serve: (socket: Socket, addrs: SocketAddresses) => void;
  logger: Logger;
  /**
   * How long to wait for a client's first byte before serving it without a header (SSH clients
   * that wait for the server's banner first).
   * @default {3000}
   */
  firstBytesTimeoutMs?: number;
  /**
   * Admission control shared with the process's other listeners.
   * @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /** Time from accept until the client authenticated. @default {30000} */
  loginTimeoutMs?: number;
  /**
   * PROXY headers from a load balancer in front (`ssh_service.proxy_protocol`); headers signed
   * by the cluster's proxies are checked by `verifier` in every mode.
   * @default {"off"}
   */
  proxyProtocol?: ProxyProtocolMode;
}

/** A bound listener. */
export interface ClientAddrListener {
  readonly addr: { hostname: string; port: number };
  /** Stops accepting and closes the sockets not served yet. */
  close(): Promise<void>;
  /** Stops accepting only: sockets accepted already are still served (graceful stop). */
  stopAccepting(): Promise<void>;
}

/** Decides who is on the other end of `socket`, then serves it or closes it. */
export async function acceptClientSocket(
  socket: Socket,
  o: Omit<ClientAddrListenerOptions, "listen">,
): Promise<void> {
  socket.setNoDelay(true);
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  const local = { addr: socket.localAddress ?? "", port: socket.localPort ?? 0 };
  const found = await readClientSource(socket, {
    mode: o.proxyProtocol ?? "off",
    setting: "ssh_service.proxy_protocol",
    logger: o.logger,
    timeoutMs: o.firstBytesTimeoutMs ?? 3000,
    signed: {
      tlvType: PP2_TYPE_SIGNED_CLIENT_ADDR,
      verify: (header) => o.verifier.verify(header, local),
    },
  });
  if (socket.destroyed) return;
  if (!found.ok) {
    o.logger.warn("Refused SSH connection from {peer}: {reason}", { peer, reason: found.reason });
    socket.destroy();
    return;
  }
  const { source } = found;
  o.serve(
    socket,
    source.proxied ? { remoteAddr: source.remoteAddr, remotePort: source.remotePort } : {},
  );
}

/** Listens for SSH clients and proxies; resolves once bound. */
export async function listenWithClientAddr(
  o: ClientAddrListenerOptions,
): Promise<ClientAddrListener> {
  // Sockets still deciding; once served, the SSH server owns (and closes) them.
  const deciding = new Set<Socket>();
  const listener = await listenGuarded({
    host: o.listen.hostname,
    port: o.listen.port,
    name: "node SSH",
    guard: o.guard ?? new ConnectionGuard({ logger: o.logger }),
    logger: o.logger,
    handshakeTimeoutMs: o.loginTimeoutMs ?? 30_000,
    onConnection: (socket) => {
      deciding.add(socket);
      acceptClientSocket(socket, o).catch((err) => {
        o.logger.warn("Cannot serve SSH connection: {reason}", { reason: messageOf(err) });
        socket.destroy();
      }).finally(() => deciding.delete(socket));
    },
  });
  let closed: Promise<void> | undefined;
  return {
    addr: { hostname: listener.addr.host, port: listener.addr.port },
    close: () => {
      closed ??= listener.close().then(() => {
        for (const s of deciding) s.destroy();
      });
      return closed;
    },
    stopAccepting: () => listener.stopAccepting(),
  };
}
