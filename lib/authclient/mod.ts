/**
 * Typed client of the auth API over mutual TLS, and the request/response types
 * the server and its clients share. Node, proxy, agents and tctl use this;
 * never the server code.
 *
 * ```ts
 * import { AuthClient } from "./mod.ts";
 * // const client = new AuthClient({ host: "127.0.0.1", port: 3025, caCertPems, identity });
 * // const status = await client.status();
 * ```
 *
 * @module
 */
export { AUTH_SERVER_NAME, AuthClient, type AuthClientOptions } from "./client.ts";
export { identityFromRegistration, type JoinOptions, joinWithToken } from "./join.ts";
export type {
  AuthenticateSshUserRequest,
  AuthorityInfo,
  ChangePasswordWithTokenRequest,
  ErrorBody,
  PingResponse,
  RegisterRequest,
  RegisterResponse,
  StatusResponse,
  UserCerts,
  UserCertsRequest,
  UserTokenDetails,
  UserTokenInfo,
  WebSessionRecord,
} from "./types.ts";
export { CaReader, type CaReaderOptions } from "./ca_reader.ts";
export { UserCaKeys, type UserCaKeysOptions } from "./user_ca.ts";
export { ResourceFeed, type ResourceFeedOptions } from "./feed.ts";
