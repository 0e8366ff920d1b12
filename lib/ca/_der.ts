/**
 * A minimal DER reader (ITU-T X.690 §8, §10) for the few certificate fields @peculiar/x509
 * does not expose in the form we need: the version, and names as ordered (OID, value) pairs
 * with their exact bytes.
 */
import { BadParameterError } from "../errors/mod.ts";
import type { Bytes } from "./ssh_wire.ts";

/** One DER element: its tag byte, the whole encoding and the contents. */
export interface DerElement {
  tag: number;
  /** Tag, length and contents. */
  raw: Bytes;
  /** Contents only. */
  contents: Bytes;
}

/** X.690 §8.1: reads one tag-length-value at `offset`; returns it and the offset after it. */
export function readDer(data: Bytes, offset: number): [DerElement, number] {
  const fail = (why: string): never => {
    throw new BadParameterError(`Cannot parse DER: ${why} at offset ${offset}`);
  };
  if (offset + 2 > data.length) fail("truncated header");
  const tag = data[offset]!;
  if ((tag & 0x1f) === 0x1f) fail("multi-byte tags are not supported");
  let len = data[offset + 1]!;
  let at = offset + 2;
  if (len & 0x80) {
    // X.690 §8.1.3.5 long form; §10.1 DER forbids the indefinite form (0x80).
    const n = len & 0x7f;
    if (n === 0 || n > 4) fail("unsupported length");
    if (at + n > data.length) fail("truncated length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + data[at + i]!;
    at += n;
  }
  if (at + len > data.length) fail("truncated contents");
  return [
    { tag, raw: data.subarray(offset, at + len), contents: data.subarray(at, at + len) },
    at +
    len,
  ];
}

/** The child elements of a constructed element (SEQUENCE, SET, explicit tag). */
export function derChildren(el: DerElement): DerElement[] {
  const out: DerElement[] = [];
  let at = 0;
  while (at < el.contents.length) {
    const [child, next] = readDer(el.contents, at);
    out.push(child);
    at = next;
  }
  return out;
}

/** X.690 §8.19: decodes an OBJECT IDENTIFIER's contents to dotted form. */
export function decodeOid(contents: Uint8Array): string {
  const arcs: bigint[] = [];
  let v = 0n;
  for (const b of contents) {
    v = (v << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
    }
  }
  if (arcs.length === 0) throw new BadParameterError("Cannot parse DER: empty OID");
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join(".");
}

const LATIN1 = new TextDecoder("latin1");
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes the string types X.520 names use (UTF8, Printable, IA5, Teletex, BMP, Universal). */
export function decodeDirectoryString(el: DerElement): string {
  switch (el.tag) {
    case 0x0c: // UTF8String
      return UTF8.decode(el.contents);
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // TeletexString (read as Latin-1, as most tools do)
      return LATIN1.decode(el.contents);
    case 0x1e: { // BMPString: UTF-16BE
      let s = "";
      for (let i = 0; i + 1 < el.contents.length; i += 2) {
        s += String.fromCharCode((el.contents[i]! << 8) | el.contents[i + 1]!);
      }
      return s;
    }
    case 0x1c: { // UniversalString: UTF-32BE
      let s = "";
      for (let i = 0; i + 3 < el.contents.length; i += 4) {
        const view = new DataView(el.contents.buffer, el.contents.byteOffset + i, 4);
        s += String.fromCodePoint(view.getUint32(0));
      }
      return s;
    }
    default: {
      let hex = "#";
      for (const b of el.raw) hex += b.toString(16).padStart(2, "0");
      return hex;
    }
  }
}

/** X.501 Name: SEQUENCE OF RDN (SET OF AttributeTypeAndValue), flattened in order. */
export function decodeName(el: DerElement): Array<[oid: string, value: string]> {
  const out: Array<[string, string]> = [];
  for (const rdn of derChildren(el)) {
    for (const atv of derChildren(rdn)) {
      const [type, value] = derChildren(atv);
      if (type === undefined || value === undefined || type.tag !== 0x06) {
        throw new BadParameterError("Cannot parse DER: malformed AttributeTypeAndValue");
      }
      out.push([decodeOid(type.contents), decodeDirectoryString(value)]);
    }
  }
  return out;
}

/** The fields of a certificate's TBSCertificate that we read ourselves (RFC 5280 §4.1). */
export interface TbsFields {
  /** 1, 2 or 3 (the encoded value plus one). */
  version: number;
  issuer: DerElement;
  subject: DerElement;
}

/** Reads version, issuer and subject from a DER certificate (RFC 5280 §4.1.1-§4.1.2). */
export function readTbsFields(certDer: Bytes): TbsFields {
  const [cert, end] = readDer(certDer, 0);
  if (end !== certDer.length || cert.tag !== 0x30) {
    throw new BadParameterError("Cannot parse certificate: not a single DER SEQUENCE");
  }
  const tbs = derChildren(cert)[0];
  if (tbs === undefined || tbs.tag !== 0x30) {
    throw new BadParameterError("Cannot parse certificate: missing TBSCertificate");
  }
  const fields = derChildren(tbs);
  let version = 1;
  // version [0] EXPLICIT Version DEFAULT v1
  if (fields[0]?.tag === 0xa0) {
    const [v] = derChildren(fields.shift()!);
    if (v === undefined || v.tag !== 0x02 || v.contents.length !== 1) {
      throw new BadParameterError("Cannot parse certificate: malformed version");
    }
    version = v.contents[0]! + 1;
  }
  // serialNumber, signature, issuer, validity, subject, ...
  const issuer = fields[2];
  const subject = fields[4];
  if (issuer?.tag !== 0x30 || subject?.tag !== 0x30) {
    throw new BadParameterError("Cannot parse certificate: malformed TBSCertificate");
  }
  return { version, issuer, subject };
}
