/** What `tsh status` and `tsh login` show about a profile, read from its certificates. */
import { parseSshCertificate, parseX509Certificate } from "../ca/mod.ts";
import { identityFromSubject } from "../identity/mod.ts";
import { formatHostPort } from "./addr.ts";
import type { Profile, ProfileKeys } from "./profile.ts";

/** A profile as shown to the user. */
export interface ProfileStatus {
  /** `https://<web proxy address>`. */
  profileUrl: string;
  /** Teleport user. */
  user: string;
  cluster: string;
  /** Roles from the TLS certificate. */
  roles: string[];
  /** OS logins from the SSH certificate (internal placeholders left out). */
  logins: string[];
  /** SSH certificate extensions. */
  extensions: string[];
  validUntil: Date;
  /** Time left in ms (0 when expired). */
  validForMs: number;
  expired: boolean;
}

/** Reads the status of `profile` at `now`. */
export function profileStatus(profile: Profile, keys: ProfileKeys, now: Date): ProfileStatus {
  const ssh = parseSshCertificate(keys.sshCert);
  let roles: string[] = [];
  try {
    roles = identityFromSubject(parseX509Certificate(keys.tlsCertPem).subject).roles;
  } catch {
    // an unreadable TLS subject shows no roles
  }
  const left = profile.validUntil.getTime() - now.getTime();
  return {
    profileUrl: `https://${formatHostPort(profile.webProxyAddr)}`,
    user: profile.user,
    cluster: profile.cluster,
    roles,
    logins: ssh.principals.filter((p) => !p.startsWith("-teleport-")),
    extensions: Object.keys(ssh.extensions).sort(),
    validUntil: profile.validUntil,
    validForMs: Math.max(0, left),
    expired: left <= 0,
  };
}
