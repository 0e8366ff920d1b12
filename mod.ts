/**
 * teleport on Deno as a library: start a cluster in-process, talk to its auth
 * API, and use the building blocks (backend, CA, identity, RBAC, config).
 *
 * ```ts
 * import { resolveProcessConfig, TeleportProcess } from "./mod.ts";
 * const config = resolveProcessConfig({ flags: { roles: "auth", dataDir: "/tmp/tp" }, hostname: "h", env: {} });
 * // await using proc = await TeleportProcess.start({ config, hostname: "h" });
 * ```
 *
 * @module
 */
export { AuthServer, type AuthServerOptions, startAuthApiServer } from "./lib/auth/mod.ts";
export { AuthClient, type AuthClientOptions } from "./lib/authclient/mod.ts";
export { type Backend, MemoryBackend, openBackend, openKvBackend } from "./lib/backend/mod.ts";
export { caPin, checkCaPins, parseSshCertificate, signSshCertificate } from "./lib/ca/mod.ts";
export { type Clock, FakeClock, RealClock } from "./lib/clock/mod.ts";
export {
  type FileConfig,
  formatSampleConfig,
  parseFileConfig,
  type ProcessConfig,
  resolveProcessConfig,
} from "./lib/config/mod.ts";
export { type Identity } from "./lib/identity/mod.ts";
export { AccessChecker } from "./lib/rbac/mod.ts";
export { parseResources, type Resource } from "./lib/resource/mod.ts";
export { type AuthReady, Supervisor, TeleportProcess, VERSION } from "./lib/service/mod.ts";
