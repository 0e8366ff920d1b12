/**
 * The proxy's one-port listener (protocol notes §1, DESIGN.md §5 "TLS routing"): one node:net
 * server that reads the first bytes of every connection and hands it on.
 *
 * 1. Accept through the process's {@linkcode ConnectionGuard} (caps per client IP, descriptor
 *    reserve, one deadline until the connection is established).
 * 2. Read until {@linkcode sniffProtocol} decides. A PROXY v1/v2 header (from a load balancer)
 *    is taken off first, as `proxyProtocol` says (below), and the rest is sniffed again. `SSH-`
 *    goes to `handlers.ssh` with the bytes put back; plain HTTP gets a 400 that points at
 *    https:// (or, with `plainHttp`, goes to `handlers.web`); anything unknown is closed.
 * 3. TLS: keep reading (under the same deadline) until {@linkcode parseClientHello} has the
 *    whole ClientHello, then {@linkcode routeForAlpn} picks the route.
 * 4. Passthrough routes (auth) get the raw socket with the ClientHello bytes put back untouched.
 *    Terminated routes get a server TLSSocket built on the paused socket (certificate chosen by
 *    SNI, ALPN answered per route) once its handshake completes.
 *
 * A socket is "handed over" when its handler gets it; until then the multiplexer owns it and
 * {@linkcode Multiplexer.close} destroys it.
 *
 * PROXY headers (`proxyProtocol`, Teleport's tri-state of RFD 0146):
 *
 * | mode | no header | one header | two headers |
 * |---|---|---|---|
 * | `off` | served | closed | closed |
 * | `on` | closed | served as the header's source; the guard's per-IP charge moves there | closed |
 * | `unspecified` | served | served as the header's source IP with port 0, logged at warn; the charge stays on the sender | closed |
 *
 * A `LOCAL` header (load balancer health checks) or one without addresses keeps the socket's
 * own addresses. Every handler receives the {@linkcode ConnectionSource} it should report.
 *
 * Connection upgrades (`GET /webapi/connectionupgrade`, see connection_upgrade.ts): the web
 * server passes such requests to {@linkcode Multiplexer.upgrade}, which answers `101` and routes
 * the TLS connection inside exactly as in step 3 and 4, on the same guarded connection (its
 * handshake deadline still runs) and with the same {@linkcode ConnectionSource}.
 */
import { Buffer } from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TLSSocket, type TLSSocketOptions } from "node:tls";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  attachGuard,
  ConnectionGuard,
  type GuardedConnection,
  type GuardedListener,
  guardOf,
  listenGuarded,
  parseProxyHeader,
  type ProxyHeader,
} from "../net/mod.ts";
import { type Route, routeForAlpn, type RouteName } from "./alpn.ts";
import { type ClientHello, parseClientHello } from "./client_hello.ts";
import { type KeyPairPem, type LoadedKeyPair, loadKeyPairs, pickKeyPair } from "./_key_pairs.ts";
import { sniffProtocol, type SniffResult } from "./sniff.ts";
import { acceptUpgrade, checkUpgradeRequest, upgradeRefusal } from "./connection_upgrade.ts";

export type { KeyPairPem };

/** Who the client of a connection is, as the handlers should report it (audit, logs). */
export interface ConnectionSource {
  /** The client's IP address: the socket's peer, or the source of a PROXY header. */
  remoteAddr: string;
  /** Its port; 0 when a PROXY header was accepted with `proxyProtocol: "unspecified"`. */
  remotePort: number;
  /** True when the address came from a PROXY header. */
  proxied: boolean;
}

/** `proxy_service.proxy_protocol`: see the table in this file's header. */
export type ProxyProtocolMode = "on" | "off" | "unspecified";

/**
 * Who gets each kind of connection. A route whose handler is absent is refused (the connection
 * is closed and logged at debug).
 *
 * Sockets arrive paused when bytes were put back into them (`ssh`, `auth`): read them with
 * `pipe()`, or `on("data")` followed by `resume()`. TLS-terminated sockets arrive after their
 * handshake, in the usual non-flowing state.
 */
export interface MultiplexerHandlers {
  /**
   * TLS terminated; ALPN `http/1.1` selected, or none (no ALPN, or only `h2`/`acme-tls/1`); or,
   * with `plainHttp`, a plain HTTP socket (paused, first bytes put back: after handing it to
   * node:http, call `resume()`, which Deno's node:http does not do itself). Still under the
   * handshake deadline: the handler declares it established (`markEstablished`) once the first
   * request is in.
   */
  web: (socket: TLSSocket | Socket, source: ConnectionSource) => void;
  /** TLS terminated, ALPN `teleport-proxy-ssh`: the stream inside is SSH. */
  proxySsh?: (socket: Duplex, source: ConnectionSource) => void;
  /** Plain SSH on the port; the identification bytes already read are put back. */
  ssh?: (socket: Socket, source: ConnectionSource) => void;
  /**
   * TLS passed through (ALPN `teleport-auth@…`): the raw socket, ClientHello bytes put back.
   * It is still under the handshake deadline: the handler declares it established.
   */
  auth?: (socket: Duplex, hello: ClientHello, source: ConnectionSource) => void;
  /** TLS terminated, ALPN `teleport-reversetunnel` (or `…v2`): the stream inside is SSH. */
  reverseTunnel?: (socket: Duplex, source: ConnectionSource) => void;
}

/** Options of {@linkcode startMultiplexer}. */
export interface MultiplexerOptions {
  /** Where to listen (port 0 picks a free port). */
  listen: { host: string; port: number };
  logger: Logger;
  /**
   * Certificates served on terminated routes. `certPem` may be a full chain (leaf, then
   * intermediates), served whole. The first pair is the default; another pair is chosen when
   * the client's SNI matches one of its leaf's DNS names (exact, then `*.` wildcards).
   */
  tls: { keyPairs: KeyPairPem[] };
  handlers: MultiplexerHandlers;
  /**
   * Admission control shared with the process's other listeners (caps per client IP, open
   * descriptors). @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /** Names the listener in logs. @default {"multiplexer"} */
  name?: string;
  /**
   * How long a client may take from connecting until its connection is established: bytes
   * recognised, TLS handshake done and, on the web route, its first request in. Then it is
   * closed.
   * @default {5000}
   */
  handshakeTimeoutMs?: number;
  /**
   * How long a client routed to SSH (plain, or `teleport-proxy-ssh` / reverse tunnel inside TLS)
   * may take to authenticate: SSH users may answer a host-key prompt first.
   * @default {30000}
   */
  sshLoginTimeoutMs?: number;
  /**
   * PROXY protocol headers from a load balancer in front: `on` requires one on every connection,
   * `off` refuses them, `unspecified` accepts them with the source port zeroed (and a warning).
   * @default {"off"}
   */
  proxyProtocol?: ProxyProtocolMode;
  /**
   * Serve plain HTTP on this port (to `handlers.web`) instead of answering 400: a load balancer
   * in front terminates TLS (`teleport start --insecure-no-tls`). TLS clients are still served.
   * @default {false}
   */
  plainHttp?: boolean;
  /** Ping interval of `alpn-ping` connection upgrades. @default {30000} */
  upgradePingIntervalMs?: number;
}

/** A running multiplexer. */
export interface Multiplexer extends AsyncDisposable {
  /** The bound address (the real port when 0 was asked). */
  readonly addr: { host: string; port: number };
  /**
   * Replaces the certificates for connections that start their handshake from now on. Throws
   * BadParameterError (and keeps the old ones) when a pair does not load.
   */
  setKeyPairs(pairs: KeyPairPem[]): void;
  /**
   * Serves an HTTP upgrade request (node:http's `upgrade` event) that arrived on a connection
   * this multiplexer handed to `handlers.web`: `GET /webapi/connectionupgrade` gets `101` and
   * its inner TLS connection is routed by ALPN like a connection to the port; anything else is
   * answered with its 4xx and closed.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Uint8Array): void;
  /** Stops listening and destroys the connections not handed over yet. */
  close(): Promise<void>;
  /**
   * Graceful stop: stops listening; connections accepted already are still routed to their
   * handlers. Resolves once none is left to route (each is bounded by its deadline).
   */
  stopAccepting(): Promise<void>;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;
const DEFAULT_SSH_LOGIN_TIMEOUT_MS = 30_000;

/** The handler names of each route, for log messages. */
const HANDLER_OF: Record<RouteName, keyof MultiplexerHandlers> = {
  "web": "web",
  "proxy-ssh": "proxySsh",
  "reverse-tunnel": "reverseTunnel",
  "auth": "auth",
};

interface ResolvedOptions {
  host: string;
  port: number;
  logger: Logger;
  handlers: MultiplexerHandlers;
  guard: ConnectionGuard;
  name: string;
  handshakeTimeoutMs: number;
  sshLoginTimeoutMs: number;
  proxyProtocol: ProxyProtocolMode;
  plainHttp: boolean;
  upgradePingIntervalMs: number | undefined;
}

const PROXY_PROTOCOL_MODES: readonly ProxyProtocolMode[] = ["on", "off", "unspecified"];

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) {
    throw new BadParameterError(
      `Cannot start multiplexer: ${name} must be a positive integer, received ${value}`,
    );
  }
  return value;
}

function resolveOptions(opts: MultiplexerOptions): ResolvedOptions {
  const { host, port } = opts.listen ?? {};
  if (typeof host !== "string" || host === "") {
    throw new BadParameterError("Cannot start multiplexer: listen.host is empty");
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new BadParameterError(
      `Cannot start multiplexer: listen.port must be an integer from 0 to 65535, received ${port}`,
    );
  }
  if (typeof opts.handlers?.web !== "function") {
    throw new BadParameterError("Cannot start multiplexer: handlers.web is missing");
  }
  const proxyProtocol = opts.proxyProtocol ?? "off";
  if (!PROXY_PROTOCOL_MODES.includes(proxyProtocol)) {
    throw new BadParameterError(
      `Cannot start multiplexer: proxyProtocol must be "on", "off" or "unspecified", received "${proxyProtocol}"`,
    );
  }
  return {
    host,
    port,
    logger: opts.logger,
    handlers: opts.handlers,
    guard: opts.guard ?? new ConnectionGuard({ logger: opts.logger }),
    name: opts.name ?? "multiplexer",
    handshakeTimeoutMs: positive(
      opts.handshakeTimeoutMs,
      DEFAULT_HANDSHAKE_TIMEOUT_MS,
      "handshakeTimeoutMs",
    ),
    sshLoginTimeoutMs: positive(
      opts.sshLoginTimeoutMs,
      DEFAULT_SSH_LOGIN_TIMEOUT_MS,
      "sshLoginTimeoutMs",
    ),
    proxyProtocol,
    plainHttp: opts.plainHttp ?? false,
    upgradePingIntervalMs: opts.upgradePingIntervalMs,
  };
}

/** `host:port`, IPv6 in brackets. */
function hostPort(host: string | undefined, port: number | undefined): string {
  const h = host ?? "?";
  return `${h.includes(":") ? `[${h}]` : h}:${port ?? "?"}`;
}

/** A connection the multiplexer still owns. */
interface Conn {
  /** The accepted socket, or the stream inside an upgraded connection. */
  raw: Duplex;
  tls?: TLSSocket;
  guarded?: GuardedConnection;
  remote: string;
  source: ConnectionSource;
  closed: Promise<void>;
  handedOver: boolean;
  /** It is the stream inside a connection upgrade. */
  upgraded?: boolean;
}

const HOST_HEADER = /\r\nhost:[ \t]*([^\r\n]*)\r\n/i;
const SAFE_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** The `https://…` address to suggest to a plain HTTP client. */
function httpsHint(buffered: Buffer, raw: Socket): string {
  const host = HOST_HEADER.exec(buffered.toString("latin1"))?.[1]?.trim();
  if (host !== undefined && SAFE_HOST.test(host)) return `https://${host}/`;
  return `https://${hostPort(raw.localAddress, raw.localPort)}/`;
}

class PortMultiplexer implements Multiplexer {
  #opts: ResolvedOptions;
  #log: Logger;
  #listener: GuardedListener | undefined;
  #pairs: LoadedKeyPair[];
  #pending = new Set<Conn>();
  /** Woken once no connection is left to route ({@link stopAccepting}). */
  #idle: Array<() => void> = [];
  /** Sources of the sockets handed to the web handler (for their upgrades). */
  #webSources = new WeakMap<object, ConnectionSource>();
  #closing = false;
  #addr: { host: string; port: number } = { host: "", port: 0 };

  constructor(opts: ResolvedOptions, pairs: LoadedKeyPair[]) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#pairs = pairs;
  }

  get addr(): { host: string; port: number } {
    return { ...this.#addr };
  }

  async listen(): Promise<void> {
    this.#listener = await listenGuarded({
      host: this.#opts.host,
      port: this.#opts.port,
      name: this.#opts.name,
      guard: this.#opts.guard,
      logger: this.#log,
      handshakeTimeoutMs: this.#opts.handshakeTimeoutMs,
      onConnection: (raw) => this.#accept(raw),
    });
    this.#addr = { ...this.#listener.addr };
  }

  setKeyPairs(pairs: KeyPairPem[]): void {
    this.#pairs = loadKeyPairs(pairs);
  }

  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      await this.#listener?.close();
    }
    const pending = [...this.#pending];
    for (const conn of pending) this.#destroy(conn);
    await Promise.all(pending.map((c) => c.closed));
  }

  async stopAccepting(): Promise<void> {
    await this.#listener?.stopAccepting();
    if (this.#pending.size === 0) return;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#idle.push(resolve);
    await promise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Owns `raw` (and its guard) until it is handed over or closed. */
  #track(raw: Duplex, remote: string, source: ConnectionSource): Conn {
    const { promise: closed, resolve } = Promise.withResolvers<void>();
    const conn: Conn = { raw, remote, source, closed, handedOver: false };
    const guarded = guardOf(raw);
    if (guarded !== undefined) conn.guarded = guarded;
    this.#pending.add(conn);
    raw.once("close", () => {
      this.#forget(conn);
      resolve();
    });
    return conn;
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Uint8Array): void {
    const source = this.#webSources.get(socket);
    const peer = socket as Partial<Socket>;
    const remote = source === undefined
      ? hostPort(peer.remoteAddress, peer.remotePort)
      : hostPort(source.remoteAddr, source.remotePort);
    const check = source === undefined
      ? {
        ok: false as const,
        status: 400,
        message:
          "Cannot upgrade the connection: it is inside an upgrade already, or came through another port",
      }
      : this.#closing
      ? {
        ok: false as const,
        status: 503,
        message: "Cannot upgrade the connection: the proxy is shutting down; connect again",
      }
      : checkUpgradeRequest(req);
    if (!check.ok || source === undefined) {
      const why = check.ok ? "" : check.message;
      this.#log.debug("Refused a connection upgrade from {remote}: {why}", { remote, why });
      socket.end(upgradeRefusal(check.ok ? 400 : check.status, why));
      return;
    }
    const guarded = guardOf(socket);
    let inner: Duplex;
    try {
      inner = acceptUpgrade(socket, check, head, {
        ...(this.#opts.upgradePingIntervalMs === undefined
          ? {}
          : { pingIntervalMs: this.#opts.upgradePingIntervalMs }),
      });
    } catch (err) {
      this.#log.debug("Cannot upgrade the connection from {remote}: {error}", {
        remote,
        error: messageOf(err),
      });
      socket.destroy();
      return;
    }
    if (guarded !== undefined) attachGuard(inner, guarded);
    inner.on("error", (err: Error) => {
      this.#log.debug("Upgraded connection from {remote} failed: {error}", {
        remote,
        error: err.message,
      });
      socket.destroy();
    });
    this.#log.debug(
      "Upgraded a connection from {remote} ({type}{protocol}) at /webapi/connectionupgrade; routing the TLS connection inside by ALPN",
      {
        remote,
        type: check.type,
        protocol: check.type === "websocket" ? `, subprotocol ${check.protocol}` : "",
      },
    );
    const conn = this.#track(inner, `${remote} (upgraded)`, source);
    conn.upgraded = true;
    this.#readHello(conn, Buffer.alloc(0));
  }

  #accept(raw: Socket): void {
    const remote = hostPort(raw.remoteAddress, raw.remotePort);
    if (this.#closing) {
      raw.destroy();
      return;
    }
    const conn = this.#track(raw, remote, {
      remoteAddr: raw.remoteAddress ?? "",
      remotePort: raw.remotePort ?? 0,
      proxied: false,
    });

    let buffered: Buffer = Buffer.alloc(0);
    let phase: "sniff" | "hello" | "drain" = "sniff";
    let headers = 0;
    const mode = this.#opts.proxyProtocol;
    const refuse = (why: string) => {
      phase = "drain";
      raw.off("data", onData);
      this.#log.debug("Closed connection from {remote}: {why}", { remote: conn.remote, why });
      this.#destroy(conn);
    };
    const onData = (chunk: Buffer) => {
      if (phase === "drain") return;
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (phase === "sniff") {
        const kind = sniffProtocol(buffered);
        if (kind === "incomplete") return;
        if (kind === "proxy-v1" || kind === "proxy-v2") {
          if (mode === "off") {
            return refuse(
              `a PROXY protocol ${
                kind === "proxy-v1" ? "v1" : "v2"
              } header arrived and proxy_protocol is off on this port`,
            );
          }
          if (headers > 0) {
            return refuse("a second PROXY header (only one load balancer may add one)");
          }
          const r = parseProxyHeader(buffered);
          if (r.kind === "incomplete") return;
          if (r.kind === "error") return refuse(`bad PROXY header: ${r.reason}`);
          headers++;
          if (!this.#applyProxyHeader(conn, r.header)) {
            return refuse("the PROXY header's client is over its connection caps");
          }
          buffered = buffered.subarray(r.consumed);
          if (buffered.length === 0) return;
          continue;
        }
        if (mode === "on" && headers === 0) {
          return refuse("no PROXY header, and proxy_protocol is on: a load balancer must add one");
        }
        if (kind !== "tls") {
          if (kind === "http" && this.#opts.plainHttp) {
            raw.off("data", onData);
            const web = this.#opts.handlers.web;
            this.#webSources.set(raw, conn.source);
            this.#handOverRaw(conn, buffered, () => web(raw, conn.source));
          } else if (kind === "http") {
            phase = "drain"; // keep reading so that closing does not reset the response
            this.#refuseHttp(conn, buffered);
          } else {
            raw.off("data", onData);
            this.#onPlain(conn, kind, buffered);
          }
          return;
        }
        phase = "hello";
      }
      raw.off("data", onData);
      this.#readHello(conn, buffered);
    };
    raw.on("data", onData);
  }

  /** Reads (under the connection's deadline) until the ClientHello is whole, then routes. */
  #readHello(conn: Conn, first: Buffer): void {
    const raw = conn.raw;
    let buffered = first;
    const check = (): boolean => {
      const result = parseClientHello(buffered);
      if (result.kind === "incomplete") return false;
      raw.off("data", onData);
      raw.pause();
      if (result.kind === "error") {
        this.#log.debug("Closed TLS connection from {remote}: bad ClientHello: {reason}", {
          remote: conn.remote,
          reason: result.reason,
        });
        this.#destroy(conn);
        return true;
      }
      this.#onHello(conn, result.hello, buffered);
      return true;
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      check();
    };
    if (buffered.length > 0 && check()) return;
    raw.on("data", onData);
    // An upgraded stream may arrive paused (node:http pauses a socket it hands over).
    raw.resume();
  }

  /**
   * Takes the client's address from a PROXY header (see the table in the file's header).
   * Returns false when the guard refuses the real client (over its caps).
   */
  #applyProxyHeader(conn: Conn, header: ProxyHeader): boolean {
    const peer = conn.remote;
    if (header.command === "local" || header.source === undefined) {
      this.#log.debug("PROXY header from {peer} without a client address (LOCAL or UNSPEC)", {
        peer,
      });
      return true;
    }
    const { addr, port } = header.source;
    if (this.#opts.proxyProtocol === "on") {
      // The operator says a load balancer sends every header: the real client is charged.
      if (conn.guarded !== undefined && !conn.guarded.rekey(addr)) return false;
      conn.source = { remoteAddr: addr, remotePort: port, proxied: true };
    } else {
      // Anyone may have sent it: report the address, with port 0 to mark it unverified, and
      // keep the per-address charge on the sender.
      this.#log.warn(
        "Accepted a PROXY header from {peer} naming client {client}, with the source port zeroed: proxy_protocol is unset; set proxy_service.proxy_protocol to on when a load balancer sends PROXY headers, or off when none does",
        { peer, client: addr },
      );
      conn.source = { remoteAddr: addr, remotePort: 0, proxied: true };
    }
    conn.remote = `${hostPort(conn.source.remoteAddr, conn.source.remotePort)} (via ${peer})`;
    return true;
  }

  /** Answers plain HTTP with a 400 that names the https:// address, then closes. */
  #refuseHttp(conn: Conn, buffered: Buffer): void {
    const hint = httpsHint(buffered, conn.raw as Socket);
    this.#log.debug("Plain HTTP from {remote} refused: this port speaks HTTPS", {
      remote: conn.remote,
    });
    const body = `this port speaks HTTPS: use ${hint} instead\n`;
    conn.raw.end(
      "HTTP/1.1 400 Bad Request\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Connection: close\r\n\r\n" + body,
    );
    // A client that never closes its side is cut off by the handshake deadline.
  }

  /** SSH, PROXY headers and unknown bytes. */
  #onPlain(
    conn: Conn,
    kind: Exclude<SniffResult, "tls" | "http" | "incomplete" | "proxy-v1" | "proxy-v2">,
    buf: Buffer,
  ) {
    const ssh = this.#opts.handlers.ssh;
    if (kind === "ssh" && ssh !== undefined) {
      conn.guarded?.setDeadline(this.#opts.sshLoginTimeoutMs);
      this.#handOverRaw(conn, buf, () => ssh(conn.raw as Socket, conn.source));
      return;
    }
    const why = kind === "ssh" ? "plain SSH is not served on this port" : "unknown protocol";
    this.#log.debug("Closed connection from {remote}: {why}", { remote: conn.remote, why });
    this.#destroy(conn);
  }

  #onHello(conn: Conn, hello: ClientHello, buffered: Buffer): void {
    const route = routeForAlpn(hello.alpn);
    const handlers = this.#opts.handlers;
    const refuse = (why: string) => {
      this.#log.debug("Closed TLS connection from {remote} (ALPN {alpn}): {why}", {
        remote: conn.remote,
        alpn: hello.alpn.join(",") || "none",
        why,
      });
      this.#destroy(conn);
    };
    if (route === undefined) return refuse("no route for the offered ALPN protocols");
    const handler = handlers[HANDLER_OF[route.route]];
    if (handler === undefined) return refuse(`no handler for the ${route.route} route`);
    if (route.route === "auth") {
      const auth = handlers.auth!;
      // Still pending: the handler declares it established (a local auth listener does, through
      // the guard's link, once the client's first request arrived).
      this.#handOverRaw(conn, buffered, () => auth(conn.raw, hello, conn.source));
      return;
    }
    this.#terminate(
      conn,
      hello,
      route,
      buffered,
      handler as (s: Duplex, source: ConnectionSource) => void,
    );
  }

  /** Terminates TLS on the paused socket, then hands the TLSSocket over once it is secure. */
  #terminate(
    conn: Conn,
    hello: ClientHello,
    route: Route,
    buffered: Buffer,
    handler: (socket: TLSSocket, source: ConnectionSource) => void,
  ): void {
    const { raw, remote } = conn;
    // Do not resume `raw` after this: the TLSSocket reads the put-back ClientHello itself.
    raw.unshift(buffered);
    // The certificate is chosen from the SNI we parsed ourselves. No SNICallback: in Deno 2.9.6
    // a TLSSocket with one never finishes the handshake when the ClientHello is larger than
    // about 4 KiB (measured; without it, 20 KiB ClientHellos in two records work).
    const options: TLSSocketOptions = {
      isServer: true,
      secureContext: pickKeyPair(this.#pairs, hello.serverName).context,
    };
    // Offer exactly the protocol we select; with no offer, no ALPN is negotiated.
    if (route.protocol !== undefined) options.ALPNProtocols = [route.protocol];
    let tls: TLSSocket;
    try {
      tls = new TLSSocket(raw, options);
    } catch (err) {
      this.#log.debug("Cannot terminate TLS from {remote}: {error}", {
        remote,
        error: messageOf(err),
      });
      this.#destroy(conn);
      return;
    }
    conn.tls = tls;
    tls.on("error", (err: Error) => {
      if (conn.handedOver) {
        this.#log.debug("TLS connection from {remote} failed: {error}", {
          remote,
          error: messageOf(err),
        });
        return;
      }
      this.#log.debug("TLS handshake with {remote} (ALPN {alpn}) failed: {error}", {
        remote,
        alpn: hello.alpn.join(",") || "none",
        error: messageOf(err),
      });
      this.#destroy(conn);
    });
    if (conn.guarded !== undefined) attachGuard(tls, conn.guarded);
    tls.once("secure", () => {
      if (!this.#pending.has(conn)) return;
      // SSH inside TLS gets the SSH login time (the SSH server declares it established once the
      // client authenticated); web connections stay under the handshake deadline until the web
      // server has read their whole first request.
      if (route.route !== "web") conn.guarded?.setDeadline(this.#opts.sshLoginTimeoutMs);
      this.#release(conn);
      // Its upgrade requests come back to upgrade(), which knows the source; a connection that
      // is itself inside an upgrade may not upgrade again.
      if (route.route === "web" && conn.upgraded !== true) this.#webSources.set(tls, conn.source);
      this.#call(conn, route.route, () => handler(tls, conn.source));
    });
  }

  /** Puts the bytes read so far back into the paused socket and hands it over. */
  #handOverRaw(conn: Conn, buffered: Buffer, give: () => void): void {
    conn.raw.pause();
    conn.raw.unshift(buffered);
    this.#release(conn);
    this.#call(conn, "plain", give);
  }

  #call(conn: Conn, what: string, give: () => void): void {
    try {
      give();
    } catch (err) {
      this.#log.error("The {what} handler failed on a connection from {remote}: {error}", {
        what,
        remote: conn.remote,
        error: messageOf(err),
      });
      conn.tls?.destroy();
      conn.raw.destroy();
    }
  }

  /** The connection is closed: nothing left to own. */
  #forget(conn: Conn): void {
    this.#pending.delete(conn);
    if (this.#pending.size > 0 || this.#idle.length === 0) return;
    for (const wake of this.#idle.splice(0)) wake();
  }

  /** The connection now belongs to a handler. */
  #release(conn: Conn): void {
    this.#forget(conn);
    conn.handedOver = true;
  }

  #destroy(conn: Conn): void {
    conn.tls?.destroy();
    conn.raw.destroy();
  }
}

/**
 * Starts the one-port listener; resolves once it is bound. Throws BadParameterError for bad
 * options or key pairs.
 */
export async function startMultiplexer(options: MultiplexerOptions): Promise<Multiplexer> {
  const opts = resolveOptions(options);
  const pairs = loadKeyPairs(options.tls?.keyPairs ?? []);
  const mux = new PortMultiplexer(opts, pairs);
  await mux.listen();
  return mux;
}
