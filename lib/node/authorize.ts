/**
 * Who may log in to this node, decided from the user's certificate alone plus
 * the roles it names (fetched from auth, cached so logins keep working while
 * auth is unreachable). Pure except for the role lookup, which is injected.
 *
 * Checks, in order (each refusal says which one failed):
 *  1. a user certificate signed by the cluster's user CA, valid now, listing
 *     the requested login as a principal (lib/ca verifySshCertificate);
 *  2. `source-address` critical option, when present, matches the client IP;
 *  3. the certificate lives no longer than the roles' `max_session_ttl`;
 *  4. a role allows the login on a node with these labels and none denies it.
 */
import type { SshCertificate } from "../ca/mod.ts";
import type { Role } from "../resource/mod.ts";
import { type AccessChecker, verifyUserCertificate } from "../rbac/mod.ts";

/** What a successful check yields; sessions consult it for every request. */
export interface UserAccess {
  /** Teleport user name (the certificate key id). */
  user: string;
  /** OS login requested (a principal of the certificate). */
  login: string;
  roles: string[];
  traits: Record<string, string[]>;
  checker: AccessChecker;
  certificate: SshCertificate;
  /** `permit-pty` extension present. */
  permitPty: boolean;
  /** Local port forwarding (`ssh -L`, direct-tcpip) allowed by the roles. */
  permitPortForwarding: boolean;
  /** Remote port forwarding (`ssh -R`, tcpip-forward) allowed by the roles. */
  permitRemotePortForwarding: boolean;
  /** Agent forwarding (`ssh -A`) allowed by the roles (`forward_agent`). */
  permitAgentForwarding: boolean;
  /** File copy (sftp) allowed by the roles. */
  permitFileCopy: boolean;
  /** `force-command` critical option, when the certificate carries one. */
  forceCommand?: string;
}

/** Inputs of {@link authorizeUserCertificate}. */
export interface AuthorizeUserOptions {
  /** The certificate blob (or parsed) the client authenticated with. */
  certificate: Uint8Array | SshCertificate;
  login: string;
  /** Client IP address (for `source-address`). */
  remoteAddr: string;
  /** The user CA's public key blobs. */
  userCaKeys: Uint8Array[];
  now: Date;
  /** Resolves role names to roles (throws NotFound for a missing role). */
  roles: (names: string[]) => Promise<Role[]>;
  node: { name: string; labels: Record<string, string> };
}

/** Runs every check; AccessDeniedError names the one that failed. */
export async function authorizeUserCertificate(o: AuthorizeUserOptions): Promise<UserAccess> {
  const { user, roles, traits, checker, certificate: cert } = await verifyUserCertificate({
    certificate: o.certificate,
    principal: o.login,
    remoteAddr: o.remoteAddr,
    userCaKeys: o.userCaKeys,
    now: o.now,
    roles: o.roles,
  });
  checker.checkLogin(o.login, o.node);
  const access: UserAccess = {
    user,
    login: o.login,
    roles,
    traits,
    checker,
    certificate: cert,
    permitPty: Object.hasOwn(cert.extensions, "permit-pty"),
    permitPortForwarding: checker.canPortForward("local"),
    permitRemotePortForwarding: checker.canPortForward("remote"),
    permitAgentForwarding: checker.canForwardAgent(),
    permitFileCopy: checker.canCopyFiles(),
  };
  const force = cert.criticalOptions["force-command"];
  if (force !== undefined) access.forceCommand = force;
  return access;
}
