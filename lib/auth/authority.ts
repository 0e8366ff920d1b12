/**
 * The cluster's certificate authorities: a host CA and a user CA, each with an
 * Ed25519 SSH key and an ECDSA P-256 X.509 CA certificate. Created once, on the
 * first start of the auth service; private keys stay inside the auth service.
 */
import {
  createX509Ca,
  generateSshKeyPair,
  importSshPrivateKey,
  importTlsPrivateKey,
  parseAuthorizedKey,
} from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { isKind } from "../errors/mod.ts";
import {
  type CaKeySet,
  type CaRotation,
  type CertAuthority,
  rotationOf,
  trustedKeys,
} from "../resource/mod.ts";
import type { CertAuthoritiesService } from "../services/mod.ts";

/** CA certificates live long; Teleport uses 10 years. */
const CA_VALIDITY_MS = 10 * 365 * 24 * 3_600_000;

/** A CA loaded for signing. */
export interface CaSigner {
  type: "host" | "user";
  clusterName: string;
  ssh: { privateKey: CryptoKey; publicKeyBlob: Uint8Array; authorizedKey: string };
  tls: { certPem: string; privateKey: CryptoKey };
  /** Every trusted TLS CA certificate, active first (for trust and pins). */
  tlsCertPems: string[];
  /** Every trusted SSH CA public key (authorized_keys form), active first. */
  sshPublicKeys: string[];
  /** Where the CA's rotation stands. */
  rotation: CaRotation;
}

/** A new generation of CA keys: an Ed25519 SSH key and an ECDSA P-256 X.509 CA certificate. */
export async function newCaKeySet(
  type: "host" | "user",
  clusterName: string,
  clock: Clock,
): Promise<CaKeySet> {
  const now = clock.now();
  const ssh = await generateSshKeyPair("ed25519");
  const tls = await createX509Ca({
    commonName: clusterName,
    organization: `${clusterName} ${type} CA`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + CA_VALIDITY_MS),
  });
  return {
    ssh: [{ public_key: ssh.authorizedKey, private_key: ssh.privateKeyPem }],
    tls: [{ cert: tls.certPem, key: tls.privateKeyPem }],
  };
}

async function newAuthority(
  type: "host" | "user",
  clusterName: string,
  clock: Clock,
): Promise<CertAuthority> {
  return {
    kind: "cert_authority",
    version: "v2",
    metadata: { name: type },
    spec: {
      cluster_name: clusterName,
      type,
      active_keys: await newCaKeySet(type, clusterName, clock),
    },
  };
}

/** Creates the host and user CAs unless they exist. Safe against a concurrent creator. */
export async function ensureCertAuthorities(
  cas: CertAuthoritiesService,
  clusterName: string,
  clock: Clock,
): Promise<{ created: Array<"host" | "user"> }> {
  const created: Array<"host" | "user"> = [];
  for (const type of ["host", "user"] as const) {
    try {
      await cas.get(type, clusterName);
    } catch (err) {
      if (!isKind(err, "NotFound")) throw err;
      try {
        await cas.create(await newAuthority(type, clusterName, clock));
        created.push(type);
      } catch (e) {
        if (!isKind(e, "AlreadyExists")) throw e;
      }
    }
  }
  return { created };
}

/** Loads a CA's first active keys for signing. */
export async function loadSigner(ca: CertAuthority): Promise<CaSigner> {
  const sshPair = ca.spec.active_keys.ssh[0];
  const tlsPair = ca.spec.active_keys.tls[0];
  if (sshPair?.private_key === undefined || tlsPair?.key === undefined) {
    throw new Error(`Cannot load ${ca.spec.type} CA: it has no private keys in this backend`);
  }
  const ssh = await importSshPrivateKey(sshPair.private_key);
  const tlsKey = await importTlsPrivateKey(tlsPair.key);
  return {
    type: ca.spec.type,
    clusterName: ca.spec.cluster_name,
    ssh: {
      privateKey: ssh.privateKey,
      publicKeyBlob: parseAuthorizedKey(sshPair.public_key).blob,
      authorizedKey: sshPair.public_key,
    },
    tls: { certPem: tlsPair.cert, privateKey: tlsKey },
    tlsCertPems: trustedKeys(ca).tls,
    sshPublicKeys: trustedKeys(ca).ssh,
    rotation: rotationOf(ca),
  };
}

/** Keys without their private parts. */
function publicKeys(keys: CaKeySet): CaKeySet {
  return {
    ssh: keys.ssh.map((k) => ({ public_key: k.public_key })),
    tls: keys.tls.map((k) => ({ cert: k.cert })),
  };
}

/** A copy of a CA without private keys, safe to hand out. */
export function publicAuthority(ca: CertAuthority): CertAuthority {
  const spec: CertAuthority["spec"] = { ...ca.spec, active_keys: publicKeys(ca.spec.active_keys) };
  if (ca.spec.additional_trusted_keys !== undefined) {
    spec.additional_trusted_keys = publicKeys(ca.spec.additional_trusted_keys);
  }
  return { ...ca, spec };
}
