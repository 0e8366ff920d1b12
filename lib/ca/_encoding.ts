/** Base64, hex and PEM helpers shared by the lib/ca files. Strict: bad input throws. */
import { Buffer } from "node:buffer";
import { BadParameterError } from "../errors/mod.ts";
import type { Bytes } from "./ssh_wire.ts";

/** Standard base64 (RFC 4648 §4) with padding. */
export function base64Encode(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
}

/** Decodes standard base64 (padding optional); anything else throws BadParameterError. */
export function base64Decode(text: string, what: string): Bytes {
  const clean = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.replace(/=+$/, "").length % 4 === 1) {
    throw new BadParameterError(`Cannot parse ${what}: invalid base64`);
  }
  const buf = Buffer.from(clean, "base64");
  const out = new Uint8Array(buf.byteLength);
  out.set(buf);
  return out;
}

/** base64url without padding (RFC 4648 §5), as JWK uses. */
export function base64UrlEncode(data: Uint8Array): string {
  return base64Encode(data).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** Decodes base64url without padding. */
export function base64UrlDecode(text: string, what: string): Bytes {
  return base64Decode(text.replace(/-/g, "+").replace(/_/g, "/"), what);
}

/** Lowercase hex. */
export function hexEncode(data: Uint8Array): string {
  let s = "";
  for (const b of data) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Wraps DER (or any binary) in a PEM block with 64-column lines (RFC 7468 §2). */
export function encodePem(label: string, der: Uint8Array, width = 64): string {
  const b64 = base64Encode(der);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += width) lines.push(b64.slice(i, i + width));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** The PEM blocks in `text`, in order, as label and decoded body. */
export function decodePemBlocks(text: string): Array<{ label: string; der: Bytes; pem: string }> {
  const out: Array<{ label: string; der: Bytes; pem: string }> = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
  for (const m of text.matchAll(re)) {
    const [pem, label, body, endLabel] = m as unknown as [string, string, string, string];
    if (label !== endLabel) {
      throw new BadParameterError(`Cannot parse PEM: BEGIN ${label} ends with END ${endLabel}`);
    }
    if (/^\s*[A-Za-z-]+:/m.test(body)) {
      throw new BadParameterError(
        `Cannot parse PEM ${label}: encrypted or headed PEM is not supported`,
      );
    }
    out.push({ label, der: base64Decode(body, `PEM ${label}`), pem: pem + "\n" });
  }
  return out;
}

/** The single PEM block with one of `labels` in `text`. */
export function decodePem(text: string, labels: string[]): { label: string; der: Bytes } {
  const blocks = decodePemBlocks(text).filter((b) => labels.includes(b.label));
  if (blocks.length !== 1) {
    throw new BadParameterError(
      `Cannot parse PEM: want exactly one ${labels.join(" or ")} block, found ${blocks.length}`,
    );
  }
  return blocks[0]!;
}
