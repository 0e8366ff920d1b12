/**
 * Which registered node a client means. The proxy only ever dials addresses it
 * read from the node registry (heartbeats), never a host:port a client typed,
 * so it cannot be used to reach arbitrary hosts (SSRF).
 */
import { AccessDeniedError, BadParameterError, NotFoundError } from "../errors/mod.ts";
import type { Resource, ServerResource } from "../resource/mod.ts";

/** A parsed `proxy:host:port[@cluster]` subsystem name. */
export interface ProxyTarget {
  host: string;
  port: number;
  cluster?: string;
}

/** Parses a proxy subsystem name (Teleport's `proxy:host:port`, `proxy:host:port@cluster`). */
export function parseProxySubsystem(name: string): ProxyTarget {
  const bad = (why: string): never => {
    throw new BadParameterError(
      `Cannot parse proxy subsystem ${JSON.stringify(name)}: ${why}; use proxy:<node>:<port>`,
    );
  };
  if (!name.startsWith("proxy:")) bad("it does not start with proxy:");
  let rest = name.slice("proxy:".length);
  let cluster: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    cluster = rest.slice(at + 1);
    rest = rest.slice(0, at);
    // proxy:host:port@namespace@cluster: the namespace is always "default".
    const ns = rest.lastIndexOf("@");
    if (ns >= 0) rest = rest.slice(0, ns);
    if (cluster === "") bad("empty cluster name");
  }
  if (rest === "") bad("no node given (proxy:@cluster, auth access, is not supported)");
  let host: string;
  let portText: string;
  if (rest.startsWith("[")) {
    const end = rest.indexOf("]");
    if (end < 0) bad("unterminated [ in the host");
    host = rest.slice(1, end);
    const after = rest.slice(end + 1);
    portText = after === "" ? "0" : after.startsWith(":") ? after.slice(1) : bad("junk after ]");
  } else {
    const colon = rest.lastIndexOf(":");
    host = colon < 0 ? rest : rest.slice(0, colon);
    portText = colon < 0 ? "0" : rest.slice(colon + 1);
  }
  const port = portText === "" ? 0 : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) bad(`bad port "${portText}"`);
  if (host === "") bad("empty host");
  return { host, port, ...(cluster === undefined ? {} : { cluster }) };
}

/** Splits a registered `host:port` address. */
export function splitAddr(addr: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:]+):(\d+)$/.exec(addr);
  if (m === null) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!, port } : undefined;
}

/** The nodes among `resources` (the registry may hold other kinds later). */
export function nodesOf(resources: Resource[]): ServerResource[] {
  return resources.filter((r): r is ServerResource => r.kind === "node");
}

/**
 * Finds the node a client asked for: by host UUID, then by node name (port
 * ignored, as Teleport does), then by registered address (`port` 0 = any).
 * Throws NotFound when nothing matches and BadParameter when a name is ambiguous.
 */
export function resolveNode(nodes: ServerResource[], host: string, port: number): ServerResource {
  const byId = nodes.find((n) => n.metadata.name === host);
  if (byId !== undefined) return byId;
  const byName = nodes.filter((n) => n.spec.hostname === host);
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1) {
    throw new BadParameterError(
      `Cannot connect to node "${host}": ${byName.length} nodes have this name (${
        byName.map((n) => n.metadata.name).join(", ")
      }); use the host UUID instead`,
    );
  }
  const byAddr = nodes.filter((n) => {
    const a = splitAddr(n.spec.addr);
    return a !== undefined && a.host === host && (port === 0 || a.port === port);
  });
  if (byAddr.length === 1) return byAddr[0]!;
  if (byAddr.length > 1) {
    throw new BadParameterError(
      `Cannot connect to ${host}: several nodes are registered at this address; use a node name or UUID`,
    );
  }
  const what = port === 0 ? host : `${host}:${port}`;
  throw new NotFoundError(
    `Cannot connect to ${what}: it is not a registered node of this cluster (run "tsh ls" to see the nodes you can reach)`,
  );
}

/** Refuses a node the user's roles do not let them see (same message as "not found"). */
export function assertVisible(
  node: ServerResource,
  canSee: (target: { name: string; labels: Record<string, string> }) => boolean,
  asked: string,
): void {
  if (!canSee({ name: node.spec.hostname, labels: node.metadata.labels ?? {} })) {
    throw new AccessDeniedError(
      `Cannot connect to ${asked}: it is not a registered node of this cluster (run "tsh ls" to see the nodes you can reach)`,
    );
  }
}
