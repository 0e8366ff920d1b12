/**
 * Repositories over the Backend: users (with password hashes, TOTP devices and login
 * attempts), roles, join tokens, user tokens, certificate authorities and node and proxy
 * presence.
 *
 * ```ts
 * import { RolesService } from "./mod.ts";
 * import { MemoryBackend } from "../backend/mod.ts";
 * const roles = new RolesService(new MemoryBackend());
 * ```
 *
 * @module
 */
export {
  CertAuthoritiesService,
  type LoginAttempts,
  PresenceService,
  ProvisionTokensService,
  RolesService,
  type TotpDevice,
  UsersService,
  type UserToken,
  UserTokensService,
} from "./services.ts";
export { type StoredResourceEvent, watchResources } from "./watch.ts";
