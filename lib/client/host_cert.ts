/**
 * Host key verification for the proxy's and nodes' SSH servers. ssh2's client cannot negotiate
 * certificate host key algorithms, so it shows only the plain host key; the host certificates
 * come from the cluster instead (node heartbeats and proxy presence carry `spec.host_cert`).
 * A host is trusted when its certificate is a valid host certificate signed by the cluster's
 * host CA, issued for that cluster and role (`x-teleport-authority`, `x-teleport-role`), names
 * the expected principal, and certifies exactly the key the server presented.
 */
import {
  bytesEqual,
  parseAuthorizedKey,
  parseSshCertificate,
  type SshCertificate,
  sshFingerprint,
  verifySshCertificate,
} from "../ca/mod.ts";
import { AccessDeniedError, messageOf } from "../errors/mod.ts";

/** Options for {@link verifyHostCertificate}. */
export interface VerifyHostCertificateOptions {
  /** The host certificate, authorized_keys line; undefined when the host published none. */
  hostCert: string | undefined;
  /** The plain host key blob the server presented in the SSH handshake. */
  presentedKey: Uint8Array;
  /** The cluster's host CA keys, authorized_keys lines. */
  trustedCaKeys: string[];
  /** The cluster the host must belong to (`x-teleport-authority`). */
  clusterName: string;
  /** The system role the certificate must carry (`x-teleport-role`). */
  role: "Node" | "Proxy";
  /** A principal the certificate must list (the node's host UUID); undefined: any. */
  principal?: string;
  /** The current time (from the injected clock). */
  now: Date;
  /** How errors name the host, e.g. `node "web1" (4f…)`. */
  hostLabel: string;
  /**
   * Called once when the certificate is signed by a key not in `trustedCaKeys` (a host CA
   * rotation this client has not seen yet): resolves to the cluster's refreshed host CA keys, or
   * undefined when they did not change; the certificate is then checked against them. Throws
   * (saying why) when the keys cannot be refreshed. @default {no refresh}
   */
  refreshTrustedCaKeys?: () => Promise<string[] | undefined>;
}

/**
 * Throws AccessDeniedError (naming the host and what to do) unless the certificate is trusted
 * and certifies the presented key; returns the parsed certificate.
 */
export async function verifyHostCertificate(
  o: VerifyHostCertificateOptions,
): Promise<SshCertificate> {
  const deny = (why: string, fix: string): never => {
    throw new AccessDeniedError(`Cannot trust the SSH host key of ${o.hostLabel}: ${why}; ${fix}`);
  };
  if (o.hostCert === undefined || o.hostCert.trim() === "") {
    deny(
      "the cluster holds no host certificate for it",
      "it may be an older or misconfigured server: ask your administrator to restart it so it " +
        "announces its certificate",
    );
  }
  let cert: SshCertificate;
  try {
    cert = parseSshCertificate(o.hostCert!.trim());
  } catch (err) {
    return deny(
      `its published host certificate does not parse (${messageOf(err)})`,
      "ask your administrator to check the server",
    );
  }
  const blobsOf = (lines: string[]) => {
    const blobs: Uint8Array[] = [];
    for (const line of lines) {
      try {
        blobs.push(parseAuthorizedKey(line).blob);
      } catch {
        // a malformed CA key trusts nothing
      }
    }
    return blobs;
  };
  let trusted = blobsOf(o.trustedCaKeys);
  let refreshed = false;
  if (
    o.refreshTrustedCaKeys !== undefined &&
    !trusted.some((k) => bytesEqual(k, cert.signatureKeyBlob))
  ) {
    // Signed by a key we do not know: a host CA rotation may be under way.
    let fresh: string[] | undefined;
    try {
      fresh = await o.refreshTrustedCaKeys();
    } catch (err) {
      return deny(
        `its certificate is signed by host CA key ${sshFingerprint(cert.signatureKeyBlob)}, ` +
          `which this profile does not trust, and the trusted keys cannot be refreshed (${
            messageOf(err)
          })`,
        'run "tsh login" again',
      );
    }
    if (fresh !== undefined) {
      trusted = blobsOf(fresh);
      refreshed = true;
    }
  }
  try {
    await verifySshCertificate(cert, {
      trustedCaKeys: trusted,
      certType: "host",
      now: o.now,
      ...(o.principal === undefined ? {} : { principal: o.principal }),
    });
  } catch (err) {
    return deny(
      messageOf(err).replace(/^Cannot verify SSH certificate "[^"]*": /, "") +
        (refreshed ? " (also after refreshing the cluster's host CA keys)" : ""),
      refreshed
        ? "tell your administrator: this host is not certified by the cluster (this may be a man-in-the-middle)"
        : `if the cluster's CAs were rotated, run "tsh login" again`,
    );
  }
  const authority = cert.extensions["x-teleport-authority"];
  if (authority !== o.clusterName) {
    deny(
      `its certificate is for cluster ${JSON.stringify(authority ?? "")}, not ${o.clusterName}`,
      "check that you logged in to the right cluster",
    );
  }
  const role = cert.extensions["x-teleport-role"];
  if (role?.toLowerCase() !== o.role.toLowerCase()) {
    deny(
      `its certificate is for role ${JSON.stringify(role ?? "")}, not ${o.role}`,
      "the address may lead to a different kind of server",
    );
  }
  if (!bytesEqual(cert.publicKeyBlob, o.presentedKey)) {
    deny(
      `the server presented key ${sshFingerprint(o.presentedKey)}, but the certificate is for ` +
        `${sshFingerprint(cert.publicKeyBlob)} (a man-in-the-middle, or the host was ` +
        "re-created and has not announced itself yet)",
      "wait a minute and try again, and tell your administrator if this persists",
    );
  }
  return cert;
}
