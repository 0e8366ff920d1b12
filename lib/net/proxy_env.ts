/**
 * HTTP proxy settings as Go's `golang.org/x/net/http/httpproxy` reads them (what Teleport uses,
 * teleport-protocol-notes §8), written from its documented behaviour:
 *
 * - `HTTPS_PROXY` wins over `https_proxy`, the same for `HTTP_PROXY` and `NO_PROXY`; empty values
 *   count as unset.
 * - A proxy value without a scheme (`proxy.example.com:3128`, `user:pass@10.0.0.5:3128`) is
 *   read as `http://…`; `http` and `https` (TLS to the proxy itself) are supported.
 * - TLS and SSH targets ask for the https proxy first, then the http one.
 * - Destinations `localhost`, `*.localhost` and loopback IPs are always dialled directly.
 * - `NO_PROXY`: `*`; IP addresses (optionally with a port); CIDR blocks; domains, where `d`
 *   matches `d` and its subdomains while `.d` and `*.d` match the subdomains only; any host or
 *   IP entry may carry `:port` (`[v6]:port`) to exclude only that port.
 *
 * A proxy whose own host is loopback (cntlm or px on 127.0.0.1:3128) is allowed: the loopback
 * rule concerns destinations only.
 */
import { isIP } from "node:net";
import { BadParameterError } from "../errors/mod.ts";

/** Proxy settings, usually from the environment (see {@linkcode proxySettingsFromEnv}). */
export interface HttpProxySettings {
  /** `HTTPS_PROXY`: the proxy for TLS and SSH targets. */
  httpsProxy?: string;
  /** `HTTP_PROXY`: used when no https proxy is set. */
  httpProxy?: string;
  /** `NO_PROXY`: destinations dialled directly. */
  noProxy?: string;
  /**
   * `TELEPORT_PROXY_LOOPBACK=yes`: send loopback destinations through the proxy too. Only for
   * tests and benchmarks that run a CONNECT proxy and its target on one host (they may only use
   * 127.0.0.0/8); production never needs it.
   * @default {false}
   */
  proxyLoopback?: boolean;
}

/** A parsed proxy URL. */
export interface ProxyUrl {
  scheme: "http" | "https";
  /** Host name or IP address (IPv6 without brackets), lowercase. */
  host: string;
  port: number;
  /** Percent-decoded user, when the URL has a userinfo part (may be empty). */
  username?: string;
  /** Percent-decoded password, when the userinfo has a `:` (may be empty). */
  password?: string;
  /** The URL without userinfo, for messages and logs: `http://10.0.0.5:3128`. */
  display: string;
}

/** Where a dial goes: through a proxy (and which variable named it), or directly (and why). */
export type Route =
  | { proxy: ProxyUrl; variable: "HTTPS_PROXY" | "HTTP_PROXY" }
  | { proxy?: undefined; direct: string };

/**
 * Reads the proxy settings from the environment: upper case names first, then lower case;
 * empty values are unset.
 */
export function proxySettingsFromEnv(
  env: { get(name: string): string | undefined } = Deno.env,
): HttpProxySettings {
  const any = (...names: string[]): string | undefined => {
    for (const name of names) {
      const value = env.get(name);
      if (value !== undefined && value !== "") return value;
    }
    return undefined;
  };
  const httpsProxy = any("HTTPS_PROXY", "https_proxy");
  const httpProxy = any("HTTP_PROXY", "http_proxy");
  const noProxy = any("NO_PROXY", "no_proxy");
  const proxyLoopback = /^(1|yes|true)$/i.test(any(PROXY_LOOPBACK_ENV) ?? "");
  return {
    ...(httpsProxy === undefined ? {} : { httpsProxy }),
    ...(httpProxy === undefined ? {} : { httpProxy }),
    ...(noProxy === undefined ? {} : { noProxy }),
    ...(proxyLoopback ? { proxyLoopback } : {}),
  };
}

/** Sends loopback destinations through the proxy too (tests and benchmarks only). */
export const PROXY_LOOPBACK_ENV = "TELEPORT_PROXY_LOOPBACK";

/** Default port of each proxy scheme. */
const DEFAULT_PORTS = { http: 80, https: 443 } as const;

/** `value` with the password of its userinfo (if any) replaced by `****`. */
function maskProxyValue(value: string): string {
  const start = value.indexOf("://") >= 0 ? value.indexOf("://") + 3 : 0;
  const authorityEnd = value.slice(start).search(/[/?#]/);
  const authority = authorityEnd < 0
    ? value.slice(start)
    : value.slice(start, start + authorityEnd);
  const at = authority.lastIndexOf("@");
  if (at < 0) return value;
  const colon = authority.indexOf(":");
  if (colon < 0 || colon > at) return value;
  return value.slice(0, start + colon + 1) + "****" + value.slice(start + at);
}

/**
 * Parses a proxy URL: `scheme://[user[:password]@]host[:port]`, scheme `http` or `https`; a
 * value without `://` is read as `http://value`. The port defaults to 80 (http) or 443 (https);
 * userinfo is percent-decoded; a path is ignored. Bad values throw BadParameterError naming
 * `variable` and showing the value with its password masked.
 */
export function parseProxyUrl(value: string, variable = "the proxy URL"): ProxyUrl {
  const bad = (why: string) =>
    new BadParameterError(
      `Cannot use ${variable} ${JSON.stringify(maskProxyValue(value))}: ${why}; write it as ` +
        "http://[user:password@]host:port",
    );
  const trimmed = value.trim();
  if (trimmed === "") throw bad("it is empty");
  let scheme: string;
  let rest: string;
  const sep = trimmed.indexOf("://");
  if (sep >= 0) {
    scheme = trimmed.slice(0, sep).toLowerCase();
    rest = trimmed.slice(sep + 3);
  } else {
    scheme = "http";
    rest = trimmed;
  }
  if (scheme === "socks5" || scheme === "socks5h" || scheme === "socks") {
    throw bad("SOCKS proxies are not supported, only HTTP CONNECT proxies (http:// or https://)");
  }
  if (scheme !== "http" && scheme !== "https") {
    throw bad(`the scheme ${JSON.stringify(scheme)} is not supported (only http and https)`);
  }
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf("@");
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hostPort = at < 0 ? authority : authority.slice(at + 1);
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    try {
      username = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
      password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    } catch {
      throw bad("its user or password has a malformed percent-encoding");
    }
  }
  let host: string;
  let portText: string | undefined;
  if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]");
    if (close < 0) throw bad("its IPv6 address lacks the closing bracket");
    host = hostPort.slice(1, close);
    const after = hostPort.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) throw bad("text follows its IPv6 address");
    portText = after === "" ? undefined : after.slice(1);
    if (isIP(host) !== 6) throw bad(`${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = hostPort.lastIndexOf(":");
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    portText = colon < 0 ? undefined : hostPort.slice(colon + 1);
    if (host.includes(":")) throw bad("write an IPv6 address in brackets, as [fd00::1]:3128");
  }
  if (host === "") throw bad("it names no host");
  if (isIP(host) !== 0) {
    host = host.toLowerCase();
  } else {
    if (!/^[A-Za-z0-9._-]+$/.test(host)) {
      // Internationalized names become punycode; anything else is not a host name.
      let ascii: string | undefined;
      try {
        ascii = /[\s\0%@\\]/.test(host) ? undefined : new URL(`http://${host}`).hostname;
      } catch {
        ascii = undefined;
      }
      if (ascii === undefined || !/^[A-Za-z0-9._-]+$/.test(ascii)) {
        throw bad(`${JSON.stringify(host)} is not a host name`);
      }
      host = ascii;
    }
    host = host.toLowerCase();
  }
  let port: number = DEFAULT_PORTS[scheme];
  if (portText !== undefined && portText !== "") {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw bad(`${JSON.stringify(portText)} is not a port (1-65535)`);
    }
    port = Number(portText);
  }
  const display = `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    scheme,
    host,
    port,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    display,
  };
}

/**
 * The proxy to use for a TLS or SSH connection to `host:port` (the https proxy, else the http
 * one), or undefined to dial directly; see the module doc for the rules. A bad proxy URL throws
 * BadParameterError.
 */
export function proxyFor(
  settings: HttpProxySettings,
  host: string,
  port: number,
): ProxyUrl | undefined {
  return resolveRoute(settings, host, port).proxy;
}

/** Like {@linkcode proxyFor}, with the reason of a direct dial and the variable of a proxy. */
export function resolveRoute(settings: HttpProxySettings, host: string, port: number): Route {
  const https = nonEmpty(settings.httpsProxy);
  const http = nonEmpty(settings.httpProxy);
  if (https === undefined && http === undefined) return { direct: "no proxy set" };
  const target = normalizeHost(host);
  if (settings.proxyLoopback !== true && isLoopbackHost(target)) {
    return { direct: "loopback destination" };
  }
  const noProxy = nonEmpty(settings.noProxy);
  if (noProxy !== undefined && matchesNoProxy(noProxy, target, port)) {
    return { direct: "NO_PROXY match" };
  }
  return https !== undefined
    ? { proxy: parseProxyUrl(https, "HTTPS_PROXY"), variable: "HTTPS_PROXY" }
    : { proxy: parseProxyUrl(http!, "HTTP_PROXY"), variable: "HTTP_PROXY" };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/** Lowercase, without IPv6 brackets, IPv4-mapped IPv6 addresses as IPv4. */
function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  const bytes = parseIp(h);
  return bytes !== undefined && bytes.length === 4 && h.includes(":") ? bytes.join(".") : h;
}

/** `localhost`, `*.localhost`, 127.0.0.0/8 or ::1. */
function isLoopbackHost(host: string): boolean {
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const ip = parseIp(host);
  if (ip === undefined) return false;
  if (ip.length === 4) return ip[0] === 127;
  return ip.slice(0, 15).every((b) => b === 0) && ip[15] === 1;
}

/**
 * Parses an IP address to its bytes (4 for IPv4, 16 for IPv6; IPv4-mapped IPv6 addresses give
 * their 4 IPv4 bytes, as Go's net.IP comparisons treat them), or undefined.
 */
function parseIp(text: string): number[] | undefined {
  const kind = isIP(text);
  if (kind === 4) return text.split(".").map(Number);
  if (kind !== 6) return undefined;
  let s = text.replace(/%.*$/, "");
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    // A dotted IPv4 tail (::ffff:10.0.0.1) becomes its two 16-bit groups.
    const [a = 0, b = 0, c = 0, d = 0] = s.slice(lastColon + 1).split(".").map(Number);
    s = `${s.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left = "", right] = s.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const words = [...l, ...new Array(8 - l.length - r.length).fill(0), ...r];
  const bytes = words.flatMap((w) => [(w >> 8) & 0xff, w & 0xff]);
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

/** One NO_PROXY entry. */
type NoProxyEntry =
  | { kind: "all" }
  | { kind: "cidr"; network: number[]; bits: number }
  | { kind: "ip"; ip: number[]; port?: number }
  | { kind: "domain"; suffix: string; matchBare: boolean; port?: number };

/** Parses NO_PROXY (comma or space separated, case-insensitive); bad entries are ignored. */
function parseNoProxy(value: string): NoProxyEntry[] {
  const entries: NoProxyEntry[] = [];
  for (const raw of value.toLowerCase().split(/[\s,]+/)) {
    if (raw === "") continue;
    if (raw === "*") return [{ kind: "all" }];
    const slash = raw.indexOf("/");
    if (slash >= 0) {
      const network = parseIp(raw.slice(0, slash));
      const bitsText = raw.slice(slash + 1);
      if (network === undefined || !/^[0-9]{1,3}$/.test(bitsText)) continue;
      let bits = Number(bitsText);
      // A v4-mapped network (::ffff:10.0.0.0/104) counts in IPv4 bits.
      if (network.length === 4 && raw.slice(0, slash).includes(":")) bits -= 96;
      if (bits < 0 || bits > network.length * 8) continue;
      entries.push({ kind: "cidr", network, bits });
      continue;
    }
    const { host, port } = splitEntry(raw);
    if (host === undefined || host === "") continue;
    const ip = parseIp(host);
    if (ip !== undefined) {
      entries.push({ kind: "ip", ip, ...(port === undefined ? {} : { port }) });
      continue;
    }
    // `*.d` and `.d` match subdomains of d; a bare `d` matches d too.
    const name = host.startsWith("*.") ? host.slice(1) : host;
    const matchBare = !name.startsWith(".");
    const suffix = matchBare ? `.${name}` : name;
    if (suffix === ".") continue;
    entries.push({ kind: "domain", suffix, matchBare, ...(port === undefined ? {} : { port }) });
  }
  return entries;
}

/** Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address. */
function splitEntry(entry: string): { host?: string; port?: number } {
  if (entry.startsWith("[")) {
    const close = entry.indexOf("]");
    if (close < 0) return {};
    const after = entry.slice(close + 1);
    if (after === "") return { host: entry.slice(1, close) };
    if (!/^:[0-9]{1,5}$/.test(after)) return {};
    return { host: entry.slice(1, close), port: Number(after.slice(1)) };
  }
  if (isIP(entry) === 6) return { host: entry };
  const colon = entry.lastIndexOf(":");
  if (colon < 0) return { host: entry };
  const portText = entry.slice(colon + 1);
  const host = entry.slice(0, colon);
  if (host.includes(":")) return {};
  if (portText === "") return { host };
  if (!/^[0-9]{1,5}$/.test(portText)) return {};
  return { host, port: Number(portText) };
}

/** True when NO_PROXY excludes `host:port` (host already normalized). */
function matchesNoProxy(noProxy: string, host: string, port: number): boolean {
  const ip = parseIp(host);
  for (const e of parseNoProxy(noProxy)) {
    switch (e.kind) {
      case "all":
        return true;
      case "cidr":
        if (ip !== undefined && inNetwork(ip, e.network, e.bits)) return true;
        break;
      case "ip":
        if (ip !== undefined && sameBytes(ip, e.ip) && (e.port === undefined || e.port === port)) {
          return true;
        }
        break;
      case "domain":
        if (
          (host.endsWith(e.suffix) || (e.matchBare && host === e.suffix.slice(1))) &&
          (e.port === undefined || e.port === port)
        ) {
          return true;
        }
        break;
    }
  }
  return false;
}

function sameBytes(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function inNetwork(ip: number[], network: number[], bits: number): boolean {
  if (ip.length !== network.length) return false;
  for (let i = 0; i < ip.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    if (take === 0) return true;
    const mask = (0xff << (8 - take)) & 0xff;
    if ((ip[i]! & mask) !== (network[i]! & mask)) return false;
  }
  return true;
}
