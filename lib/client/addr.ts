/** `host:port` addresses as tsh takes them on the command line and keeps them in profiles. */
import { BadParameterError } from "../errors/mod.ts";

/** A host (name or IP, IPv6 without brackets) and a port. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; `defaultPort` fills
 * a missing port. Throws BadParameterError naming `where`.
 */
export function parseHostPort(text: string, defaultPort: number, where = "address"): HostPort {
  const s = text.trim();
  const bad = (why: string): never => {
    throw new BadParameterError(
      `Cannot parse ${where} ${
        JSON.stringify(text)
      }: ${why} (use forms like proxy.example.com:3080)`,
    );
  };
  if (s === "") bad("it is empty");
  let host: string;
  let portText: string | undefined;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) bad("the IPv6 address has no closing bracket");
    host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) bad("unexpected text after the IPv6 address");
      portText = rest.slice(1);
    }
  } else if (s.split(":").length > 2) {
    host = s; // a bare IPv6 address
  } else {
    const i = s.indexOf(":");
    host = i < 0 ? s : s.slice(0, i);
    portText = i < 0 ? undefined : s.slice(i + 1);
  }
  if (host === "") bad("the host is empty");
  if (/[\s/@?#\\,]/.test(host)) bad("the host has characters a host name cannot have");
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      bad("the port must be a number from 1 to 65535");
    }
    port = Number(portText);
  }
  return { host, port };
}

/** Formats `host:port`, bracketing IPv6 hosts. */
export function formatHostPort(addr: HostPort): string {
  return addr.host.includes(":") ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** True for hosts that mean "every interface" (0.0.0.0, ::, empty): dial the proxy's host. */
export function isUnspecifiedHost(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";
}
