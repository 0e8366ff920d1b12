/**
 * The agent's side of reverse tunnels: a pool of SSH connections from a node to the proxies of
 * its cluster. Each connection logs in as the node's host UUID with its host certificate and is
 * trusted only once the proxy's host certificate (sent right after login, see
 * `HOST_CERT_REQUEST`) is signed by the cluster's host CA, is a proxy's, certifies the key the
 * proxy proved in the key exchange, and lists the host the agent dialled. The pool keeps
 * dialling the tunnel address (often a load balancer) until it holds a tunnel to every proxy
 * the proxies announce (`teleport-discovery`); failures back off exponentially with jitter, and
 * a proxy that drains (`reconnect@goteleport.com`) is replaced before it goes away. Trusted
 * connections serve `teleport-transport` channels that ask for the local SSH service, and carry
 * the node's own traffic to auth (`@remote-auth-server`).
 */
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { bytesEqual, concatBytes, parseSshCertificate, verifySshCertificate } from "../ca/mod.ts";
import { joinHostPort } from "../net/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { AccessDeniedError, ConnectionProblemError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  connectSsh,
  copyingStream,
  type IncomingChannelOpen,
  type IncomingGlobalRequest,
  type SshChannel,
  type SshClient,
} from "../ssh/mod.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import {
  decodeDialRequest,
  decodeDiscovery,
  type DialRequest,
  DISCOVERY_CHANNEL,
  DISCOVERY_REQUEST,
  encodeDialRequest,
  HEARTBEAT_CHANNEL,
  HOST_CERT_REQUEST,
  LOCAL_NODE_ADDR,
  PING_REQUEST,
  proxyIdOf,
  RECONNECT_REQUEST,
  REMOTE_AUTH_ADDR,
  TRANSPORT_CHANNEL,
  TRANSPORT_DIAL_REQUEST,
  VERSION_REQUEST,
} from "./protocol.ts";
import type { TunnelAddr } from "./resolve.ts";

/** The ALPN protocol of reverse tunnels through the proxy's TLS port. */
export const REVERSE_TUNNEL_ALPN = "teleport-reversetunnel";

/** Inputs of {@link AgentPool.start}. */
export interface AgentPoolOptions {
  /** The node's host UUID: the SSH login. */
  hostId: string;
  clusterName: string;
  /** The node's host key and SSH host certificate (blob; see {@link AgentPool.setCertificate}). */
  key: { privateKey: CryptoKey; publicKeyBlob: Uint8Array };
  certificate: Uint8Array;
  /** The cluster's host CA keys (blobs), read at each connection. */
  hostCaKeys: () => Uint8Array[];
  /**
   * Where to dial; asked before every attempt. Cache what it reads (e.g. `/webapi/find`): a
   * round-robin load balancer that also carries that request would otherwise send every
   * tunnel attempt to the same proxy.
   */
  resolve: () => Promise<TunnelAddr>;
  /** Opens the TCP stream (lib/net: honours HTTPS_PROXY and NO_PROXY). */
  dial: (host: string, port: number) => Promise<Duplex>;
  /**
   * Dials the stream the TLS (ALPN `teleport-reversetunnel`) runs over on a TLS-routing
   * address, e.g. inside `/webapi/connectionupgrade` behind an HTTP-only load balancer.
   * @default {dial}
   */
  dialTls?: (host: string, port: number) => Promise<Duplex>;
  /** Serves a connection the proxy forwards to this node's SSH service. */
  serveLocalNode: (stream: Duplex, request: DialRequest) => void;
  /** Answered to the proxy's version request. */
  version: string;
  clock: Clock;
  logger: Logger;
  /** Interval of `teleport-heartbeat` pings. @default {60000} */
  heartbeatIntervalMs?: number;
  /** Interval of SSH keepalive probes (dead proxy detection); 0 disables. @default {15000} */
  keepaliveIntervalMs?: number;
  /** Time allowed for dial, TLS, SSH login and the proxy's certificate. @default {30000} */
  connectTimeoutMs?: number;
  /** Backoff after failed attempts. @default {{ baseMs: 1000, maxMs: 30000 }} */
  backoff?: BackoffOptions;
  /** Backoff after reaching a proxy that already has a tunnel. @default {{ baseMs: 500, maxMs: 8000 }} */
  duplicateBackoff?: BackoffOptions;
}

/** A live, trusted tunnel. */
interface AgentConn {
  proxyId: string;
  addr: string;
  client: SshClient;
  draining: boolean;
  /**
   * A draining connection still takes transports for {@link DRAIN_GRACE_MS} (its proxy may
   * still serve clients it accepted before it began draining: a graceful restart); then it is
   * retired: it takes no more and closes when none is left.
   */
  retired: boolean;
  graceTimer?: ReturnType<typeof setTimeout>;
  /** Transport channels being served; a retired connection closes when none is left. */
  active: number;
}

/** How long a transport that arrives before the proxy is verified waits for that check. */
const VERIFY_WAIT_MS = 10_000;

/** How long a connection whose proxy asked it to move still takes transports. */
const DRAIN_GRACE_MS = 10_000;

/** The state of one connection while it is set up. */
interface Pending {
  verified: boolean;
  /** Settles true once the proxy is verified, false if the connection ends first. */
  settled: PromiseWithResolvers<boolean>;
  draining: boolean;
  hostCert: PromiseWithResolvers<Uint8Array>;
  discovery: string[] | undefined;
  conn?: AgentConn;
}

/** Reverse tunnel agent pool; see the module doc. */
export class AgentPool implements AsyncDisposable {
  #o: AgentPoolOptions;
  readonly #log: Logger;
  readonly #ac = new AbortController();
  readonly #conns = new Map<string, AgentConn>();
  readonly #backoff: Backoff;
  readonly #dupBackoff: Backoff;
  #expected = new Set<string>();
  #wake: (() => void) | undefined;
  #waiters = new Set<() => void>();
  #loop: Promise<void> = Promise.resolve();
  #failures = 0;

  private constructor(o: AgentPoolOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#backoff = new Backoff(o.backoff ?? { baseMs: 1000, maxMs: 30_000 });
    this.#dupBackoff = new Backoff(o.duplicateBackoff ?? { baseMs: 500, maxMs: 8000 });
  }

  /** Starts dialling in the background. */
  static start(o: AgentPoolOptions): AgentPool {
    const pool = new AgentPool(o);
    pool.#loop = pool.#run();
    return pool;
  }

  /**
   * Logs in with another certificate of the same host key (a CA rotation re-issued it) from the
   * next tunnel on; tunnels already up stay.
   */
  setCertificate(certificate: Uint8Array): void {
    this.#o = { ...this.#o, certificate };
  }

  /** IDs of the proxies this agent holds a tunnel to (draining ones excluded). */
  get proxies(): string[] {
    return [...this.#conns.values()].filter((c) => !c.draining).map((c) => c.proxyId).sort();
  }

  /** Resolves once at least one tunnel is up (rejects when the pool closes). */
  async ready(): Promise<void> {
    while (this.proxies.length === 0) {
      if (this.#ac.signal.aborted) throw new ConnectionProblemError("Reverse tunnel pool closed");
      await this.changed();
    }
  }

  /** Resolves the next time a tunnel comes up or goes down. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.add(resolve));
  }

  /**
   * Opens a stream to an auth server of the cluster through a tunnel (the proxy dials auth);
   * waits for a tunnel when none is up, up to `timeoutMs`.
   */
  async dialAuth(timeoutMs = 30_000): Promise<Duplex> {
    const deadline = this.#o.clock.now().getTime() + timeoutMs;
    const reasons: string[] = [];
    while (true) {
      for (const c of [...this.#conns.values()].filter((c) => !c.draining)) {
        try {
          return await this.#openTransport(c.client, REMOTE_AUTH_ADDR);
        } catch (err) {
          reasons.push(`proxy ${c.proxyId}: ${messageOf(err)}`);
        }
      }
      const left = deadline - this.#o.clock.now().getTime();
      if (left <= 0 || this.#ac.signal.aborted) {
        throw new ConnectionProblemError(
          `Cannot reach the auth service through the reverse tunnel: ${
            reasons.length > 0 ? reasons.join("; ") : "no tunnel to any proxy is up"
          }`,
        );
      }
      await Promise.race([this.changed(), this.#o.clock.sleep(Math.min(left, 1000))]);
    }
  }

  /** Closes every tunnel and stops dialling. */
  async close(): Promise<void> {
    this.#ac.abort();
    for (const c of this.#conns.values()) clearTimeout(c.graceTimer);
    this.#notify();
    await Promise.all([...this.#conns.values()].map((c) => c.client.close().catch(() => {})));
    await this.#loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Whether another tunnel is wanted: none is up, or an announced proxy has none. */
  #needMore(): boolean {
    const live = new Set(this.proxies);
    if (live.size === 0) return true;
    for (const id of this.#expected) if (!live.has(id)) return true;
    return false;
  }

  async #run(): Promise<void> {
    const signal = this.#ac.signal;
    while (!signal.aborted) {
      if (!this.#needMore()) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      let delay = 0;
      try {
        const addr = await this.#o.resolve();
        const result = await this.#connect(addr);
        this.#failures = 0;
        this.#backoff.reset();
        if (result === "duplicate") delay = this.#dupBackoff.next();
        else this.#dupBackoff.reset();
      } catch (err) {
        if (signal.aborted) break;
        this.#failures++;
        delay = this.#backoff.next();
        const props = { n: this.#failures, ms: delay, error: messageOf(err) };
        const msg = "Cannot open a reverse tunnel (attempt {n}), retrying in {ms} ms: {error}";
        if (this.#failures === 1 || this.#failures % 10 === 0) this.#log.warn(msg, props);
        else this.#log.debug(msg, props);
      }
      if (delay > 0) {
        try {
          await this.#o.clock.sleep(delay, signal);
        } catch {
          break;
        }
      }
    }
  }

  /** One attempt: dial, log in, check the proxy; "duplicate" when that proxy has a tunnel. */
  async #connect(addr: TunnelAddr): Promise<"new" | "duplicate"> {
    const o = this.#o;
    const where = joinHostPort(addr.host, addr.port);
    const timeoutMs = o.connectTimeoutMs ?? 30_000;
    const abort = AbortSignal.any([this.#ac.signal, AbortSignal.timeout(timeoutMs)]);
    const state: Pending = {
      verified: false,
      settled: Promise.withResolvers<boolean>(),
      draining: false,
      hostCert: Promise.withResolvers<Uint8Array>(),
      discovery: undefined,
    };
    state.hostCert.promise.catch(() => {});
    const dial = addr.tls && o.dialTls !== undefined ? o.dialTls : o.dial;
    let stream = await withAbort(dial(addr.host, addr.port), abort, where);
    if (addr.tls) stream = await startTls(stream, addr.host, abort, where);
    const client = await connectSsh({
      socket: stream,
      username: o.hostId,
      key: o.key,
      certificate: o.certificate,
      // The plain key is bound to the certificate checked below, before anything is trusted.
      verifyHostKey: () => true,
      timeoutMs,
      signal: abort,
      keepaliveIntervalMs: o.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: 3,
      logger: o.logger,
      onGlobalRequest: (req) => this.#onGlobalRequest(state, req),
      channels: {
        [TRANSPORT_CHANNEL]: (open) => this.#onTransport(state, open),
        [DISCOVERY_CHANNEL]: (open) => this.#onDiscovery(state, open),
      },
      refuseChannel: (type) => ({
        reason: "unknown-channel-type",
        message: `this is a node's reverse tunnel: ${type} channels are not served here; ` +
          "reach the node through the proxy (tsh ssh)",
      }),
    });
    let proxyId: string;
    try {
      const certBlob = await Promise.race([
        state.hostCert.promise,
        client.closed.then(() => {
          throw new ConnectionProblemError(`the proxy at ${where} closed the connection`);
        }),
        new Promise<never>((_, reject) => {
          const onAbort = () =>
            reject(
              new ConnectionProblemError(
                `the proxy at ${where} sent no host certificate (is it a proxy of this cluster?)`,
              ),
            );
          if (abort.aborted) onAbort();
          abort.addEventListener("abort", onAbort, { once: true });
        }),
      ]);
      proxyId = await this.#verifyProxy(certBlob, client.hostKey, addr.host, where);
    } catch (err) {
      state.settled.resolve(false);
      await client.close().catch(() => {});
      throw err;
    }
    void client.closed.then(() => state.settled.resolve(false));
    const existing = this.#conns.get(proxyId);
    if (existing !== undefined && !existing.draining) {
      this.#log.debug("Proxy {proxy} at {addr} already has a tunnel; trying again", {
        proxy: proxyId,
        addr: where,
      });
      await client.close().catch(() => {});
      return "duplicate";
    }
    const conn: AgentConn = {
      proxyId,
      addr: where,
      client,
      draining: state.draining,
      retired: state.draining,
      active: 0,
    };
    // The connection this one replaces (its proxy asked the agent to move) keeps taking
    // transports until its grace period ends: that proxy, or the old process of a restarted
    // one with the same id, may still serve clients it accepted before it began draining.
    this.#conns.set(proxyId, conn);
    state.conn = conn;
    state.verified = true;
    state.settled.resolve(true);
    if (state.discovery !== undefined) this.#setExpected(state.discovery);
    this.#log.info("Reverse tunnel to proxy {proxy} at {addr} is up", {
      proxy: proxyId,
      addr: where,
    });
    void this.#heartbeat(conn);
    client.closed.then(() => {
      clearTimeout(conn.graceTimer);
      if (this.#conns.get(proxyId) === conn) this.#conns.delete(proxyId);
      this.#log.info("Reverse tunnel to proxy {proxy} at {addr} is down", {
        proxy: proxyId,
        addr: where,
      });
      this.#notify();
    });
    this.#notify();
    this.#closeIfIdle(conn);
    return "new";
  }

  async #verifyProxy(
    certBlob: Uint8Array,
    presentedKey: Uint8Array,
    dialledHost: string,
    where: string,
  ): Promise<string> {
    const deny = (why: string): never => {
      throw new AccessDeniedError(`Cannot trust the proxy at ${where}: ${why}`);
    };
    let cert;
    try {
      cert = parseSshCertificate(certBlob);
    } catch (err) {
      return deny(`its host certificate does not parse (${messageOf(err)})`);
    }
    try {
      await verifySshCertificate(cert, {
        trustedCaKeys: this.#o.hostCaKeys(),
        certType: "host",
        now: this.#o.clock.now(),
      });
    } catch (err) {
      return deny(`${messageOf(err)} (is it a proxy of cluster ${this.#o.clusterName}?)`);
    }
    if (!cert.principals.includes(dialledHost)) {
      deny(
        `its host certificate does not list ${JSON.stringify(dialledHost)} (it lists ${
          cert.principals.join(", ")
        }); add that name to the proxy's public_addr (or tunnel_public_addr), or dial a listed ` +
          "name with TELEPORT_TUNNEL_PUBLIC_ADDR",
      );
    }
    const authority = cert.extensions["x-teleport-authority"] ?? "";
    if (authority !== this.#o.clusterName) {
      deny(`its certificate is for cluster ${JSON.stringify(authority)}`);
    }
    const role = cert.extensions["x-teleport-role"] ?? "";
    if (role.toLowerCase() !== "proxy") {
      deny(`its certificate is not a proxy's (role ${JSON.stringify(role)})`);
    }
    if (!bytesEqual(cert.publicKeyBlob, presentedKey)) {
      deny("the certificate is not for the key it proved in the SSH handshake");
    }
    const id = proxyIdOf(cert.principals);
    if (id === undefined) return deny("its certificate names no host");
    return id;
  }

  #onGlobalRequest(state: Pending, req: IncomingGlobalRequest): void {
    switch (req.name) {
      case HOST_CERT_REQUEST:
        state.hostCert.resolve(req.data);
        return req.accept();
      case VERSION_REQUEST:
        return req.accept(new TextEncoder().encode(this.#o.version));
      case RECONNECT_REQUEST:
        state.draining = true;
        req.accept();
        if (state.conn !== undefined) {
          const conn = state.conn;
          conn.draining = true;
          this.#log.info("Proxy {proxy} is shutting down; connecting to another proxy", {
            proxy: conn.proxyId,
          });
          this.#expected.delete(conn.proxyId);
          conn.graceTimer ??= setTimeout(() => this.#retire(conn), DRAIN_GRACE_MS);
          Deno.unrefTimer(conn.graceTimer);
        }
        this.#notify();
        return;
      default:
        return req.reject();
    }
  }

  #onTransport(state: Pending, open: IncomingChannelOpen): void | Promise<void> {
    if (!state.verified) {
      // The proxy may use the tunnel as soon as it logged the agent in, a moment before the
      // agent has checked the proxy's certificate (a proxy that just started dials at once):
      // the channel waits for that check instead of failing.
      // (The returned promise keeps the open unanswered until then.)
      let timer: ReturnType<typeof setTimeout> | undefined;
      return Promise.race([
        state.settled.promise,
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), VERIFY_WAIT_MS)),
      ]).then((ok) => {
        clearTimeout(timer);
        if (ok && state.verified) return this.#onTransport(state, open);
        open.reject({ message: "the proxy's host certificate is not verified" });
      });
    }
    if (state.conn === undefined ? state.draining : state.conn.retired) {
      return open.reject({ message: "agent connection is draining" });
    }
    const ch = open.accept();
    const stream = copyingStream(ch);
    stream.on("error", () => {});
    let asked = false;
    ch.onRequest((req) => {
      if (req.name !== TRANSPORT_DIAL_REQUEST || asked) return req.reject();
      asked = true;
      let dial: DialRequest;
      try {
        dial = decodeDialRequest(req.data);
      } catch (err) {
        ch.writeStderr(`${messageOf(err)}\n`);
        req.reject();
        return ch.close();
      }
      if (dial.address !== LOCAL_NODE_ADDR) {
        this.#log.warn("The proxy asked this node to dial {addr}; refused", { addr: dial.address });
        ch.writeStderr(`this node serves only ${LOCAL_NODE_ADDR} through its reverse tunnel\n`);
        req.reject();
        return ch.close();
      }
      req.accept();
      const conn = state.conn;
      if (conn !== undefined) {
        conn.active++;
        ch.once("close", () => {
          conn.active--;
          this.#closeIfIdle(conn);
        });
      }
      try {
        this.#o.serveLocalNode(stream, dial);
      } catch (err) {
        this.#log.error("Cannot serve a tunnelled SSH connection: {error}", {
          error: messageOf(err),
        });
        stream.destroy();
      }
    });
  }

  #onDiscovery(state: Pending, open: IncomingChannelOpen): void {
    const ch = open.accept();
    ch.on("error", () => {});
    ch.resume();
    ch.onRequest((req) => {
      if (req.name !== DISCOVERY_REQUEST) return req.reject();
      let ids: string[];
      try {
        ids = decodeDiscovery(req.data);
      } catch (err) {
        this.#log.debug("Ignoring a bad discovery message: {error}", { error: messageOf(err) });
        return req.reject();
      }
      req.accept();
      if (state.verified) this.#setExpected(ids);
      else state.discovery = ids;
    });
  }

  /** A retired connection goes once the sessions it carries have ended. */
  #retire(conn: AgentConn): void {
    clearTimeout(conn.graceTimer);
    conn.draining = true;
    conn.retired = true;
    this.#closeIfIdle(conn);
  }

  #closeIfIdle(conn: AgentConn): void {
    if (!conn.retired || conn.active > 0) return;
    this.#log.debug("Closing the drained tunnel to proxy {proxy}", { proxy: conn.proxyId });
    void conn.client.close().catch(() => {});
  }

  #setExpected(ids: string[]): void {
    const draining = new Set(
      [...this.#conns.values()].filter((c) => c.draining).map((c) => c.proxyId),
    );
    const next = new Set(ids.filter((id) => !draining.has(id)));
    if ([...next].sort().join() === [...this.#expected].sort().join()) return;
    this.#expected = next;
    this.#log.debug("Proxies to hold tunnels to: {ids}", { ids: [...next].join(", ") });
    this.#notify();
  }

  async #heartbeat(conn: AgentConn): Promise<void> {
    let ch: SshChannel;
    try {
      ch = await conn.client.openChannel(HEARTBEAT_CHANNEL);
    } catch (err) {
      this.#log.debug("Cannot open the heartbeat channel to {proxy}: {error}", {
        proxy: conn.proxyId,
        error: messageOf(err),
      });
      return;
    }
    ch.on("error", () => {});
    ch.resume();
    const signal = this.#ac.signal;
    let open = true;
    conn.client.closed.then(() => {
      open = false;
      ch.destroy();
    });
    ch.once("close", () => open = false);
    while (!signal.aborted && open) {
      const now = this.#o.clock.now().toISOString();
      await ch.request(PING_REQUEST, new TextEncoder().encode(now), { wantReply: false })
        .catch(() => {});
      try {
        await Promise.race([
          this.#o.clock.sleep(this.#o.heartbeatIntervalMs ?? 60_000, signal),
          conn.client.closed,
        ]);
      } catch {
        return;
      }
    }
  }

  async #openTransport(client: SshClient, address: string): Promise<Duplex> {
    const ch = await client.openChannel(TRANSPORT_CHANNEL);
    const stderr: Uint8Array[] = [];
    ch.stderr.on("data", (d: Uint8Array) => stderr.push(d));
    const stream = copyingStream(ch);
    if (await ch.request(TRANSPORT_DIAL_REQUEST, encodeDialRequest({ address }))) return stream;
    stream.destroy();
    const why = new TextDecoder().decode(concatBytes(...stderr)).trim();
    throw new ConnectionProblemError(why || `the proxy refused to dial ${address}`);
  }

  #notify(): void {
    this.#wake?.();
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }
}

async function withAbort<T>(p: Promise<T>, signal: AbortSignal, where: string): Promise<T> {
  if (signal.aborted) throw new ConnectionProblemError(`Cannot connect to ${where}: aborted`);
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new ConnectionProblemError(`Cannot connect to ${where}: timed out`));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([p, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * TLS with ALPN `teleport-reversetunnel` around the tunnel (multiplex mode). The proxy's web
 * certificate is not what the agent trusts (it is often self-signed): the SSH layer inside is
 * authenticated by the cluster's host CA.
 */
function startTls(raw: Duplex, host: string, signal: AbortSignal, where: string): Promise<Duplex> {
  return withAbort(
    new Promise<Duplex>((resolve, reject) => {
      const sock = tls.connect({
        socket: raw,
        ...(isIP(host) === 0 ? { servername: host } : {}),
        ALPNProtocols: [REVERSE_TUNNEL_ALPN],
        rejectUnauthorized: false,
      });
      sock.once("error", (err) => {
        raw.destroy();
        reject(new ConnectionProblemError(`Cannot connect to ${where} over TLS: ${err.message}`));
      });
      sock.once("secureConnect", () => {
        if (sock.alpnProtocol !== REVERSE_TUNNEL_ALPN) {
          sock.destroy();
          return reject(
            new ConnectionProblemError(
              `Cannot open a reverse tunnel to ${where}: it does not take ${REVERSE_TUNNEL_ALPN} ` +
                "over TLS (is it the proxy's web port, in multiplex mode?)",
            ),
          );
        }
        sock.removeAllListeners("error");
        sock.on("error", () => {}); // later errors reach the SSH client through close
        resolve(sock);
      });
    }),
    signal,
    where,
  ).catch((err) => {
    raw.destroy();
    throw err;
  });
}
