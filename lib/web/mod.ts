/**
 * The proxy's web API (`/webapi/*`, Teleport's names and JSON) and its two small pages:
 * ping and find, password login for tsh (`POST /webapi/ssh/certs`), joining through the proxy
 * (`POST /webapi/host/credentials`), and account setup from invite and reset links. The server
 * is fed TLS-terminated sockets by the port multiplexer and talks to auth only through
 * {@linkcode WebAuthApi} (an AuthClient fits).
 *
 * ```ts ignore
 * import { createWebServer, makeProxySettings } from "./mod.ts";
 * const web = createWebServer({
 *   auth: authClient, clock, logger, serverVersion: "0.1.0",
 *   proxySettings: makeProxySettings({ ssh: { web_listen_addr: "0.0.0.0:3080" } }),
 * });
 * // multiplexer handlers: { web: (socket) => web.handleConnection(socket) }
 * ```
 *
 * @module
 */
export {
  AuthPingCache,
  type AuthPingCacheOptions,
  buildFindResponse,
  buildPingResponse,
  checkProxySettings,
  DEFAULT_SESSION_TTL_MS,
  makeProxySettings,
  MIN_CLIENT_VERSION,
  msToGoDuration,
  type ProxySettingsInput,
} from "./ping.ts";
export {
  createWebServer,
  MAX_BODY_BYTES,
  redactPath,
  type WebConnectionInfo,
  type WebServer,
  type WebServerOptions,
} from "./server.ts";
export type {
  AuthenticateSshUserRequest,
  AuthPing,
  AutoUpdateSettings,
  ChangePasswordWithTokenRequest,
  PingAuthSettings,
  ProxySettings,
  SshLoginResponse,
  UserTokenDetails,
  UserTokenResponse,
  WebAuthApi,
  WebClusterAccess,
  WebFindResponse,
  WebPingResponse,
  WebSessionRecord,
  WebUserApi,
} from "./types.ts";
export {
  bearerOf,
  cookieValue,
  SESSION_COOKIE,
  type WebLoginResponse,
  WebSessions,
  type WebSessionsOptions,
} from "./sessions.ts";
export { decodeEnvelope, encodeEnvelope, type Envelope } from "./envelope.ts";
export {
  listNodePage,
  type NodeItem,
  parseResourceQuery,
  type ResourcePage,
  type ResourceQuery,
} from "./resources.ts";
export { parseTerminalParams, TERMINAL_AUTH_TIMEOUT_MS, type TerminalParams } from "./terminal.ts";
