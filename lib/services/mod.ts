/**
 * Repositories over the Backend: users, roles, join tokens, user tokens,
 * certificate authorities and node presence.
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
  PresenceService,
  ProvisionTokensService,
  RolesService,
  UsersService,
  type UserToken,
  UserTokensService,
} from "./services.ts";
