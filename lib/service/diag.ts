/**
 * The diagnostics endpoint (`teleport.diag_addr`, `--diag-addr`): plain HTTP on its own
 * address, for load balancers and Prometheus, never for the public.
 *
 * - `GET /healthz`: 200 `{"status":"ok"}` while the process runs;
 * - `GET /readyz`: 200 ok, 503 degraded, 400 starting or recovering (health.ts), with each
 *   service's state in the body;
 * - `GET /metrics`: the process's metrics in the Prometheus text format.
 *
 * The listener goes through the process's ConnectionGuard like every other one (a connection
 * counts as established at its first request) and answers 429 to a client address over its
 * request rate.
 *
 * @module
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Clock } from "../clock/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { MetricsRegistry } from "../metrics/mod.ts";
import {
  clientKey,
  type ConnectionGuard,
  guardServer,
  listenOptions,
  markEstablished,
  type RateLimit,
  RateLimiter,
} from "../net/mod.ts";
import type { HealthState, ProcessHealth } from "./health.ts";

/** Requests per client address: a scraper every second and a few health checkers fit. */
export const DEFAULT_DIAG_RATE_LIMIT: RateLimit = { burst: 60, perMinute: 600 };

/** Status of `/readyz` per process state (Teleport's). */
export const READYZ_STATUS: Readonly<Record<HealthState, number>> = Object.freeze({
  ok: 200,
  recovering: 400,
  starting: 400,
  degraded: 503,
});

const READYZ_TEXT: Record<HealthState, string> = {
  ok: "ok",
  recovering: "teleport is recovering from a degraded state, check logs for details",
  starting: "teleport is starting and has not joined the cluster yet",
  degraded: "teleport is in a degraded state, check logs for details",
};

const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

/** An answer of the endpoint. */
export interface DiagResponse {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

/** What the handler reads. */
export interface DiagSources {
  health: ProcessHealth;
  metrics: MetricsRegistry;
}

function json(status: number, value: unknown, headers?: Record<string, string>): DiagResponse {
  return {
    status,
    contentType: "application/json",
    body: JSON.stringify(value) + "\n",
    ...(headers === undefined ? {} : { headers }),
  };
}

/** Answers one request (pure apart from rendering the metrics). */
export async function handleDiagRequest(
  method: string,
  target: string,
  src: DiagSources,
): Promise<DiagResponse> {
  const path = target.split("?")[0]!;
  const known = path === "/healthz" || path === "/readyz" || path === "/metrics";
  if (!known) {
    return json(404, {
      error: `Cannot serve ${path}: the diagnostics endpoint has /healthz, /readyz and /metrics`,
    });
  }
  if (method !== "GET" && method !== "HEAD") {
    return json(405, { error: `Cannot ${method} ${path}: use GET` }, { Allow: "GET, HEAD" });
  }
  if (path === "/healthz") return json(200, { status: "ok" });
  if (path === "/readyz") {
    const state = src.health.state;
    return json(READYZ_STATUS[state], {
      status: READYZ_TEXT[state],
      state,
      services: src.health.services(),
    });
  }
  return { status: 200, contentType: PROMETHEUS_TEXT, body: await src.metrics.render() };
}

/** Options of {@linkcode startDiagServer}. */
export interface DiagServerOptions extends DiagSources {
  host: string;
  /** 0 picks a free port. */
  port: number;
  guard: ConnectionGuard;
  clock: Clock;
  logger: Logger;
  /** Time from accept to the first request. @default {5000} */
  handshakeTimeoutMs?: number;
  /** Requests per client address (IPv6: per /64). @default {DEFAULT_DIAG_RATE_LIMIT} */
  rateLimit?: RateLimit;
}

/** A listening diagnostics endpoint. */
export interface DiagServer extends AsyncDisposable {
  readonly addr: { host: string; port: number };
  close(): Promise<void>;
}

/** Binds the diagnostics endpoint; resolves once it listens. */
export async function startDiagServer(o: DiagServerOptions): Promise<DiagServer> {
  const limiter = new RateLimiter({ ...(o.rateLimit ?? DEFAULT_DIAG_RATE_LIMIT), clock: o.clock });
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 });
  server.keepAliveTimeout = 5_000;
  // Established connections are closed after a minute of silence; HTTP keep-alive ends first.
  guardServer(server, {
    guard: o.guard,
    name: "diagnostics",
    logger: o.logger,
    ...(o.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: o.handshakeTimeoutMs }),
    idleTimeoutMs: 60_000,
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    markEstablished(req.socket);
    void answer(req, res).catch((err) => {
      o.logger.warn("Diagnostics request {path} failed: {error}", {
        path: req.url,
        error: messageOf(err),
      });
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: "Cannot answer: internal error, see the logs" }) + "\n");
    });
  });
  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const taken = limiter.take(clientKey(req.socket.remoteAddress));
    let r: DiagResponse;
    if (!taken.allowed) {
      const secs = Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
      r = json(429, {
        error: `Cannot answer: too many requests from this address; retry in ${secs} s`,
      }, { "Retry-After": String(secs) });
    } else {
      r = await handleDiagRequest(req.method ?? "GET", req.url ?? "/", o);
    }
    const body = new TextEncoder().encode(r.body);
    res.writeHead(r.status, {
      "Content-Type": r.contentType,
      "Content-Length": String(body.byteLength),
      "Cache-Control": "no-store",
      ...r.headers,
    });
    res.end(req.method === "HEAD" ? undefined : body);
  };
  server.on("clientError", (_err: Error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenOptions(o.host, o.port), () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((err) => {
    throw new BadParameterError(
      `Cannot listen on teleport.diag_addr ${o.host}:${o.port}: ${messageOf(err)}`,
      { cause: err },
    );
  });
  server.on("error", (err: Error) => {
    o.logger.error("Diagnostics listener failed: {error}", { error: messageOf(err) });
  });
  const a = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  };
  return { addr: { host: a.address, port: a.port }, close, [Symbol.asyncDispose]: close };
}
