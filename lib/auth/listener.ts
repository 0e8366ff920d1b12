/**
 * The auth API over HTTPS with mutual TLS, on lib/net's one HTTP adapter ({@link listenHttps}:
 * node:https, since Deno.listenTls cannot ask for client certificates; keep-alive, read
 * backpressure, bounded bodies, streamed answers, graceful close, the connection guard). What
 * is the auth API's own stays here, as small pieces around that core:
 * - who the caller is: whoever its verified client certificate says. The TLS layer checks the
 *   chain against the host and user CAs, then {@link callerOf} re-checks it against the CAs that
 *   match the identity kind and are trusted now (both generations during a rotation), and
 *   rejects anything that is not X.509 v3 (see the platform notes on v1 certs); cached per
 *   connection;
 * - the client's address: a proxy's signed client address header before TLS
 *   (readSignedClientAddr), else the peer's;
 * - which body limit applies: 1 MiB with a certificate, 64 KiB without, none for recording
 *   uploads (streamed to disk);
 * - calls without a certificate: rate-limited per client IP (429 + `Retry-After`) and one per
 *   connection (an anonymous client could otherwise sit on a half-sent next request past the
 *   guard's handshake deadline);
 * - requests counted per route (`auth_api_requests_total{route}`).
 * The routes themselves, recordings included, are the web-standard handler in api.ts.
 */
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { Buffer } from "node:buffer";
import { parseAuthorizedKey, parseX509Certificate, verifyX509Certificate } from "../ca/mod.ts";
import { BadParameterError, LimitExceededError, messageOf } from "../errors/mod.ts";
import { ClientAddrVerifier, type Identity, identityFromSubject } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { MetricsRegistry } from "../metrics/mod.ts";
import {
  type BodyLimit,
  clientKey,
  ConnectionGuard,
  type ConnInfo,
  errorResponse,
  type HttpHandler,
  listenHttps,
  type RateLimit,
  RateLimiter,
} from "../net/mod.ts";
import { apiRouteOf, type AuthConnInfo, createAuthApiHandler, RECORDING_PATH } from "./api.ts";
import { frontAddrResolver, readSignedClientAddr } from "./client_addr.ts";
import type { AuthServer } from "./server.ts";
import { WatchHub, type WatchHubOptions } from "./watch.ts";

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
   * Stops accepting (graceful stop): idle connections close, the others once their answer in
   * flight is written, and {@link closing} is aborted; clients that dial again reach a
   * successor process on the same port.
   */
  stopAccepting(): void;
  /**
   * Aborted once the listener stops accepting or closes (the `closing` of every request's
   * ConnInfo): a long-lived streamed answer (a watch) ends then, and its client reconnects.
   */
  readonly closing: AbortSignal;
}

/**
 * The caller a connection's client certificate names, verified against the CAs trusted now;
 * undefined without a (valid) certificate. Decided once per connection.
 */
function callerResolver(
  server: AuthServer,
  logger: Logger,
): (sock: TLSSocket, addr: string) => Promise<Identity | undefined> {
  const identities = new WeakMap<object, Promise<Identity | undefined>>();
  const verify = async (sock: TLSSocket, addr: string): Promise<Identity | undefined> => {
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
      return id;
    } catch (err) {
      logger.warn("Rejected client certificate from {addr}: {reason}", {
        addr,
        reason: messageOf(err),
      });
      return undefined;
    }
  };
  return (sock, addr) => {
    let id = identities.get(sock);
    if (id === undefined) identities.set(sock, id = verify(sock, addr));
    return id;
  };
}

/**
 * The auth API's policy around its routes: counts the route, throttles callers without a
 * certificate (429), and answers them once per connection.
 */
function authPolicy(
  inner: HttpHandler<AuthConnInfo>,
  o: {
    server: AuthServer;
    logger: Logger;
    rateLimit: RateLimit;
    metrics: MetricsRegistry | undefined;
  },
): HttpHandler<AuthConnInfo> {
  const unauthenticated = new RateLimiter({ ...o.rateLimit, clock: o.server.clock });
  // One log line per client per minute about throttling, however hard it knocks.
  const throttleLog = new RateLimiter({ burst: 1, perMinute: 1, clock: o.server.clock });
  const requests = o.metrics?.counter({
    name: "auth_api_requests_total",
    help: "Requests to the auth API by route (METHOD /v1/path/:param)",
    labelNames: ["route"],
  });
  return async (req, info) => {
    requests?.inc({ route: apiRouteOf(req.method, new URL(req.url).pathname) });
    if (info.caller !== undefined) return await inner(req, info);
    const key = clientKey(info.remoteAddr);
    const verdict = unauthenticated.take(key);
    let response: Response;
    if (verdict.allowed) {
      response = await inner(req, info);
    } else {
      if (throttleLog.take(key).allowed) {
        o.logger.warn(
          "Throttling auth API calls without a client certificate from {addr} " +
            "(logged once a minute)",
          { addr: key },
        );
      }
      response = errorResponse(
        new LimitExceededError(
          "too many requests without a client certificate; wait and try again",
        ),
      );
      response.headers.set(
        "retry-after",
        String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000))),
      );
    }
    // Without a certificate, one request per connection: a kept-alive connection would let an
    // anonymous client sit on a half-sent next request past the guard's handshake deadline.
    response.headers.set("connection", "close");
    return response;
  };
}

/** The body limit of a request: see the module doc. */
/** How long a recording upload may stall before its connection is closed. */
const RECORDING_STALL_TIMEOUT_MS = 60_000;

function bodyLimitOf(req: Request, info: AuthConnInfo): BodyLimit | undefined {
  if (info.caller === undefined) {
    return {
      maxBytes: MAX_UNAUTHENTICATED_BODY_BYTES,
      note: "(the limit without a client certificate)",
    };
  }
  // Recording uploads stream to disk; the store reads them as fast as it writes. Long ones
  // over slow links take as long as they keep moving.
  if (RECORDING_PATH.test(new URL(req.url).pathname)) {
    return { maxBytes: Infinity, stallTimeoutMs: RECORDING_STALL_TIMEOUT_MS };
  }
  return { maxBytes: MAX_BODY_BYTES };
}

/** Starts the HTTPS listener; resolves once it is bound. */
export async function startAuthApiServer(opts: AuthApiServerOptions): Promise<AuthApiServer> {
  const { server, logger } = opts;
  const callerOf = callerResolver(server, logger);
  // Watch streams end when the listener stops accepting (drain) or closes: their clients
  // reconnect, to a successor process or another auth server.
  const watches = new WatchHub({ ...opts.watches, server, logger });
  const watchStreams = opts.metrics?.gauge({
    name: "auth_watch_streams",
    help: "Resource watch streams (GET /v1/watch) open now",
  });
  const unreportWatches = opts.metrics?.addCollector(() => watchStreams?.set(watches.size));
  let credentials = { cert: opts.certPem, key: opts.keyPem };
  /** The TLS context: our certificate, and the client CAs trusted now. */
  const secureContext = () => {
    const cas = server.clientCaCertPems();
    return { ...credentials, ca: [...cas.host, ...cas.user], minVersion: "TLSv1.2" as const };
  };
  const verifier = new ClientAddrVerifier({
    hostCaKeys: () => server.hostCaSshKeys().map((k) => parseAuthorizedKey(k).blob),
    clusterName: server.clusterName,
    clock: server.clock,
    frontAddrs: frontAddrResolver(opts.publicAddrs ?? []),
  });
  const listener = await listenHttps<AuthConnInfo>({
    name: "auth API",
    logger,
    host: opts.host,
    port: opts.port,
    tls: {
      ...secureContext(),
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: authListenerAlpn(server.clusterName),
    },
    guard: opts.guard ?? new ConnectionGuard({ logger }),
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
    // Before TLS: a proxy's signed PROXY header says who the client is.
    beforeTls: (socket) => readSignedClientAddr(socket, verifier),
    connInfo: async (socket: Duplex, info: ConnInfo) => {
      const caller = await callerOf(socket as TLSSocket, info.remoteAddr);
      return caller === undefined ? info : { ...info, caller };
    },
    bodyLimit: bodyLimitOf,
    // A body refused unread (too large, throttled, forbidden) is not drained: the connection
    // closes once the answer is written.
    lingerBytes: 0,
    handler: authPolicy(createAuthApiHandler(server, logger, { watches }), {
      server,
      logger,
      rateLimit: opts.unauthenticatedRateLimit ?? DEFAULT_UNAUTHENTICATED_RATE_LIMIT,
      metrics: opts.metrics,
    }),
  });
  // A rotation changes the trusted client CAs: new connections verify against the new set.
  // When a CA leaves the set (a rotation's standby), watch streams end: a stream outlives any
  // request, and one opened with a certificate of the retired CA must not go on.
  const trustedCas = () => {
    const cas = server.clientCaCertPems();
    return new Set([...cas.host, ...cas.user]);
  };
  let trusted = trustedCas();
  const unwatch = server.watchAuthorities(() => {
    listener.setSecureContext(secureContext());
    const now = trustedCas();
    if ([...trusted].some((pem) => !now.has(pem))) {
      logger.info("A certificate authority is no longer trusted: ending {n} watch stream(s)", {
        n: watches.size,
      });
      watches.endAll();
    }
    trusted = now;
  });
  const close = async (o: { graceMs?: number } = {}) => {
    unwatch();
    // First: a graceful close waits for answers in flight, and a watch stream is one.
    watches.close();
    unreportWatches?.();
    await listener.close(o);
  };
  return {
    host: listener.host,
    port: listener.port,
    closing: listener.closing,
    setCertificate: (cert) => {
      credentials = { cert: cert.certPem, key: cert.keyPem };
      listener.setSecureContext(secureContext());
    },
    close,
    stopAccepting: () => {
      watches.close();
      listener.stopAccepting();
    },
    [Symbol.asyncDispose]: () => close(),
  };
}
