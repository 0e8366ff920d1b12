/**
 * Where an auth API client is. A proxy passing a client's TLS through to auth (ALPN
 * `teleport-auth@…` on its web port) first writes a PROXY v2 header signed with its host
 * certificate; auth believes the client address in it only when it verifies (lib/identity
 * ClientAddrVerifier). A connection that starts with TLS is a direct client, at the socket's
 * address. Anything else is refused: auth never trusts an unsigned header.
 */
import { lookup } from "node:dns/promises";
import { isIP, type Socket } from "node:net";
import { AccessDeniedError } from "../errors/mod.ts";
import type { ClientAddrVerifier } from "../identity/mod.ts";
import { type ProxyEndpoint, readProxyHeader } from "../net/mod.ts";

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

/** Options of {@linkcode frontAddrResolver}. */
export interface FrontAddrResolverOptions {
  /**
   * How long resolved addresses are reused before the names are looked up again.
   * @default {30000}
   */
  ttlMs?: number;
  /** Monotonic milliseconds. @default {performance.now} */
  now?: () => number;
}

/**
 * The addresses of the load balancers in front of the auth API (`auth_service.public_addr`),
 * for {@linkcode ClientAddrVerifier}'s `frontAddrs`: names are looked up with the system
 * resolver (so /etc/hosts counts), IPs taken as they are, the result reused for `ttlMs`. A name
 * that does not resolve counts as no address until the next look-up.
 */
export function frontAddrResolver(
  addrs: readonly { host: string; port: number }[],
  o: FrontAddrResolverOptions = {},
): () => Promise<ProxyEndpoint[]> {
  const ttlMs = o.ttlMs ?? 30_000;
  const now = o.now ?? (() => performance.now());
  let cached: { at: number; value: Promise<ProxyEndpoint[]> } | undefined;
  const resolveAll = async (): Promise<ProxyEndpoint[]> => {
    const out: ProxyEndpoint[] = [];
    for (const a of addrs) {
      if (a.host === "" || a.port <= 0) continue;
      if (isIP(a.host) !== 0) {
        out.push({ addr: a.host, port: a.port });
        continue;
      }
      try {
        for (const r of await lookup(a.host, { all: true })) {
          out.push({ addr: r.address, port: a.port });
        }
      } catch {
        // Unknown for now: the next look-up after ttlMs tries again.
      }
    }
    return out;
  };
  return () => {
    if (addrs.length === 0) return Promise.resolve([]);
    const t = now();
    if (cached === undefined || t - cached.at >= ttlMs) cached = { at: t, value: resolveAll() };
    return cached.value;
  };
}
