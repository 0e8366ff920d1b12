/**
 * Names and messages of the reverse tunnel protocol (teleport-protocol-notes.md §2): the SSH
 * channel and request names Teleport uses, the JSON dial request carried by
 * `teleport-transport-dial`, and the proxy list carried by `discovery`. Decoders validate
 * everything they return: payloads come from the other end of a network connection.
 */
import { BadParameterError } from "../errors/mod.ts";

/** Channel the agent opens for its pings. */
export const HEARTBEAT_CHANNEL = "teleport-heartbeat";
/** Request on {@link HEARTBEAT_CHANNEL}; payload: the current UTC time as text. */
export const PING_REQUEST = "ping";
/** Channel carrying one dialled connection (proxy → agent to reach the node, agent → proxy to reach auth). */
export const TRANSPORT_CHANNEL = "teleport-transport";
/** First and only request on {@link TRANSPORT_CHANNEL}; payload: a JSON {@link DialRequest}. */
export const TRANSPORT_DIAL_REQUEST = "teleport-transport-dial";
/** Channel the proxy opens to tell the agent about every live proxy. */
export const DISCOVERY_CHANNEL = "teleport-discovery";
/** Request on {@link DISCOVERY_CHANNEL}; payload: a JSON {@link DiscoveryMessage}. */
export const DISCOVERY_REQUEST = "discovery";
/** Global request proxy → agent: the version of the cluster (the agent answers with its own). */
export const VERSION_REQUEST = "x-teleport-version";
/** Global request proxy → agent: the proxy is going away; connect to another one. */
export const RECONNECT_REQUEST = "reconnect@goteleport.com";
/**
 * Global request proxy → agent, our extension: the proxy's SSH host certificate (OpenSSH blob).
 * ssh2's client cannot negotiate certificate host keys, so the proxy proves its key in the key
 * exchange with the plain key and sends the certificate for that key here, first thing after
 * login; the agent trusts the connection only once that certificate checks out.
 */
export const HOST_CERT_REQUEST = "x-teleport-host-cert";

/** Dial address meaning "the SSH service of the agent's own host". */
export const LOCAL_NODE_ADDR = "@local-node";
/** Dial address meaning "an auth server of the cluster" (agent → proxy). */
export const REMOTE_AUTH_ADDR = "@remote-auth-server";

/** What a `teleport-transport-dial` request asks for (Teleport's `sshutils.DialReq`). */
export interface DialRequest {
  /** Where to connect: {@link LOCAL_NODE_ADDR} or {@link REMOTE_AUTH_ADDR}. */
  address: string;
  /** `<host uuid>.<cluster>` of the target, when known. */
  server_id?: string;
  /** @default {"node"} */
  conn_type?: string;
  /** The user's address, for the node's audit log. */
  client_src_addr?: string;
  client_dst_addr?: string;
}

const MAX_PAYLOAD = 16 * 1024;
const ADDR_RE = /^[\x21-\x7e]{1,512}$/;

/** Encodes a dial request as the JSON bytes sent on the wire. */
export function encodeDialRequest(req: DialRequest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(req));
}

/**
 * Decodes a dial request. A payload that is not a JSON object is taken as a bare address, as
 * older Teleport versions sent. Throws BadParameterError on anything malformed.
 */
export function decodeDialRequest(data: Uint8Array): DialRequest {
  if (data.length === 0 || data.length > MAX_PAYLOAD) {
    throw new BadParameterError(`Cannot read dial request: ${data.length} bytes`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw new BadParameterError("Cannot read dial request: not UTF-8");
  }
  if (!text.trimStart().startsWith("{")) {
    const address = text.trim();
    if (!ADDR_RE.test(address)) {
      throw new BadParameterError("Cannot read dial request: bad address");
    }
    return { address, conn_type: "node" };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadParameterError("Cannot read dial request: not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BadParameterError("Cannot read dial request: not a JSON object");
  }
  const v = value as Record<string, unknown>;
  const str = (name: string, required = false): string | undefined => {
    const x = v[name];
    if (x === undefined || x === null || (x === "" && !required)) return undefined;
    if (typeof x !== "string" || x.length > 1024) {
      throw new BadParameterError(`Cannot read dial request: field ${name} is not a string`);
    }
    return x;
  };
  const address = str("address", true);
  if (address === undefined || !ADDR_RE.test(address)) {
    throw new BadParameterError("Cannot read dial request: missing or bad address");
  }
  const req: DialRequest = { address, conn_type: str("conn_type") ?? "node" };
  const serverId = str("server_id");
  if (serverId !== undefined) req.server_id = serverId;
  const src = str("client_src_addr");
  if (src !== undefined) req.client_src_addr = src;
  const dst = str("client_dst_addr");
  if (dst !== undefined) req.client_dst_addr = dst;
  return req;
}

/** One proxy in a discovery message. */
export interface DiscoveredProxy {
  version: "v2";
  metadata: { name: string };
}

/** What a `discovery` request carries: every proxy the agent should hold a tunnel to. */
export interface DiscoveryMessage {
  proxies: DiscoveredProxy[];
}

const PROXY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MAX_PROXIES = 1000;

/** Encodes the proxy IDs as a discovery message. */
export function encodeDiscovery(proxyIds: readonly string[]): Uint8Array {
  const msg: DiscoveryMessage = {
    proxies: proxyIds.map((name) => ({ version: "v2", metadata: { name } })),
  };
  return new TextEncoder().encode(JSON.stringify(msg));
}

/** Decodes a discovery message into proxy IDs (deduplicated); throws BadParameterError. */
export function decodeDiscovery(data: Uint8Array): string[] {
  if (data.length > MAX_PAYLOAD * 16) {
    throw new BadParameterError(`Cannot read discovery message: ${data.length} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch {
    throw new BadParameterError("Cannot read discovery message: not JSON");
  }
  const proxies = (value as { proxies?: unknown } | null)?.proxies;
  if (!Array.isArray(proxies) || proxies.length > MAX_PROXIES) {
    throw new BadParameterError("Cannot read discovery message: no proxies list");
  }
  const ids = new Set<string>();
  for (const p of proxies) {
    const name = (p as { metadata?: { name?: unknown } } | null)?.metadata?.name;
    if (typeof name !== "string" || !PROXY_ID_RE.test(name)) {
      throw new BadParameterError("Cannot read discovery message: bad proxy name");
    }
    ids.add(name);
  }
  return [...ids];
}

/** The proxy ID a proxy host certificate names: its first principal up to the first ".". */
export function proxyIdOf(principals: readonly string[]): string | undefined {
  const first = principals[0];
  if (first === undefined || first === "") return undefined;
  return first.split(".")[0];
}
