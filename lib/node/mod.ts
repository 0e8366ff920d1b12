/**
 * The SSH node service: the host users log in to. {@linkcode NodeService}
 * presents the node's host certificate, admits users by certificate and role
 * ({@linkcode authorizeUserCertificate}), runs real shells and commands as OS
 * users (PTY via libc FFI, exec on pipes), forwards ports, records
 * interactive sessions and reports heartbeats, audit events and recordings to
 * auth. Clients relayed by a proxy are known by the address in the proxy's
 * signed PROXY v2 header; any other header closes the connection.
 *
 * ```ts ignore
 * import { NodeService } from "./mod.ts";
 * const node = await NodeService.start({
 *   keyPem, sshCert, userCaKeys, hostCaKeys, hostId, nodeName: "node1", auth: authClient,
 *   listen: { hostname: "0.0.0.0", port: 3022 }, labels: { env: "dev" },
 *   recordingsDir: "/var/lib/teleport/log/upload", version: "0.1.0",
 *   clock: new RealClock(), logger,
 * });
 * ```
 *
 * @module
 */
export {
  authorizeUserCertificate,
  type AuthorizeUserOptions,
  type UserAccess,
} from "./authorize.ts";
export { backoffDelay, type PeriodicOptions, runPeriodic } from "./periodic.ts";

export {
  advertiseAddrOf,
  type NodeAuthApi,
  NodeService,
  type NodeServiceOptions,
} from "./service.ts";
export { lookupOsUser, type OsUser } from "./os_user.ts";
