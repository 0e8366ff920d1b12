/** Helpers over {@link CertAuthority} resources that servers and clients share. */
import type { CaRotation, CertAuthority } from "./types.ts";

/** The rotation state of a CA (standby when it never rotated). */
export function rotationOf(ca: CertAuthority): CaRotation {
  return ca.spec.rotation ?? { state: "standby", phase: "standby" };
}

/**
 * Every key a CA trusts now: the active ones first, then, while a rotation runs, the other
 * generation (`additional_trusted_keys`). SSH keys in authorized_keys form, TLS as PEM.
 */
export function trustedKeys(ca: CertAuthority): { ssh: string[]; tls: string[] } {
  const extra = ca.spec.additional_trusted_keys ?? { ssh: [], tls: [] };
  return {
    ssh: [...ca.spec.active_keys.ssh, ...extra.ssh].map((k) => k.public_key),
    tls: [...ca.spec.active_keys.tls, ...extra.tls].map((k) => k.cert),
  };
}
