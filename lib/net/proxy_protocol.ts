/**
 * PROXY protocol headers (HAProxy "The PROXY protocol", versions 1 and 2): pure parse and format.
 *
 * Version 2 (spec §2.2), binary:
 *
 *   12 bytes  signature 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
 *   1 byte    version (high nibble, 2) and command (low nibble: 0 LOCAL, 1 PROXY)
 *   1 byte    address family (high nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) and transport
 *             (low nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM)
 *   2 bytes   length of what follows, network order
 *   ...       addresses: INET src(4) dst(4) sport(2) dport(2); INET6 src(16) dst(16) sport dport
 *   ...       TLVs to the end: type(1) length(2, network order) value (spec §2.2.7)
 *
 * Version 1 (spec §2.1), text, at most 107 bytes including CRLF:
 * `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or `PROXY UNKNOWN[ anything]\r\n`.
 *
 * Parsing never throws: it answers "incomplete" (read more), "error" with a reason, or the header
 * and how many bytes it took. Nothing here decides whether a header is trusted; the callers do
 * (an unsigned header from a client is never trusted).
 */
import { isIPv4, isIPv6 } from "node:net";

/** Spec §2.2: the 12 bytes that start every v2 header. */
export const PROXY_V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

/** Spec §2.1: a v1 line is at most 107 bytes, CRLF included. */
export const MAX_PROXY_V1_BYTES = 107;
/** Largest v2 length field accepted (addresses and TLVs). The spec allows 65535; we need ~2 KiB. */
export const MAX_PROXY_V2_LENGTH = 4096;
/** Spec §2.2.7: the first type reserved for application-specific TLVs (PP2_TYPE_MIN_CUSTOM). */
export const PP2_TYPE_MIN_CUSTOM = 0xe0;
/** Spec §2.2.7: the last type reserved for application-specific TLVs (PP2_TYPE_MAX_CUSTOM). */
export const PP2_TYPE_MAX_CUSTOM = 0xef;

/** v2 fixed part: signature, version/command, family/transport, length. */
const V2_FIXED = 16;
/** Spec §2.2: lengths of the address block per family. */
const V2_INET_LEN = 12;
const V2_INET6_LEN = 36;
const V1_PREFIX = new TextEncoder().encode("PROXY ");

/** An IP endpoint. `addr` is the canonical text form (IPv6 compressed, lower case). */
export interface ProxyEndpoint {
  addr: string;
  port: number;
}

/** One type-length-value of a v2 header. */
export interface ProxyTlv {
  type: number;
  value: Uint8Array;
}

/** A parsed header. */
export interface ProxyHeader {
  version: 1 | 2;
  /**
   * `proxy`: the connection was relayed for `source`; `local`: the sender speaks for itself
   * (health checks), use the socket's own addresses.
   */
  command: "local" | "proxy";
  /** `unspec` carries no addresses (v2 UNSPEC, v1 UNKNOWN). */
  family: "inet" | "inet6" | "unspec";
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** v2 only; empty for v1. */
  tlvs: ProxyTlv[];
}

/** What {@linkcode parseProxyHeader} found. */
export type ProxyHeaderResult =
  /** The bytes so far are a prefix of a header: read more. */
  | { kind: "incomplete" }
  /** Not a valid header; `reason` says why. */
  | { kind: "error"; reason: string }
  /** A header; it took the first `consumed` bytes. */
  | { kind: "header"; header: ProxyHeader; consumed: number };

const incomplete = { kind: "incomplete" } as const;
const error = (reason: string) => ({ kind: "error", reason }) as const;

/** How far `data` agrees with `pattern`: "match", "prefix" (too short to tell) or "no". */
function prefixOf(data: Uint8Array, pattern: Uint8Array): "match" | "prefix" | "no" {
  const n = Math.min(data.length, pattern.length);
  for (let i = 0; i < n; i++) if (data[i] !== pattern[i]) return "no";
  return data.length >= pattern.length ? "match" : "prefix";
}

/**
 * Parses a v1 or v2 header at the start of `data`. Bounded: a v2 header longer than
 * {@linkcode MAX_PROXY_V2_LENGTH} or a v1 line longer than {@linkcode MAX_PROXY_V1_BYTES} is an
 * error, so a caller never buffers more than that.
 */
export function parseProxyHeader(data: Uint8Array): ProxyHeaderResult {
  const v2 = prefixOf(data, PROXY_V2_SIGNATURE);
  if (v2 === "match") return parseV2(data);
  const v1 = prefixOf(data, V1_PREFIX);
  if (v1 === "match") return parseV1(data);
  if (v2 === "prefix" || v1 === "prefix") return incomplete;
  return error("not a PROXY protocol header");
}

function parseV2(data: Uint8Array): ProxyHeaderResult {
  if (data.length < V2_FIXED) return incomplete;
  const verCmd = data[12]!;
  if (verCmd >> 4 !== 2) return error(`PROXY v2 version nibble is ${verCmd >> 4}, want 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return error(`PROXY v2 command ${cmd} is neither LOCAL (0) nor PROXY (1)`);
  const famByte = data[13]!;
  const fam = famByte >> 4;
  const transport = famByte & 0x0f;
  if (transport > 2) return error(`PROXY v2 transport ${transport} is unknown`);
  const len = (data[14]! << 8) | data[15]!;
  if (len > MAX_PROXY_V2_LENGTH) {
    return error(`PROXY v2 header length ${len} exceeds ${MAX_PROXY_V2_LENGTH}`);
  }
  if (data.length < V2_FIXED + len) return incomplete;
  const body = data.subarray(V2_FIXED, V2_FIXED + len);
  let family: ProxyHeader["family"];
  let addrLen: number;
  if (fam === 0) {
    family = "unspec";
    addrLen = 0;
  } else if (fam === 1) {
    family = "inet";
    addrLen = V2_INET_LEN;
  } else if (fam === 2) {
    family = "inet6";
    addrLen = V2_INET6_LEN;
  } else if (fam === 3) {
    return error("PROXY v2 AF_UNIX addresses are not supported");
  } else {
    return error(`PROXY v2 address family ${fam} is unknown`);
  }
  if (fam !== 0 && transport === 0) return error("PROXY v2 header has addresses but no transport");
  if (len < addrLen) {
    return error(`PROXY v2 length ${len} is too short for the ${family} addresses`);
  }
  const header: ProxyHeader = {
    version: 2,
    command: cmd === 0 ? "local" : "proxy",
    family,
    tlvs: [],
  };
  if (fam === 1 || fam === 2) {
    const n = fam === 1 ? 4 : 16;
    const ports = 2 * n;
    header.source = {
      addr: formatIpBytes(body.subarray(0, n)),
      port: (body[ports]! << 8) | body[ports + 1]!,
    };
    header.destination = {
      addr: formatIpBytes(body.subarray(n, 2 * n)),
      port: (body[ports + 2]! << 8) | body[ports + 3]!,
    };
  }
  let off = addrLen;
  while (off < len) {
    if (len - off < 3) return error(`PROXY v2 TLV at offset ${off} is truncated`);
    const type = body[off]!;
    const tlvLen = (body[off + 1]! << 8) | body[off + 2]!;
    if (off + 3 + tlvLen > len) {
      return error(`PROXY v2 TLV 0x${type.toString(16)} overruns the header (${tlvLen} bytes)`);
    }
    header.tlvs.push({ type, value: body.slice(off + 3, off + 3 + tlvLen) });
    off += 3 + tlvLen;
  }
  return { kind: "header", header, consumed: V2_FIXED + len };
}

const V1_PORT = /^(0|[1-9][0-9]{0,4})$/;

function parseV1(data: Uint8Array): ProxyHeaderResult {
  const limit = Math.min(data.length, MAX_PROXY_V1_BYTES);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (data[i] === 0x0a) {
      end = i;
      break;
    }
    if (data[i]! < 0x20 && data[i] !== 0x0d || data[i]! > 0x7e) {
      return error("PROXY v1 line has a byte that is not printable ASCII");
    }
  }
  if (end < 0) {
    return data.length >= MAX_PROXY_V1_BYTES
      ? error(`PROXY v1 line is longer than ${MAX_PROXY_V1_BYTES} bytes`)
      : incomplete;
  }
  if (data[end - 1] !== 0x0d) return error("PROXY v1 line does not end with CRLF");
  const line = new TextDecoder().decode(data.subarray(0, end - 1));
  if (line.includes("\r")) return error("PROXY v1 line has a stray CR");
  const parts = line.split(" ");
  const consumed = end + 1;
  if (parts[1] === "UNKNOWN") {
    return {
      kind: "header",
      header: { version: 1, command: "proxy", family: "unspec", tlvs: [] },
      consumed,
    };
  }
  if (parts.length !== 6) return error("PROXY v1 line does not have 6 fields");
  const [, proto, src, dst, sport, dport] = parts as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (proto !== "TCP4" && proto !== "TCP6") {
    return error(`PROXY v1 protocol ${JSON.stringify(proto)} is not TCP4, TCP6 or UNKNOWN`);
  }
  const ok = proto === "TCP4" ? isIPv4 : isIPv6;
  if (!ok(src) || !ok(dst)) return error(`PROXY v1 addresses are not ${proto} addresses`);
  const ports = [sport, dport].map((p) => V1_PORT.test(p) ? Number(p) : NaN);
  if (!ports.every((p) => p <= 65535)) return error("PROXY v1 ports are not numbers 0-65535");
  return {
    kind: "header",
    header: {
      version: 1,
      command: "proxy",
      family: proto === "TCP4" ? "inet" : "inet6",
      source: { addr: formatIpBytes(parseIp(src)!), port: ports[0]! },
      destination: { addr: formatIpBytes(parseIp(dst)!), port: ports[1]! },
      tlvs: [],
    },
    consumed,
  };
}

/** Inputs of {@linkcode formatProxyHeaderV2}. */
export interface ProxyHeaderV2Options {
  /** @default {"proxy"} */
  command?: "local" | "proxy";
  /**
   * Client and server endpoints (IP literals). When one is IPv4 and the other IPv6, the IPv4 one
   * is written IPv4-mapped (`::ffff:a.b.c.d`). Both absent → family UNSPEC.
   */
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  tlvs?: ProxyTlv[];
}

/**
 * Formats a v2 header (transport STREAM). Throws RangeError on a non-IP address, a port out of
 * range, a TLV type or value that does not fit, or a header longer than
 * {@linkcode MAX_PROXY_V2_LENGTH}.
 */
export function formatProxyHeaderV2(o: ProxyHeaderV2Options): Uint8Array {
  const command = (o.command ?? "proxy") === "local" ? 0 : 1;
  let addrBlock = new Uint8Array(0);
  let fam = 0;
  if (o.source !== undefined || o.destination !== undefined) {
    if (o.source === undefined || o.destination === undefined) {
      throw new RangeError("Cannot format PROXY v2 header: give both source and destination");
    }
    let src = ipBytesOrThrow(o.source.addr);
    let dst = ipBytesOrThrow(o.destination.addr);
    if (src.length !== dst.length) {
      src = src.length === 4 ? mapToIpv6(src) : src;
      dst = dst.length === 4 ? mapToIpv6(dst) : dst;
    }
    for (const p of [o.source.port, o.destination.port]) {
      if (!Number.isInteger(p) || p < 0 || p > 65535) {
        throw new RangeError(`Cannot format PROXY v2 header: port ${p} is out of range`);
      }
    }
    fam = src.length === 4 ? 1 : 2;
    addrBlock = new Uint8Array(src.length * 2 + 4);
    addrBlock.set(src, 0);
    addrBlock.set(dst, src.length);
    const view = new DataView(addrBlock.buffer);
    view.setUint16(src.length * 2, o.source.port);
    view.setUint16(src.length * 2 + 2, o.destination.port);
  }
  const tlvs = o.tlvs ?? [];
  let len = addrBlock.length;
  for (const t of tlvs) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 255) {
      throw new RangeError(`Cannot format PROXY v2 header: TLV type ${t.type} is not a byte`);
    }
    if (t.value.length > 0xffff) {
      throw new RangeError(
        `Cannot format PROXY v2 header: TLV 0x${t.type.toString(16)} is too long`,
      );
    }
    len += 3 + t.value.length;
  }
  if (len > MAX_PROXY_V2_LENGTH) {
    throw new RangeError(
      `Cannot format PROXY v2 header: ${len} bytes of addresses and TLVs exceed ${MAX_PROXY_V2_LENGTH}`,
    );
  }
  const out = new Uint8Array(V2_FIXED + len);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x20 | command;
  out[13] = (fam << 4) | (fam === 0 ? 0 : 1);
  out[14] = len >> 8;
  out[15] = len & 0xff;
  out.set(addrBlock, V2_FIXED);
  let off = V2_FIXED + addrBlock.length;
  for (const t of tlvs) {
    out[off] = t.type;
    out[off + 1] = t.value.length >> 8;
    out[off + 2] = t.value.length & 0xff;
    out.set(t.value, off + 3);
    off += 3 + t.value.length;
  }
  return out;
}

/** Formats a v1 line (`PROXY TCP4 …\r\n`, or `PROXY UNKNOWN\r\n` without endpoints). */
export function formatProxyHeaderV1(source?: ProxyEndpoint, destination?: ProxyEndpoint): string {
  if (source === undefined || destination === undefined) return "PROXY UNKNOWN\r\n";
  const src = ipBytesOrThrow(source.addr);
  const dst = ipBytesOrThrow(destination.addr);
  if (src.length !== dst.length) {
    throw new RangeError("Cannot format PROXY v1 header: source and destination families differ");
  }
  return `PROXY ${src.length === 4 ? "TCP4" : "TCP6"} ${formatIpBytes(src)} ${
    formatIpBytes(dst)
  } ${source.port} ${destination.port}\r\n`;
}

function ipBytesOrThrow(text: string): Uint8Array {
  const b = parseIp(text);
  if (b === undefined) {
    throw new RangeError(
      `Cannot format PROXY header: ${JSON.stringify(text)} is not an IP address`,
    );
  }
  return b;
}

function mapToIpv6(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

/**
 * Parses an IPv4 or IPv6 literal (no zone, no brackets) into 4 or 16 bytes; undefined when it is
 * not one.
 */
export function parseIp(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return Uint8Array.from(text.split(".").map(Number));
  if (!isIPv6(text) || text.includes("%")) return undefined;
  let s = text;
  const out = new Uint8Array(16);
  // A trailing dotted quad (::ffff:1.2.3.4) is two words.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tailBytes: number[] = [];
  if (quad) {
    tailBytes = quad[1]!.split(".").map(Number);
    s = s.slice(0, -quad[1]!.length) + "0:0";
  }
  const halves = s.split("::");
  const words = (x: string) => x === "" ? [] : x.split(":").map((w) => parseInt(w, 16));
  const head = words(halves[0]!);
  const tail = halves.length > 1 ? words(halves[1]!) : [];
  const all = [...head, ...Array(8 - head.length - tail.length).fill(0), ...tail];
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (quad) out.set(tailBytes, 12);
  return out;
}

/** Canonical text of 4 or 16 address bytes (RFC 5952 for IPv6, IPv4-mapped as ::ffff:a.b.c.d). */
export function formatIpBytes(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${Array.from(b.subarray(12)).join(".")}`;
  }
  // RFC 5952 §4.2: compress the longest run of two or more zero words (the first on a tie).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

/** The IPv4 address inside an IPv4-mapped IPv6 literal, else the address as given. */
export function unmapIp(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m ? m[1]! : addr;
}
