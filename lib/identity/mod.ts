/**
 * Identity of a caller (user or host) and its codecs to and from X.509 subjects;
 * identity files on disk; the client address a proxy vouches for (signed PROXY v2 header).
 *
 * ```ts
 * import { identityFromSubject, identityToSubject } from "./mod.ts";
 * const id = { kind: "user" as const, username: "alice", clusterName: "c1", roles: ["access"], logins: ["alice"], traits: {} };
 * identityFromSubject(identityToSubject(id)); // deep-equals id
 * ```
 *
 * @module
 */
export {
  hostIdOf,
  type Identity,
  identityFromSubject,
  identityToSubject,
  OID,
} from "./identity.ts";
export { type IdentityFile, readIdentityFile, writeIdentityFile } from "./file.ts";
export {
  ClientAddrVerifier,
  type ClientAddrVerifierOptions,
  PP2_TYPE_SIGNED_CLIENT_ADDR,
  type ProxySigner,
  signClientAddrHeader,
  type SignClientAddrOptions,
} from "./client_addr.ts";
