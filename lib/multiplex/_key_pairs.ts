/**
 * The web port's certificates: each key pair becomes a node:tls SecureContext (the whole chain
 * is served), and a server name picks the pair whose leaf certificate has a matching DNS SAN
 * (RFC 6125 §6.4: exact names first, then a `*.` wildcard covering exactly one left label).
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";
import { parseX509Certificate, splitPemCertificates } from "../ca/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";

/** A certificate (PEM; a chain is leaf first, then intermediates) and its private key (PEM). */
export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

/** A key pair ready to serve. */
export interface LoadedKeyPair {
  context: SecureContext;
  /** The leaf's DNS subjectAltNames, lower case. */
  dnsNames: string[];
}

/**
 * Loads key pairs; throws BadParameterError (never quoting key material) when the list is empty,
 * a certificate does not parse or a key does not match.
 */
export function loadKeyPairs(pairs: readonly KeyPairPem[]): LoadedKeyPair[] {
  if (pairs.length === 0) {
    throw new BadParameterError(
      "Cannot load TLS key pairs: the list is empty; give at least one certificate and key",
    );
  }
  return pairs.map((pair, i) => {
    const certs = splitPemCertificates(pair.certPem ?? "");
    if (certs.length === 0) {
      throw new BadParameterError(
        `Cannot load TLS key pair ${i}: certPem holds no PEM certificate`,
      );
    }
    let dnsNames: string[];
    try {
      dnsNames = parseX509Certificate(certs[0]!).dnsNames.map((n) => n.toLowerCase());
    } catch (err) {
      throw new BadParameterError(
        `Cannot load TLS key pair ${i}: the leaf certificate does not parse: ${messageOf(err)}`,
        { cause: err },
      );
    }
    // createSecureContext accepts any key text here; a bad key would only fail handshakes.
    let matches: boolean;
    try {
      matches = new X509Certificate(certs[0]!).checkPrivateKey(createPrivateKey(pair.keyPem));
    } catch (err) {
      // node:crypto messages name the failure, never the key bytes.
      throw new BadParameterError(
        `Cannot load TLS key pair ${i}: keyPem is not a usable PEM private key: ${messageOf(err)}`,
        { cause: err },
      );
    }
    if (!matches) {
      throw new BadParameterError(
        `Cannot load TLS key pair ${i}: keyPem is not the private key of the leaf certificate`,
      );
    }
    const context = createSecureContext({
      cert: pair.certPem,
      key: pair.keyPem,
      minVersion: "TLSv1.2",
    });
    return { context, dnsNames };
  });
}

/** Whether a certificate DNS name (maybe `*.` wildcard) covers `host` (lower case). */
export function dnsNameMatches(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  if (!pattern.startsWith("*.")) return false;
  const dot = host.indexOf(".");
  return dot > 0 && host.slice(dot + 1) === pattern.slice(2);
}

/**
 * The key pair for a server name: the first pair with an exact DNS SAN, else the first with a
 * matching wildcard, else the first pair (the default, also used without a server name).
 */
export function pickKeyPair(pairs: readonly LoadedKeyPair[], serverName?: string): LoadedKeyPair {
  if (serverName !== undefined && serverName !== "") {
    const host = serverName.toLowerCase().replace(/\.$/, "");
    const exact = pairs.find((p) => p.dnsNames.includes(host));
    if (exact !== undefined) return exact;
    const wild = pairs.find((p) => p.dnsNames.some((n) => dnsNameMatches(n, host)));
    if (wild !== undefined) return wild;
  }
  return pairs[0]!;
}
