/**
 * SSH keys: public key blobs (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4), authorized_keys
 * lines (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"), SHA256 fingerprints, the unencrypted OpenSSH
 * private key format (OpenSSH PROTOCOL.key) and PKCS#8 PEM, over WebCrypto keys.
 */
import { createHash } from "node:crypto";
import { BadParameterError } from "../errors/mod.ts";
import {
  base64Decode,
  base64Encode,
  base64UrlDecode,
  base64UrlEncode,
  decodePem,
  encodePem,
} from "./_encoding.ts";
import {
  type Bytes,
  bytesEqual,
  bytesToBigint,
  SshReader,
  SshWriter,
  toBytes,
} from "./ssh_wire.ts";

/** Key algorithms this module generates and loads private keys for. */
export type SshKeyAlgorithm = "ed25519" | "ecdsa-p256";

/** RFC 8709 §4 public key algorithm name for Ed25519. */
export const SSH_ED25519 = "ssh-ed25519";
/** RFC 4253 §6.6 public key algorithm name for RSA keys. */
export const SSH_RSA = "ssh-rsa";

/** RFC 5656 §6.2 ECDSA public key algorithm names. */
export type EcdsaKeyType = "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521";

/** A plain (non-certificate) SSH public key algorithm name this module understands. */
export type SshPublicKeyType = "ssh-ed25519" | "ssh-rsa" | EcdsaKeyType;

/** Facts about one ECDSA curve (RFC 5656 §6.1-§6.2, §10.1). */
export interface EcdsaCurve {
  /** Key type, e.g. "ecdsa-sha2-nistp256". */
  type: EcdsaKeyType;
  /** SSH curve identifier, e.g. "nistp256". */
  curveName: string;
  /** WebCrypto named curve. */
  namedCurve: "P-256" | "P-384" | "P-521";
  /** Hash used for signatures (RFC 5656 §6.2.1). */
  hash: "SHA-256" | "SHA-384" | "SHA-512";
  /** Length of one field element / scalar in bytes. */
  size: number;
}

/** RFC 5656 §10.1 required curves and their signature hashes (§6.2.1). */
export const ECDSA_CURVES: readonly EcdsaCurve[] = [
  {
    type: "ecdsa-sha2-nistp256",
    curveName: "nistp256",
    namedCurve: "P-256",
    hash: "SHA-256",
    size: 32,
  },
  {
    type: "ecdsa-sha2-nistp384",
    curveName: "nistp384",
    namedCurve: "P-384",
    hash: "SHA-384",
    size: 48,
  },
  {
    type: "ecdsa-sha2-nistp521",
    curveName: "nistp521",
    namedCurve: "P-521",
    hash: "SHA-512",
    size: 66,
  },
];

/** The curve of an ECDSA key type or WebCrypto named curve, if it is one. */
export function ecdsaCurve(typeOrNamedCurve: string): EcdsaCurve | undefined {
  return ECDSA_CURVES.find((c) => c.type === typeOrNamedCurve || c.namedCurve === typeOrNamedCurve);
}

/** A decoded SSH public key blob. */
export type SshPublicKey =
  | { type: "ssh-ed25519"; key: Bytes }
  | { type: EcdsaKeyType; curve: EcdsaCurve; point: Bytes }
  | { type: "ssh-rsa"; e: Bytes; n: Bytes };

/**
 * Reads the key fields that follow the key type name in a public key blob (RFC 4253 §6.6,
 * RFC 5656 §3.1, RFC 8709 §4). Certificates embed the same fields after their nonce
 * (PROTOCOL.certkeys), so ssh_cert.ts reuses this.
 */
export function readPublicKeyFields(r: SshReader, type: string): SshPublicKey {
  if (type === SSH_ED25519) {
    // RFC 8709 §4: string "ssh-ed25519", string key (32 bytes).
    const key = r.string();
    if (key.length !== 32) {
      throw new BadParameterError(`Cannot parse ssh-ed25519 key: want 32 bytes, got ${key.length}`);
    }
    return { type, key };
  }
  if (type === SSH_RSA) {
    // RFC 4253 §6.6: string "ssh-rsa", mpint e, mpint n.
    const e = r.mpintBytes();
    const n = r.mpintBytes();
    if (e.length === 0 || n.length === 0) {
      throw new BadParameterError("Cannot parse ssh-rsa key: zero exponent or modulus");
    }
    return { type, e, n };
  }
  const curve = ecdsaCurve(type);
  if (curve !== undefined && curve.type === type) {
    // RFC 5656 §3.1: string "ecdsa-sha2-[id]", string [id], string Q (uncompressed point).
    const curveName = r.text();
    if (curveName !== curve.curveName) {
      throw new BadParameterError(
        `Cannot parse ${type} key: curve ${JSON.stringify(curveName)} does not match`,
      );
    }
    const point = r.string();
    if (point.length !== 1 + 2 * curve.size || point[0] !== 0x04) {
      throw new BadParameterError(`Cannot parse ${type} key: want an uncompressed point`);
    }
    return { type: curve.type, curve, point };
  }
  throw new BadParameterError(
    `Cannot parse SSH public key: unsupported type ${JSON.stringify(type)}`,
  );
}

/** Writes the key fields that follow the type name (inverse of {@link readPublicKeyFields}). */
export function writePublicKeyFields(w: SshWriter, key: SshPublicKey): SshWriter {
  switch (key.type) {
    case SSH_ED25519:
      return w.string(key.key);
    case SSH_RSA:
      return w.mpintBytes(key.e).mpintBytes(key.n);
    default:
      return w.string(key.curve.curveName).string(key.point);
  }
}

/** Decodes a plain SSH public key blob strictly (unknown type, truncation or trailing data throw). */
export function parseSshPublicKey(blob: Uint8Array): SshPublicKey {
  const r = new SshReader(blob, "SSH public key");
  const key = readPublicKeyFields(r, r.text());
  r.end();
  return key;
}

/** Encodes an SSH public key blob. */
export function encodeSshPublicKey(key: SshPublicKey): Bytes {
  return writePublicKeyFields(new SshWriter().string(key.type), key).bytes();
}

/** The algorithm name at the front of any SSH key or certificate blob. */
export function sshBlobType(blob: Uint8Array): string {
  return new SshReader(blob, "SSH key blob").text();
}

/** The SSH public key blob of a WebCrypto public key (Ed25519, ECDSA or RSASSA-PKCS1-v1_5). */
export async function sshPublicKeyBlob(publicKey: CryptoKey): Promise<Bytes> {
  const alg = publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name === "Ed25519") {
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
    return encodeSshPublicKey({ type: SSH_ED25519, key: raw });
  }
  if (alg.name === "ECDSA") {
    const curve = ecdsaCurve(alg.namedCurve);
    if (curve === undefined) {
      throw new BadParameterError(
        `Cannot encode SSH public key: unsupported curve ${alg.namedCurve}`,
      );
    }
    const point = new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
    return encodeSshPublicKey({ type: curve.type, curve, point });
  }
  if (alg.name === "RSASSA-PKCS1-v1_5") {
    const jwk = await crypto.subtle.exportKey("jwk", publicKey);
    return encodeSshPublicKey({
      type: SSH_RSA,
      e: base64UrlDecode(jwk.e ?? "", "RSA JWK"),
      n: base64UrlDecode(jwk.n ?? "", "RSA JWK"),
    });
  }
  throw new BadParameterError(`Cannot encode SSH public key: unsupported algorithm ${alg.name}`);
}

/**
 * `SHA256:` + unpadded base64 of the SHA-256 of a key blob, as `ssh-keygen -l` prints
 * (OpenSSH sshkey_fingerprint with SSH_FP_BASE64).
 */
export function sshFingerprint(blob: Uint8Array): string {
  const digest = createHash("sha256").update(blob).digest("base64");
  return "SHA256:" + digest.replace(/=+$/, "");
}

/** One parsed authorized_keys (or *.pub) line. */
export interface AuthorizedKey {
  /** Key type token, e.g. "ssh-ed25519" or "ssh-ed25519-cert-v01@openssh.com". */
  type: string;
  /** The decoded key or certificate blob. */
  blob: Bytes;
  /** Text after the key, "" when absent. */
  comment: string;
  /** The options field before the key type (e.g. `cert-authority,principals="a"`), "" when absent. */
  options: string;
}

function looksLikeKeyType(token: string): boolean {
  return /^(ssh-|ecdsa-sha2-|sk-ssh-|sk-ecdsa-)/.test(token) || token.endsWith("@openssh.com");
}

/** Splits the authorized_keys options field (quoted strings may hold spaces) from the rest. */
function splitOptions(line: string): [options: string, rest: string] {
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (inQuote && c === "\\" && line[i + 1] === '"') {
      i++;
    } else if (c === '"') {
      inQuote = !inQuote;
    } else if (!inQuote && (c === " " || c === "\t")) {
      return [line.slice(0, i), line.slice(i).trimStart()];
    }
  }
  throw new BadParameterError("Cannot parse authorized key: no key after the options");
}

/**
 * Parses an authorized_keys or `.pub` line: `[options] type base64 [comment]`. Works for
 * certificate lines too. The type token must match the type inside the blob.
 */
export function parseAuthorizedKey(line: string): AuthorizedKey {
  let rest = line.trim();
  if (rest === "" || rest.startsWith("#")) {
    throw new BadParameterError("Cannot parse authorized key: the line is empty");
  }
  let options = "";
  const first = rest.split(/[ \t]/, 1)[0]!;
  if (!looksLikeKeyType(first)) [options, rest] = splitOptions(rest);
  const m = /^(\S+)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(rest);
  if (m === null) throw new BadParameterError('Cannot parse authorized key: want "type base64"');
  const type = m[1]!;
  const blob = base64Decode(m[2]!, "authorized key");
  const inner = sshBlobType(blob);
  if (inner !== type) {
    throw new BadParameterError(
      `Cannot parse authorized key: line says ${type} but the key is ${inner}`,
    );
  }
  return { type, blob, comment: (m[3] ?? "").trim(), options };
}

/** Formats `type base64 [comment]` for a key or certificate blob. */
export function formatAuthorizedKey(blob: Uint8Array, comment = ""): string {
  if (/[\r\n]/.test(comment)) {
    throw new BadParameterError("Cannot format authorized key: comment has a line break");
  }
  const line = `${sshBlobType(blob)} ${base64Encode(blob)}`;
  return comment === "" ? line : `${line} ${comment}`;
}

/** A WebCrypto key pair with its SSH and PEM encodings. */
export interface SshKeyPair {
  /** Which algorithm the pair uses. */
  algorithm: SshKeyAlgorithm;
  /** Private key (extractable, usage "sign"). */
  privateKey: CryptoKey;
  /** Public key (usage "verify"). */
  publicKey: CryptoKey;
  /** SSH public key blob. */
  publicKeyBlob: Bytes;
  /** `type base64` line without a comment. */
  authorizedKey: string;
  /** PKCS#8 "PRIVATE KEY" PEM. */
  privateKeyPem: string;
}

function webCryptoParams(alg: SshKeyAlgorithm): EcKeyImportParams | Algorithm {
  return alg === "ed25519" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };
}

async function completeKeyPair(
  algorithm: SshKeyAlgorithm,
  privateKey: CryptoKey,
  publicKey: CryptoKey,
): Promise<SshKeyPair> {
  const publicKeyBlob = await sshPublicKeyBlob(publicKey);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", privateKey));
  return {
    algorithm,
    privateKey,
    publicKey,
    publicKeyBlob,
    authorizedKey: formatAuthorizedKey(publicKeyBlob),
    privateKeyPem: encodePem("PRIVATE KEY", pkcs8),
  };
}

/** Generates an Ed25519 or ECDSA P-256 key pair. The private key is extractable. */
export async function generateSshKeyPair(alg: SshKeyAlgorithm): Promise<SshKeyPair> {
  if (alg !== "ed25519" && alg !== "ecdsa-p256") {
    throw new BadParameterError(
      `Cannot generate SSH key: unsupported algorithm ${JSON.stringify(alg)}`,
    );
  }
  const pair = await crypto.subtle.generateKey(webCryptoParams(alg), true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return completeKeyPair(alg, pair.privateKey, pair.publicKey);
}

/** Builds the public key from a private key's JWK (Ed25519 `x`, ECDSA `x`/`y`). */
async function publicFromPrivate(alg: SshKeyAlgorithm, privateKey: CryptoKey): Promise<CryptoKey> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const pub: JsonWebKey = alg === "ed25519"
    ? { kty: "OKP", crv: "Ed25519", x: jwk.x }
    : { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
  return crypto.subtle.importKey("jwk", pub, webCryptoParams(alg), true, ["verify"]);
}

async function importPkcs8(der: Bytes): Promise<SshKeyPair> {
  for (const alg of ["ed25519", "ecdsa-p256"] as const) {
    let privateKey: CryptoKey;
    try {
      privateKey = await crypto.subtle.importKey("pkcs8", der, webCryptoParams(alg), true, [
        "sign",
      ]);
    } catch {
      continue;
    }
    return completeKeyPair(alg, privateKey, await publicFromPrivate(alg, privateKey));
  }
  throw new BadParameterError(
    "Cannot import private key: PKCS#8 key is not Ed25519 or ECDSA P-256",
  );
}

/** PROTOCOL.key: the magic at the front of an OpenSSH private key blob. */
const OPENSSH_KEY_MAGIC = new TextEncoder().encode("openssh-key-v1\0");
/** PROTOCOL.key: the "none" cipher pads the private section to 8-byte blocks. */
const OPENSSH_NONE_BLOCK_SIZE = 8;
const OPENSSH_PEM_LABEL = "OPENSSH PRIVATE KEY";

/**
 * Reads an unencrypted OpenSSH private key (PROTOCOL.key):
 *
 *   byte[]  AUTH_MAGIC "openssh-key-v1\0"
 *   string  ciphername ("none")
 *   string  kdfname ("none")
 *   string  kdfoptions (empty)
 *   uint32  number of keys N (1)
 *   string  publickey1
 *   string  private section: uint32 checkint, uint32 checkint, key, string comment, padding
 */
async function importOpenSsh(der: Bytes): Promise<SshKeyPair & { comment: string }> {
  const r = new SshReader(der, "OpenSSH private key");
  if (!bytesEqual(r.raw(OPENSSH_KEY_MAGIC.length), OPENSSH_KEY_MAGIC)) {
    throw new BadParameterError("Cannot parse OpenSSH private key: bad magic");
  }
  const cipher = r.text();
  const kdf = r.text();
  r.string(); // kdfoptions
  if (cipher !== "none" || kdf !== "none") {
    throw new BadParameterError(
      `Cannot parse OpenSSH private key: encrypted keys (cipher ${cipher}) are not supported`,
    );
  }
  if (r.uint32() !== 1) {
    throw new BadParameterError("Cannot parse OpenSSH private key: want exactly one key");
  }
  const publicBlob = r.string();
  const section = r.string();
  r.end();
  if (section.length % OPENSSH_NONE_BLOCK_SIZE !== 0) {
    throw new BadParameterError("Cannot parse OpenSSH private key: bad private section length");
  }

  const p = new SshReader(section, "OpenSSH private key");
  if (p.uint32() !== p.uint32()) {
    throw new BadParameterError("Cannot parse OpenSSH private key: check bytes differ");
  }
  const type = p.text();
  let alg: SshKeyAlgorithm;
  let jwk: JsonWebKey;
  let innerPublic: Bytes;
  if (type === SSH_ED25519) {
    // PROTOCOL.key / sshkey_private_serialize: string pk (32), string sk (seed || pk, 64).
    const pk = p.string();
    const sk = p.string();
    if (pk.length !== 32 || sk.length !== 64 || !bytesEqual(sk.subarray(32), pk)) {
      throw new BadParameterError("Cannot parse OpenSSH private key: malformed ssh-ed25519 key");
    }
    alg = "ed25519";
    innerPublic = encodeSshPublicKey({ type, key: pk });
    jwk = {
      kty: "OKP",
      crv: "Ed25519",
      x: base64UrlEncode(pk),
      d: base64UrlEncode(sk.subarray(0, 32)),
    };
  } else if (type === "ecdsa-sha2-nistp256") {
    // string curve, string Q, mpint d.
    const curve = ecdsaCurve(type)!;
    const pub = readPublicKeyFields(p, type) as { point: Bytes };
    const d = p.mpintBytes();
    if (d.length > curve.size) {
      throw new BadParameterError("Cannot parse OpenSSH private key: ECDSA scalar too long");
    }
    const dPadded = new Uint8Array(curve.size);
    dPadded.set(d, curve.size - d.length);
    alg = "ecdsa-p256";
    innerPublic = encodeSshPublicKey({ type, curve, point: pub.point });
    jwk = {
      kty: "EC",
      crv: "P-256",
      x: base64UrlEncode(pub.point.subarray(1, 1 + curve.size)),
      y: base64UrlEncode(pub.point.subarray(1 + curve.size)),
      d: base64UrlEncode(dPadded),
    };
  } else {
    throw new BadParameterError(
      `Cannot parse OpenSSH private key: unsupported key type ${JSON.stringify(type)}`,
    );
  }
  const comment = p.text();
  // Padding is 1, 2, 3, ... up to the block size (PROTOCOL.key).
  for (let i = 1; p.remaining > 0; i++) {
    if (p.byte() !== i) {
      throw new BadParameterError("Cannot parse OpenSSH private key: bad padding");
    }
  }
  if (!bytesEqual(innerPublic, publicBlob)) {
    throw new BadParameterError(
      "Cannot parse OpenSSH private key: public and private parts differ",
    );
  }

  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey("jwk", jwk, webCryptoParams(alg), true, ["sign"]);
  } catch (err) {
    throw new BadParameterError("Cannot parse OpenSSH private key: key rejected", { cause: err });
  }
  const publicKey = await publicFromPrivate(alg, privateKey);
  // WebCrypto takes the JWK's public part on trust, so prove the private scalar matches it.
  const params = alg === "ed25519" ? "Ed25519" : { name: "ECDSA", hash: "SHA-256" };
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const sig = await crypto.subtle.sign(params, privateKey, probe);
  if (
    !bytesEqual(await sshPublicKeyBlob(publicKey), publicBlob) ||
    !await crypto.subtle.verify(params, publicKey, sig, probe)
  ) {
    throw new BadParameterError("Cannot parse OpenSSH private key: private key does not match");
  }
  return { ...await completeKeyPair(alg, privateKey, publicKey), comment };
}

/**
 * Loads an Ed25519 or ECDSA P-256 private key from PKCS#8 PEM ("PRIVATE KEY") or the
 * unencrypted OpenSSH format ("OPENSSH PRIVATE KEY"). The OpenSSH comment is returned as
 * `comment` ("" for PKCS#8).
 */
export async function importSshPrivateKey(
  pem: string,
): Promise<SshKeyPair & { comment: string }> {
  const { label, der } = decodePem(pem, ["PRIVATE KEY", OPENSSH_PEM_LABEL]);
  if (label === OPENSSH_PEM_LABEL) return importOpenSsh(der);
  return { ...await importPkcs8(der), comment: "" };
}

/**
 * Formats a key pair as an unencrypted OpenSSH private key file (PROTOCOL.key), the format
 * `ssh-keygen` writes and `ssh -i` reads. The private key must be extractable.
 */
export async function formatOpenSshPrivateKey(
  keyPair: { privateKey: CryptoKey; publicKeyBlob: Uint8Array },
  comment = "",
): Promise<string> {
  const pub = parseSshPublicKey(keyPair.publicKeyBlob);
  const jwk = await crypto.subtle.exportKey("jwk", keyPair.privateKey);
  const d = base64UrlDecode(jwk.d ?? "", "private key JWK");
  const check = crypto.getRandomValues(new Uint32Array(1))[0]!;
  const w = new SshWriter().uint32(check).uint32(check).string(pub.type);
  if (pub.type === SSH_ED25519) {
    w.string(pub.key).string(new Uint8Array([...d, ...pub.key]));
  } else if (pub.type === "ecdsa-sha2-nistp256") {
    writePublicKeyFields(w, pub).mpint(bytesToBigint(d));
  } else {
    throw new BadParameterError(`Cannot format OpenSSH private key: unsupported type ${pub.type}`);
  }
  w.string(comment);
  let section = w.bytes();
  const pad = (OPENSSH_NONE_BLOCK_SIZE - section.length % OPENSSH_NONE_BLOCK_SIZE) %
    OPENSSH_NONE_BLOCK_SIZE;
  section = new SshWriter().raw(section).raw(Uint8Array.from({ length: pad }, (_, i) => i + 1))
    .bytes();
  const blob = new SshWriter()
    .raw(OPENSSH_KEY_MAGIC)
    .string("none") // ciphername
    .string("none") // kdfname
    .string(new Uint8Array(0)) // kdfoptions
    .uint32(1) // number of keys
    .string(toBytes(keyPair.publicKeyBlob))
    .string(section)
    .bytes();
  // ssh-keygen wraps the base64 at 70 columns.
  return encodePem(OPENSSH_PEM_LABEL, blob, 70);
}
