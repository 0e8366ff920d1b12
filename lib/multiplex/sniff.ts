/**
 * First-bytes protocol detection for the one-port listener. A connection is classified from the
 * few bytes a client sends first, before the server says anything:
 *
 * | first bytes | result |
 * |---|---|
 * | `SSH-` (RFC 4253 §4.2 identification string) | `ssh` |
 * | `16 03 0N` (TLS record header, content type handshake, RFC 8446 §5.1) | `tls` |
 * | an HTTP method and a space (RFC 9110 §9, plus PATCH from RFC 5789) | `http` |
 * | `PROXY ` (HAProxy PROXY protocol v1) | `proxy-v1` |
 * | `0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A` (PROXY protocol v2 signature) | `proxy-v2` |
 *
 * No pattern is a prefix of another, so the first 12 bytes always decide.
 */
import { PROXY_V2_SIGNATURE } from "../net/mod.ts";

/** What the first bytes of a connection say it speaks. */
export type SniffResult =
  | "ssh"
  | "tls"
  | "http"
  | "proxy-v1"
  | "proxy-v2"
  /** None of the known protocols. */
  | "unknown"
  /** The bytes so far fit at least one protocol: read more. */
  | "incomplete";

/** HTTP methods recognised as plain HTTP (RFC 9110 §9.3 and RFC 5789 PATCH). */
export const HTTP_METHODS: readonly string[] = Object.freeze([
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "HEAD",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
]);

/** The 12-byte signature that starts a PROXY protocol v2 header (HAProxy spec §2.2). */
export { PROXY_V2_SIGNATURE };

/** TLS record content type of handshake messages (RFC 8446 §5.1, `ContentType.handshake`). */
const TLS_HANDSHAKE = 0x16;
/** Highest minor version in a TLS record header we accept (0x0304; SSL 3.0 is 0x0300). */
const TLS_MAX_MINOR = 0x04;

/** Enough bytes to decide in every case (the PROXY v2 signature is the longest pattern). */
export const MAX_SNIFF_BYTES = 12;

type Verdict = "match" | "maybe" | "no";

/** Compares `data` with a literal pattern: full match, a prefix of it, or neither. */
function literal(data: Uint8Array, pattern: Uint8Array): Verdict {
  const n = Math.min(data.length, pattern.length);
  for (let i = 0; i < n; i++) if (data[i] !== pattern[i]) return "no";
  return data.length >= pattern.length ? "match" : "maybe";
}

/** TLS record header: `16`, `03`, then a minor version of at most 4. */
function tlsRecord(data: Uint8Array): Verdict {
  if (data.length >= 1 && data[0] !== TLS_HANDSHAKE) return "no";
  if (data.length >= 2 && data[1] !== 0x03) return "no";
  if (data.length < 3) return "maybe";
  return data[2]! <= TLS_MAX_MINOR ? "match" : "no";
}

const ascii = (s: string) => new TextEncoder().encode(s);

const LITERALS: ReadonlyArray<readonly [Uint8Array, SniffResult]> = [
  [ascii("SSH-"), "ssh"],
  [ascii("PROXY "), "proxy-v1"],
  [PROXY_V2_SIGNATURE, "proxy-v2"],
  ...HTTP_METHODS.map((m) => [ascii(`${m} `), "http"] as const),
];

/**
 * Classifies the first bytes a client sent. Returns `"incomplete"` while the bytes so far are a
 * prefix of some known pattern (including no bytes at all); never needs more than
 * {@linkcode MAX_SNIFF_BYTES}.
 */
export function sniffProtocol(data: Uint8Array): SniffResult {
  let maybe = false;
  const tls = tlsRecord(data);
  if (tls === "match") return "tls";
  if (tls === "maybe") maybe = true;
  for (const [pattern, result] of LITERALS) {
    const v = literal(data, pattern);
    if (v === "match") return result;
    if (v === "maybe") maybe = true;
  }
  return maybe ? "incomplete" : "unknown";
}
