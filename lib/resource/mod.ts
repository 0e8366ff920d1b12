/**
 * Resource types (user, role, token, cert_authority, node, proxy, session_tracker) shaped
 * like Teleport's, * with strict YAML/JSON codecs and Go-style durations.
 *
 * ```ts
 * import { parseResources } from "./mod.ts";
 * const [role] = parseResources("kind: role\nversion: v7\nmetadata: {name: dev}\nspec: {allow: {logins: [dev]}}");
 * ```
 *
 * @module
 */
export type {
  CaKeySet,
  CaRotation,
  CertAuthority,
  JoinSessionPolicy,
  Labels,
  Metadata,
  ProvisionToken,
  ProxyResource,
  Resource,
  ResourceKind,
  Role,
  RoleConditions,
  RoleOptions,
  RotationPhase,
  Rule,
  ServerResource,
  SessionParticipant,
  SessionParticipantMode,
  SessionTracker,
  SshKeyPair,
  SystemRole,
  TlsKeyPair,
  User,
} from "./types.ts";
export { ROTATION_PHASES } from "./types.ts";
export { rotationOf, trustedKeys } from "./cert_authority.ts";
export {
  formatResourcesYaml,
  parseResources,
  parseResourceValue,
  parseSystemRole,
  resolveKind,
  RESOURCE_KINDS,
  validateName,
} from "./codec.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export {
  type ResourceEvent,
  type ResourceEventSource,
  WATCH_KINDS,
  type WatchKind,
} from "./watch.ts";
