/**
 * SSH signature blobs: `string format, string signature` (RFC 4253 §6.6), signed with
 * WebCrypto keys and verified against SSH public key blobs.
 *
 * | format                | key         | signature field                         | spec           |
 * |-----------------------|-------------|-----------------------------------------|----------------|
 * | ssh-ed25519           | Ed25519     | 64 bytes                                | RFC 8709 §6    |
 * | ecdsa-sha2-nistpNNN   | ECDSA       | string(mpint r, mpint s)                | RFC 5656 §3.1.2|
 * | rsa-sha2-256/512      | RSA         | PKCS#1 v1.5 with SHA-256/512 (verify)   | RFC 8332 §3    |
 * | ssh-rsa               | RSA         | PKCS#1 v1.5 with SHA-1 (verify)         | RFC 4253 §6.6  |
 */
import { BadParameterError } from "../errors/mod.ts";
import { base64UrlEncode } from "./_encoding.ts";
import { ecdsaCurve, parseSshPublicKey, SSH_ED25519, SSH_RSA } from "./ssh_key.ts";
import { bigintToBytes, type Bytes, SshReader, SshWriter, toBytes } from "./ssh_wire.ts";

/** RSA signature formats and their hashes (RFC 8332 §3, RFC 4253 §6.6). */
const RSA_SIGNATURE_HASHES: Record<string, "SHA-1" | "SHA-256" | "SHA-512"> = {
  "ssh-rsa": "SHA-1",
  "rsa-sha2-256": "SHA-256",
  "rsa-sha2-512": "SHA-512",
};

/** OpenSSH's SSH_RSA_MINIMUM_MODULUS_SIZE: smaller RSA keys are refused. */
const RSA_MIN_MODULUS_BITS = 1024;

/** A decoded signature blob. */
export interface SshSignature {
  /** Signature format name, e.g. "ssh-ed25519" or "rsa-sha2-256". */
  format: string;
  /** The format-specific signature bytes. */
  signature: Bytes;
}

/** Decodes `string format, string signature` strictly. */
export function parseSshSignature(blob: Uint8Array): SshSignature {
  const r = new SshReader(blob, "SSH signature");
  const format = r.text();
  const signature = r.string();
  r.end();
  return { format, signature };
}

/**
 * Signs `data` with a WebCrypto private key and returns the SSH signature blob. Ed25519 gives
 * ssh-ed25519, ECDSA P-256/384/521 gives ecdsa-sha2-nistpNNN, RSASSA-PKCS1-v1_5 keys with
 * SHA-256/512 give rsa-sha2-256/512.
 */
export async function signSsh(privateKey: CryptoKey, data: Uint8Array): Promise<Bytes> {
  const alg = privateKey.algorithm as EcKeyAlgorithm & RsaHashedKeyAlgorithm;
  const msg = toBytes(data);
  if (alg.name === "Ed25519") {
    const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", privateKey, msg));
    return new SshWriter().string(SSH_ED25519).string(sig).bytes();
  }
  if (alg.name === "ECDSA") {
    const curve = ecdsaCurve(alg.namedCurve);
    if (curve === undefined) {
      throw new BadParameterError(`Cannot sign: unsupported curve ${alg.namedCurve}`);
    }
    // WebCrypto returns r || s (IEEE P1363); SSH wants string(mpint r, mpint s).
    const sig = new Uint8Array(
      await crypto.subtle.sign({ name: "ECDSA", hash: curve.hash }, privateKey, msg),
    );
    const inner = new SshWriter()
      .mpintBytes(sig.subarray(0, curve.size))
      .mpintBytes(sig.subarray(curve.size))
      .bytes();
    return new SshWriter().string(curve.type).string(inner).bytes();
  }
  if (alg.name === "RSASSA-PKCS1-v1_5") {
    const format = alg.hash.name === "SHA-256"
      ? "rsa-sha2-256"
      : alg.hash.name === "SHA-512"
      ? "rsa-sha2-512"
      : undefined;
    if (format === undefined) {
      throw new BadParameterError(`Cannot sign: RSA with ${alg.hash.name} is not allowed`);
    }
    const sig = new Uint8Array(await crypto.subtle.sign(alg.name, privateKey, msg));
    return new SshWriter().string(format).string(sig).bytes();
  }
  throw new BadParameterError(`Cannot sign: unsupported key algorithm ${alg.name}`);
}

/** The signature format names a key of the given type may produce. */
export function signatureFormatsFor(keyType: string): string[] {
  if (keyType === SSH_RSA) return Object.keys(RSA_SIGNATURE_HASHES);
  return [keyType];
}

/**
 * Verifies an SSH signature blob over `data` with the public key blob. Resolves false for a
 * wrong or malformed signature, or one whose format does not fit the key; throws
 * BadParameterError when the public key itself is malformed or unsupported.
 */
export async function verifySshSignature(
  publicKeyBlob: Uint8Array,
  signatureBlob: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  const key = parseSshPublicKey(publicKeyBlob);
  let sig: SshSignature;
  try {
    sig = parseSshSignature(signatureBlob);
  } catch {
    return false;
  }
  const msg = toBytes(data);
  try {
    if (key.type === SSH_ED25519) {
      if (sig.format !== SSH_ED25519 || sig.signature.length !== 64) return false;
      const pub = await crypto.subtle.importKey("raw", key.key, "Ed25519", false, ["verify"]);
      return await crypto.subtle.verify("Ed25519", pub, sig.signature, msg);
    }
    if (key.type === SSH_RSA) {
      const hash = RSA_SIGNATURE_HASHES[sig.format];
      if (hash === undefined) return false;
      if (key.n.length * 8 - Math.clz32(key.n[0]!) + 24 < RSA_MIN_MODULUS_BITS) return false;
      // OpenSSH accepts a signature shorter than the modulus; WebCrypto wants it padded.
      if (sig.signature.length > key.n.length) return false;
      const s = new Uint8Array(key.n.length);
      s.set(sig.signature, key.n.length - sig.signature.length);
      const pub = await crypto.subtle.importKey(
        "jwk",
        { kty: "RSA", n: base64UrlEncode(key.n), e: base64UrlEncode(key.e) },
        { name: "RSASSA-PKCS1-v1_5", hash },
        false,
        ["verify"],
      );
      return await crypto.subtle.verify("RSASSA-PKCS1-v1_5", pub, s, msg);
    }
    // ECDSA: the format must name the key's own curve (RFC 5656 §3.1.2).
    const curve = key.curve;
    if (sig.format !== curve.type) return false;
    const r = new SshReader(sig.signature, "ECDSA signature");
    const rv = r.mpint();
    const sv = r.mpint();
    r.end();
    const rb = bigintToBytes(rv);
    const sb = bigintToBytes(sv);
    if (rv <= 0n || sv <= 0n || rb.length > curve.size || sb.length > curve.size) return false;
    const p1363 = new Uint8Array(curve.size * 2);
    p1363.set(rb, curve.size - rb.length);
    p1363.set(sb, curve.size * 2 - sb.length);
    const pub = await crypto.subtle.importKey(
      "raw",
      key.point,
      { name: "ECDSA", namedCurve: curve.namedCurve },
      false,
      ["verify"],
    );
    return await crypto.subtle.verify({ name: "ECDSA", hash: curve.hash }, pub, p1363, msg);
  } catch (err) {
    if (err instanceof BadParameterError) return false;
    throw new BadParameterError(`Cannot verify SSH signature: ${key.type} key rejected`, {
      cause: err,
    });
  }
}
