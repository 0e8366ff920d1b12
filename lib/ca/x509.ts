/**
 * X.509 v3 (RFC 5280) with @peculiar/x509: self-signed ECDSA P-256 CAs, leaf certificates with
 * ordered subject attributes, SANs and EKUs, parsing, and verification of a leaf against
 * trusted CAs. Only v3 certificates are issued or accepted (see DESIGN.md §2: Deno's verifier
 * skips proof of possession for v1/v2 client certificates).
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";
import { decodeName, readTbsFields } from "./_der.ts";
import { decodePem, decodePemBlocks, encodePem, hexEncode } from "./_encoding.ts";
import { type Bytes, bytesEqual } from "./ssh_wire.ts";

x509.cryptoProvider.set(crypto);

/** A key purpose this module issues (RFC 5280 §4.2.1.12 id-kp-serverAuth, id-kp-clientAuth). */
export type ExtKeyUsage = "serverAuth" | "clientAuth";

/** RFC 5280 §4.2.1.12 key purposes we issue, by name. */
const EKU_OIDS: Record<ExtKeyUsage, string> = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
};

/** Well-known X.520 attribute OIDs (RFC 4519 §2). */
export const X509_OIDS = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  organizationalUnit: "2.5.4.11",
  locality: "2.5.4.7",
  street: "2.5.4.9",
  postalCode: "2.5.4.17",
} as const;

/** An ordered distinguished name: one (OID, value) per RDN. */
export type X509Name = Array<[oid: string, value: string]>;

const EC_P256: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };

function pemToDer(pem: string, label: string): Bytes {
  return decodePem(pem, [label]).der;
}

function randomSerialHex(): string {
  // RFC 5280 §4.1.2.2: positive, at most 20 octets. 16 random bytes with the top bit clear
  // and a non-zero first byte keep the DER INTEGER exactly 16 bytes.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01;
  return hexEncode(b);
}

function toName(attrs: X509Name, what: string): x509.Name {
  if (attrs.length === 0) throw new BadParameterError(`Cannot issue certificate: empty ${what}`);
  const rdns: x509.JsonNameParams = attrs.map(([oid, value]) => {
    if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(oid)) {
      throw new BadParameterError(
        `Cannot issue certificate: bad ${what} OID ${JSON.stringify(oid)}`,
      );
    }
    if (typeof value !== "string" || value === "") {
      throw new BadParameterError(`Cannot issue certificate: empty ${what} value for ${oid}`);
    }
    return { [oid]: [{ utf8String: value }] };
  });
  return new x509.Name(rdns);
}

function signingAlgorithm(key: CryptoKey): Algorithm | EcdsaParams {
  const alg = key.algorithm as EcKeyAlgorithm;
  if (alg.name === "ECDSA") {
    const hash = alg.namedCurve === "P-384"
      ? "SHA-384"
      : alg.namedCurve === "P-521"
      ? "SHA-512"
      : "SHA-256";
    return { name: "ECDSA", hash } as EcdsaParams;
  }
  if (alg.name === "Ed25519") return { name: "Ed25519" };
  throw new BadParameterError(`Cannot sign certificate: unsupported CA key ${alg.name}`);
}

function checkValidity(notBefore: Date, notAfter: Date): void {
  if (!(notBefore.getTime() < notAfter.getTime())) {
    throw new BadParameterError("Cannot issue certificate: notAfter is not after notBefore");
  }
}

/** Options for {@link createX509Ca}. */
export interface CreateX509CaOptions {
  /** Subject CN (2.5.4.3), usually the cluster name. */
  commonName: string;
  /** Subject O (2.5.4.10), optional. */
  organization?: string;
  /** Start of validity. */
  notBefore: Date;
  /** End of validity. */
  notAfter: Date;
}

/** A CA certificate and its key. */
export interface X509Ca {
  /** The self-signed CA certificate, PEM. */
  certPem: string;
  /** ECDSA P-256 private key (extractable). */
  privateKey: CryptoKey;
  /** PKCS#8 PEM of the private key. */
  privateKeyPem: string;
}

/**
 * Creates a self-signed ECDSA P-256 CA: v3, basicConstraints CA:true (critical), keyUsage
 * keyCertSign + cRLSign + digitalSignature (critical), subjectKeyIdentifier.
 */
export async function createX509Ca(opts: CreateX509CaOptions): Promise<X509Ca> {
  checkValidity(opts.notBefore, opts.notAfter);
  const name: X509Name = [[X509_OIDS.commonName, opts.commonName]];
  if (opts.organization) name.push([X509_OIDS.organization, opts.organization]);
  const keys = await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"]) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: toName(name, "subject"),
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    signingAlgorithm: signingAlgorithm(keys.privateKey),
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return {
    certPem: cert.toString("pem") + "\n",
    privateKey: keys.privateKey,
    privateKeyPem: encodePem("PRIVATE KEY", pkcs8),
  };
}

/** A TLS key pair. */
export interface TlsKeyPair {
  /** ECDSA P-256 private key (extractable). */
  privateKey: CryptoKey;
  /** ECDSA P-256 public key. */
  publicKey: CryptoKey;
  /** PKCS#8 "PRIVATE KEY" PEM. */
  privateKeyPem: string;
  /** SPKI "PUBLIC KEY" PEM. */
  publicKeyPem: string;
}

/** Generates an ECDSA P-256 key pair for TLS (private key extractable). */
export async function generateTlsKeyPair(): Promise<TlsKeyPair> {
  const keys = await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  return {
    privateKey: keys.privateKey,
    publicKey: keys.publicKey,
    privateKeyPem: encodePem("PRIVATE KEY", pkcs8),
    publicKeyPem: encodePem("PUBLIC KEY", spki),
  };
}

/** Imports an ECDSA P-256 PKCS#8 PEM private key (for example a stored CA key) for signing. */
export async function importTlsPrivateKey(pem: string): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey("pkcs8", pemToDer(pem, "PRIVATE KEY"), EC_P256, true, [
      "sign",
    ]);
  } catch (err) {
    if (err instanceof BadParameterError) throw err;
    throw new BadParameterError("Cannot import private key: not an ECDSA P-256 PKCS#8 key", {
      cause: err,
    });
  }
}

/** Options for {@link issueX509Certificate}. */
export interface IssueX509CertificateOptions {
  /** The issuing CA. */
  ca: { certPem: string; privateKey: CryptoKey };
  /** The subject's public key as SPKI "PUBLIC KEY" PEM ... */
  publicKeyPem?: string;
  /** ... or as a CryptoKey. */
  publicKey?: CryptoKey;
  /** Ordered subject attributes, one RDN each, values as UTF8String. */
  subject: X509Name;
  /** DNS subjectAltNames. */
  dnsNames?: string[];
  /** IPv4 / IPv6 subjectAltNames. */
  ipAddresses?: string[];
  /** Key purposes (at least one). */
  extKeyUsage: ExtKeyUsage[];
  /** Start of validity. */
  notBefore: Date;
  /** End of validity. */
  notAfter: Date;
}

/**
 * Issues a v3 leaf certificate signed by `ca`: random positive serial, issuer copied byte for
 * byte from the CA subject, authorityKeyIdentifier, subjectKeyIdentifier, keyUsage
 * digitalSignature (critical), extKeyUsage, subjectAltName when names are given and
 * basicConstraints CA:false (critical). Returns the certificate PEM.
 */
export async function issueX509Certificate(opts: IssueX509CertificateOptions): Promise<string> {
  checkValidity(opts.notBefore, opts.notAfter);
  if ((opts.publicKeyPem === undefined) === (opts.publicKey === undefined)) {
    throw new BadParameterError(
      "Cannot issue certificate: give exactly one of publicKeyPem, publicKey",
    );
  }
  if (opts.extKeyUsage.length === 0) {
    throw new BadParameterError("Cannot issue certificate: extKeyUsage is empty");
  }
  const usages = opts.extKeyUsage.map((u) => {
    const oid = EKU_OIDS[u];
    if (oid === undefined) {
      throw new BadParameterError(
        `Cannot issue certificate: unknown extKeyUsage ${JSON.stringify(u)}`,
      );
    }
    return oid;
  });
  const caCert = new x509.X509Certificate(pemToDer(opts.ca.certPem, "CERTIFICATE"));
  const publicKey = opts.publicKey ??
    new x509.PublicKey(pemToDer(opts.publicKeyPem!, "PUBLIC KEY"));

  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  extensions.push(
    caSki
      ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId, false)
      : await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
  );
  const names: x509.JsonGeneralNames = [];
  for (const dns of opts.dnsNames ?? []) {
    if (!/^[A-Za-z0-9*_.-]+$/.test(dns)) {
      throw new BadParameterError(`Cannot issue certificate: bad DNS name ${JSON.stringify(dns)}`);
    }
    names.push({ type: "dns", value: dns });
  }
  for (const ip of opts.ipAddresses ?? []) {
    if (isIP(ip) === 0 || (isIP(ip) === 6 && ip.includes("."))) {
      throw new BadParameterError(`Cannot issue certificate: bad IP address ${JSON.stringify(ip)}`);
    }
    names.push({ type: "ip", value: ip });
  }
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));

  try {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialHex(),
      subject: toName(opts.subject, "subject"),
      issuer: caCert.subjectName,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      signingAlgorithm: signingAlgorithm(opts.ca.privateKey),
      publicKey,
      signingKey: opts.ca.privateKey,
      extensions,
    });
    const pem = cert.toString("pem") + "\n";
    // The issuer must be the CA subject byte for byte (webpki compares names as bytes).
    const leafIssuer = readTbsFields(new Uint8Array(cert.rawData)).issuer.raw;
    const caSubject = readTbsFields(new Uint8Array(caCert.rawData)).subject.raw;
    if (!bytesEqual(leafIssuer, caSubject)) {
      throw new BadParameterError("Cannot issue certificate: issuer does not match the CA subject");
    }
    return pem;
  } catch (err) {
    if (err instanceof BadParameterError) throw err;
    throw new BadParameterError(`Cannot issue certificate: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** What {@link parseX509Certificate} reads from a certificate. */
export interface X509CertificateInfo {
  /** 1, 2 or 3. */
  version: number;
  /** Serial number, lowercase hex. */
  serialNumber: string;
  /** Subject attributes in certificate order. */
  subject: X509Name;
  /** Issuer attributes in certificate order. */
  issuer: X509Name;
  /** Start of validity. */
  notBefore: Date;
  /** End of validity (inclusive). */
  notAfter: Date;
  /** DNS subjectAltNames. */
  dnsNames: string[];
  /** IP subjectAltNames, as text. */
  ipAddresses: string[];
  /** "serverAuth", "clientAuth", or the dotted OID of any other purpose. */
  extKeyUsage: string[];
  /** basicConstraints cA. */
  isCa: boolean;
  /** DER SubjectPublicKeyInfo. */
  spkiDer: Bytes;
  /** Lowercase hex SHA-256 of the DER certificate. */
  sha256Fingerprint: string;
  /** The DER certificate. */
  der: Bytes;
}

function loadCertificate(pem: string): [x509.X509Certificate, Bytes] {
  const der = pemToDer(pem, "CERTIFICATE");
  try {
    return [new x509.X509Certificate(der), der];
  } catch (err) {
    throw new BadParameterError(`Cannot parse certificate: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Parses one PEM certificate. */
export function parseX509Certificate(pem: string): X509CertificateInfo {
  const [cert, der] = loadCertificate(pem);
  const tbs = readTbsFields(der);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const sanNames = san ? san.names.toJSON() : [];
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const ekuNames = Object.fromEntries(Object.entries(EKU_OIDS).map(([k, v]) => [v, k]));
  return {
    version: tbs.version,
    serialNumber: cert.serialNumber.toLowerCase(),
    subject: decodeName(tbs.subject),
    issuer: decodeName(tbs.issuer),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    dnsNames: sanNames.filter((n) => n.type === "dns").map((n) => n.value),
    ipAddresses: sanNames.filter((n) => n.type === "ip").map((n) => n.value),
    extKeyUsage: Array.from(eku?.usages ?? [], String).map((u) => ekuNames[String(u)] ?? String(u)),
    isCa: cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
    spkiDer: new Uint8Array(cert.publicKey.rawData),
    sha256Fingerprint: createHash("sha256").update(der).digest("hex"),
    der,
  };
}

/** Splits a PEM bundle into its CERTIFICATE blocks (other blocks are skipped). */
export function splitPemCertificates(text: string): string[] {
  return decodePemBlocks(text).filter((b) => b.label === "CERTIFICATE").map((b) =>
    encodePem("CERTIFICATE", b.der)
  );
}

/** Options for {@link verifyX509Certificate}. */
export interface VerifyX509CertificateOptions {
  /** PEM CA certificates (or bundles) to trust. */
  trustedCaPems: string[];
  /** The current time (from the injected Clock). */
  now: Date;
  /** When set, the leaf's extKeyUsage must include this purpose. */
  extKeyUsage?: ExtKeyUsage;
}

/**
 * Verifies that `leafPem` is a v3 certificate within its validity at `now`, issued and signed by
 * one of `trustedCaPems` (a v3 CA certificate valid at `now` whose subject equals the leaf's
 * issuer byte for byte). Throws AccessDeniedError with the reason; returns the parsed leaf.
 */
export async function verifyX509Certificate(
  leafPem: string,
  opts: VerifyX509CertificateOptions,
): Promise<X509CertificateInfo> {
  const leaf = parseX509Certificate(leafPem);
  const subject = leaf.subject.map(([oid, v]) => `${oid}=${v}`).join(",");
  const deny = (reason: string): never => {
    throw new AccessDeniedError(`Cannot verify certificate ${JSON.stringify(subject)}: ${reason}`);
  };
  if (leaf.version !== 3) deny(`certificate is X.509 v${leaf.version}, want v3`);
  const now = opts.now.getTime();
  if (now < leaf.notBefore.getTime()) deny("certificate is not yet valid");
  if (now > leaf.notAfter.getTime()) deny("certificate is expired");
  if (opts.extKeyUsage && !leaf.extKeyUsage.includes(opts.extKeyUsage)) {
    deny(`certificate extKeyUsage lacks ${opts.extKeyUsage}`);
  }
  const leafCert = new x509.X509Certificate(leaf.der);
  const leafIssuer = readTbsFields(leaf.der).issuer.raw;
  for (const caPem of opts.trustedCaPems.flatMap(splitPemCertificates)) {
    const ca = parseX509Certificate(caPem);
    if (ca.version !== 3 || !ca.isCa) continue;
    if (now < ca.notBefore.getTime() || now > ca.notAfter.getTime()) continue;
    if (!bytesEqual(readTbsFields(ca.der).subject.raw, leafIssuer)) continue;
    const caCert = new x509.X509Certificate(ca.der);
    if (await leafCert.verify({ publicKey: caCert, signatureOnly: true })) return leaf;
  }
  return deny("certificate is not signed by a trusted authority");
}
