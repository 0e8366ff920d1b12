/**
 * Joining a cluster with a token and CA pins (seed 002 "CA Pinning"):
 *  1. fetch the CA certificates from auth without verifying it;
 *  2. check EVERY certificate against the pins (sha256 of its SPKI);
 *  3. talk to auth only over TLS that trusts exactly those certificates;
 *  4. send the token and locally generated public keys; receive host certs.
 * Without pins the join still happens, with a warning (seed 002).
 */
import {
  checkCaPins,
  formatAuthorizedKey,
  generateTlsKeyPair,
  sshPublicKeyBlob,
} from "../ca/mod.ts";
import { AccessDeniedError, messageOf } from "../errors/mod.ts";
import type { IdentityFile } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import { AuthClient } from "./client.ts";
import type { RegisterResponse } from "./types.ts";

/** Inputs of {@link joinWithToken}. */
export interface JoinOptions {
  host: string;
  port: number;
  token: string;
  /** `node` or `proxy`. */
  role: string;
  hostId: string;
  nodeName: string;
  /** `sha256:<hex>` pins; empty = join unverified, with a warning. */
  caPins: string[];
  additionalPrincipals?: string[];
  logger: Logger;
}

/** Joins and returns the host identity (private key never leaves this process). */
export async function joinWithToken(o: JoinOptions): Promise<IdentityFile> {
  let caCerts: string[];
  {
    using insecure = new AuthClient({ host: o.host, port: o.port, insecureSkipVerify: true });
    caCerts = await insecure.caCerts();
  }
  if (o.caPins.length > 0) {
    try {
      checkCaPins(o.caPins, caCerts);
    } catch (err) {
      throw new AccessDeniedError(
        `Cannot join the cluster at ${o.host}:${o.port}: its CA certificate does not match the CA pin (${
          messageOf(err)
        }). The pin may be stale after "tctl auth rotate": run "tctl status" on the auth server to see the current pin`,
        { cause: err },
      );
    }
  } else {
    o.logger.warn(
      "Joining {addr} without a CA pin: the auth server's identity is not verified and a man in the middle could impersonate it; pass --ca-pin (see tctl status)",
      { addr: `${o.host}:${o.port}` },
    );
  }
  const key = await generateTlsKeyPair();
  const sshPublic = formatAuthorizedKey(await sshPublicKeyBlob(key.publicKey));
  using client = new AuthClient({ host: o.host, port: o.port, caCertPems: caCerts });
  const res = await client.register({
    token: o.token,
    hostID: o.hostId,
    node_name: o.nodeName,
    role: o.role,
    additional_principals: o.additionalPrincipals ?? [],
    public_ssh_key: sshPublic,
    public_tls_key: key.publicKeyPem,
  });
  return identityFromRegistration(key.privateKeyPem, res);
}

/** The identity file for a host from its join answer and its private key. */
export function identityFromRegistration(keyPem: string, res: RegisterResponse): IdentityFile {
  return {
    keyPem,
    tlsCertPem: res.tls_cert,
    tlsCaCertPems: res.tls_ca_certs,
    sshCert: res.ssh_cert,
    sshCaKeys: [...res.ssh_ca_keys.host, ...res.ssh_ca_keys.user],
    sshUserCaKeys: [...res.ssh_ca_keys.user],
  };
}
