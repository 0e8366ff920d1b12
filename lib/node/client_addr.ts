/**
 * The node's SSH listener and where its clients are. A proxy that relays a user writes a PROXY v2
 * header signed with its host certificate first (lib/identity signClientAddrHeader); the node
 * believes the client address in it only when it verifies. Any other header, signed or not,
 * closes the connection with a warning naming why: the node never falls back to trusting it, and
 * never to the proxy's address either. A connection without a header is a direct client, at the
 * socket's own address.
 */
import type { Socket } from "node:net";
import { messageOf } from "../errors/mod.ts";
import type { ClientAddrVerifier } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import { ConnectionGuard, guardOf, listenGuarded, readProxyHeader } from "../net/mod.ts";
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
  const found = await readProxyHeader(socket, { timeoutMs: o.firstBytesTimeoutMs ?? 3000 });
  if (found.kind === "none" || found.kind === "silent") {
    o.serve(socket, {});
    return;
  }
  const refuse = (reason: string) => {
    o.logger.warn("Refused SSH connection from {peer}: {reason}", { peer, reason });
    socket.destroy();
  };
  if (found.kind === "error") return refuse(`bad PROXY header: ${found.reason}`);
  try {
    const client = await o.verifier.verify(found.header, local);
    if (socket.destroyed) return;
    // The per-address caps count the client, not the proxy that relays it.
    if (guardOf(socket)?.rekey(client.addr) === false) return void socket.destroy();
    o.serve(socket, { remoteAddr: client.addr, remotePort: client.port });
  } catch (err) {
    refuse(messageOf(err));
  }
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
