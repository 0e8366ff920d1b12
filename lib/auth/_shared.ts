/**
 * What the concerns of the auth server share: the {@link AuthContext} that AuthServer
 * (server.ts) hands each of them (backend services, clock, logger, CA signers, password
 * hasher, the access check and the audit emitter), and the helpers more than one concern uses.
 */
import type { Backend } from "../backend/mod.ts";
import type { Clock } from "../clock/mod.ts";
import type { Identity } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { AccessChecker } from "../rbac/mod.ts";
import type { User } from "../resource/mod.ts";
import type {
  CertAuthoritiesService,
  PresenceService,
  ProvisionTokensService,
  RolesService,
  UsersService,
  UserTokensService,
} from "../services/mod.ts";
import type { CaSigner } from "./authority.ts";
import type { PasswordHasher } from "./password.ts";
import type { SessionTrackerStore } from "./session_trackers.ts";

/** The state every concern of the auth server works on, owned by AuthServer (server.ts). */
export interface AuthContext {
  readonly clusterName: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly backend: Backend;
  readonly users: UsersService;
  readonly roles: RolesService;
  readonly tokens: ProvisionTokensService;
  readonly userTokens: UserTokensService;
  readonly cas: CertAuthoritiesService;
  readonly presence: PresenceService;
  readonly sessionTrackers: SessionTrackerStore;
  /** How passwords are hashed and checked. */
  readonly passwords: PasswordHasher;
  /** `auth_service.authentication.second_factor` ("off" when unset). */
  readonly secondFactor: string;
  /** The loaded CA of `type`; throws until the server is initialised. */
  signer(type: "host" | "user"): CaSigner;
  /** The access checker for a caller (system-role policy for hosts, stored roles for users). */
  checkerFor(id: Identity): Promise<AccessChecker>;
  /** Records an audit event; never throws (audit.ts). */
  emitAudit(
    type: string,
    fields: Record<string, unknown>,
    opts?: { failure?: boolean },
  ): Promise<void>;
}

/** `n` random bytes as lowercase hex. */
export function randomHex(n: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(n)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** `user` stamped with its creation time and, when known, its creator. */
export function withCreatedBy(user: User, createdBy: string | undefined, clock: Clock): User {
  return {
    ...user,
    spec: {
      ...user.spec,
      created_by: {
        time: clock.now().toISOString(),
        ...(createdBy === undefined ? {} : { user: createdBy }),
      },
    },
  };
}
