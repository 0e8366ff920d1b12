/**
 * Pure access policy: built-in roles, template expansion, label matching and the
 * AccessChecker used by auth (certificate issuing, API rules) and nodes (logins).
 *
 * ```ts
 * import { ACCESS_ROLE, AccessChecker } from "./mod.ts";
 * const checker = new AccessChecker([ACCESS_ROLE], { logins: ["alice"] });
 * checker.logins(); // ["alice"]
 * ```
 *
 * @module
 */
export { ACCESS_ROLE, AUDITOR_ROLE, BUILTIN_ROLES, EDITOR_ROLE } from "./builtin.ts";
export {
  AccessChecker,
  DEFAULT_MAX_SESSION_TTL_MS,
  expandTemplate,
  matchLabels,
  type NodeTarget,
} from "./checker.ts";
export { RoleCache, type RoleCacheOptions } from "./role_cache.ts";
export {
  type CertifiedUser,
  matchSourceAddress,
  verifyUserCertificate,
  type VerifyUserCertificateOptions,
} from "./user_cert.ts";
