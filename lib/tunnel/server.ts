/**
 * The proxy's side of reverse tunnels: an SSH server that node agents log in to with their host
 * certificates, and a registry of live tunnels keyed by host UUID (several connections per node
 * are allowed). The proxy reaches a tunnel node by opening `teleport-transport` on one of its
 * connections with a `@local-node` dial request; agents reach auth the same way in reverse
 * (`@remote-auth-server`, the only address an agent may ask the proxy for). Each connection
 * gets the proxy's host certificate, a version request and the list of live proxies
 * (`teleport-discovery`); {@link TunnelServer.drain} asks every agent to reconnect elsewhere.
 */
import type { Duplex } from "node:stream";
import { concatBytes, type SshCertificate, verifySshCertificate } from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { ConnectionProblemError, messageOf, NotFoundError } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { ConnectionGuard } from "../net/mod.ts";
import {
  copyingStream,
  type IncomingChannelOpen,
  type SocketAddresses,
  spliceChannel,
  type SshChannel,
  type SshConnection,
  type SshServer,
  startSshServer,
} from "../ssh/mod.ts";
import {
  decodeDialRequest,
  DISCOVERY_CHANNEL,
  DISCOVERY_REQUEST,
  encodeDialRequest,
  encodeDiscovery,
  HEARTBEAT_CHANNEL,
  HOST_CERT_REQUEST,
  LOCAL_NODE_ADDR,
  PING_REQUEST,
  RECONNECT_REQUEST,
  REMOTE_AUTH_ADDR,
  TRANSPORT_CHANNEL,
  TRANSPORT_DIAL_REQUEST,
  VERSION_REQUEST,
} from "./protocol.ts";

/** Inputs of {@link TunnelServer.start}. */
export interface TunnelServerOptions {
  /** The proxy's host key and its SSH host certificate (blob). */
  hostKey: { privateKey: CryptoKey; publicKeyBlob: Uint8Array };
  hostCertificate: Uint8Array;
  /** The cluster's host CA keys (blobs), read at each login (CA rotation). */
  hostCaKeys: () => Uint8Array[];
  clusterName: string;
  /** This proxy's host UUID. */
  proxyId: string;
  /** Host UUIDs of every live proxy of the cluster, for discovery. @default {only this one} */
  listProxies?: () => Promise<string[]>;
  /** Connects to an auth server, for agents' `@remote-auth-server` channels. */
  dialAuth: () => Promise<Duplex>;
  /** Sent in the version request. */
  version: string;
  clock: Clock;
  logger: Logger;
  /** Where to listen; without it sockets come from {@link TunnelServer.handleSocket}. */
  listen?: { hostname: string; port: number };
  /**
   * Admission control of the listener, shared with the process's other listeners.
   * @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /** Time a client has from connecting until authenticated. @default {30000} */
  loginTimeoutMs?: number;
  /** How often the proxy list is re-read and changes are sent. @default {10000} */
  discoveryIntervalMs?: number;
  /** Interval of keepalive probes to agents. @default {30000} */
  keepaliveIntervalMs?: number;
}

/** One live tunnel connection, as listed by {@link TunnelServer.tunnels}. */
export interface TunnelInfo {
  hostId: string;
  remoteAddr: string;
  connectedAt: Date;
  /** Time of the last heartbeat ping, if any. */
  lastPing?: Date;
  /** The agent's version, once it answered. */
  agentVersion?: string;
}

/** Who the user is and where from, for the node's audit log. */
export interface TunnelDialOptions {
  clientSrcAddr?: string;
  clientDstAddr?: string;
}

interface Tunnel {
  info: TunnelInfo;
  conn: SshConnection<AgentIdentity>;
  discovery?: SshChannel;
}

interface AgentIdentity {
  hostId: string;
}

const HOST_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Reverse tunnel server and registry; see the module doc. */
export class TunnelServer implements AsyncDisposable {
  #o: TunnelServerOptions;
  readonly #tunnels = new Map<string, Set<Tunnel>>();
  readonly #log: Logger;
  readonly #ac = new AbortController();
  #server!: SshServer<AgentIdentity>;
  #proxies: string[];
  #draining = false;
  #changed = new Set<() => void>();
  #discoveryLoop: Promise<void> = Promise.resolve();

  private constructor(o: TunnelServerOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#proxies = [o.proxyId];
  }

  /**
   * Presents another certificate of the same host key (a CA rotation re-issued it) from the next
   * connection on; open connections keep theirs.
   */
  setHostCertificate(certificate: Uint8Array): void {
    this.#server.setHostCertificate(certificate);
    this.#o = { ...this.#o, hostCertificate: certificate };
  }

  /** Starts the SSH server (and its listener when `listen` is given). */
  static async start(o: TunnelServerOptions): Promise<TunnelServer> {
    const s = new TunnelServer(o);
    s.#server = await startSshServer<AgentIdentity>({
      hostKey: o.hostKey,
      hostCertificate: o.hostCertificate,
      logger: o.logger,
      keepaliveIntervalMs: o.keepaliveIntervalMs ?? 30_000,
      ...(o.listen ? { listen: o.listen } : {}),
      ...(o.guard === undefined ? {} : { guard: o.guard }),
      ...(o.loginTimeoutMs === undefined ? {} : { handshakeTimeoutMs: o.loginTimeoutMs }),
      name: "reverse tunnel",
      authenticate: (req) => s.#authenticate(req.username, req.certificate),
      onAuthFailure: (f) =>
        o.logger.info("Refused reverse tunnel login {user} from {addr}: {reason}", {
          user: f.username,
          addr: f.remoteAddr,
          reason: f.reason,
        }),
      onConnection: (conn) => s.#onConnection(conn),
      handlers: {
        session: (open) =>
          open.reject({
            message: "this is the reverse tunnel port of the proxy: SSH sessions go to the " +
              "proxy's SSH port (tsh ssh, or ssh with the config from tsh config)",
          }),
        channels: {
          [HEARTBEAT_CHANNEL]: (open) => s.#onHeartbeat(open),
          [TRANSPORT_CHANNEL]: (open) => s.#onAgentTransport(open),
        },
      },
    });
    if (o.listProxies !== undefined) s.#discoveryLoop = s.#runDiscovery();
    return s;
  }

  /** The bound address when listening. */
  get addr(): { hostname: string; port: number } {
    return this.#server.addr;
  }

  /** Number of live tunnel connections. */
  get connectionCount(): number {
    let n = 0;
    for (const set of this.#tunnels.values()) n += set.size;
    return n;
  }

  /** Serves a connection accepted elsewhere (the multiplexer, a separate listener). */
  handleSocket(socket: Duplex, addrs?: SocketAddresses): void {
    if (this.#draining) {
      socket.destroy();
      return;
    }
    this.#server.handleSocket(socket, addrs);
  }

  /** Whether a node holds a tunnel to this proxy. */
  has(hostId: string): boolean {
    return (this.#tunnels.get(hostId)?.size ?? 0) > 0;
  }

  /** Every live tunnel connection. */
  tunnels(): TunnelInfo[] {
    return [...this.#tunnels.values()].flatMap((set) => [...set].map((t) => ({ ...t.info })));
  }

  /**
   * Resolves true once `hostId` has a tunnel to this proxy, or false when `timeoutMs` passed
   * first (or the server drains).
   */
  async waitFor(hostId: string, timeoutMs: number): Promise<boolean> {
    const deadline = this.#o.clock.now().getTime() + timeoutMs;
    while (!this.has(hostId)) {
      const left = deadline - this.#o.clock.now().getTime();
      if (left <= 0 || this.#draining) return false;
      await Promise.race([this.changed(), this.#o.clock.sleep(Math.min(left, 250))]);
    }
    return true;
  }

  /** Resolves the next time a tunnel connects or disconnects (for tests and readiness). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#changed.add(resolve));
  }

  /**
   * Opens a connection to the SSH service of a tunnel node. Tries the node's connections,
   * newest first; throws NotFoundError when it has none, ConnectionProblemError when every
   * one failed (the reason the agent gave included).
   */
  async dial(hostId: string, o: TunnelDialOptions = {}): Promise<Duplex> {
    const set = this.#tunnels.get(hostId);
    if (set === undefined || set.size === 0) {
      throw new NotFoundError(`node ${hostId} has no reverse tunnel to this proxy`);
    }
    const request = encodeDialRequest({
      address: LOCAL_NODE_ADDR,
      server_id: `${hostId}.${this.#o.clusterName}`,
      conn_type: "node",
      ...(o.clientSrcAddr ? { client_src_addr: o.clientSrcAddr } : {}),
      ...(o.clientDstAddr ? { client_dst_addr: o.clientDstAddr } : {}),
    });
    const reasons: string[] = [];
    for (const t of [...set].reverse()) {
      let channel: SshChannel | undefined;
      try {
        channel = await t.conn.openChannel(TRANSPORT_CHANNEL);
        const stderr: Uint8Array[] = [];
        channel.stderr.on("data", (d: Uint8Array) => stderr.push(d));
        if (await channel.request(TRANSPORT_DIAL_REQUEST, request)) {
          return copyingStream(channel);
        }
        const why = new TextDecoder().decode(
          concatBytes(...stderr),
        ).trim();
        reasons.push(why || "the agent refused the dial request");
        channel.close();
      } catch (err) {
        channel?.destroy();
        reasons.push(messageOf(err));
      }
    }
    throw new ConnectionProblemError(
      `Cannot reach node ${hostId} through its reverse tunnel: ${reasons.join("; ")}`,
    );
  }

  /**
   * Asks every agent to reconnect to another proxy, refuses new tunnels, and waits until the
   * agents have gone (or `timeoutMs`, or `signal` aborts); then closes what is left. An agent
   * leaves a draining proxy once the sessions its tunnel carries have ended.
   */
  async drain(timeoutMs = 5_000, signal?: AbortSignal): Promise<void> {
    this.#draining = true;
    const all = [...this.#tunnels.values()].flatMap((s) => [...s]);
    if (all.length === 0) return;
    this.#log.info("Asking {count} reverse tunnel agents to reconnect to another proxy", {
      count: all.length,
    });
    for (const t of all) {
      t.conn.globalRequest(RECONNECT_REQUEST, undefined, { wantReply: false }).catch(() => {});
    }
    const deadline = this.#o.clock.now().getTime() + timeoutMs;
    while (
      this.connectionCount > 0 && this.#o.clock.now().getTime() < deadline && !signal?.aborted
    ) {
      const left = deadline - this.#o.clock.now().getTime();
      await Promise.race([this.changed(), this.#o.clock.sleep(Math.min(left, 250))]);
    }
    for (const set of this.#tunnels.values()) for (const t of set) t.conn.close();
  }

  /** Closes every tunnel and the server. */
  async close(): Promise<void> {
    this.#ac.abort();
    this.#draining = true;
    await this.#server.close();
    await this.#discoveryLoop.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #authenticate(
    username: string,
    cert: SshCertificate,
  ): Promise<{ ok: true; context: AgentIdentity } | { ok: false; reason: string }> {
    if (!HOST_ID_RE.test(username)) return { ok: false, reason: "not a host UUID" };
    if (cert.certType !== "host") {
      return { ok: false, reason: "a reverse tunnel needs a host certificate" };
    }
    try {
      await verifySshCertificate(cert, {
        trustedCaKeys: this.#o.hostCaKeys(),
        certType: "host",
        principal: username,
        now: this.#o.clock.now(),
      });
    } catch (err) {
      return { ok: false, reason: messageOf(err) };
    }
    const authority = cert.extensions["x-teleport-authority"];
    if (authority !== this.#o.clusterName) {
      return { ok: false, reason: `certificate of cluster ${JSON.stringify(authority ?? "")}` };
    }
    const role = (cert.extensions["x-teleport-role"] ?? "").toLowerCase();
    if (role !== "node") {
      return {
        ok: false,
        reason: `role ${JSON.stringify(role)} cannot hold a reverse tunnel (only nodes can)`,
      };
    }
    if (this.#draining) return { ok: false, reason: "the proxy is shutting down" };
    return { ok: true, context: { hostId: username } };
  }

  #onConnection(conn: SshConnection<AgentIdentity>): void {
    const hostId = conn.context.hostId;
    if (this.#draining) {
      conn.close();
      return;
    }
    const tunnel: Tunnel = {
      conn,
      info: { hostId, remoteAddr: conn.remoteAddr, connectedAt: this.#o.clock.now() },
    };
    let set = this.#tunnels.get(hostId);
    if (set === undefined) this.#tunnels.set(hostId, set = new Set());
    set.add(tunnel);
    this.#log.info("Reverse tunnel from node {host} ({addr}) is up", {
      host: hostId,
      addr: conn.remoteAddr,
    });
    this.#notify();
    const none = undefined;
    conn.globalRequest(HOST_CERT_REQUEST, this.#o.hostCertificate, { wantReply: false })
      .catch(() => none);
    conn.globalRequest(VERSION_REQUEST, new TextEncoder().encode(this.#o.version))
      .then((r) => {
        if (r.ok && r.data.length > 0) {
          tunnel.info.agentVersion = new TextDecoder().decode(r.data).slice(0, 64);
        }
      }, () => none);
    conn.openChannel(DISCOVERY_CHANNEL).then((ch) => {
      tunnel.discovery = ch;
      ch.on("error", () => {});
      return ch.request(DISCOVERY_REQUEST, encodeDiscovery(this.#proxies), { wantReply: false });
    }).catch((err) =>
      this.#log.debug("Cannot send the proxy list to node {host}: {error}", {
        host: hostId,
        error: messageOf(err),
      })
    );
    conn.closed.then(() => {
      set!.delete(tunnel);
      if (set!.size === 0 && this.#tunnels.get(hostId) === set) this.#tunnels.delete(hostId);
      this.#log.info("Reverse tunnel from node {host} ({addr}) is down", {
        host: hostId,
        addr: conn.remoteAddr,
      });
      this.#notify();
    });
  }

  #onHeartbeat(open: IncomingChannelOpen & { conn: SshConnection<AgentIdentity> }): void {
    const ch = open.accept();
    ch.on("error", () => {});
    ch.resume(); // no data is expected; never let it fill a buffer
    ch.onRequest((req) => {
      if (req.name !== PING_REQUEST) return req.reject();
      const set = this.#tunnels.get(open.conn.context.hostId);
      for (const t of set ?? []) if (t.conn === open.conn) t.info.lastPing = this.#o.clock.now();
      req.accept();
    });
  }

  #onAgentTransport(open: IncomingChannelOpen & { conn: SshConnection<AgentIdentity> }): void {
    const ch = open.accept();
    ch.on("error", () => {});
    let asked = false;
    ch.onRequest(async (req) => {
      if (req.name !== TRANSPORT_DIAL_REQUEST || asked) return req.reject();
      asked = true;
      const refuse = (why: string) => {
        ch.writeStderr(`${why}\n`);
        req.reject();
        ch.close();
      };
      let address: string;
      try {
        address = decodeDialRequest(req.data).address;
      } catch (err) {
        return refuse(messageOf(err));
      }
      if (address !== REMOTE_AUTH_ADDR) {
        this.#log.warn("Node {host} asked the proxy to dial {addr}; refused", {
          host: open.conn.context.hostId,
          addr: address,
        });
        return refuse(`the proxy dials only ${REMOTE_AUTH_ADDR} for agents`);
      }
      let auth: Duplex;
      try {
        auth = await this.#o.dialAuth();
      } catch (err) {
        return refuse(`Cannot reach the auth service: ${messageOf(err)}`);
      }
      req.accept();
      spliceChannel(ch, auth);
    });
  }

  async #runDiscovery(): Promise<void> {
    const signal = this.#ac.signal;
    const interval = this.#o.discoveryIntervalMs ?? 10_000;
    while (!signal.aborted) {
      try {
        const ids = [...new Set([this.#o.proxyId, ...(await this.#o.listProxies!())])].sort();
        if (ids.join(",") !== [...this.#proxies].sort().join(",")) {
          this.#proxies = ids;
          this.#log.debug("Proxies of the cluster: {ids}", { ids: ids.join(", ") });
          const msg = encodeDiscovery(ids);
          for (const set of this.#tunnels.values()) {
            for (const t of set) {
              t.discovery?.request(DISCOVERY_REQUEST, msg, { wantReply: false }).catch(() => {});
            }
          }
        }
      } catch (err) {
        this.#log.debug("Cannot list the proxies: {error}", { error: messageOf(err) });
      }
      try {
        await this.#o.clock.sleep(interval, signal);
      } catch {
        return;
      }
    }
  }

  #notify(): void {
    const waiters = [...this.#changed];
    this.#changed.clear();
    for (const w of waiters) w();
  }
}
