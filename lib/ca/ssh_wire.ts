/**
 * SSH wire encoding of the data types of RFC 4251 §5: byte, boolean, uint32, uint64, string,
 * mpint and name-list. Readers are strict: a value that runs past the end of the buffer, an
 * invalid UTF-8 text string or a negative mpint where an unsigned one is wanted throws
 * {@link BadParameterError}.
 */
import { BadParameterError } from "../errors/mod.ts";

/** A byte array backed by a plain ArrayBuffer, the type WebCrypto accepts. */
export type Bytes = Uint8Array<ArrayBuffer>;

const UTF8_DECODER = new TextDecoder("utf-8", { fatal: true });
const UTF8_ENCODER = new TextEncoder();

/** The largest uint64 (RFC 4251 §5 "uint64"); OpenSSH certificates use it for "forever". */
export const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

/** Copies `data` into a fresh ArrayBuffer-backed array. */
export function toBytes(data: Uint8Array): Bytes {
  const out = new Uint8Array(data.byteLength);
  out.set(data);
  return out;
}

/** Concatenates byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Bytes {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** True when both arrays hold the same bytes (not constant time). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/** Big-endian unsigned magnitude of a non-negative bigint, minimal (empty for zero). */
export function bigintToBytes(value: bigint): Bytes {
  if (value < 0n) throw new BadParameterError("Cannot encode integer: value is negative");
  let hex = value === 0n ? "" : value.toString(16);
  if (hex.length % 2 === 1) hex = "0" + hex;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The non-negative bigint whose big-endian unsigned magnitude is `bytes`. */
export function bytesToBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/**
 * Builds an SSH wire message. Every method appends one RFC 4251 §5 data type and returns
 * `this`, so messages read top to bottom like the spec's field lists.
 */
export class SshWriter {
  #chunks: Uint8Array[] = [];

  /** RFC 4251 §5 "byte": one arbitrary 8-bit value. */
  byte(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) {
      throw new BadParameterError(`Cannot encode byte: ${value} is out of range`);
    }
    this.#chunks.push(Uint8Array.of(value));
    return this;
  }

  /** RFC 4251 §5 "byte[n]": raw bytes with no length prefix. */
  raw(bytes: Uint8Array): this {
    this.#chunks.push(toBytes(bytes));
    return this;
  }

  /** RFC 4251 §5 "boolean": one byte, 0 for false and 1 for true. */
  boolean(value: boolean): this {
    return this.byte(value ? 1 : 0);
  }

  /** RFC 4251 §5 "uint32": four bytes, big-endian (network byte order). */
  uint32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
      throw new BadParameterError(`Cannot encode uint32: ${value} is out of range`);
    }
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value);
    this.#chunks.push(out);
    return this;
  }

  /** RFC 4251 §5 "uint64": eight bytes, big-endian (network byte order). */
  uint64(value: bigint): this {
    if (value < 0n || value > UINT64_MAX) {
      throw new BadParameterError(`Cannot encode uint64: ${value} is out of range`);
    }
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, value);
    this.#chunks.push(out);
    return this;
  }

  /**
   * RFC 4251 §5 "string": a uint32 length followed by that many bytes. A JavaScript string is
   * written as UTF-8 (RFC 4251 §5 says text strings use ISO-10646 UTF-8).
   */
  string(value: Uint8Array | string): this {
    const bytes = typeof value === "string" ? UTF8_ENCODER.encode(value) : value;
    this.uint32(bytes.byteLength);
    this.#chunks.push(toBytes(bytes));
    return this;
  }

  /**
   * RFC 4251 §5 "mpint": a two's complement big-endian integer in a string, minimal length,
   * with a leading zero byte when the high bit of a positive value is set; zero is the empty
   * string.
   */
  mpint(value: bigint): this {
    if (value === 0n) return this.string(new Uint8Array(0));
    if (value > 0n) {
      const mag = bigintToBytes(value);
      return this.string((mag[0]! & 0x80) !== 0 ? concatBytes(Uint8Array.of(0), mag) : mag);
    }
    // Negative: two's complement over the fewest bytes whose top bit is set.
    let len = 1;
    while (-(1n << BigInt(len * 8 - 1)) > value) len++;
    const twos = (1n << BigInt(len * 8)) + value;
    const mag = bigintToBytes(twos);
    const out = new Uint8Array(len);
    out.set(mag, len - mag.length);
    return this.string(out);
  }

  /** RFC 4251 §5 "mpint" from an unsigned big-endian magnitude (for example an RSA modulus). */
  mpintBytes(magnitude: Uint8Array): this {
    return this.mpint(bytesToBigint(magnitude));
  }

  /** RFC 4251 §5 "name-list": comma-separated US-ASCII names in a string. */
  nameList(names: string[]): this {
    for (const n of names) {
      if (n.length === 0 || n.includes(",") || !/^[\x21-\x7e]+$/.test(n)) {
        throw new BadParameterError(`Cannot encode name-list: bad name ${JSON.stringify(n)}`);
      }
    }
    return this.string(names.join(","));
  }

  /** The bytes written so far. */
  bytes(): Bytes {
    return concatBytes(...this.#chunks);
  }
}

/**
 * Reads an SSH wire message front to back. Each method consumes one RFC 4251 §5 data type;
 * reading past the end throws {@link BadParameterError}. Call {@link SshReader.end} to reject
 * trailing data.
 */
export class SshReader {
  readonly #data: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  #at = 0;

  /** `what` names the message in error texts, e.g. "SSH certificate". */
  constructor(data: Uint8Array, what = "SSH message") {
    this.#data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.#what = what;
  }

  /** Offset of the next unread byte. */
  get offset(): number {
    return this.#at;
  }

  /** Number of unread bytes. */
  get remaining(): number {
    return this.#data.byteLength - this.#at;
  }

  #need(n: number, field: string): void {
    if (this.remaining < n) {
      throw new BadParameterError(
        `Cannot parse ${this.#what}: truncated ${field} at offset ${this.#at}`,
      );
    }
  }

  /** RFC 4251 §5 "byte". */
  byte(): number {
    this.#need(1, "byte");
    return this.#data[this.#at++]!;
  }

  /** RFC 4251 §5 "byte[n]": `n` raw bytes. */
  raw(n: number): Bytes {
    this.#need(n, "bytes");
    const out = toBytes(this.#data.subarray(this.#at, this.#at + n));
    this.#at += n;
    return out;
  }

  /** RFC 4251 §5 "boolean": any non-zero byte is true. */
  boolean(): boolean {
    return this.byte() !== 0;
  }

  /** RFC 4251 §5 "uint32". */
  uint32(): number {
    this.#need(4, "uint32");
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  /** RFC 4251 §5 "uint64". */
  uint64(): bigint {
    this.#need(8, "uint64");
    const v = this.#view.getBigUint64(this.#at);
    this.#at += 8;
    return v;
  }

  /** RFC 4251 §5 "string" as bytes. */
  string(): Bytes {
    const len = this.uint32();
    this.#need(len, "string");
    return this.raw(len);
  }

  /** RFC 4251 §5 "string" decoded as UTF-8 text; invalid UTF-8 throws. */
  text(): string {
    const bytes = this.string();
    try {
      return UTF8_DECODER.decode(bytes);
    } catch (err) {
      throw new BadParameterError(`Cannot parse ${this.#what}: string is not valid UTF-8`, {
        cause: err,
      });
    }
  }

  /** RFC 4251 §5 "mpint" as a signed bigint (two's complement). */
  mpint(): bigint {
    const bytes = this.string();
    if (bytes.length === 0) return 0n;
    const mag = bytesToBigint(bytes);
    return (bytes[0]! & 0x80) !== 0 ? mag - (1n << BigInt(bytes.length * 8)) : mag;
  }

  /**
   * RFC 4251 §5 "mpint" that must be non-negative, as its minimal unsigned big-endian
   * magnitude (leading zero bytes removed, as OpenSSH's sshbuf_get_bignum2 does).
   */
  mpintBytes(): Bytes {
    const bytes = this.string();
    if (bytes.length > 0 && (bytes[0]! & 0x80) !== 0) {
      throw new BadParameterError(`Cannot parse ${this.#what}: mpint is negative`);
    }
    let start = 0;
    while (start < bytes.length && bytes[start] === 0) start++;
    return bytes.slice(start);
  }

  /** RFC 4251 §5 "name-list": comma-separated names; the empty string is the empty list. */
  nameList(): string[] {
    const s = this.text();
    return s === "" ? [] : s.split(",");
  }

  /** Throws unless every byte was read. */
  end(): void {
    if (this.remaining !== 0) {
      throw new BadParameterError(
        `Cannot parse ${this.#what}: ${this.remaining} bytes of trailing data`,
      );
    }
  }
}
