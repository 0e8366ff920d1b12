/**
 * The auth service: certificate authorities, users (password and TOTP login with
 * lockout, invite/reset tokens), roles, join tokens, node and proxy presence and
 * certificate issuing ({@link AuthServer}), exposed as an HTTPS JSON API over
 * mutual TLS ({@link startAuthApiServer}).
 *
 * ```ts
 * import { AuthServer } from "./mod.ts";
 * // const auth = new AuthServer({ backend, clock, logger, clusterName: "example", version: "0.1.0", userTokenTtlMs: 3_600_000 });
 * // await auth.init();
 * ```
 *
 * @module
 */
export {
  API_ROUTES,
  type ApiRequest,
  type ApiResponse,
  type AuthConnInfo,
  createAuthApiHandler,
  handleApiRequest,
  redactPath,
} from "./api.ts";
export { type CaSigner, publicAuthority } from "./authority.ts";
export { type AuthApiServer, type AuthApiServerOptions, startAuthApiServer } from "./listener.ts";
export {
  ACCOUNT_LOCK_INTERVAL_MS,
  LOGIN_ATTEMPT_WINDOW_MS,
  loginSource,
  MAX_LOGIN_ATTEMPTS,
  MAX_USER_LOGIN_FAILURES,
} from "./lockout.ts";
export {
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  MIN_PASSWORD_LENGTH,
  type PasswordHasher,
  scryptHasher,
  type ScryptParams,
  verifyPassword,
} from "./password.ts";
export {
  type AuthenticateSshUserOptions,
  AuthServer,
  type AuthServerOptions,
  CLUSTER_LOCAL_DNS,
  LOGIN_FAILED_MESSAGE,
  MAX_CERT_TTL_MS,
  MIN_CERT_TTL_MS,
  randomHex,
  type StaticToken,
} from "./server.ts";
export { SYSTEM_ROLE_POLICIES } from "./system_roles.ts";
export {
  generateTotpCode,
  matchTotpStep,
  newTotpSecret,
  TOTP_DIGITS,
  TOTP_PERIOD_SECONDS,
  TOTP_WINDOW,
  totpStep,
  totpUri,
} from "./totp.ts";
