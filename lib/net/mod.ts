/**
 * Outbound connections: the one TCP dialer of the program, direct or through an HTTP CONNECT
 * proxy chosen by `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (Go x/net httpproxy rules), and a
 * stream that exists before its connection for node:http(s) `createConnection`, and PROXY
 * protocol v1/v2 headers (pure codec, and reading one off an accepted socket).
 *
 * ```ts ignore
 * import { dialTcp } from "./mod.ts";
 * const socket = await dialTcp("proxy.example.com", 3080); // honours HTTPS_PROXY and NO_PROXY
 * const tlsSocket = tls.connect({ socket, servername: "proxy.example.com" });
 * ```
 *
 * @module
 */
export { deferredDuplex } from "./deferred.ts";
export {
  attachGuard,
  clientKey,
  ConnectionGuard,
  type ConnectionGuardOptions,
  type ConnectionGuardStats,
  type ConnectionHooks,
  countOpenFiles,
  type DescriptorHold,
  type GuardedConnection,
  type GuardedListener,
  type GuardedServerHandle,
  guardOf,
  guardServer,
  type GuardServerOptions,
  listenGuarded,
  type ListenGuardedOptions,
  listenOptions,
  markEstablished,
  readOpenFilesLimit,
  type RefusalReason,
} from "./guard.ts";
export { type DialOptions, dialTcp, joinHostPort } from "./dial.ts";
export {
  formatIpBytes,
  formatProxyHeaderV1,
  formatProxyHeaderV2,
  MAX_PROXY_V1_BYTES,
  MAX_PROXY_V2_LENGTH,
  parseIp,
  parseProxyHeader,
  PP2_TYPE_MAX_CUSTOM,
  PP2_TYPE_MIN_CUSTOM,
  PROXY_V2_SIGNATURE,
  type ProxyEndpoint,
  type ProxyHeader,
  type ProxyHeaderResult,
  type ProxyHeaderV2Options,
  type ProxyTlv,
  unmapIp,
} from "./proxy_protocol.ts";
export {
  type ClientSource,
  type ClientSourceResult,
  PROXY_PROTOCOL_MODES,
  type ProxyProtocolMode,
  readClientSource,
  type ReadClientSourceOptions,
} from "./client_source.ts";
export {
  readProxyHeader,
  type ReadProxyHeaderOptions,
  type ReadProxyHeaderResult,
} from "./read_proxy_header.ts";
export {
  type HttpProxySettings,
  parseProxyUrl,
  PROXY_LOOPBACK_ENV,
  proxyFor,
  proxySettingsFromEnv,
  type ProxyUrl,
  resolveRoute,
  type Route,
} from "./proxy_env.ts";
export {
  type RateLimit,
  RateLimiter,
  type RateLimiterOptions,
  type RateLimitResult,
} from "./rate_limiter.ts";
// Test helpers (scriptable CONNECT proxy, echo server, openssl certificates), for the tests of
// lib/net and of the modules that dial through it.
export {
  type ConnectRequest,
  type FakeConnectProxy,
  type FakeConnectProxyOptions,
  selfSignedCertificate,
  startEchoServer,
  startFakeConnectProxy,
} from "./_testing.ts";
export {
  type BodyLimit,
  type ConnInfo,
  createFedHttpServer,
  errorResponse,
  type FedConnectionInfo,
  type FedHttpServer,
  type FedHttpServerOptions,
  type HttpCoreOptions,
  type HttpHandler,
  type HttpsListener,
  type HttpsListenerOptions,
  LINGER_BYTES,
  listenHttps,
  normalizeRemoteAddr,
  type ReadSwitch,
  readSwitchOf,
} from "./http_server.ts";
export {
  acceptKeyOf,
  connectWebSocket,
  encodeFrame,
  type WebSocketClientResult,
  type WebSocketClose,
  WebSocketConnection,
  type WebSocketConnectionOptions,
  type WebSocketMessage,
} from "./websocket.ts";
