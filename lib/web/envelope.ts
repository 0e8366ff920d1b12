/**
 * The web terminal's frame: Teleport's protobuf `Envelope {string version = 1; string type = 2;
 * string payload = 3;}`, hand-coded (three length-delimited string fields; unknown fields are
 * skipped, as protobuf readers do).
 */
import { BadParameterError } from "../errors/mod.ts";

/** One terminal frame. */
export interface Envelope {
  version: string;
  /** One character: r raw, w resize, s session, c close, e error, l latency. */
  type: string;
  payload: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Encodes an envelope (empty strings are left out, as proto3 does). */
export function encodeEnvelope(e: Envelope): Uint8Array {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (const [tag, value] of [[0x0a, e.version], [0x12, e.type], [0x1a, e.payload]] as const) {
    if (value === "") continue;
    const bytes = enc.encode(value);
    const head = Uint8Array.from([tag, ...varint(bytes.length)]);
    chunks.push(head, bytes);
    size += head.length + bytes.length;
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Decodes an envelope; BadParameterError when the bytes are not one. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const e: Envelope = { version: "", type: "", payload: "" };
  let off = 0;
  const bad = (why: string): never => {
    throw new BadParameterError(`Cannot read a terminal frame: ${why}`);
  };
  const readVarint = (): number => {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (off >= bytes.length) return bad("it ends inside a number");
      const b = bytes[off++]!;
      n += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return n;
      mul *= 128;
    }
    return bad("a number is too long");
  };
  while (off < bytes.length) {
    const key = readVarint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 2) {
      const len = readVarint();
      if (off + len > bytes.length) bad("a field runs past the end");
      const value = bytes.subarray(off, off + len);
      off += len;
      if (field >= 1 && field <= 3) {
        let text: string;
        try {
          text = dec.decode(value);
        } catch {
          return bad("a string field is not UTF-8");
        }
        if (field === 1) e.version = text;
        else if (field === 2) e.type = text;
        else e.payload = text;
      }
    } else if (wire === 0) {
      readVarint();
    } else if (wire === 1) {
      off += 8;
    } else if (wire === 5) {
      off += 4;
    } else {
      bad(`wire type ${wire} is not supported`);
    }
  }
  if (off > bytes.length) bad("a field runs past the end");
  return e;
}
