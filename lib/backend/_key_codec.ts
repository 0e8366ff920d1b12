/**
 * Key encoding shared by the implementations: the byte layout Deno KV uses for string-only
 * keys, held in a JS string with one char per byte so that `<` on two encodings orders the
 * keys exactly as KV does.
 *
 * Each segment is `0x02`, its UTF-8 bytes with `0x00` escaped as `0x00 0xFF`, then `0x00`.
 */

import type { Key, KeyRange } from "./backend.ts";

const ENCODER = new TextEncoder();

/** One char per byte of the KV encoding of `key`. */
export function encodeKey(key: Key): string {
  let out = "";
  for (const segment of key) out += "\x02" + encodeSegment(segment) + "\x00";
  return out;
}

function encodeSegment(segment: string): string {
  if (isPlainAscii(segment)) return segment;
  let out = "";
  for (const byte of ENCODER.encode(segment)) {
    out += byte === 0 ? "\x00\xff" : String.fromCharCode(byte);
  }
  return out;
}

/** True when every char is ASCII other than NUL: its encoding is the string itself. */
function isPlainAscii(segment: string): boolean {
  for (let i = 0; i < segment.length; i++) {
    const code = segment.charCodeAt(i);
    if (code === 0 || code > 0x7f) return false;
  }
  return true;
}

/**
 * The encoded bounds of a range: `start` inclusive, `end` exclusive. A prefix range ends at
 * the prefix followed by `0x03`, just above every child segment (which starts with `0x02`).
 */
export function encodeRange(range: KeyRange): { start: string; end: string } {
  if ("prefix" in range) {
    const start = encodeKey(range.prefix);
    return { start, end: start + "\x03" };
  }
  return { start: encodeKey(range.start), end: encodeKey(range.end) };
}

/** True when a range holds no key at all (its start is not below its end). */
export function isEmptyRange(range: KeyRange): boolean {
  const { start, end } = encodeRange(range);
  return start >= end;
}
