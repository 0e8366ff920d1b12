/**
 * Reverse tunnels (teleport-protocol-notes.md §2): nodes behind firewalls dial out to the
 * proxy over SSH — on the tunnel port (3024) or inside TLS with ALPN `teleport-reversetunnel`
 * on the web port — and the proxy reaches them back through those connections.
 * {@linkcode AgentPool} is the node's side (dial, verify the proxy, discovery, backoff, drain),
 * {@linkcode TunnelServer} the proxy's (authenticate agents, registry by host UUID, dial
 * through a tunnel, drain), {@linkcode resolveTunnelAddr} picks the address an agent dials.
 *
 * ```ts ignore
 * const server = await TunnelServer.start({ hostKey, hostCertificate, hostCaKeys, clusterName,
 *   proxyId, dialAuth, version, clock, logger, listen: { hostname: "0.0.0.0", port: 3024 } });
 * const pool = AgentPool.start({ hostId, clusterName, key, certificate, hostCaKeys, version,
 *   resolve: async () => ({ host: "proxy.example.com", port: 3024, tls: false, source: "flag" }),
 *   dial: (host, port) => dialTcp(host, port),
 *   serveLocalNode: (stream) => nodeSshServer.handleSocket(stream),
 *   clock, logger });
 * await pool.ready();
 * const stream = await server.dial(hostId); // an SSH connection to the node runs over it
 * ```
 *
 * @module
 */
export { AgentPool, type AgentPoolOptions, REVERSE_TUNNEL_ALPN } from "./agent.ts";
export { Backoff, type BackoffOptions } from "./backoff.ts";
export {
  decodeDialRequest,
  decodeDiscovery,
  type DialRequest,
  DISCOVERY_CHANNEL,
  type DiscoveryMessage,
  encodeDialRequest,
  encodeDiscovery,
  HEARTBEAT_CHANNEL,
  HOST_CERT_REQUEST,
  LOCAL_NODE_ADDR,
  proxyIdOf,
  RECONNECT_REQUEST,
  REMOTE_AUTH_ADDR,
  TRANSPORT_CHANNEL,
  TRANSPORT_DIAL_REQUEST,
  VERSION_REQUEST,
} from "./protocol.ts";
export {
  type FindSettings,
  parseHostPort,
  resolveTunnelAddr,
  type ResolveTunnelAddrOptions,
  TUNNEL_PORT,
  type TunnelAddr,
} from "./resolve.ts";
export {
  type TunnelDialOptions,
  type TunnelInfo,
  TunnelServer,
  type TunnelServerOptions,
} from "./server.ts";
