/**
 * Reaching SSH servers through the proxy.
 *
 * {@linkcode dialProxySsh}: log in to the proxy's SSH server, over TLS routing (TLS to the web
 * port with ALPN `teleport-proxy-ssh`, same trust as the web calls; through an HTTP-only load
 * balancer, inside `/webapi/connectionupgrade`, see conn_upgrade.ts) or plain TCP to its SSH
 * port; its host key must match a proxy host certificate the cluster publishes. Both dial with
 * lib/net `dialTcp`, so `HTTPS_PROXY` / `NO_PROXY` apply.
 *
 * {@linkcode connectToNode}, the steps of `tsh ssh`:
 *
 * 1. In parallel: list the nodes (auth API through the proxy) and log in to the proxy (whose
 *    host key check waits for the proxy list, fetched in parallel too). With `listMaxAgeMs`,
 *    both lists may come from the profile's cache (list_cache.ts), so no auth API connection
 *    is opened; an entry that proves wrong (unknown node, route refused, host key not
 *    certified by it) is looked up again once.
 * 2. Resolve the target to one node: host UUID, node name (also `<name>.<cluster>`) or address.
 * 3. Open a session channel on the proxy with subsystem `proxy:<uuid>:0`: the channel becomes a
 *    byte pipe to the node's SSH port.
 * 4. Run a second SSH login over that channel, end to end with the node, whose host key must
 *    match the host certificate in its heartbeat.
 */
import type { Clock } from "../clock/mod.ts";
import { RealClock } from "../clock/mod.ts";
import { concatBytes, parseSshCertificate, sshFingerprint } from "../ca/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  ConnectionProblemError,
  isKind,
  kindOf,
  messageOf,
  newError,
  NotFoundError,
} from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import type { Duplex } from "node:stream";
import { finished } from "node:stream/promises";
import { connectSsh, type ConnectSshOptions, type SshClient } from "../ssh/mod.ts";
import { ALPN_PROXY_SSH } from "../multiplex/mod.ts";
import { dialTcp } from "../net/mod.ts";
import type { ProxyResource, ServerResource } from "../resource/mod.ts";
import { copyingStream } from "../ssh/mod.ts";
import { formatHostPort, parseHostPort } from "./addr.ts";
import { AGENT_CHANNEL_TYPE, agentChannelHandler } from "./agent.ts";
import type { ClusterApi } from "./cluster.ts";
import { verifyHostCertificate } from "./host_cert.ts";
import type { Profile, ProfileKeys } from "./profile.ts";
import type { WebTrust } from "./web.ts";
import { dialSshRoutingTls } from "./conn_upgrade.ts";

/** A logged-in profile ready to dial: its keys, the trust for the web port and the cluster API. */
export interface ClientContext {
  profile: Profile;
  keys: ProfileKeys;
  /** Trust for the proxy's web certificate (see {@link webTrustOf}). */
  trust: WebTrust;
  /** The cluster's auth API through the proxy (see openClusterApi). */
  api: ClusterApi;
  /** @default {new RealClock()} */
  clock?: Clock;
  /** Time allowed for each connection and login, in ms. @default {30000} */
  timeoutMs?: number;
  /**
   * How old a node or proxy list `api` may answer from its cache when dialling (list_cache.ts);
   * an entry that turns out wrong is asked for again. @default {0}
   */
  listMaxAgeMs?: number;
  /** @default {getComponentLogger("client")} */
  logger?: Logger;
  /**
   * Refreshes the cluster's trusted host CAs (host_ca.ts) when a host presents a certificate of
   * an unknown CA key: updates `keys` and resolves true when they changed. @default {no refresh}
   */
  refreshHostCas?: () => Promise<boolean>;
}

/** The `refreshTrustedCaKeys` of verifyHostCertificate for a context. */
function refreshKeysOf(
  ctx: ClientContext,
): { refreshTrustedCaKeys?: () => Promise<string[] | undefined> } {
  const refresh = ctx.refreshHostCas;
  if (refresh === undefined) return {};
  return {
    refreshTrustedCaKeys: async () => (await refresh()) ? ctx.keys.hostCaKeys : undefined,
  };
}

/**
 * The web trust of a profile: the certificate pinned by an `--insecure` login (if any), plus
 * `insecure` for this command.
 */
export function webTrustOf(
  profile: Profile,
  options: { insecure?: boolean; caCertPems?: string[] } = {},
): WebTrust {
  return {
    ...(options.insecure === true ? { insecure: true } : {}),
    ...(profile.webCertSha256 === undefined ? {} : { pinnedSha256: profile.webCertSha256 }),
    ...(options.caCertPems === undefined ? {} : { caCertPems: options.caCertPems }),
  };
}

/** Options for {@link dialProxySsh}. */
export interface DialProxySshOptions {
  /** The SSH login (the OS login wanted on the node). */
  login: string;
  /** The proxies' presence resources, when already being fetched. */
  proxies?: Promise<ProxyResource[]>;
  signal?: AbortSignal;
}

/** Logs in to the proxy's SSH server; see the module doc. */
export async function dialProxySsh(
  ctx: ClientContext,
  o: DialProxySshOptions,
): Promise<SshClient> {
  const maxAgeMs = o.proxies === undefined ? ctx.listMaxAgeMs ?? 0 : 0;
  const proxies = o.proxies ?? ctx.api.listProxies({ maxAgeMs });
  proxies.catch(() => {}); // reported by verifyHostKey
  const p = ctx.profile;
  const timeoutMs = ctx.timeoutMs ?? 30_000;
  const where = p.tlsRoutingEnabled
    ? `proxy ${formatHostPort(p.webProxyAddr)} (TLS routing)`
    : `proxy ${formatHostPort(p.sshProxyAddr)}`;
  let refusal: Error | undefined;
  const common: Omit<ConnectSshOptions, "socket" | "host" | "port"> = {
    username: o.login,
    key: ctx.keys.sshKey,
    certificate: parseSshCertificate(ctx.keys.sshCert).blob,
    timeoutMs,
    ...(o.signal === undefined ? {} : { signal: o.signal }),
    logger: ctx.logger ?? getComponentLogger("client"),
    verifyHostKey: async ({ keyBlob }) => {
      let list: ProxyResource[];
      try {
        list = await proxies;
      } catch (err) {
        refusal = new ConnectionProblemError(
          `Cannot verify the SSH host key of ${where}: cannot list the cluster's proxies ` +
            `(${messageOf(err)})`,
          { cause: err },
        );
        return false;
      }
      try {
        await verifyProxyHostKey(ctx, list, keyBlob, where);
        return true;
      } catch (err) {
        refusal = err as Error;
      }
      if (maxAgeMs === 0) return false;
      // The cached list may predate this proxy or its key: ask the cluster.
      try {
        await verifyProxyHostKey(ctx, await ctx.api.listProxies(), keyBlob, where);
        return true;
      } catch (err) {
        refusal = err as Error;
        return false;
      }
    },
  };
  try {
    if (!p.tlsRoutingEnabled) {
      const socket = await dialTcp(p.sshProxyAddr.host, p.sshProxyAddr.port, {
        timeoutMs,
        ...(o.signal === undefined ? {} : { signal: o.signal }),
      });
      return await connectSsh({ ...common, socket });
    }
    // Through an HTTP-only load balancer: inside /webapi/connectionupgrade (conn_upgrade.ts).
    const conn = await dialSshRoutingTls({
      addr: p.webProxyAddr,
      alpnProtocols: [ALPN_PROXY_SSH],
      trust: ctx.trust,
      timeoutMs,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    if (conn.alpnProtocol !== false && conn.alpnProtocol !== ALPN_PROXY_SSH) {
      conn.socket.destroy();
      throw new ConnectionProblemError(
        `Cannot reach the SSH service of ${where}: it answered ALPN ` +
          `${JSON.stringify(conn.alpnProtocol)}, not ${ALPN_PROXY_SSH}; run "tsh login" again ` +
          "to refresh the proxy's settings",
      );
    }
    return await connectSsh({ ...common, socket: conn.socket });
  } catch (err) {
    throw refusal ?? naming(err, where);
  }
}

/** connectSsh over a given socket calls it "the given stream": name it (same kind). */
function naming(err: unknown, where: string): unknown {
  const kind = kindOf(err);
  const msg = messageOf(err);
  if (kind === undefined || !msg.includes("the given stream")) return err;
  return newError(kind, msg.replaceAll("the given stream", where), { cause: err });
}

async function verifyProxyHostKey(
  ctx: ClientContext,
  proxies: ProxyResource[],
  keyBlob: Uint8Array,
  where: string,
): Promise<void> {
  const now = (ctx.clock ?? new RealClock()).now();
  const presented = sshFingerprint(keyBlob);
  for (const proxy of proxies) {
    const cert = proxy.spec.host_cert;
    let sameKey = false;
    try {
      sameKey = cert !== undefined &&
        sshFingerprint(parseSshCertificate(cert.trim()).publicKeyBlob) === presented;
    } catch {
      // does not parse: certifies nothing
    }
    if (!sameKey) continue;
    // The certificate for this very key decides; its refusal names the reason.
    await verifyHostCertificate({
      hostCert: cert,
      presentedKey: keyBlob,
      trustedCaKeys: ctx.keys.hostCaKeys,
      clusterName: ctx.profile.cluster,
      role: "Proxy",
      now,
      ...refreshKeysOf(ctx),
      hostLabel: `${where} (${proxy.spec.hostname || proxy.metadata.name})`,
    });
    return;
  }
  throw new AccessDeniedError(
    `Cannot trust the SSH host key of ${where}: it presented key ${presented}, ` +
      `which no proxy host certificate of cluster ${ctx.profile.cluster} certifies ` +
      `(${proxies.length} proxies known); if the proxy was just started wait a minute and try ` +
      'again, if the cluster\'s CAs were rotated run "tsh login" again, else tell your ' +
      "administrator (this may be a man-in-the-middle)",
  );
}

/** How messages name a node: `node "web1" (<uuid>)`. */
export function nodeLabel(node: ServerResource): string {
  return `node ${JSON.stringify(node.spec.hostname)} (${node.metadata.name})`;
}

/**
 * Picks the node `target` names: a host UUID, a node name (optionally with `.<cluster>`), or a
 * registered address (`host:port` or host). Several nodes with that name or address →
 * BadParameterError listing their UUIDs; none → NotFoundError.
 */
export function resolveNode(
  nodes: ServerResource[],
  target: string,
  cluster: string,
): ServerResource {
  const suffix = `.${cluster}`;
  const bare = target.endsWith(suffix) ? target.slice(0, -suffix.length) : undefined;
  const candidates = [target, ...(bare === undefined || bare === "" ? [] : [bare])];
  for (const t of candidates) {
    const byId = nodes.filter((n) => n.metadata.name === t);
    if (byId.length === 1) return byId[0]!;
  }
  let matches: ServerResource[] = [];
  for (const t of candidates) {
    matches = nodes.filter((n) => n.spec.hostname === t);
    if (matches.length > 0) break;
  }
  if (matches.length === 0) {
    matches = nodes.filter((n) => n.spec.addr === target || hostOf(n.spec.addr) === target);
  }
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    const list = matches.map((n) => `${n.metadata.name} (${n.spec.addr})`).join(", ");
    throw new BadParameterError(
      `Cannot pick node "${target}": ${matches.length} nodes match (${list}); name one by its ` +
        "host UUID instead",
    );
  }
  throw new NotFoundError(`Cannot find node "${target}" (or you may not access it); run tsh ls`);
}

function hostOf(addr: string): string | undefined {
  try {
    return parseHostPort(addr, 0, "node address").host;
  } catch {
    return undefined;
  }
}

/** Options for {@link connectToNode}. */
export interface ConnectToNodeOptions {
  /** Node name, host UUID or address. */
  target: string;
  /** OS login on the node. */
  login: string;
  /**
   * Serves the node's agent channels from the local agent at this unix socket path (what
   * `tsh ssh -A` passes from SSH_AUTH_SOCK); sessions still ask with requestAgentForwarding().
   */
  agentSocket?: string;
  /** The node, already resolved (label targets list the nodes once); `target` is not looked up. */
  node?: ServerResource;
  signal?: AbortSignal;
}

/** An SSH connection to a node through the proxy. */
export interface NodeConnection extends AsyncDisposable {
  /** The node it reached. */
  node: ServerResource;
  /** The end-to-end SSH connection to the node. */
  client: SshClient;
  /** The connection to the proxy that carries it. */
  proxy: SshClient;
  /** Closes the node connection, then the proxy connection. */
  close(): Promise<void>;
}

/** Connects to a node through the proxy; see the module doc. */
export async function connectToNode(
  ctx: ClientContext,
  o: ConnectToNodeOptions,
): Promise<NodeConnection> {
  const abort = new AbortController();
  const onAbort = () => abort.abort(o.signal?.reason);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  // A cached list may be stale; `cached` says whether asking again may help.
  let cached = o.node === undefined && (ctx.listMaxAgeMs ?? 0) > 0;
  const nodes = o.node === undefined
    ? ctx.api.listNodes({ maxAgeMs: ctx.listMaxAgeMs ?? 0 })
    : Promise.resolve([o.node]);
  const proxyConn = dialProxySsh(ctx, { login: o.login, signal: abort.signal });
  nodes.catch(() => {});
  proxyConn.catch(() => {});
  let proxy: SshClient | undefined;
  try {
    let node: ServerResource;
    try {
      node = o.node ?? resolveNode(await nodes, o.target, ctx.profile.cluster);
    } catch (err) {
      if (!cached || !(isKind(err, "NotFound") || isKind(err, "BadParameter"))) throw err;
      cached = false;
      node = resolveNode(await ctx.api.listNodes(), o.target, ctx.profile.cluster);
    }
    proxy = await proxyConn;
    let reached = await reachNode(ctx, o, proxy, node, abort.signal);
    if ("stale" in reached && cached) {
      // The node may have re-registered (new UUID, address or host key) since the list was
      // cached: look again, and retry only when its entry changed.
      const fresh = resolveNode(await ctx.api.listNodes(), o.target, ctx.profile.cluster);
      if (JSON.stringify(fresh) !== JSON.stringify(node)) {
        node = fresh;
        reached = await reachNode(ctx, o, proxy, node, abort.signal);
      }
    }
    if ("stale" in reached) throw reached.stale;
    const { client, channel } = reached;
    const p = proxy;
    const close = async () => {
      // The node's goodbye (DISCONNECT, channel EOF and CLOSE) is handed to the proxy
      // connection, which then closes at once instead of waiting for the node's answer first:
      // the last flight ends with our FIN, which a relay with Nagle on (tinyproxy) forwards
      // without waiting for the ACK of what preceded it, and the command ends one round trip
      // sooner.
      const nested = client.close().catch(() => {});
      await finished(channel, { readable: false }).catch(() => {});
      await p.close().catch(() => {});
      await nested;
    };
    return { node, client, proxy: p, close, [Symbol.asyncDispose]: close };
  } catch (err) {
    abort.abort(err);
    proxy ??= await proxyConn.catch(() => undefined);
    await proxy?.close().catch(() => {});
    throw err;
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Routes to `node` through `proxy` and logs in end to end. A refusal a fresher node list may
 * fix (the proxy cannot route there, the host key is not the one the entry certifies) comes
 * back as `stale`; other failures throw.
 */
async function reachNode(
  ctx: ClientContext,
  o: ConnectToNodeOptions,
  proxy: SshClient,
  node: ServerResource,
  signal: AbortSignal,
): Promise<{ client: SshClient; channel: Duplex } | { stale: Error }> {
  let channel: Duplex;
  try {
    channel = await openProxySubsystem(proxy, node.metadata.name, 0, nodeLabel(node));
  } catch (err) {
    if (isKind(err, "ConnectionProblem") && !signal.aborted) return { stale: err as Error };
    throw err;
  }
  let refusal: Error | undefined;
  try {
    return {
      channel,
      client: await connectSsh({
        socket: channel,
        username: o.login,
        key: ctx.keys.sshKey,
        certificate: parseSshCertificate(ctx.keys.sshCert).blob,
        timeoutMs: ctx.timeoutMs ?? 30_000,
        signal,
        logger: ctx.logger ?? getComponentLogger("client"),
        ...(o.agentSocket === undefined ? {} : {
          channels: { [AGENT_CHANNEL_TYPE]: agentChannelHandler(o.agentSocket, ctx.logger) },
        }),
        verifyHostKey: async ({ keyBlob }) => {
          try {
            await verifyHostCertificate({
              hostCert: node.spec.host_cert,
              presentedKey: keyBlob,
              trustedCaKeys: ctx.keys.hostCaKeys,
              clusterName: ctx.profile.cluster,
              role: "Node",
              principal: node.metadata.name,
              now: (ctx.clock ?? new RealClock()).now(),
              hostLabel: nodeLabel(node),
              ...refreshKeysOf(ctx),
            });
            return true;
          } catch (err) {
            refusal = err as Error;
            return false;
          }
        },
      }),
    };
  } catch (err) {
    if (refusal !== undefined) return { stale: refusal };
    if (isKind(err, "AccessDenied")) {
      throw new AccessDeniedError(
        `Cannot log in to ${nodeLabel(node)} as ${JSON.stringify(o.login)}: the node refused ` +
          'the certificate; see "tsh status" for the logins your roles allow',
        { cause: err },
      );
    }
    throw new ConnectionProblemError(`Cannot connect to ${nodeLabel(node)}: ${messageOf(err)}`, {
      cause: err,
    });
  }
}

/**
 * Opens subsystem `proxy:<host>:<port>` on the proxy: the returned stream is a byte pipe to
 * that node's SSH port (`host` = node name, host UUID or address; port 0 = the node's port).
 * Its chunks are copies (see copyingStream in lib/ssh), so it may be paused and buffered freely.
 */
export async function openProxySubsystem(
  proxy: SshClient,
  host: string,
  port: number,
  label = `"${host}:${port}"`,
): Promise<Duplex> {
  if (host === "" || /[\s\0]/.test(host) || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new BadParameterError(`Cannot route to ${label}: not a valid host and port`);
  }
  const session = await proxy.openSession();
  // Read (and copy) the channel from the start: see copyingStream in lib/ssh.
  const stream = copyingStream(session.channel);
  const stderr: Uint8Array[] = [];
  const onStderr = (d: Uint8Array) => stderr.push(Uint8Array.from(d));
  session.channel.stderr.on("data", onStderr);
  const ok = await session.subsystem(`proxy:${host}:${port}`);
  session.channel.stderr.off("data", onStderr);
  if (!ok) {
    session.close();
    stream.destroy();
    const why = new TextDecoder().decode(concatBytes(...stderr)).trim();
    throw new ConnectionProblemError(
      `Cannot connect to ${label} through the proxy: the proxy refused to route there` +
        (why === "" ? "" : ` (${why})`) + '; check that it is online with "tsh ls"',
    );
  }
  return stream;
}
