/**
 * Outbound connections: the one TCP dialer of the program, direct or through an HTTP CONNECT
 * proxy chosen by `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (Go x/net httpproxy rules), and a
 * stream that exists before its connection for node:http(s) `createConnection`.
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
export { type DialOptions, dialTcp, joinHostPort } from "./dial.ts";
export {
  type HttpProxySettings,
  parseProxyUrl,
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
  nonLoopbackIpv4,
  selfSignedCertificate,
  startEchoServer,
  startFakeConnectProxy,
} from "./_testing.ts";
