/**
 * Where an auth API client is. A proxy passing a client's TLS through to auth (ALPN
 * `teleport-auth@…` on its web port) first writes a PROXY v2 header signed with its host
 * certificate; auth believes the client address in it only when it verifies (lib/identity
 * ClientAddrVerifier). A connection that starts with TLS is a direct client, at the socket's
 * address. Anything else is refused: auth never trusts an unsigned header.
 */
import type { Socket } from "node:net";
import { AccessDeniedError } from "../errors/mod.ts";
import type { ClientAddrVerifier } from "../identity/mod.ts";
import { readProxyHeader } from "../net/mod.ts";

/** What {@linkcode readSignedClientAddr} decided. */
export interface SignedClientAddr {
  /** The socket, paused, positioned at the first TLS byte. */
  socket: Socket;
  /** The client's IP (from a verified header, else the socket's peer). */
  addr: string;
  port: number;
}

/**
 * Reads a signed client address header off `socket` when there is one. Rejects with
 * AccessDeniedError (naming the reason) for a malformed, unsigned or unverifiable header and for
 * a client that sends nothing within `timeoutMs`; the caller closes the socket.
 */
export async function readSignedClientAddr(
  socket: Socket,
  verifier: ClientAddrVerifier,
  timeoutMs = 10_000,
): Promise<SignedClientAddr> {
  const found = await readProxyHeader(socket, { timeoutMs });
  switch (found.kind) {
    case "none":
      return { socket, addr: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
    case "silent":
      throw new AccessDeniedError(
        `Cannot accept auth API connection: nothing sent in ${timeoutMs} ms`,
      );
    case "error":
      throw new AccessDeniedError(
        `Cannot accept auth API connection: bad PROXY header: ${found.reason}`,
      );
  }
  const client = await verifier.verify(found.header, {
    addr: socket.localAddress ?? "",
    port: socket.localPort ?? 0,
  });
  return { socket, addr: client.addr, port: client.port };
}
