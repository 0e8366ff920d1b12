/**
 * Network addresses as written in teleport.yaml and on the command line.
 */
import { BadParameterError } from "../errors/mod.ts";
import { LISTEN_HOST, LOOPBACK_HOST } from "./defaults.ts";

/** A host (name, IPv4 or IPv6 without brackets) and a TCP port. */
export interface Addr {
  host: string;
  port: number;
}

/** Outcome of {@link tryParseAddr}: the address, or why the text is not one. */
export type AddrParseResult = { ok: true; addr: Addr } | { ok: false; problem: string };

const SCHEMES = new Set(["tcp", "http", "https"]);
const HOST_NAME = /^[A-Za-z0-9_.-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/;

function isIpv6(text: string): boolean {
  if (!IPV6.test(text) || !text.includes(":")) return false;
  const bare = text.split("%")[0]!;
  const doubles = bare.split("::").length - 1;
  if (doubles > 1) return false;
  const groups = bare.split(":").filter((g) => g !== "");
  const v4 = groups.at(-1)?.includes(".") ? 1 : 0; // ::ffff:1.2.3.4 counts as two groups
  const size = groups.length + v4;
  if (!groups.every((g, i) => g.length <= 4 ? !g.includes(".") : i === groups.length - 1)) {
    return false;
  }
  if (v4 && !/^\d{1,3}(\.\d{1,3}){3}$/.test(groups.at(-1)!)) return false;
  return doubles === 1 ? size <= 7 : size === 8;
}

function isIpv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255);
}

function parsePort(text: string): number | string {
  if (text === "") return "port is empty";
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) {
    return `port "${text}" is not a number between 0 and 65535`;
  }
  return Number(text);
}

/**
 * Parses `host`, `host:port`, `:port`, `[v6]:port`, `[v6]` or a bare IPv6
 * address, optionally prefixed with `tcp://`, `http://` or `https://`.
 * A missing port becomes `defaultPort`; a missing host (`:port`) becomes
 * `0.0.0.0`. Never throws.
 */
export function tryParseAddr(text: string, defaultPort: number): AddrParseResult {
  let s = text.trim();
  if (s === "") return { ok: false, problem: "address is empty" };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(s);
  if (scheme) {
    if (!SCHEMES.has(scheme[1]!.toLowerCase())) {
      return { ok: false, problem: `scheme "${scheme[1]}" is not supported (use tcp or https)` };
    }
    s = s.slice(scheme[0].length).replace(/\/$/, "");
    if (s === "") return { ok: false, problem: "address has no host" };
  }
  if (s.includes("/")) return { ok: false, problem: "an address cannot contain a path" };

  let host: string;
  let portText: string | undefined;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) return { ok: false, problem: "missing ] after IPv6 address" };
    host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return { ok: false, problem: `unexpected "${rest}" after ]` };
      portText = rest.slice(1);
    }
    if (!isIpv6(host)) return { ok: false, problem: `"${host}" is not an IPv6 address` };
  } else {
    const colons = s.split(":").length - 1;
    if (colons >= 2) {
      if (!isIpv6(s)) {
        return { ok: false, problem: "too many colons (write IPv6 with a port as [addr]:port)" };
      }
      host = s;
    } else if (colons === 1) {
      const i = s.indexOf(":");
      host = s.slice(0, i);
      portText = s.slice(i + 1);
      if (host === "") host = LISTEN_HOST;
    } else {
      host = s;
    }
    if (!HOST_NAME.test(host) && !isIpv6(host)) {
      return { ok: false, problem: `"${host}" is not a valid host name or IP address` };
    }
    // Digits and dots only is meant as IPv4 (no DNS name is all numeric): four numbers 0-255.
    if (/^[0-9.]+$/.test(host) && !isIpv4(host)) {
      return {
        ok: false,
        problem:
          `"${host}" is not a valid IPv4 address (four numbers from 0 to 255, like 10.0.0.1)`,
      };
    }
  }
  let port = defaultPort;
  if (portText !== undefined) {
    const p = parsePort(portText);
    if (typeof p === "string") return { ok: false, problem: p };
    port = p;
  }
  return { ok: true, addr: { host, port } };
}

/**
 * Parses an address like {@link tryParseAddr} and throws a
 * BadParameterError naming `where` (a flag such as `--auth-server`, a key
 * path or an environment variable) when the text is not an address.
 *
 * ```ts
 * parseAddr("proxy.example.com", 3080, "--proxy-server"); // {host: "proxy.example.com", port: 3080}
 * parseAddr("[::1]:3025", 3025, "--auth-server");        // {host: "::1", port: 3025}
 * ```
 */
export function parseAddr(text: string, defaultPort: number, where: string): Addr {
  const r = tryParseAddr(text, defaultPort);
  if (!r.ok) throw new BadParameterError(`Cannot parse ${where} "${text}": ${r.problem}`);
  return r.addr;
}

/** Formats an address as `host:port`, bracketing IPv6 hosts (`[::1]:3025`). */
export function formatAddr(addr: Addr): string {
  const host = addr.host.includes(":") ? `[${addr.host}]` : addr.host;
  return `${host}:${addr.port}`;
}

/** True for hosts that mean "all interfaces" when listening: `0.0.0.0`, `::`, empty. */
export function isUnspecifiedHost(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || /^(0*:)+0*$/.test(host);
}

/**
 * The address a process uses to reach its own listener: an unspecified
 * host (`0.0.0.0`, `::`) becomes `127.0.0.1`, other hosts stay.
 */
export function dialAddrOf(listen: Addr): Addr {
  return isUnspecifiedHost(listen.host) ? { host: LOOPBACK_HOST, port: listen.port } : listen;
}
