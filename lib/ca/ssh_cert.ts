/**
 * OpenSSH certificates (OpenSSH PROTOCOL.certkeys): signing, strict parsing and verification.
 *
 * Every certificate type shares one layout; only the embedded key fields differ:
 *
 *   string    "<key type>-cert-v01@openssh.com"
 *   string    nonce
 *   ...       key fields (ed25519: string pk; ecdsa: string curve, string Q; rsa: mpint e, n)
 *   uint64    serial
 *   uint32    type (SSH_CERT_TYPE_USER 1, SSH_CERT_TYPE_HOST 2)
 *   string    key id
 *   string    valid principals (a packed list of strings)
 *   uint64    valid after (seconds since the epoch)
 *   uint64    valid before (0xffffffffffffffff = forever)
 *   string    critical options (packed string name, string data tuples, sorted by name)
 *   string    extensions (same packing)
 *   string    reserved
 *   string    signature key (the CA's public key blob)
 *   string    signature (over every preceding byte)
 */
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";
import {
  encodeSshPublicKey,
  formatAuthorizedKey,
  parseAuthorizedKey,
  parseSshPublicKey,
  readPublicKeyFields,
  SSH_ED25519,
  SSH_RSA,
  type SshPublicKeyType,
  writePublicKeyFields,
} from "./ssh_key.ts";
import { parseSshSignature, signSsh, verifySshSignature } from "./ssh_signature.ts";
import { type Bytes, bytesEqual, SshReader, SshWriter, toBytes, UINT64_MAX } from "./ssh_wire.ts";

/** PROTOCOL.certkeys: certificate type names and the plain key type each one wraps. */
export const SSH_CERT_TYPES: Readonly<Record<string, SshPublicKeyType>> = {
  "ssh-ed25519-cert-v01@openssh.com": SSH_ED25519,
  "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
  "ssh-rsa-cert-v01@openssh.com": SSH_RSA,
};

/** "user" (SSH_CERT_TYPE_USER) or "host" (SSH_CERT_TYPE_HOST). */
export type SshCertType = "user" | "host";

/** PROTOCOL.certkeys: SSH_CERT_TYPE_USER and SSH_CERT_TYPE_HOST. */
const CERT_TYPE_CODES: Record<SshCertType, number> = { user: 1, host: 2 };

/** PROTOCOL.certkeys: the critical options OpenSSH defines that this verifier accepts. */
export const KNOWN_CRITICAL_OPTIONS: readonly string[] = ["force-command", "source-address"];

/** The nonce length OpenSSH uses (PROTOCOL.certkeys: "typically 32 bytes"). */
const NONCE_LENGTH = 32;

/** A parsed OpenSSH certificate. */
export interface SshCertificate {
  /** Certificate type name, e.g. "ssh-ed25519-cert-v01@openssh.com". */
  type: string;
  /** CA-provided random bytes. */
  nonce: Bytes;
  /** The certified key as a plain public key blob (e.g. "ssh-ed25519" ...). */
  publicKeyBlob: Bytes;
  /** Serial number. */
  serial: bigint;
  /** User or host certificate. */
  certType: SshCertType;
  /** Key identifier, free text chosen by the CA. */
  keyId: string;
  /** Usernames (user certs) or host names (host certs); empty means "any" to OpenSSH. */
  principals: string[];
  /** Start of validity (whole seconds). */
  validAfter: Date;
  /** End of validity, exclusive, or "forever". */
  validBefore: Date | "forever";
  /** Critical options by name; flag options have the value "". */
  criticalOptions: Record<string, string>;
  /** Extensions by name; flag extensions have the value "". */
  extensions: Record<string, string>;
  /** The CA public key blob. */
  signatureKeyBlob: Bytes;
  /** The CA's signature blob. */
  signature: Bytes;
  /** The bytes the signature covers (everything before the signature field). */
  signedBytes: Bytes;
  /** The whole certificate blob. */
  blob: Bytes;
}

/** Options for {@link signSshCertificate}. */
export interface SignSshCertificateOptions {
  /** The CA: a WebCrypto private key (Ed25519 or ECDSA) and its SSH public key blob. */
  signer: { privateKey: CryptoKey; publicKeyBlob: Uint8Array };
  /** The subject's plain public key blob (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa). */
  publicKeyBlob: Uint8Array;
  /** User or host certificate. */
  certType: SshCertType;
  /** Key identifier (logged by sshd). */
  keyId: string;
  /** Principals (logins for user certs, host names for host certs). */
  principals: string[];
  /** Start of validity; backdate by a minute to absorb clock skew. */
  validAfter: Date;
  /** End of validity, or "forever". */
  validBefore: Date | "forever";
  /** Serial number, default 0. */
  serial?: bigint;
  /** Critical options, e.g. `{ "force-command": "/bin/true" }`. */
  criticalOptions?: Record<string, string>;
  /** Extensions, e.g. `{ "permit-pty": "", "x-teleport-role": "node" }`. */
  extensions?: Record<string, string>;
}

/** A signed certificate. */
export interface SignedSshCertificate {
  /** The certificate blob. */
  blob: Bytes;
  /** `<cert type> base64` line, as in a `-cert.pub` file. */
  authorizedKey: string;
}

/** Seconds since the epoch for a certificate time field. */
function toSeconds(d: Date, field: string): bigint {
  const ms = d.getTime();
  if (!Number.isFinite(ms) || ms < 0) {
    throw new BadParameterError(`Cannot sign SSH certificate: ${field} is not a valid time`);
  }
  return BigInt(Math.floor(ms / 1000));
}

/** Largest time a JavaScript Date can hold, in seconds. */
const MAX_DATE_SECONDS = 8_640_000_000_000n;

function fromSeconds(s: bigint): Date {
  return new Date(Number(s > MAX_DATE_SECONDS ? MAX_DATE_SECONDS : s) * 1000);
}

/** PROTOCOL.certkeys: packed `string name, string data` tuples, sorted by name. */
function encodeOptions(options: Record<string, string>, what: string): Bytes {
  const w = new SshWriter();
  const names = Object.keys(options).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    if (name === "") throw new BadParameterError(`Cannot sign SSH certificate: empty ${what} name`);
    const value = options[name]!;
    w.string(name);
    // An empty value is an empty string; any other value is a string holding a string.
    w.string(value === "" ? new Uint8Array(0) : new SshWriter().string(value).bytes());
  }
  return w.bytes();
}

function decodeOptions(packed: Uint8Array, what: string): Record<string, string> {
  const r = new SshReader(packed, `SSH certificate ${what}`);
  const entries: Array<[string, string]> = [];
  const seen = new Set<string>();
  while (r.remaining > 0) {
    const name = r.text();
    const data = r.string();
    if (seen.has(name)) {
      throw new BadParameterError(`Cannot parse SSH certificate: duplicate ${what} ${name}`);
    }
    seen.add(name);
    let value = "";
    if (data.length > 0) {
      const inner = new SshReader(data, `SSH certificate ${what} ${JSON.stringify(name)}`);
      value = inner.text();
      inner.end();
    }
    entries.push([name, value]);
  }
  return Object.fromEntries(entries);
}

/**
 * Signs an OpenSSH certificate for `publicKeyBlob` with the CA in `signer`. The nonce is 32
 * random bytes; options and extensions are sorted by name. The signature is checked against
 * `signer.publicKeyBlob` before returning, so a mismatched signer fails here.
 */
export async function signSshCertificate(
  opts: SignSshCertificateOptions,
): Promise<SignedSshCertificate> {
  const subject = parseSshPublicKey(opts.publicKeyBlob);
  const caKey = parseSshPublicKey(opts.signer.publicKeyBlob);
  const certTypeName = Object.keys(SSH_CERT_TYPES).find((t) => SSH_CERT_TYPES[t] === subject.type)!;
  const typeCode = Object.hasOwn(CERT_TYPE_CODES, opts.certType)
    ? CERT_TYPE_CODES[opts.certType]
    : undefined;
  if (typeCode === undefined) {
    throw new BadParameterError(
      `Cannot sign SSH certificate: cert type ${JSON.stringify(opts.certType)} is not user or host`,
    );
  }
  const validAfter = toSeconds(opts.validAfter, "valid after");
  const validBefore = opts.validBefore === "forever"
    ? UINT64_MAX
    : toSeconds(opts.validBefore, "valid before");
  if (validBefore <= validAfter) {
    throw new BadParameterError(
      "Cannot sign SSH certificate: valid before is not after valid after",
    );
  }
  const serial = opts.serial ?? 0n;
  if (serial < 0n || serial > UINT64_MAX) {
    throw new BadParameterError("Cannot sign SSH certificate: serial is out of range");
  }
  const principals = new SshWriter();
  for (const p of opts.principals) {
    if (p === "") throw new BadParameterError("Cannot sign SSH certificate: empty principal");
    principals.string(p);
  }

  const w = new SshWriter()
    .string(certTypeName)
    .string(crypto.getRandomValues(new Uint8Array(NONCE_LENGTH)));
  writePublicKeyFields(w, subject)
    .uint64(serial)
    .uint32(typeCode)
    .string(opts.keyId)
    .string(principals.bytes())
    .uint64(validAfter)
    .uint64(validBefore)
    .string(encodeOptions(opts.criticalOptions ?? {}, "critical option"))
    .string(encodeOptions(opts.extensions ?? {}, "extension"))
    .string(new Uint8Array(0)) // reserved
    .string(encodeSshPublicKey(caKey));
  const signedBytes = w.bytes();
  const signature = await signSsh(opts.signer.privateKey, signedBytes);
  if (!await verifySshSignature(opts.signer.publicKeyBlob, signature, signedBytes)) {
    throw new BadParameterError(
      "Cannot sign SSH certificate: the signer's private key does not match its public key blob",
    );
  }
  const blob = new SshWriter().raw(signedBytes).string(signature).bytes();
  return { blob, authorizedKey: formatAuthorizedKey(blob) };
}

/** True when `type` is an OpenSSH certificate type name this module parses. */
export function isSshCertificateType(type: string): boolean {
  return Object.hasOwn(SSH_CERT_TYPES, type);
}

/**
 * Parses a certificate blob or a `<cert type> base64 [comment]` line. Strict: unknown types,
 * truncated fields, trailing bytes, malformed options and bad UTF-8 throw BadParameterError.
 * Parsing does not verify anything; call {@link verifySshCertificate}.
 */
export function parseSshCertificate(blobOrAuthorizedKeyLine: Uint8Array | string): SshCertificate {
  const blob = typeof blobOrAuthorizedKeyLine === "string"
    ? parseAuthorizedKey(blobOrAuthorizedKeyLine).blob
    : toBytes(blobOrAuthorizedKeyLine);
  const r = new SshReader(blob, "SSH certificate");
  const type = r.text();
  const keyType = SSH_CERT_TYPES[type];
  if (keyType === undefined || !Object.hasOwn(SSH_CERT_TYPES, type)) {
    throw new BadParameterError(
      `Cannot parse SSH certificate: unknown certificate type ${JSON.stringify(type)}`,
    );
  }
  const nonce = r.string();
  const key = readPublicKeyFields(r, keyType);
  const serial = r.uint64();
  const typeCode = r.uint32();
  const certType = typeCode === CERT_TYPE_CODES.user
    ? "user"
    : typeCode === CERT_TYPE_CODES.host
    ? "host"
    : undefined;
  if (certType === undefined) {
    throw new BadParameterError(`Cannot parse SSH certificate: unknown cert type ${typeCode}`);
  }
  const keyId = r.text();
  const principalsReader = new SshReader(r.string(), "SSH certificate principals");
  const principals: string[] = [];
  while (principalsReader.remaining > 0) principals.push(principalsReader.text());
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  const criticalOptions = decodeOptions(r.string(), "critical option");
  const extensions = decodeOptions(r.string(), "extension");
  r.string(); // reserved: PROTOCOL.certkeys says to ignore its contents
  const signatureKeyBlob = r.string();
  const signedBytes = blob.slice(0, r.offset);
  const signature = r.string();
  r.end();
  return {
    type,
    nonce,
    publicKeyBlob: encodeSshPublicKey(key),
    serial,
    certType,
    keyId,
    principals,
    validAfter: fromSeconds(validAfter),
    validBefore: validBefore === UINT64_MAX || validBefore > MAX_DATE_SECONDS
      ? "forever"
      : fromSeconds(validBefore),
    criticalOptions,
    extensions,
    signatureKeyBlob,
    signature,
    signedBytes,
    blob,
  };
}

/** Options for {@link verifySshCertificate}. */
export interface VerifySshCertificateOptions {
  /** CA public key blobs to trust. */
  trustedCaKeys: Uint8Array[];
  /** The certificate type the caller expects. */
  certType: SshCertType;
  /** When set, the certificate must list this principal. */
  principal?: string;
  /** The current time (from the injected Clock). */
  now: Date;
  /**
   * Accept CA signatures of format ssh-rsa (RSA with SHA-1). Default false, like OpenSSH's
   * default CASignatureAlgorithms since 8.8.
   */
  allowSha1Signatures?: boolean;
}

/**
 * Verifies a certificate: signed by one of `trustedCaKeys` with a valid signature, of the
 * expected type, within its validity at `now`, listing `principal` when one is given, and with
 * no critical options other than force-command and source-address. Throws AccessDeniedError
 * naming the first failed check (a blob or line that does not parse throws BadParameterError).
 * It does not enforce source-address or force-command: callers that accept those options apply
 * them. A certificate with no principals never matches a requested `principal` (stricter than
 * OpenSSH, which treats an empty list as "any" for host certificates).
 */
export async function verifySshCertificate(
  cert: SshCertificate | Uint8Array | string,
  opts: VerifySshCertificateOptions,
): Promise<void> {
  const c = typeof cert === "string" || cert instanceof Uint8Array
    ? parseSshCertificate(cert)
    : cert;
  const deny = (reason: string): never => {
    throw new AccessDeniedError(
      `Cannot verify SSH certificate ${JSON.stringify(c.keyId)}: ${reason}`,
    );
  };
  if (!opts.trustedCaKeys.some((k) => bytesEqual(k, c.signatureKeyBlob))) {
    deny("certificate is not signed by a trusted authority");
  }
  let format = "";
  try {
    format = parseSshSignature(c.signature).format;
  } catch {
    deny("certificate signature is invalid");
  }
  if (format === "ssh-rsa" && !opts.allowSha1Signatures) {
    deny("certificate signature algorithm ssh-rsa (SHA-1) is not allowed");
  }
  let valid = false;
  try {
    valid = await verifySshSignature(c.signatureKeyBlob, c.signature, c.signedBytes);
  } catch {
    valid = false;
  }
  if (!valid) deny("certificate signature is invalid");
  if (c.certType !== opts.certType) {
    deny(`certificate type is ${c.certType}, want ${opts.certType}`);
  }
  const now = opts.now.getTime();
  if (now < c.validAfter.getTime()) deny("certificate is not yet valid");
  if (c.validBefore !== "forever" && now >= c.validBefore.getTime()) {
    deny("certificate is expired");
  }
  if (opts.principal !== undefined && !c.principals.includes(opts.principal)) {
    deny(`principal ${JSON.stringify(opts.principal)} is not in the certificate`);
  }
  for (const name of Object.keys(c.criticalOptions)) {
    if (!KNOWN_CRITICAL_OPTIONS.includes(name)) {
      deny(`certificate has unsupported critical option ${JSON.stringify(name)}`);
    }
  }
}
