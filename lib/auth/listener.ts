/**
 * The auth API over HTTPS with mutual TLS (node:https, since Deno.listenTls
 * cannot ask for client certificates). A caller is whoever its verified client
 * certificate says: the TLS layer checks the chain against the host and user
 * CAs, then we re-check it against the CA that matches the identity kind, and
 * reject anything that is not X.509 v3 (see the platform notes on v1 certs).
 */
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Buffer } from "node:buffer";
import { parseAuthorizedKey, parseX509Certificate, verifyX509Certificate } from "../ca/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  httpStatusOf,
  kindOf,
  LimitExceededError,
  messageOf,
} from "../errors/mod.ts";
import { ClientAddrVerifier, type Identity, identityFromSubject } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { MetricsRegistry } from "../metrics/mod.ts";
import {
  clientKey,
  ConnectionGuard,
  guardOf,
  guardServer,
  listenOptions,
  type RateLimit,
  RateLimiter,
} from "../net/mod.ts";
import { apiRouteOf, createAuthApiHandler } from "./api.ts";
import { frontAddrResolver, readSignedClientAddr } from "./client_addr.ts";
import type { AuthServer } from "./server.ts";
import { WATCH_CONTENT_TYPE, WatchHub, type WatchHubOptions } from "./watch.ts";

/** PEM text of a DER certificate. */
function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").trimEnd();
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * ALPN ids the listener accepts: `http/1.1`, and `teleport-auth@<hex cluster>.teleport.cluster.local`
 * from clients that reach auth through a proxy's web port (the proxy routes on that id and
 * passes the TLS session through). Offering an ALPN id the server does not list is a fatal
 * handshake error in Deno's node:tls, so the id must be listed here.
 */
export function authListenerAlpn(clusterName: string): string[] {
  const hex = Array.from(
    new TextEncoder().encode(clusterName),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  return ["http/1.1", `teleport-auth@${hex}.teleport.cluster.local`];
}

/** Session recordings move as raw gzip streams, not JSON. */
const RECORDING_PATH = /^\/v1\/recordings\/([^/]+)$/;

/** Largest JSON request body accepted from a caller with a valid client certificate. */
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Largest request body accepted without a client certificate. The only unauthenticated call
 * with a body is `POST /v1/register`: a token, names, two public keys and a few principals,
 * a few KiB at most.
 */
const MAX_UNAUTHENTICATED_BODY_BYTES = 64 * 1024;

/**
 * Unauthenticated calls (ping, CA certificates, join, and any call without a valid client
 * certificate) per client IP. A node joining makes three (ping, cacerts, register), so the
 * burst lets a dozen hosts behind one NAT join at once and 30 per minute lets ten more join
 * each minute, while a token guesser gets half an attempt per second instead of hundreds.
 * Teleport's own default is burst 40, 20 per minute.
 */
export const DEFAULT_UNAUTHENTICATED_RATE_LIMIT: RateLimit = { burst: 40, perMinute: 30 };

/** Where and how the API listens. */
export interface AuthApiServerOptions {
  server: AuthServer;
  logger: Logger;
  /** Host to bind ("0.0.0.0", "127.0.0.1", "::"). */
  host: string;
  /** Port (0 picks a free one). */
  port: number;
  /** The auth service's own TLS certificate (host CA signed) and key. */
  certPem: string;
  keyPem: string;
  /**
   * Admission control shared with the process's other listeners.
   * @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /**
   * Time from accept until the TLS handshake is done and the first request is in.
   * @default {5000}
   */
  handshakeTimeoutMs?: number;
  /**
   * Calls without a valid client certificate, per client IP (IPv6: per /64); over it the
   * answer is 429 with `Retry-After`.
   * @default {DEFAULT_UNAUTHENTICATED_RATE_LIMIT} (burst 40, 30 per minute)
   */
  unauthenticatedRateLimit?: RateLimit;
  /**
   * Where clients reach this listener through TCP load balancers (`auth_service.public_addr`):
   * a proxy's signed client address header for one of these addresses is accepted.
   * @default {[]}
   */
  publicAddrs?: { host: string; port: number }[];
  /**
   * Where requests are counted per route (`auth_api_requests_total{route}`).
   * @default {no metrics}
   */
  metrics?: MetricsRegistry;
  /**
   * Limits of resource watch streams (`GET /v1/watch`).
   * @default {see WatchHubOptions}
   */
  watches?: Omit<WatchHubOptions, "server" | "logger">;
}

/** A running API listener. */
export interface AuthApiServer extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  /**
   * Serves new connections with another certificate (a CA rotation re-issues it); open
   * connections keep theirs.
   */
  setCertificate(cert: { certPem: string; keyPem: string }): void;
  /**
   * Stops accepting and closes every connection; with `graceMs`, first lets the answers in
   * flight finish (up to that long) and closes idle connections cleanly.
   */
  close(o?: { graceMs?: number }): Promise<void>;
  /**
   * Stops accepting only (graceful stop): open connections go on being served until
   * {@link close}; clients that dial again reach a successor process on the same port.
   */
  stopAccepting(): void;
}

/** The request target as path and query; undefined when it is not an origin-form path. */
function parseTarget(url: string): { path: string; query: URLSearchParams } | undefined {
  if (!url.startsWith("/")) return undefined;
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const hash = path.indexOf("#");
  return {
    path: hash < 0 ? path : path.slice(0, hash),
    query: new URLSearchParams(q < 0 ? "" : url.slice(q + 1)),
  };
}

/** Whether the request announces a body (a declared length above zero, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  if (length !== undefined) return length !== "0";
  return req.headers["transfer-encoding"] !== undefined;
}

/** Starts and stops reading a connection from the network. */
interface ReadSwitch {
  start(): void;
  stop(): void;
}

interface StreamHandle {
  readStart(): unknown;
  readStop(): unknown;
}

/**
 * The read switch of a connection. Deno's node:tls server socket has no read backpressure:
 * paused, it still reads its TCP socket at wire speed into memory (a 500 MiB upload to a
 * paused request is read whole), and neither `pause()` of the TLS socket nor of the TCP
 * socket under it (`_parent`) stops that, while the TCP socket's own stream handle does. So
 * the listener reads a connection only while it wants its bytes, through that handle when
 * there is one, else through `pause()` / `resume()`.
 */
function readSwitchOf(sock: TLSSocket): ReadSwitch {
  const parent = (sock as unknown as { _parent?: { _handle?: Partial<StreamHandle> | null } })
    ._parent;
  const handle = parent?._handle;
  if (typeof handle?.readStop !== "function" || typeof handle.readStart !== "function") {
    return { start: () => sock.resume(), stop: () => sock.pause() };
  }
  const h = handle as StreamHandle;
  let reading = true;
  return {
    start() {
      if (reading || sock.destroyed || parent?._handle !== h) return;
      reading = true;
      h.readStart();
    },
    stop() {
      if (!reading || sock.destroyed || parent?._handle !== h) return;
      reading = false;
      h.readStop();
    },
  };
}

type BodyResult = { ok: true; bytes: Buffer } | { ok: false };

/**
 * Reads the request body up to `limit` bytes, reading the connection only meanwhile. Past the
 * limit it stops reading the connection; the caller answers and closes it. A declared
 * Content-Length over the limit is refused before any body byte is read.
 */
function readBody(req: IncomingMessage, wire: ReadSwitch, limit: number): Promise<BodyResult> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ ok: false });
  // Events rather than for-await: leaving a for-await loop early destroys the socket before
  // the answer is written.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (v: BodyResult | Error) => {
      wire.stop();
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done({ ok: false });
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = () => done({ ok: true, bytes: Buffer.concat(chunks) });
    const onError = (err: Error) => done(err);
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
    wire.start();
  });
}

/**
 * The request body as a stream that reads the connection only while its consumer keeps up
 * (at most `highWaterMark` bytes wait in memory).
 */
function bodyStream(
  req: IncomingMessage,
  wire: ReadSwitch,
  highWaterMark = 256 * 1024,
): ReadableStream<Uint8Array> {
  const onData = (chunk: Buffer) => {
    controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if ((controller.desiredSize ?? 0) <= 0) wire.stop();
  };
  const onEnd = () => {
    detach();
    controller.close();
  };
  const onError = (err: Error) => {
    detach();
    controller.error(err);
  };
  const detach = () => {
    wire.stop();
    req.off("data", onData);
    req.off("end", onEnd);
    req.off("error", onError);
  };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      req.on("data", onData);
      req.once("end", onEnd);
      req.once("error", onError);
    },
    pull() {
      wire.start();
    },
    cancel() {
      detach();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark }));
}

/** Starts the HTTPS listener; resolves once it is bound. */
export async function startAuthApiServer(opts: AuthApiServerOptions): Promise<AuthApiServer> {
  const { server, logger } = opts;
  // Watch streams end when the listener stops accepting (drain) or closes: their clients
  // reconnect, to a successor process or another auth server.
  const watches = new WatchHub({ ...opts.watches, server, logger });
  const handle = createAuthApiHandler(server, logger, { watches });
  const watchStreams = opts.metrics?.gauge({
    name: "auth_watch_streams",
    help: "Resource watch streams (GET /v1/watch) open now",
  });
  const unreportWatches = opts.metrics?.addCollector(() => watchStreams?.set(watches.size));
  const identities = new WeakMap<Socket, Identity | Error>();
  const readSwitches = new WeakMap<Socket, ReadSwitch>();
  /** Answers after which the connection closes. */
  const closing = new WeakSet<ServerResponse>();
  const readSwitch = (sock: TLSSocket) => {
    let wire = readSwitches.get(sock);
    if (wire === undefined) readSwitches.set(sock, wire = readSwitchOf(sock));
    return wire;
  };
  const unauthenticated = new RateLimiter({
    ...(opts.unauthenticatedRateLimit ?? DEFAULT_UNAUTHENTICATED_RATE_LIMIT),
    clock: server.clock,
  });
  // One log line per client per minute about throttling, however hard it knocks.
  const throttleLog = new RateLimiter({ burst: 1, perMinute: 1, clock: server.clock });

  const callerOf = async (sock: TLSSocket): Promise<Identity | undefined> => {
    const cached = identities.get(sock);
    if (cached instanceof Error) return undefined;
    if (cached !== undefined) return cached;
    if (!sock.authorized) return undefined;
    const raw = sock.getPeerCertificate(false)?.raw;
    if (raw === undefined || raw.length === 0) return undefined;
    try {
      const pem = derToPem(raw);
      const cert = parseX509Certificate(pem);
      if (cert.version !== 3) throw new BadParameterError("client certificate is not X.509 v3");
      const id = identityFromSubject(cert.subject);
      // The CAs trusted now: both generations while a rotation runs.
      const cas = server.clientCaCertPems();
      await verifyX509Certificate(pem, {
        trustedCaPems: id.kind === "host" ? cas.host : cas.user,
        now: server.clock.now(),
      });
      identities.set(sock, id);
      return id;
    } catch (err) {
      logger.warn("Rejected client certificate from {addr}: {reason}", {
        addr: sock.remoteAddress,
        reason: messageOf(err),
      });
      identities.set(sock, err instanceof Error ? err : new Error(String(err)));
      return undefined;
    }
  };

  /** Writes a JSON answer; with `close`, closes the connection once the answer is flushed. */
  const send = (
    res: ServerResponse,
    status: number,
    value: unknown,
    o: { close?: boolean; headers?: Record<string, string> } = {},
  ) => {
    const text = JSON.stringify(value);
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      ...o.headers,
      ...(o.close ? { connection: "close" } : {}),
    });
    if (o.close) {
      closing.add(res);
      res.end(text, () => res.socket?.destroy());
    } else res.end(text);
  };

  const errorBody = (err: unknown) => {
    const status = httpStatusOf(err);
    return {
      error: {
        kind: kindOf(err) ?? "Internal",
        message: status === 500 ? "internal error, see the auth server log" : messageOf(err),
      },
    };
  };

  /** `PUT` (upload, streamed to disk) and `GET` (download) of one session recording. */
  const onRecording = async (
    req: IncomingMessage,
    res: ServerResponse,
    wire: ReadSwitch,
    caller: Identity,
    sid: string,
  ) => {
    try {
      if (req.method === "PUT") {
        await server.authorize(caller, "session", "create");
        send(res, 200, await server.saveRecording(caller, sid, bodyStream(req, wire)));
      } else if (req.method === "GET") {
        await server.authorize(caller, "session", "read");
        const stream = await server.openRecording(sid);
        res.writeHead(200, { "content-type": "application/gzip" });
        for await (const chunk of stream) {
          if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
        }
        res.end();
      } else {
        throw new BadParameterError(`method ${req.method} is not allowed on recordings`);
      }
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (httpStatusOf(err) === 500) {
        logger.error("Recording {sid} request failed: {error}", { sid, error: err });
      }
      // An upload body that was not read to its end is not drained: the connection closes.
      send(res, httpStatusOf(err), errorBody(err), { close: !req.complete });
    }
  };

  /**
   * One request, in this order: parse the target, identify the caller, throttle callers
   * without a certificate, then read a bounded body (or stream a recording for a caller with
   * a certificate). Whatever is refused before its body is read closes the connection. The
   * connection is not read while a request is handled, except for its body when wanted.
   */
  const requests = opts.metrics?.counter({
    name: "auth_api_requests_total",
    help: "Requests to the auth API by route (METHOD /v1/path/:param)",
    labelNames: ["route"],
  });
  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    guardOf(req.socket)?.established();
    if (requests !== undefined) {
      const path = (req.url ?? "/").split("?")[0]!;
      requests.inc({ route: apiRouteOf(req.method ?? "GET", path) });
    }
    const sock = req.socket as TLSSocket;
    const wire = readSwitch(sock);
    wire.stop();
    res.once("finish", () => {
      if (!closing.has(res)) wire.start();
    });
    // The client's address: rate-limit key and audit `addr.remote`.
    const clientAddr = clientAddrOf(sock) ?? "unknown";
    const refuse = (status: number, err: Error, headers?: Record<string, string>) =>
      send(res, status, errorBody(err), { close: hasBody(req), ...(headers ? { headers } : {}) });
    try {
      const target = parseTarget(req.url ?? "/");
      if (target === undefined) {
        refuse(400, new BadParameterError("the request target must be a path"));
        return;
      }
      const caller = await callerOf(sock);
      if (caller === undefined) {
        const key = clientKey(clientAddr);
        const verdict = unauthenticated.take(key);
        if (!verdict.allowed) {
          if (throttleLog.take(key).allowed) {
            logger.warn(
              "Throttling auth API calls without a client certificate from {addr} " +
                "(logged once a minute)",
              { addr: key },
            );
          }
          refuse(
            429,
            new LimitExceededError(
              "too many requests without a client certificate; wait and try again",
            ),
            { "retry-after": String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000))) },
          );
          return;
        }
      }
      const recording = RECORDING_PATH.exec(target.path);
      if (recording !== null) {
        if (caller === undefined) {
          refuse(
            403,
            new AccessDeniedError("this API call needs a client certificate signed by the cluster"),
          );
          return;
        }
        let sid: string;
        try {
          sid = decodeURIComponent(recording[1]!);
        } catch {
          refuse(
            400,
            new BadParameterError("the session id in the path is not valid URL encoding"),
          );
          return;
        }
        await onRecording(req, res, wire, caller, sid);
        return;
      }
      const limit = caller === undefined ? MAX_UNAUTHENTICATED_BODY_BYTES : MAX_BODY_BYTES;
      const read = await readBody(req, wire, limit);
      if (!read.ok) {
        logger.debug("Closing auth API connection from {addr}: request body over {limit} bytes", {
          addr: clientAddr,
          limit,
        });
        sock.once("close", () => {
          logger.debug("Closed auth API connection from {addr} after {bytesRead} bytes", {
            addr: clientAddr,
            bytesRead: sock.bytesRead,
          });
        });
        refuse(
          413,
          new LimitExceededError(
            `request body is larger than ${limit} bytes` +
              (caller === undefined ? " (the limit without a client certificate)" : ""),
          ),
        );
        return;
      }
      // GET and HEAD carry no body in a web Request; none of those routes reads one.
      const method = req.method ?? "GET";
      const withBody = read.bytes.length > 0 && method !== "GET" && method !== "HEAD";
      const response = await handle(
        new Request(`https://auth.invalid${req.url}`, {
          method,
          ...(withBody
            ? { body: new Uint8Array(read.bytes), headers: { "content-type": "application/json" } }
            : {}),
        }),
        { remoteAddr: clientAddr, ...(caller === undefined ? {} : { caller }) },
      );
      if (response.body !== null && response.headers.get("content-type") === WATCH_CONTENT_TYPE) {
        // A watch stream: written as its lines come, read only as fast as the client takes them.
        res.writeHead(response.status, Object.fromEntries(response.headers));
        res.flushHeaders();
        const lines = response.body.getReader();
        res.once("close", () => void lines.cancel().catch(() => {}));
        try {
          for (let r = await lines.read(); !r.done; r = await lines.read()) {
            if (!res.write(r.value)) {
              await new Promise<void>((wake) => {
                const on = () => (res.off("drain", on), res.off("close", on), wake());
                res.on("drain", on).on("close", on);
              });
            }
          }
          res.end();
        } catch {
          // Cut (a slow client) or cancelled (the client left).
          res.destroy();
        }
        return;
      }
      const out = { status: response.status, body: await response.json() };
      // Without a certificate, one request per connection: a kept-alive connection would let an
      // anonymous client sit on a half-sent next request (Deno's node:http does not enforce
      // headersTimeout), past the guard's handshake deadline.
      send(res, out.status, out.body, { close: caller === undefined });
    } catch (err) {
      logger.error("Auth API request failed: {error}", { error: err });
      if (!res.headersSent) {
        send(res, 500, { error: { kind: "Internal", message: "internal error" } }, {
          close: !req.complete,
        });
      } else {
        res.destroy();
      }
    }
  };

  let credentials = { cert: opts.certPem, key: opts.keyPem };
  /** Requests being answered, and who waits for there to be none (a graceful close). */
  let inFlight = 0;
  const quiet: Array<() => void> = [];
  /** The TLS context: our certificate, and the client CAs trusted now. */
  const secureContext = () => {
    const cas = server.clientCaCertPems();
    return { ...credentials, ca: [...cas.host, ...cas.user], minVersion: "TLSv1.2" as const };
  };
  const httpsServer = https.createServer({
    ...secureContext(),
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: authListenerAlpn(server.clusterName),
  }, (req, res) => {
    inFlight++;
    res.once("close", () => {
      inFlight--;
      if (inFlight === 0) { for (const wake of quiet.splice(0)) wake(); }
    });
    void onRequest(req, res);
  });
  // A rotation changes the trusted client CAs: new connections verify against the new set.
  const unwatch = server.watchAuthorities(() => httpsServer.setSecureContext(secureContext()));
  httpsServer.headersTimeout = 10_000;
  httpsServer.requestTimeout = 60_000;
  // Before TLS: a proxy's signed PROXY header says who the client is (readSignedClientAddr).
  const clientAddrs = new WeakMap<Socket, string>();
  const clientAddrOf = (tls: TLSSocket): string | undefined => {
    // node:tls keeps the accepted socket as `_parent` of the TLSSocket it wraps it in.
    const raw = (tls as TLSSocket & { _parent?: Socket })._parent;
    return (raw === undefined ? undefined : clientAddrs.get(raw)) ?? tls.remoteAddress;
  };
  const verifier = new ClientAddrVerifier({
    hostCaKeys: () => server.hostCaSshKeys().map((k) => parseAuthorizedKey(k).blob),
    clusterName: server.clusterName,
    clock: server.clock,
    frontAddrs: frontAddrResolver(opts.publicAddrs ?? []),
  });
  const startTls = httpsServer.listeners("connection");
  httpsServer.removeAllListeners("connection");
  httpsServer.on("connection", (s: Socket) => {
    if (s.destroyed) return; // refused by the guard
    readSignedClientAddr(s, verifier).then(({ socket, addr }) => {
      // Through a proxy, the client's own address is what the per-address caps count.
      if (guardOf(socket)?.rekey(addr) === false) return socket.destroy();
      clientAddrs.set(socket, addr);
      for (const l of startTls) (l as (s: Socket) => void).call(httpsServer, socket);
    }, (err) => {
      logger.warn("Refused auth API connection from {addr}: {reason}", {
        addr: s.remoteAddress,
        reason: messageOf(err),
      });
      s.destroy();
    });
  });
  // Runs before the listeners above: refused connections never reach them.
  const guarded = guardServer(httpsServer, {
    guard: opts.guard ?? new ConnectionGuard({ logger }),
    name: "auth API",
    logger,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
  });
  httpsServer.on("tlsClientError", (err: Error) => {
    logger.debug("TLS handshake with an auth API client failed: {message}", {
      message: err.message,
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpsServer.once("error", reject);
    httpsServer.listen(listenOptions(opts.host, opts.port), () => {
      httpsServer.off("error", reject);
      resolve();
    });
  });
  const addr = httpsServer.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  let idleSweep: ReturnType<typeof setInterval> | undefined;
  const stopAccepting = () => {
    watches.close();
    if (closed !== undefined || idleSweep !== undefined) return;
    if (httpsServer.listening) httpsServer.close();
    // Kept-alive connections of other processes' clients go as soon as they are idle, so
    // their next request opens a connection to the successor instead of to this process.
    httpsServer.closeIdleConnections?.();
    idleSweep = setInterval(() => httpsServer.closeIdleConnections?.(), 500);
    Deno.unrefTimer(idleSweep);
  };
  const close = async (o: { graceMs?: number } = {}) => {
    if (closed === undefined && (o.graceMs ?? 0) > 0) {
      // Graceful: no new connections, idle ones closed, answers in flight finish first.
      stopAccepting();
      if (inFlight > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((r) => quiet.push(r)),
          new Promise<void>((r) => timer = setTimeout(r, o.graceMs)),
        ]);
        clearTimeout(timer);
      }
    }
    unwatch();
    watches.close();
    unreportWatches?.();
    clearInterval(idleSweep);
    closed ??= new Promise<void>((resolve) => {
      httpsServer.close(() => resolve());
      httpsServer.closeAllConnections?.();
      guarded.destroyPending();
    });
    return closed;
  };
  return {
    host: addr.address,
    port: addr.port,
    setCertificate: (cert) => {
      credentials = { cert: cert.certPem, key: cert.keyPem };
      httpsServer.setSecureContext(secureContext());
    },
    close,
    stopAccepting,
    [Symbol.asyncDispose]: close,
  };
}
