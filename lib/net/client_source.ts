/**
 * Who the client of a plain TCP listener is, when a load balancer in front may add a PROXY
 * protocol header: Teleport's tri-state (`proxy_protocol`, RFD 0146) for listeners that do not
 * go through the proxy's port multiplexer (the proxy's SSH port 3023, the node's SSH port).
 *
 * | mode | no header | one unsigned header | two unsigned headers |
 * |---|---|---|---|
 * | `off` | served | closed | closed |
 * | `on` | closed | served as the header's source; the guard's per-IP charge moves there | closed |
 * | `unspecified` | served | served as the header's source IP with port 0, logged at warn; the charge stays on the sender | closed |
 *
 * A header carrying `signed.tlvType` (a proxy of the cluster vouching for its client, see
 * lib/identity client_addr.ts) is not a load balancer's: `signed.verify` decides it in every
 * mode, it may follow one load balancer header, and its client wins. A `LOCAL` header (health
 * checks) or one without addresses keeps the socket's own addresses.
 */
import type { Socket } from "node:net";
import { messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { guardOf } from "./guard.ts";
import type { ProxyEndpoint, ProxyHeader } from "./proxy_protocol.ts";
import { readProxyHeader } from "./read_proxy_header.ts";

/** `proxy_protocol` of a listener: see the table in this file's header. */
export type ProxyProtocolMode = "on" | "off" | "unspecified";

/** The modes, for validation. */
export const PROXY_PROTOCOL_MODES: readonly ProxyProtocolMode[] = ["on", "off", "unspecified"];

/** Who the client is, as the listener should report it (audit, logs, source-address checks). */
export interface ClientSource {
  remoteAddr: string;
  /** 0 when an unsigned header was accepted in `unspecified` mode. */
  remotePort: number;
  /** True when the address came from a header. */
  proxied: boolean;
}

/** Options of {@linkcode readClientSource}. */
export interface ReadClientSourceOptions {
  mode: ProxyProtocolMode;
  /** The setting that chooses `mode`, named in refusals, e.g. `ssh_service.proxy_protocol`. */
  setting: string;
  logger: Logger;
  /**
   * How long to wait for a client's first bytes (SSH clients may wait for the server's banner)
   * before going on without a header, and for each header to finish.
   * @default {3000}
   */
  timeoutMs?: number;
  /** Headers signed by a proxy of the cluster; without it every header is a load balancer's. */
  signed?: {
    /** The TLV type that marks a signed header. */
    tlvType: number;
    /** Returns the vouched-for client; throws (saying why) when the header does not verify. */
    verify: (header: ProxyHeader) => Promise<ProxyEndpoint>;
  };
}

/** What {@linkcode readClientSource} decided; the socket is left paused either way. */
export type ClientSourceResult =
  | { ok: true; source: ClientSource }
  | { ok: false; reason: string };

/** `host:port`, IPv6 in brackets. */
function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Reads up to two PROXY headers off the front of `socket` (one load balancer's, then one signed)
 * and decides the client by `o.mode`; what follows the headers is put back into the socket.
 */
export async function readClientSource(
  socket: Socket,
  o: ReadClientSourceOptions,
): Promise<ClientSourceResult> {
  const peer = hostPort(socket.remoteAddress ?? "?", socket.remotePort ?? 0);
  let source: ClientSource = {
    remoteAddr: socket.remoteAddress ?? "",
    remotePort: socket.remotePort ?? 0,
    proxied: false,
  };
  const refuse = (reason: string): ClientSourceResult => ({ ok: false, reason });
  const timeoutMs = o.timeoutMs ?? 3000;
  let unsigned = 0;
  for (;;) {
    const found = await readProxyHeader(socket, { timeoutMs });
    if (found.kind === "error") return refuse(`bad PROXY header: ${found.reason}`);
    if (found.kind === "none" || found.kind === "silent") {
      if (o.mode === "on" && unsigned === 0) {
        return refuse(
          `no PROXY header, and ${o.setting} is on: connect through the load balancer, ` +
            `or set ${o.setting} to off when none sends headers`,
        );
      }
      return { ok: true, source };
    }
    const header = found.header;
    const signed = o.signed;
    if (signed !== undefined && header.tlvs.some((t) => t.type === signed.tlvType)) {
      let client: ProxyEndpoint;
      try {
        client = await signed.verify(header);
      } catch (err) {
        return refuse(messageOf(err));
      }
      // The per-address caps count the client, not the proxy that relays it.
      if (guardOf(socket)?.rekey(client.addr) === false) {
        return refuse(`the client ${client.addr} is over its connection caps`);
      }
      return {
        ok: true,
        source: { remoteAddr: client.addr, remotePort: client.port, proxied: true },
      };
    }
    if (o.mode === "off") {
      return refuse(
        `a PROXY protocol v${header.version} header arrived and ${o.setting} is off ` +
          "(set it to on when a load balancer in front sends headers)",
      );
    }
    if (unsigned > 0) return refuse("a second PROXY header (only one load balancer may add one)");
    unsigned++;
    if (header.command === "local" || header.source === undefined) {
      o.logger.debug("PROXY header from {peer} without a client address (LOCAL or UNSPEC)", {
        peer,
      });
      continue;
    }
    const { addr, port } = header.source;
    if (o.mode === "on") {
      // The operator says a load balancer sends every header: the real client is charged.
      if (guardOf(socket)?.rekey(addr) === false) {
        return refuse(`the client ${addr} is over its connection caps`);
      }
      source = { remoteAddr: addr, remotePort: port, proxied: true };
    } else {
      // Anyone may have sent it: report the address with port 0 to mark it unverified, and
      // keep the per-address charge on the sender.
      o.logger.warn(
        "Accepted a PROXY header from {peer} naming client {client}, with the source port zeroed: {setting} is unset; set it to on when a load balancer sends PROXY headers, or off when none does",
        { peer, client: addr, setting: o.setting },
      );
      source = { remoteAddr: addr, remotePort: 0, proxied: true };
    }
  }
}
