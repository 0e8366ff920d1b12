/**
 * A pure, bounds-checked parser of the TLS ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) as
 * it arrives on the wire: one or more TLS records (RFC 8446 §5.1) carrying one handshake
 * message. The multiplexer feeds it everything buffered so far after each read; the parser says
 * whether it needs more, failed, or found the server name (RFC 6066 §3) and the ALPN list
 * (RFC 7301 §3.1) that decide the route. It never throws and reads every length before use.
 */

/** What the client offered in its ClientHello. */
export interface ClientHello {
  /** The `server_name` extension's host_name, as sent (absent when the client sent none). */
  serverName?: string;
  /** The `application_layer_protocol_negotiation` list in client order (empty when absent). */
  alpn: string[];
  /** The highest TLS version offered (`0x0304` = TLS 1.3), from `supported_versions` if sent. */
  tlsVersion: number;
  /** `ClientHello.legacy_version` (`0x0303` for TLS 1.2 and 1.3 clients). */
  legacyVersion: number;
  /** The `supported_versions` extension (RFC 8446 §4.2.1) without GREASE values. */
  supportedVersions: number[];
  /** Offered cipher suites in client order, GREASE values included. */
  cipherSuites: number[];
  /** Bytes of the TLS records up to the end of the ClientHello message. */
  byteLength: number;
}

/** The outcome of {@linkcode parseClientHello}. */
export type ClientHelloResult =
  | { kind: "incomplete" }
  | { kind: "ok"; hello: ClientHello }
  | { kind: "error"; reason: string };

/** Largest ClientHello handshake message accepted (header included), 64 KiB. */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;
/** Most TLS records the ClientHello may be split into. */
export const MAX_CLIENT_HELLO_RECORDS = 256;

/** RFC 8446 §5.1 `ContentType.handshake`. */
const CONTENT_HANDSHAKE = 22;
/** RFC 8446 §4 `HandshakeType.client_hello`. */
const HANDSHAKE_CLIENT_HELLO = 1;
/** RFC 8446 §5.1: a record fragment is at most 2^14 bytes. */
const MAX_RECORD_FRAGMENT = 1 << 14;
/** RFC 8446 §4.2 `ExtensionType` values we read. */
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
/** RFC 6066 §3 `NameType.host_name`. */
const NAME_TYPE_HOST_NAME = 0;

/** RFC 8701 GREASE values: 0x?A?A with both bytes equal. */
function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && (v >> 8) === (v & 0xff);
}

/** Thrown inside the parser only; turned into `{ kind: "error" }` at the top. */
class Malformed extends Error {}

/** A cursor over a byte range that fails instead of reading past its end. */
class Reader {
  #data: Uint8Array;
  #pos = 0;
  #what: string;
  constructor(data: Uint8Array, what: string) {
    this.#data = data;
    this.#what = what;
  }
  get remaining(): number {
    return this.#data.length - this.#pos;
  }
  bytes(n: number, field: string): Uint8Array {
    if (n > this.remaining) {
      throw new Malformed(`${field} runs past the end of the ${this.#what}`);
    }
    const out = this.#data.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }
  u8(field: string): number {
    return this.bytes(1, field)[0]!;
  }
  u16(field: string): number {
    const b = this.bytes(2, field);
    return (b[0]! << 8) | b[1]!;
  }
  /** A vector with a 1- or 2-byte length prefix (RFC 8446 §3.4), as a reader of its own. */
  vector(lengthBytes: 1 | 2, field: string): Reader {
    const n = lengthBytes === 1 ? this.u8(field) : this.u16(field);
    return new Reader(this.bytes(n, field), field);
  }
  /** Fails unless every byte was read. */
  end(): void {
    if (this.remaining !== 0) throw new Malformed(`${this.#what} has trailing bytes`);
  }
}

const utf8 = new TextDecoder();

/**
 * Parses a ClientHello from the bytes a client sent first: TLS handshake records, possibly
 * split over several records and several reads. Returns `incomplete` while more bytes are
 * needed, `error` as soon as the bytes cannot become a valid ClientHello (wrong record or
 * handshake type, bad lengths, more than {@linkcode MAX_CLIENT_HELLO_BYTES}), else `ok`.
 * Bytes after the ClientHello are ignored.
 */
export function parseClientHello(data: Uint8Array): ClientHelloResult {
  try {
    return parse(data);
  } catch (err) {
    if (err instanceof Malformed) return { kind: "error", reason: err.message };
    return { kind: "error", reason: `unexpected parser failure: ${String(err)}` };
  }
}

function parse(data: Uint8Array): ClientHelloResult {
  // Reassemble the handshake bytes from as many records as have arrived (RFC 8446 §5.1:
  // handshake messages may span records; no other record type may come in between).
  const fragments: Uint8Array[] = [];
  let handshakeBytes = 0;
  let pos = 0;
  let records = 0;
  let needed = -1; // total handshake bytes of the message, once its header is known
  while (pos < data.length) {
    if (needed >= 0 && handshakeBytes >= needed) break;
    if (data[pos] !== CONTENT_HANDSHAKE) {
      throw new Malformed(`record ${records + 1} is not a handshake record`);
    }
    if (pos + 1 < data.length && data[pos + 1] !== 0x03) {
      throw new Malformed(`record ${records + 1} has an unknown protocol version`);
    }
    if (pos + 5 > data.length) break;
    const length = (data[pos + 3]! << 8) | data[pos + 4]!;
    if (length === 0) throw new Malformed(`record ${records + 1} is empty`);
    if (length > MAX_RECORD_FRAGMENT) {
      throw new Malformed(`record ${records + 1} is longer than 16384 bytes`);
    }
    if (++records > MAX_CLIENT_HELLO_RECORDS) {
      throw new Malformed(
        `ClientHello is split into more than ${MAX_CLIENT_HELLO_RECORDS} records`,
      );
    }
    const end = Math.min(pos + 5 + length, data.length);
    const fragment = data.subarray(pos + 5, end);
    fragments.push(fragment);
    handshakeBytes += fragment.length;
    pos = end;
    if (needed < 0 && handshakeBytes >= 4) needed = checkHeader(concat(fragments, 4));
  }
  // Reject a wrong handshake type before the message length has arrived.
  if (needed < 0 && handshakeBytes > 0) checkHeader(concat(fragments, handshakeBytes));
  if (needed < 0 || handshakeBytes < needed) return { kind: "incomplete" };
  const message = concat(fragments, needed);
  // byteLength: the record bytes consumed up to the last byte of the message.
  const byteLength = pos - (handshakeBytes - needed);
  return { kind: "ok", hello: parseBody(message.subarray(4), byteLength) };
}

/** Checks the handshake header (RFC 8446 §4); returns the whole message length. */
function checkHeader(header: Uint8Array): number {
  if (header[0] !== HANDSHAKE_CLIENT_HELLO) {
    throw new Malformed(`first handshake message has type ${header[0]}, not ClientHello`);
  }
  if (header.length < 4) return -1;
  const bodyLength = (header[1]! << 16) | (header[2]! << 8) | header[3]!;
  if (4 + bodyLength > MAX_CLIENT_HELLO_BYTES) {
    throw new Malformed(`ClientHello of ${4 + bodyLength} bytes is larger than 64 KiB`);
  }
  return 4 + bodyLength;
}

/** The first `n` bytes of the concatenated fragments. */
function concat(fragments: Uint8Array[], n: number): Uint8Array {
  if (fragments.length > 0 && fragments[0]!.length >= n) return fragments[0]!.subarray(0, n);
  const out = new Uint8Array(n);
  let off = 0;
  for (const f of fragments) {
    if (off >= n) break;
    const part = f.subarray(0, n - off);
    out.set(part, off);
    off += part.length;
  }
  return out;
}

/** RFC 8446 §4.1.2 ClientHello body (RFC 5246 §7.4.1.2 for TLS 1.2 and older). */
function parseBody(body: Uint8Array, byteLength: number): ClientHello {
  const r = new Reader(body, "ClientHello");
  const legacyVersion = r.u16("legacy_version");
  if (legacyVersion >> 8 !== 0x03) {
    throw new Malformed(`legacy_version 0x${legacyVersion.toString(16)} is not TLS`);
  }
  r.bytes(32, "random");
  const sessionId = r.vector(1, "legacy_session_id");
  if (sessionId.remaining > 32) throw new Malformed("legacy_session_id is longer than 32 bytes");
  const suites = r.vector(2, "cipher_suites");
  if (suites.remaining === 0 || suites.remaining % 2 !== 0) {
    throw new Malformed("cipher_suites has a bad length");
  }
  const cipherSuites: number[] = [];
  while (suites.remaining > 0) cipherSuites.push(suites.u16("cipher_suites"));
  const compression = r.vector(1, "legacy_compression_methods");
  if (compression.remaining === 0) throw new Malformed("legacy_compression_methods is empty");

  const hello: ClientHello = {
    alpn: [],
    tlsVersion: legacyVersion,
    legacyVersion,
    supportedVersions: [],
    cipherSuites,
    byteLength,
  };
  // RFC 5246 §7.4.1.2: a TLS 1.2 ClientHello may end here, without extensions.
  if (r.remaining === 0) return hello;
  const extensions = r.vector(2, "extensions");
  r.end();
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16("extension type");
    const ext = extensions.vector(2, `extension ${type}`);
    // RFC 8446 §4.2: at most one extension of each type.
    if (seen.has(type)) throw new Malformed(`extension ${type} appears twice`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(ext);
      if (name !== undefined) hello.serverName = name;
    } else if (type === EXT_ALPN) {
      hello.alpn = parseAlpn(ext);
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      hello.supportedVersions = parseSupportedVersions(ext);
      if (hello.supportedVersions.length > 0) {
        hello.tlsVersion = Math.max(...hello.supportedVersions);
      }
    }
  }
  return hello;
}

/** RFC 6066 §3 ServerNameList; returns the host_name entry. */
function parseServerName(ext: Reader): string | undefined {
  // An empty extension is what a server sends back; accept it from a client as "no name".
  if (ext.remaining === 0) return undefined;
  const list = ext.vector(2, "server_name_list");
  ext.end();
  let host: string | undefined;
  while (list.remaining > 0) {
    const type = list.u8("server_name type");
    const name = list.vector(2, "server_name");
    if (type !== NAME_TYPE_HOST_NAME) continue;
    if (host !== undefined) throw new Malformed("server_name has two host names");
    const bytes = name.bytes(name.remaining, "host_name");
    if (bytes.length === 0 || bytes.length > 255) {
      throw new Malformed("server_name host_name has a bad length");
    }
    // RFC 6066 §3: ASCII, no trailing dot. We accept printable ASCII only.
    for (const b of bytes) {
      if (b < 0x21 || b > 0x7e) throw new Malformed("server_name host_name is not ASCII");
    }
    host = String.fromCharCode(...bytes);
  }
  return host;
}

/** RFC 7301 §3.1 ProtocolNameList: non-empty, each name 1–255 bytes. */
function parseAlpn(ext: Reader): string[] {
  const list = ext.vector(2, "protocol_name_list");
  ext.end();
  if (list.remaining === 0) throw new Malformed("protocol_name_list is empty");
  const names: string[] = [];
  while (list.remaining > 0) {
    const name = list.vector(1, "protocol_name");
    if (name.remaining === 0) throw new Malformed("protocol_name is empty");
    names.push(utf8.decode(name.bytes(name.remaining, "protocol_name")));
  }
  return names;
}

/** RFC 8446 §4.2.1 supported_versions (client form: a list of 2-byte versions). */
function parseSupportedVersions(ext: Reader): number[] {
  const list = ext.vector(1, "supported_versions");
  ext.end();
  if (list.remaining === 0 || list.remaining % 2 !== 0) {
    throw new Malformed("supported_versions has a bad length");
  }
  const out: number[] = [];
  while (list.remaining > 0) {
    const v = list.u16("supported_versions");
    if (!isGrease(v)) out.push(v);
  }
  return out;
}
