/**
 * Where an agent dials its reverse tunnel, as Teleport decides it (teleport-protocol-notes.md
 * §2, `lib/reversetunnel/resolver.go`, webclient `TunnelAddr`):
 *  1. `TELEPORT_TUNNEL_PUBLIC_ADDR` wins outright;
 *  2. with TLS routing: `ssh.public_addr`, else `ssh.web_listen_addr` (web port);
 *  3. without: `ssh_tunnel_public_addr` (port 3024 by default), `ssh_public_addr` and
 *     `public_addr` with the port forced to 3024, `tunnel_listen_addr`, `web_listen_addr`.
 * An unspecified host (0.0.0.0, ::, empty) is replaced by the host the agent reached the proxy
 * at. With TLS routing the tunnel runs inside TLS with ALPN `teleport-reversetunnel`.
 */
import { BadParameterError } from "../errors/mod.ts";

/** The default tunnel port (separate listener mode). */
export const TUNNEL_PORT = 3024;

/** The part of `/webapi/find` the resolver reads. */
export interface FindSettings {
  proxy: {
    ssh: {
      public_addr?: string;
      ssh_public_addr?: string;
      ssh_tunnel_public_addr?: string;
      tunnel_listen_addr?: string;
      web_listen_addr?: string;
    };
    tls_routing_enabled?: boolean;
  };
}

/** A resolved tunnel address. */
export interface TunnelAddr {
  host: string;
  port: number;
  /** Wrap the SSH connection in TLS with ALPN `teleport-reversetunnel`. */
  tls: boolean;
  /** Which rule chose it, for logs. */
  source: string;
}

/** Inputs of {@link resolveTunnelAddr}. */
export interface ResolveTunnelAddrOptions {
  /** The proxy's `/webapi/find` answer. */
  find: FindSettings;
  /** The address the agent reached the proxy's web API at (`proxy_server`). */
  proxyServer: { host: string; port: number };
  /** `TELEPORT_TUNNEL_PUBLIC_ADDR`, when set. */
  envAddr?: string;
}

/** Picks the tunnel address; throws BadParameterError when nothing usable is known. */
export function resolveTunnelAddr(o: ResolveTunnelAddrOptions): TunnelAddr {
  const ssh = o.find.proxy.ssh;
  const tls = o.find.proxy.tls_routing_enabled === true;
  const fix = (a: { host: string; port: number }) => ({
    host: isUnspecified(a.host) ? o.proxyServer.host : a.host,
    port: a.port,
  });
  if (o.envAddr !== undefined && o.envAddr.trim() !== "") {
    const a = parseHostPort(o.envAddr.trim(), tls ? o.proxyServer.port : TUNNEL_PORT);
    if (a === undefined) {
      throw new BadParameterError(
        `Cannot use TELEPORT_TUNNEL_PUBLIC_ADDR=${
          JSON.stringify(o.envAddr)
        }: not host:port; set it to the proxy address agents should dial, e.g. proxy.example.com:3024`,
      );
    }
    return { ...fix(a), tls, source: "TELEPORT_TUNNEL_PUBLIC_ADDR" };
  }
  const candidates: Array<[string, string | undefined, number, boolean]> = tls
    ? [
      ["public_addr", ssh.public_addr, o.proxyServer.port, false],
      ["web_listen_addr", ssh.web_listen_addr, o.proxyServer.port, false],
    ]
    : [
      ["ssh_tunnel_public_addr", ssh.ssh_tunnel_public_addr, TUNNEL_PORT, false],
      ["ssh_public_addr", ssh.ssh_public_addr, TUNNEL_PORT, true],
      ["public_addr", ssh.public_addr, TUNNEL_PORT, true],
      ["tunnel_listen_addr", ssh.tunnel_listen_addr, TUNNEL_PORT, false],
      ["web_listen_addr", ssh.web_listen_addr, o.proxyServer.port, false],
    ];
  for (const [name, value, defaultPort, forcePort] of candidates) {
    if (value === undefined || value.trim() === "") continue;
    const a = parseHostPort(value.trim(), defaultPort);
    if (a === undefined) continue;
    return {
      ...fix(forcePort ? { host: a.host, port: TUNNEL_PORT } : a),
      tls,
      source: `find ${name}`,
    };
  }
  if (tls) return { ...o.proxyServer, tls, source: "proxy_server" };
  throw new BadParameterError(
    "Cannot find the proxy's reverse tunnel address: /webapi/find names none; set " +
      "proxy_service.tunnel_public_addr on the proxy or TELEPORT_TUNNEL_PUBLIC_ADDR on the agent",
  );
}

/** `host:port`, `[v6]:port` or a bare host (with `defaultPort`); undefined when malformed. */
export function parseHostPort(
  text: string,
  defaultPort: number,
): { host: string; port: number } | undefined {
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6 !== null) {
    host = v6[1]!;
    portText = v6[2];
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text; // bare IPv6
  } else {
    const i = text.lastIndexOf(":");
    host = i < 0 ? text : text.slice(0, i);
    portText = i < 0 ? undefined : text.slice(i + 1);
  }
  if (host === "" || /[\s/@]/.test(host)) return undefined;
  if (portText === undefined || portText === "") return { host, port: defaultPort };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  return port >= 1 && port <= 65535 ? { host, port } : undefined;
}

function isUnspecified(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";
}
