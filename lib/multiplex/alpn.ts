/**
 * The ALPN routing table of the proxy's web port, in one place (protocol notes §1). A TLS
 * connection is routed by the client's ALPN list (RFC 7301), read from its ClientHello before
 * any TLS is terminated: the client's values are tried in the client's order and the first one
 * that matches a rule of {@linkcode ALPN_ROUTES} decides.
 */
import { BadParameterError } from "../errors/mod.ts";

/** SSH to the proxy inside TLS; the inner stream is the proxy's SSH server. */
export const ALPN_PROXY_SSH = "teleport-proxy-ssh";
/** Reverse tunnel agents (SSH inside TLS). */
export const ALPN_REVERSE_TUNNEL = "teleport-reversetunnel";
/** What agents send ahead of {@linkcode ALPN_REVERSE_TUNNEL} with proxy peering: a load
 * balancer hint, routed the same way. */
export const ALPN_REVERSE_TUNNEL_V2 = "teleport-reversetunnelv2";
/** The auth API, passed through untouched: `teleport-auth@<hex cluster>.teleport.cluster.local`. */
export const ALPN_AUTH_PREFIX = "teleport-auth@";
/** HTTP/1.1 (RFC 7301 §6). */
export const ALPN_HTTP1 = "http/1.1";
/** HTTP/2 over TLS (RFC 9113 §3.2). */
export const ALPN_H2 = "h2";
/** ACME TLS-ALPN-01 challenges (RFC 8737 §6.2). */
export const ALPN_ACME = "acme-tls/1";

/** The fixed API domain that follows the hex cluster name in auth ALPN values and SNI. */
export const CLUSTER_LOCAL_DOMAIN = "teleport.cluster.local";
const AUTH_SUFFIX = `.${CLUSTER_LOCAL_DOMAIN}`;
/** RFC 7301 §3.1: a protocol name is at most 255 bytes. */
const MAX_ALPN_BYTES = 255;

/** Where a connection goes. */
export type RouteName = "web" | "proxy-ssh" | "reverse-tunnel" | "auth";

/** The routing decision for one TLS connection. */
export interface Route {
  /** The handler that gets the connection. */
  readonly route: RouteName;
  /** `true`: the proxy terminates TLS; `false`: the raw TLS bytes are passed through. */
  readonly terminate: boolean;
  /**
   * The ALPN value the proxy selects in its handshake (terminated routes only); absent when it
   * selects none.
   */
  readonly protocol?: string;
  /** The client's ALPN value that matched; absent when the client sent no ALPN. */
  readonly matched?: string;
  /** `auth` only: the cluster name decoded from the matched value, when it decodes. */
  readonly clusterName?: string;
}

/** One rule of the routing table. */
export interface AlpnRule {
  /** `exact`: the client's value equals `value`; `prefix`: it starts with `value`. */
  readonly match: "exact" | "prefix";
  readonly value: string;
  readonly route: RouteName;
  readonly terminate: boolean;
  /** The ALPN the proxy selects, given the client's whole list and the value that matched. */
  readonly select: (offered: readonly string[], matched: string) => string | undefined;
}

/**
 * We serve HTTP/1.1 only: select `http/1.1` when the client offers it anywhere in its list,
 * otherwise select nothing (a client offering only `h2` or `acme-tls/1` gets no ALPN and then
 * speaks HTTP/1.1, the RFC 7301 §3.2 behaviour of a server that does not negotiate). Selecting
 * a protocol the client did not offer would break the handshake.
 */
function selectWeb(offered: readonly string[]): string | undefined {
  return offered.includes(ALPN_HTTP1) ? ALPN_HTTP1 : undefined;
}

/**
 * The routing table. Adding a route is adding a rule here (and a handler in
 * `MultiplexerOptions.handlers`).
 */
export const ALPN_ROUTES: readonly AlpnRule[] = Object.freeze(
  [
    {
      match: "exact",
      value: ALPN_PROXY_SSH,
      route: "proxy-ssh",
      terminate: true,
      select: () => ALPN_PROXY_SSH,
    },
    {
      match: "exact",
      value: ALPN_REVERSE_TUNNEL,
      route: "reverse-tunnel",
      terminate: true,
      select: () => ALPN_REVERSE_TUNNEL,
    },
    {
      match: "exact",
      value: ALPN_REVERSE_TUNNEL_V2,
      route: "reverse-tunnel",
      terminate: true,
      // v2 is a hint: answer with v1 when the client offers it too, as Teleport's proxy does.
      select: (offered) =>
        offered.includes(ALPN_REVERSE_TUNNEL) ? ALPN_REVERSE_TUNNEL : ALPN_REVERSE_TUNNEL_V2,
    },
    {
      match: "prefix",
      value: ALPN_AUTH_PREFIX,
      route: "auth",
      terminate: false,
      select: () => undefined,
    },
    { match: "exact", value: ALPN_HTTP1, route: "web", terminate: true, select: selectWeb },
    { match: "exact", value: ALPN_H2, route: "web", terminate: true, select: selectWeb },
    { match: "exact", value: ALPN_ACME, route: "web", terminate: true, select: selectWeb },
  ] satisfies AlpnRule[],
);

function matches(rule: AlpnRule, value: string): boolean {
  return rule.match === "exact" ? value === rule.value : value.startsWith(rule.value);
}

/**
 * Routes a connection by the client's ALPN list: the first of the client's values (in the
 * client's order) that matches a rule decides. No ALPN at all goes to the web handler; a
 * non-empty list without any match returns `undefined` (refuse the connection).
 */
export function routeForAlpn(offered: readonly string[]): Route | undefined {
  if (offered.length === 0) return { route: "web", terminate: true };
  for (const value of offered) {
    const rule = ALPN_ROUTES.find((r) => matches(r, value));
    if (rule === undefined) continue;
    const protocol = rule.terminate ? rule.select(offered, value) : undefined;
    const clusterName = rule.route === "auth" ? parseAuthAlpn(value) : undefined;
    return {
      route: rule.route,
      terminate: rule.terminate,
      matched: value,
      ...(protocol === undefined ? {} : { protocol }),
      ...(clusterName === undefined ? {} : { clusterName }),
    };
  }
  return undefined;
}

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The ALPN value that asks the proxy to pass a connection through to the auth service of
 * `clusterName`: `teleport-auth@` + hex(UTF-8 name) + `.teleport.cluster.local`.
 * Throws BadParameterError when the name is empty or too long for an ALPN value (255 bytes).
 */
export function authAlpn(clusterName: string): string {
  if (clusterName === "") {
    throw new BadParameterError("Cannot build auth ALPN value: cluster name is empty");
  }
  const hex = Array.from(encoder.encode(clusterName), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const value = `${ALPN_AUTH_PREFIX}${hex}${AUTH_SUFFIX}`;
  if (value.length > MAX_ALPN_BYTES) {
    const max = (MAX_ALPN_BYTES - ALPN_AUTH_PREFIX.length - AUTH_SUFFIX.length) >> 1;
    throw new BadParameterError(
      `Cannot build auth ALPN value: cluster name ${
        JSON.stringify(clusterName)
      } is longer than ${max} bytes`,
    );
  }
  return value;
}

/**
 * The cluster name in an auth ALPN value made by {@linkcode authAlpn}, or `undefined` when the
 * value is not one (wrong prefix or suffix, not hex, not UTF-8, empty name).
 */
export function parseAuthAlpn(value: string): string | undefined {
  if (!value.startsWith(ALPN_AUTH_PREFIX) || !value.endsWith(AUTH_SUFFIX)) return undefined;
  const hex = value.slice(ALPN_AUTH_PREFIX.length, value.length - AUTH_SUFFIX.length);
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}
