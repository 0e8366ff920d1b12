/**
 * The proxy's one-port listener: a first-bytes sniffer, a TLS ClientHello parser and the ALPN
 * routing table. {@linkcode startMultiplexer} listens on the web port (3080; 443 in examples)
 * and hands every connection to the handler of what it speaks (protocol notes §1).
 *
 * ```ts ignore
 * import http from "node:http";
 * import { startMultiplexer } from "./mod.ts";
 * const web = http.createServer((_req, res) => res.end("hello\n"));
 * const mux = await startMultiplexer({
 *   listen: { host: "0.0.0.0", port: 3080 },
 *   logger: getComponentLogger("proxy:mux"),
 *   tls: { keyPairs: [{ certPem, keyPem }] },
 *   handlers: {
 *     web: (tls) => web.emit("connection", tls),
 *     proxySsh: (stream) => sshServer.handleSocket(stream),
 *   },
 * });
 * ```
 *
 * ## First bytes
 *
 * | first bytes | what happens |
 * |---|---|
 * | `16 03 0N` (TLS handshake record) | ClientHello parsed, routed by ALPN (below) |
 * | `SSH-` | `handlers.ssh` (bytes put back), closed without it |
 * | `GET `, `POST `, … (plain HTTP) | `400 Bad Request` naming the `https://` address, closed; with `plainHttp` (a TLS-terminating load balancer in front), `handlers.web` |
 * | `PROXY ` / PROXY v2 signature | per `proxyProtocol`: `off` closes; `on` (required) and `unspecified` take the header off, take the client address from it and sniff what follows |
 * | anything else, or silence for `firstBytesTimeoutMs` | closed |
 *
 * ## ALPN routing table
 *
 * The client's ALPN values are tried in the client's order; the first one that matches a rule
 * of {@linkcode ALPN_ROUTES} decides. A route without a handler is refused (closed).
 *
 * | client ALPN | route | TLS | handler | proxy selects |
 * |---|---|---|---|---|
 * | `teleport-proxy-ssh` | `proxy-ssh` | terminated | `proxySsh` | `teleport-proxy-ssh` |
 * | `teleport-reversetunnel`, `teleport-reversetunnelv2` | `reverse-tunnel` | terminated | `reverseTunnel` | `teleport-reversetunnel` (v2 only when v1 is not offered) |
 * | `teleport-auth@<hex cluster>.teleport.cluster.local` | `auth` | passed through untouched | `auth` (raw socket + ClientHello) | — |
 * | `http/1.1`, `h2`, `acme-tls/1` | `web` | terminated | `web` | `http/1.1` when offered, else none |
 * | no ALPN extension | `web` | terminated | `web` | none |
 * | anything else | refused | — | — | — |
 *
 * We serve HTTP/1.1 only. A client that offers `h2` (or `acme-tls/1`) without `http/1.1` gets
 * no ALPN selected and talks HTTP/1.1; ACME TLS-ALPN-01 challenge certificates are not served.
 *
 * ## L7 load balancers
 *
 * `GET /webapi/connectionupgrade` with `Upgrade: alpn` / `alpn-ping` (or a WebSocket with
 * subprotocol `alpn` / `alpn-ping`) reaches the web handler like any request; the web server
 * hands it to {@linkcode Multiplexer.upgrade}, which answers `101` and routes the TLS connection
 * inside through the table above (connection_upgrade.ts). {@linkcode requestConnectionUpgrade}
 * is the client side.
 *
 * To serve reverse tunnels on this port, give `handlers.reverseTunnel` (it receives the
 * terminated TLS stream, SSH inside); the route already exists. A new route is a rule in
 * {@linkcode ALPN_ROUTES} plus a handler in {@linkcode MultiplexerHandlers}.
 *
 * @module
 */
export {
  ALPN_ACME,
  ALPN_AUTH_PREFIX,
  ALPN_H2,
  ALPN_HTTP1,
  ALPN_PROXY_SSH,
  ALPN_REVERSE_TUNNEL,
  ALPN_REVERSE_TUNNEL_V2,
  ALPN_ROUTES,
  type AlpnRule,
  authAlpn,
  CLUSTER_LOCAL_DOMAIN,
  parseAuthAlpn,
  type Route,
  routeForAlpn,
  type RouteName,
} from "./alpn.ts";
export {
  type ClientHello,
  type ClientHelloResult,
  MAX_CLIENT_HELLO_BYTES,
  MAX_CLIENT_HELLO_RECORDS,
  parseClientHello,
} from "./client_hello.ts";
export {
  type ConnectionSource,
  type KeyPairPem,
  type Multiplexer,
  type MultiplexerHandlers,
  type MultiplexerOptions,
  type ProxyProtocolMode,
  startMultiplexer,
} from "./multiplexer.ts";
export {
  acceptUpgrade,
  type AcceptUpgradeOptions,
  checkUpgradeRequest,
  CONNECTION_UPGRADE_PATH,
  DEFAULT_UPGRADE_PING_INTERVAL_MS,
  requestConnectionUpgrade,
  type RequestUpgradeOptions,
  TELEPORT_UPGRADE_HEADER,
  type UpgradeCheck,
  type UpgradeProtocol,
  upgradeRefusal,
  type UpgradeRequest,
  type UpgradeType,
} from "./connection_upgrade.ts";
export {
  encodePingFrame,
  MAX_PING_FRAME_READ,
  MAX_PING_FRAME_WRITE,
  pingConn,
  type PingConnOptions,
  PingFrameReader,
} from "./ping_conn.ts";
export {
  encodeWebsocketFrame,
  isWebsocketKey,
  MAX_WEBSOCKET_FRAME_READ,
  MAX_WEBSOCKET_FRAME_WRITE,
  newWebsocketKey,
  websocketAccept,
  websocketConn,
  type WebsocketConnOptions,
  type WebsocketFrame,
  WebsocketFrameReader,
} from "./websocket.ts";
export {
  HTTP_METHODS,
  MAX_SNIFF_BYTES,
  PROXY_V2_SIGNATURE,
  sniffProtocol,
  type SniffResult,
} from "./sniff.ts";
