/**
 * The proxy service's SSH side: {@linkcode SshProxy} authenticates users by
 * certificate and connects them to registered nodes only ({@linkcode NodeRegistry},
 * {@linkcode resolveNode}); the web side lives in lib/web, the port router in
 * lib/multiplex, and the wiring in lib/service.
 *
 * ```ts ignore
 * import { NodeRegistry, SshProxy } from "./mod.ts";
 * const nodes = new NodeRegistry({ list: () => auth.listResources("node"), clock, logger });
 * const proxy = await SshProxy.start({
 *   hostKey, hostCertificate, userCaKeys: () => keys, fetchRole: (n) => auth.getRole(n),
 *   nodes, clusterName, clock, logger, listen: { hostname: "0.0.0.0", port: 3023 },
 * });
 * ```
 *
 * @module
 */
export { NodeRegistry, type NodeRegistryOptions } from "./registry.ts";
export {
  assertVisible,
  nodesOf,
  parseProxySubsystem,
  type ProxyTarget,
  resolveNode,
  splitAddr,
} from "./resolve.ts";
export {
  dialRegisteredAddr,
  type DialRegisteredAddrOptions,
  endpointOf,
  type NodeDialClient,
  type ProxyUser,
  SshProxy,
  type SshProxyOptions,
} from "./ssh_proxy.ts";
