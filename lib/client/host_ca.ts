/**
 * The cluster's trusted host CAs, and refreshing them without a new login when a host CA
 * rotation reaches `update_servers` (hosts and the auth API then present certificates of the
 * new key, which a profile made before the rotation does not know).
 *
 * Where the new keys come from: `GET /webapi/hostca` on the proxy's web port, over TLS verified
 * exactly as at login (the pinned certificate of an `--insecure` login, or the CA chain), the
 * same channel and the same answer format (`host_signers`) that delivered the keys trusted now.
 * On top of that, the answer must still list at least one SSH key and one certificate the
 * profile trusts (continuity): a proxy that names only keys never seen is refused, and so is a
 * rotation that ended (old keys dropped) before this profile saw it — then `tsh login` again.
 * A host whose certificate is signed by none of the refreshed keys is still refused.
 */
import {
  formatAuthorizedKey,
  parseAuthorizedKey,
  parseX509Certificate,
  splitPemCertificates,
} from "../ca/mod.ts";
import { AccessDeniedError, BadParameterError, messageOf } from "../errors/mod.ts";
import type { HostPort } from "./addr.ts";
import { WebClient, type WebTrust } from "./web.ts";

/** The host CA material a profile trusts. */
export interface HostCas {
  /** SSH public keys, authorized_keys lines (no comment). */
  hostCaKeys: string[];
  /** Certificates, PEM each. */
  hostCaTlsCerts: string[];
}

/** A base64 field of a web answer (or already plain text with `plainPrefix`), as text. */
function decodeField(value: unknown, plainPrefix: string, action: string): string {
  if (typeof value !== "string") {
    throw new BadParameterError(`Cannot ${action}: the proxy's answer lacks a field`);
  }
  if (plainPrefix !== "" && value.startsWith(plainPrefix)) return value;
  if (plainPrefix === "" && /^(ssh-|ecdsa-)/.test(value)) return value;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.fromBase64(value));
  } catch {
    throw new BadParameterError(
      `Cannot ${action}: the proxy's answer has a field that is not base64`,
    );
  }
}

/**
 * The host CA of `cluster` in a web answer's `host_signers` (login, `/webapi/hostca`). Throws
 * AccessDeniedError `Cannot <action>: the proxy's answer …` when it is missing or malformed.
 */
export function hostCasOf(signers: unknown, cluster: string, action: string): HostCas {
  const bad = (why: string): never => {
    throw new AccessDeniedError(`Cannot ${action}: the proxy's answer ${why}`);
  };
  const list = Array.isArray(signers) ? signers as Array<Record<string, unknown>> : [];
  const signer = list.find((s) => s?.domain_name === cluster);
  if (signer === undefined) return bad(`names no host CA for cluster ${cluster}`);
  const hostCaKeys: string[] = [];
  for (const k of Array.isArray(signer.checking_keys) ? signer.checking_keys : []) {
    try {
      hostCaKeys.push(formatAuthorizedKey(parseAuthorizedKey(decodeField(k, "", action)).blob));
    } catch {
      bad("holds a host CA key that does not parse");
    }
  }
  const hostCaTlsCerts: string[] = [];
  for (const c of Array.isArray(signer.tls_certs) ? signer.tls_certs : []) {
    for (const pem of splitPemCertificates(decodeField(c, "-----BEGIN", action))) {
      try {
        parseX509Certificate(pem);
      } catch {
        bad("holds a host CA certificate that does not parse");
      }
      hostCaTlsCerts.push(pem);
    }
  }
  if (hostCaKeys.length === 0 || hostCaTlsCerts.length === 0) {
    bad(`lacks the host CA keys or certificates of cluster ${cluster}`);
  }
  return { hostCaKeys, hostCaTlsCerts };
}

/** Options of {@linkcode fetchHostCas}. */
export interface FetchHostCasOptions {
  /** The proxy's web address (the profile's). */
  addr: HostPort;
  /** Trust for its certificate, as at login (see webTrustOf). */
  trust: WebTrust;
  cluster: string;
  /** What the profile trusts now: the answer must share a key and a certificate with it. */
  current: HostCas;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Reads the cluster's trusted host CAs from the proxy; see the module doc for the checks. */
export async function fetchHostCas(o: FetchHostCasOptions): Promise<HostCas> {
  const action = `refresh the host CAs of cluster ${o.cluster}`;
  const web = new WebClient({
    addr: o.addr,
    trust: o.trust,
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
  });
  let answer: { host_signers?: unknown };
  try {
    answer = await web.request("GET", "/webapi/hostca", undefined, o.signal);
  } catch (err) {
    throw new AccessDeniedError(`Cannot ${action}: ${messageOf(err)}`, { cause: err });
  }
  const fresh = hostCasOf(answer?.host_signers, o.cluster, action);
  const certKey = (pem: string) => certIdentity(pem);
  const knownCerts = new Set(o.current.hostCaTlsCerts.map(certKey));
  if (
    !fresh.hostCaKeys.some((k) => o.current.hostCaKeys.includes(k)) ||
    !fresh.hostCaTlsCerts.some((c) => knownCerts.has(certKey(c)))
  ) {
    throw new AccessDeniedError(
      `Cannot ${action}: the proxy lists none of the host CA keys this profile trusts (the ` +
        "rotation may have ended before this profile saw it, or this is another cluster); run " +
        '"tsh login" again',
    );
  }
  return fresh;
}

/** A certificate's identity for comparisons: its DER, so PEM line wrapping does not matter. */
function certIdentity(pem: string): string {
  return pem.replace(/-----[^-]+-----|\s/g, "");
}
