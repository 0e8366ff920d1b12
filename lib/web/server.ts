/**
 * The proxy's web API over TLS sockets someone else accepted (the port multiplexer hands over
 * TLS-terminated sockets; tests use a node:tls server). One node:http server parses requests on
 * every socket given to {@link WebServer.handleConnection}; it never listens itself.
 *
 * A request goes through these steps:
 * 1. Route by path, then method (404 / 405 JSON errors).
 * 2. State-changing calls (any method but GET/HEAD, and every route that takes a body) from
 *    another site are refused with 403: `Sec-Fetch-Site: cross-site`, or an `Origin` that is not
 *    the proxy's public address or the authority the request was sent to (see origin.ts for why
 *    those two). Requests without `Origin` (tsh, curl) pass.
 * 3. Per-IP token bucket for the credential endpoints (429 with Retry-After).
 * 4. JSON body (routes that take one): `application/json` only (415), at most 64 KiB (413),
 *    valid JSON (400). A declared `Content-Length` over the limit is refused before any of the
 *    body is read (and `Expect: 100-continue` is answered only when the body will be read); a
 *    chunked body is read up to the limit. The rest of a refused body is never read to its
 *    end: the answer goes out with a FIN, then at most {@link LINGER_BYTES} more are dropped
 *    (so that a client still sending sees the answer, not a reset) and the socket is destroyed.
 * 5. The handler calls auth through {@link WebAuthApi}; a kinded error becomes its HTTP status
 *    and `{"error":{"message"}}`; anything else is a 500 whose details stay in the log.
 * 6. Every response carries the security headers and `Cache-Control: no-store`.
 *
 * Each connection serves one request and is closed after the response (`Connection: close`):
 * node:http keeps connections alive only for servers that listen themselves, and this one is
 * fed sockets. For the same reason its header and request timeouts are our own timers.
 *
 * Secrets never reach the log: bodies are never logged, and token path segments are masked
 * ({@link redactPath}). Nothing the client sends about the server's own name (`Host`) is
 * copied into a page or an answer: the landing page names the configured public address, or
 * lets the browser fill in the address it is showing.
 */
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import type { Clock } from "../clock/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  httpStatusOf,
  isKind,
  messageOf,
} from "../errors/mod.ts";
import { type Logger, maskSecret } from "../log/mod.ts";
import { markEstablished, type RateLimit, RateLimiter } from "../net/mod.ts";
import {
  accountSetupPage,
  API_CSP,
  LANDING_PAGE_CSP,
  landingPage,
  SETUP_PAGE_CSP,
} from "./pages.ts";
import {
  AuthPingCache,
  buildFindResponse,
  buildPingResponse,
  checkProxySettings,
  type ProxyFacts,
} from "./ping.ts";
import { checkRequestOrigin } from "./origin.ts";
import {
  checkUserToken,
  formatHostSigner,
  formatSshLoginResponse,
  formatUserTokenResponse,
  parseChangePasswordRequest,
  parseCreateSshCertRequest,
  parseRegisterRequest,
} from "./requests.ts";
import type { HostCaResponse, ProxySettings, WebAuthApi } from "./types.ts";

/** Options of {@link createWebServer}. */
export interface WebServerOptions {
  /** The auth service (an AuthClient fits). */
  auth: WebAuthApi;
  clock: Clock;
  logger: Logger;
  /** What `/webapi/ping` and `/webapi/find` report (built by the integrator from the config). */
  proxySettings: ProxySettings;
  /**
   * Every configured public address of the proxy (`host:port`): `Origin` headers naming one
   * of them are same-origin.
   * @default {[proxySettings.ssh.public_addr] when set, else []}
   */
  publicAddrs?: string[];
  /** The proxy's version (`server_version`). */
  serverVersion: string;
  /** Login throttling per client IP (`/webapi/ssh/certs`). @default {{ burst: 10, perMinute: 20 }} */
  loginRateLimit?: RateLimit;
  /** Join throttling per client IP (`/webapi/host/credentials`). @default {loginRateLimit} */
  joinRateLimit?: RateLimit;
  /** Account-setup throttling per client IP (`/webapi/users/password/token`). @default {loginRateLimit} */
  accountRateLimit?: RateLimit;
  /** Ping, find and page throttling per client IP. @default {{ burst: 480, perMinute: 120 }} */
  publicRateLimit?: RateLimit;
  /** How long auth's ping answer is reused. @default {10000} */
  pingCacheTtlMs?: number;
  /** Time from the handover until the request's headers are in; then the socket is closed. @default {10000} */
  headersTimeoutMs?: number;
  /**
   * Time one request may take, body, auth call and response included; then the socket is closed.
   * @default {60000}
   */
  requestTimeoutMs?: number;
  /**
   * Remote address of a connection, when {@link WebServer.handleConnection} is not told it.
   * @default {the socket's remoteAddress}
   */
  remoteAddrOf?: (socket: Duplex) => string | undefined;
  /**
   * Takes HTTP upgrade requests (`Connection: Upgrade`, e.g. `/webapi/connectionupgrade`) off
   * this server: the socket leaves its bookkeeping and belongs to the hook.
   * @default {none: node:http answers them}
   */
  onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Uint8Array) => void;
  /**
   * The host CA keys (authorized_keys lines) and certificates (PEM) the cluster trusts now,
   * served at `GET /webapi/hostca`. @default {none: that route answers 404}
   */
  hostCertAuthority?: () => Promise<{ sshKeys: string[]; tlsCerts: string[] }>;
}

/** What the caller of {@link WebServer.handleConnection} knows about the connection. */
export interface WebConnectionInfo {
  /** The client's IP address (for example from a trusted PROXY header). */
  remoteAddr?: string;
}

/** The web API, fed with sockets. */
export interface WebServer extends AsyncDisposable {
  /** Serves one HTTP/1.1 request on an already TLS-terminated socket (a TLSSocket). */
  handleConnection(socket: Duplex, info?: WebConnectionInfo): void;
  /** The node:http server (never listening; for integration and diagnostics). */
  readonly server: http.Server;
  /** Connections open (waiting for a request, or being answered). */
  readonly connections: number;
  /**
   * Takes no more connections, closes those without a request, lets requests in flight finish
   * (each at most `requestTimeoutMs`), and resolves when every connection is closed.
   */
  close(): Promise<void>;
}

/** Largest request body accepted. */
export const MAX_BODY_BYTES = 64 * 1024;

const DEFAULT_LOGIN_RATE: RateLimit = { burst: 10, perMinute: 20 };
/** Ping, find and the pages: Teleport's "high" unauthenticated limiter (480 at once, 120/min). */
const DEFAULT_PUBLIC_RATE: RateLimit = { burst: 480, perMinute: 120 };

/** Headers on every response. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store",
});

/** Paths whose last segment is a secret token. */
const TOKEN_PATHS = /^(\/web\/invite\/|\/web\/reset\/|\/webapi\/users\/password\/token\/)(.+)$/;

/** The path as logs may show it: token segments (and any long hex run) are masked. */
export function redactPath(path: string): string {
  const m = TOKEN_PATHS.exec(path);
  const masked = m === null ? path : m[1] + maskSecret(m[2]!);
  return masked.replace(/[0-9a-fA-F]{16,}/g, (hex) => maskSecret(hex));
}

/** An answer before it is written. */
interface Reply {
  status: number;
  json?: unknown;
  html?: string;
  csp?: string;
  headers?: Record<string, string>;
}

interface RequestContext {
  req: IncomingMessage;
  /** The client's IP address, or "unknown". */
  remoteAddr: string;
  /** The parsed JSON body (routes with `body: true`). */
  body: unknown;
}

type LimiterName = "login" | "join" | "account" | "public";

interface Route {
  /** Allowed methods; `GET` also allows `HEAD`. */
  method: "GET" | "POST" | "PUT";
  pattern: RegExp;
  /** Takes a JSON body. */
  body?: boolean;
  limiter?: LimiterName;
  /** "Cannot <action>" in errors. */
  action: string;
  handler: (ctx: RequestContext, params: string[]) => Promise<Reply>;
}

function jsonReply(status: number, json: unknown): Reply {
  return { status, json };
}

function errorReply(status: number, message: string): Reply {
  return { status, json: { error: { message } } };
}

/** The request's path without query and without one trailing slash; undefined when malformed. */
function pathOf(req: IncomingMessage): string | undefined {
  try {
    const path = new URL(req.url ?? "/", "https://proxy.invalid").pathname;
    return path.length > 1 ? path.replace(/\/$/, "") : path;
  } catch {
    return undefined;
  }
}

const UNKNOWN_ADDR = "unknown";

/** `::ffff:1.2.3.4` → `1.2.3.4`; other addresses unchanged. */
function normalizeAddr(addr: string | undefined): string {
  if (addr === undefined || addr === "") return UNKNOWN_ADDR;
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

/** The address to tell auth, when there is one. */
function knownAddr(addr: string): string | undefined {
  return addr === UNKNOWN_ADDR ? undefined : addr;
}

/** One header's value as text (repeated headers joined). */
function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * What is read and dropped of an unread body after the answer, at most. A client still sending
 * when the connection closes may lose the answer to the reset; a client that reads it stops
 * sending and closes, well within this.
 */
const LINGER_BYTES = 1024 * 1024;

/**
 * Ends a connection whose request body was not read to the end: the answer and a FIN go out,
 * and what keeps arriving is dropped until the client closes or {@link LINGER_BYTES} were
 * dropped (the request timer bounds the time, as for any request). node:http reads the rest of
 * the body into `req` (its `_dump()`), so that is where the dropped bytes are counted.
 */
function lingerClose(req: IncomingMessage, socket: Socket): void {
  let left = LINGER_BYTES;
  req.on("data", (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) socket.destroy();
  });
  req.resume();
  socket.end();
}

/** Methods that never change state. */
const SAFE_METHODS = new Set(["GET", "HEAD"]);

/** Connection bookkeeping for timeouts and graceful close. */
interface ConnState {
  socket: Duplex;
  remoteAddr: string;
  /** A request arrived (its headers are in). */
  busy: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Builds the web API server; see the module doc. */
export function createWebServer(options: WebServerOptions): WebServer {
  const { auth, clock, logger } = options;
  checkProxySettings(options.proxySettings);
  const facts: ProxyFacts = {
    proxySettings: structuredClone(options.proxySettings),
    serverVersion: options.serverVersion,
  };
  const loginRate = options.loginRateLimit ?? DEFAULT_LOGIN_RATE;
  const limiters: Record<LimiterName, RateLimiter> = {
    login: new RateLimiter({ ...loginRate, clock }),
    join: new RateLimiter({ ...(options.joinRateLimit ?? loginRate), clock }),
    account: new RateLimiter({ ...(options.accountRateLimit ?? loginRate), clock }),
    public: new RateLimiter({ ...(options.publicRateLimit ?? DEFAULT_PUBLIC_RATE), clock }),
  };
  const throttleLog = new RateLimiter({ burst: 1, perMinute: 1, clock });
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const pingCache = new AuthPingCache({
    ping: () => auth.ping(),
    clock,
    logger,
    ...(options.pingCacheTtlMs === undefined ? {} : { ttlMs: options.pingCacheTtlMs }),
  });

  /** Ping and find: 502 when auth was never reached. */
  const pingReply = async (build: typeof buildPingResponse | typeof buildFindResponse) => {
    try {
      return jsonReply(200, build(await pingCache.get(), facts));
    } catch (err) {
      if (isKind(err, "ConnectionProblem")) return errorReply(502, messageOf(err));
      throw err;
    }
  };

  /** Token errors are access errors: an unknown token reads like an expired one. */
  const tokenCall = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      if (isKind(err, "NotFound")) throw new AccessDeniedError(messageOf(err), { cause: err });
      throw err;
    }
  };

  const publicAddrs = options.publicAddrs ??
    (facts.proxySettings.ssh.public_addr === "" ? [] : [facts.proxySettings.ssh.public_addr]);

  /**
   * What the landing page tells tsh to use: the configured public address; without one, the
   * page lets the browser fill in the address it shows (never the client's Host header).
   */
  const landingProxyAddr = (): { addr: string; fromBrowser: boolean } => {
    const s = facts.proxySettings.ssh;
    if (s.public_addr) return { addr: s.public_addr, fromBrowser: false };
    const port = /:(\d+)$/.exec(s.web_listen_addr)?.[1];
    return { addr: `<proxy host>:${port ?? "<port>"}`, fromBrowser: true };
  };

  const routes: Route[] = [
    {
      method: "GET",
      pattern: /^\/webapi\/ping(?:\/[^/]+)?$/,
      action: "answer ping",
      limiter: "public",
      handler: () => pingReply(buildPingResponse),
    },
    {
      method: "GET",
      pattern: /^\/webapi\/find$/,
      action: "answer find",
      limiter: "public",
      handler: () => pingReply(buildFindResponse),
    },
    {
      method: "GET",
      pattern: /^\/webapi\/hostca$/,
      action: "read the cluster's host CA",
      limiter: "public",
      handler: async () => {
        const read = options.hostCertAuthority;
        if (read === undefined) {
          return errorReply(
            404,
            "Cannot read the cluster's host CA: this proxy does not publish it",
          );
        }
        const [ping, cas] = await Promise.all([pingCache.get(), read()]);
        const reply: HostCaResponse = {
          host_signers: [formatHostSigner(ping.cluster_name, cas.sshKeys, cas.tlsCerts)],
        };
        return jsonReply(200, reply);
      },
    },
    {
      method: "POST",
      pattern: /^\/webapi\/ssh\/certs$/,
      body: true,
      limiter: "login",
      action: "log in",
      handler: async (ctx) => {
        const req = parseCreateSshCertRequest(ctx.body, knownAddr(ctx.remoteAddr));
        try {
          const certs = await auth.authenticateSshUser(req);
          const ping = await pingCache.get();
          logger.info("User {user} logged in from {addr}", {
            user: req.user,
            addr: ctx.remoteAddr,
          });
          return jsonReply(200, formatSshLoginResponse(req.user, certs, ping.cluster_name));
        } catch (err) {
          logger.info("Login of user {user} from {addr} failed: {message}", {
            user: req.user,
            addr: ctx.remoteAddr,
            message: messageOf(err),
          });
          throw err;
        }
      },
    },
    {
      method: "POST",
      pattern: /^\/webapi\/host\/credentials$/,
      body: true,
      limiter: "join",
      action: "join the cluster",
      handler: async (ctx) => {
        const req = parseRegisterRequest(ctx.body);
        const addr = knownAddr(ctx.remoteAddr);
        const res = await auth.register(addr === undefined ? req : { ...req, remote_addr: addr });
        logger.info("Host {host} ({role}) joined from {addr}", {
          host: req.node_name,
          role: req.role,
          addr: ctx.remoteAddr,
        });
        return jsonReply(200, res);
      },
    },
    {
      method: "GET",
      pattern: /^\/webapi\/users\/password\/token\/([^/]+)$/,
      limiter: "account",
      action: "read the token",
      handler: async (_ctx, [token]) => {
        checkUserToken(token!, "read the token");
        const details = await tokenCall(() => auth.getUserTokenDetails(token!));
        return jsonReply(200, formatUserTokenResponse(details));
      },
    },
    {
      method: "PUT",
      pattern: /^\/webapi\/users\/password\/token$/,
      body: true,
      limiter: "account",
      action: "set password",
      handler: async (ctx) => {
        const req = parseChangePasswordRequest(ctx.body);
        const user = await tokenCall(() => auth.changePasswordWithToken(req));
        logger.info("User {user} set a password from {addr}", { user, addr: ctx.remoteAddr });
        return jsonReply(200, { user });
      },
    },
    {
      method: "GET",
      pattern: /^\/web\/(?:invite|reset)\/[^/]+$/,
      action: "show the account setup page",
      limiter: "public",
      handler: () =>
        Promise.resolve({ status: 200, html: accountSetupPage(), csp: SETUP_PAGE_CSP }),
    },
    {
      method: "GET",
      pattern: /^\/(?:web)?$/,
      action: "show the landing page",
      limiter: "public",
      handler: async () => {
        let cluster = pingCache.cached?.cluster_name;
        if (cluster === undefined) {
          cluster = await pingCache.get().then((p) => p.cluster_name, () => undefined);
        }
        const { addr, fromBrowser } = landingProxyAddr();
        return {
          status: 200,
          html: landingPage(cluster, addr, { fromBrowser }),
          csp: LANDING_PAGE_CSP,
        };
      },
    },
  ];

  const send = (res: ServerResponse, reply: Reply) => {
    const isHtml = reply.html !== undefined;
    const text = isHtml ? reply.html! : JSON.stringify(reply.json ?? {});
    const headers: Record<string, string | number> = {
      ...SECURITY_HEADERS,
      "content-security-policy": reply.csp ?? API_CSP,
      "content-type": isHtml ? "text/html; charset=utf-8" : "application/json",
      "content-length": Buffer.byteLength(text),
      ...reply.headers,
    };
    // One request per connection (see the module doc).
    headers["connection"] = "close";
    res.writeHead(reply.status, headers);
    res.end(text);
  };

  /** Reads a JSON body under the size limit; a Reply when it cannot. */
  const readJson = (
    req: IncomingMessage,
    res: ServerResponse,
    action: string,
  ): Promise<{ ok: true; value: unknown } | { ok: false; reply: Reply }> => {
    const refuse = (reply: Reply) => ({ ok: false as const, reply });
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") {
      return Promise.resolve(
        refuse(errorReply(415, `Cannot ${action}: send the body as application/json`)),
      );
    }
    const tooLarge = refuse(errorReply(
      413,
      `Cannot ${action}: the request body is larger than ${MAX_BODY_BYTES} bytes`,
    ));
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return Promise.resolve(tooLarge);
    // The client waits for this before it sends the body (see "checkContinue" below).
    if (/^100-continue$/i.test(String(req.headers.expect ?? "").trim())) res.writeContinue();
    // Events rather than for-await: leaving a for-await loop early would destroy the socket
    // before the 413 is written.
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (v: { ok: true; value: unknown } | { ok: false; reply: Reply }) => {
        if (done) return;
        done = true;
        req.off("data", onData);
        resolve(v);
      };
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.pause();
          finish(tooLarge);
        } else {
          chunks.push(chunk);
        }
      };
      req.on("data", onData);
      req.once("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (text.trim() === "") {
          return finish(refuse(errorReply(
            400,
            `Cannot ${action}: the request body is empty; send a JSON object`,
          )));
        }
        try {
          finish({ ok: true, value: JSON.parse(text) });
        } catch {
          finish(refuse(errorReply(400, `Cannot ${action}: the request body is not valid JSON`)));
        }
      });
      const broken = () =>
        finish(refuse(errorReply(400, `Cannot ${action}: the request body was cut short`)));
      req.once("error", broken);
      req.once("close", broken);
    });
  };

  const route = async (
    req: IncomingMessage,
    res: ServerResponse,
    state: ConnState | undefined,
  ): Promise<Reply> => {
    const remoteAddr = state?.remoteAddr ?? normalizeAddr(req.socket?.remoteAddress);
    const path = pathOf(req);
    if (path === undefined) return errorReply(400, "Cannot read the request: the URL is malformed");
    const method = req.method === "HEAD" ? "GET" : req.method ?? "GET";
    const matching = routes.filter((r) => r.pattern.test(path));
    if (matching.length === 0) return errorReply(404, `Cannot find ${path}`);
    const r = matching.find((r) => r.method === method);
    if (!SAFE_METHODS.has(method) || r?.body === true) {
      const why = checkRequestOrigin({
        origin: req.headers.origin,
        secFetchSite: headerText(req.headers["sec-fetch-site"]),
        host: req.headers.host,
        publicAddrs,
      });
      if (why !== undefined) {
        logger.warn("Refused a cross-site {method} {path} from {addr}: {why}", {
          method: req.method,
          path: redactPath(path),
          addr: remoteAddr,
          why,
        });
        return errorReply(
          403,
          `Cannot ${(r ?? matching[0]!).action}: cross-site requests are refused: ${why}; open ` +
            "the proxy's own address in the browser, or call the API without an Origin header " +
            "(as tsh and curl do)",
        );
      }
    }
    if (r === undefined) {
      const allow = [
        ...new Set(matching.flatMap((r) => r.method === "GET" ? ["GET", "HEAD"] : [r.method])),
      ];
      return {
        ...errorReply(405, `Cannot ${matching[0]!.action}: method ${req.method} is not allowed`),
        headers: { allow: allow.join(", ") },
      };
    }
    if (r.limiter !== undefined) {
      const verdict = limiters[r.limiter].take(remoteAddr);
      if (!verdict.allowed) {
        // One line per address a minute: a flood must not flood the log.
        if (throttleLog.take(remoteAddr).allowed) {
          logger.warn("Throttled {path} from {addr}: too many attempts (logged once a minute)", {
            path: redactPath(path),
            addr: remoteAddr,
          });
        }
        return {
          ...errorReply(
            429,
            `Cannot ${r.action}: too many attempts from ${remoteAddr}; wait a minute and try again`,
          ),
          headers: { "retry-after": String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000))) },
        };
      }
    }
    let body: unknown = undefined;
    if (r.body) {
      const read = await readJson(req, res, r.action);
      if (!read.ok) return read.reply;
      body = read.value;
    }
    // The whole request is in: the connection leaves the guard's handshake deadline and its
    // address's pending count (a slow header or body kept it there).
    markEstablished(req.socket);
    try {
      const params = (r.pattern.exec(path) ?? []).slice(1).map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw new BadParameterError(`Cannot ${r.action}: the path is not valid percent-encoding`);
        }
      });
      return await r.handler({ req, remoteAddr, body }, params);
    } catch (err) {
      const status = httpStatusOf(err);
      if (status === 500) {
        logger.error("Web API {method} {path} from {addr} failed: {error}", {
          method: req.method,
          path: redactPath(path),
          addr: remoteAddr,
          error: err,
        });
        return errorReply(500, `Cannot ${r.action}: internal error, see the proxy log`);
      }
      return errorReply(status, messageOf(err));
    }
  };

  const states = new Map<Duplex, ConnState>();
  let closed = false;
  let allClosed: PromiseWithResolvers<void> | undefined;

  const arm = (state: ConnState, ms: number) => {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => state.socket.destroy(), ms);
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const state = states.get(req.socket as Duplex);
    if (state !== undefined) {
      state.busy = true;
      // Also bounds the flush of the response: node:http ends the socket after it.
      arm(state, requestTimeoutMs);
    }
    let reply: Reply;
    try {
      reply = await route(req, res, state);
    } catch (err) {
      const status = httpStatusOf(err);
      if (status === 500) logger.error("Web API request failed: {error}", { error: err });
      reply = errorReply(
        status,
        status === 500 ? "internal error, see the proxy log" : messageOf(err),
      );
    }
    if (res.headersSent || res.destroyed) return;
    if (!req.complete) {
      // node:http closes the connection after the answer (`Connection: close`) with
      // destroySoon(); this one still has body coming, so close it lingering instead.
      const socket = req.socket as Socket;
      socket.destroySoon = () => lingerClose(req, socket);
    }
    send(res, reply);
    logger.debug("{method} {path} {status} from {addr}", {
      method: req.method,
      path: redactPath(pathOf(req) ?? "(malformed)"),
      status: reply.status,
      addr: state?.remoteAddr ?? normalizeAddr(req.socket?.remoteAddress),
    });
  };

  const server = http.createServer({}, (req, res) => void onRequest(req, res));
  // With a listener, node:http no longer sends "100 Continue" by itself: readJson sends it
  // when it starts reading, so a body refused by its declared length is never sent at all.
  server.on("checkContinue", (req, res) => void onRequest(req, res));
  server.maxHeadersCount = 100;
  server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
    logger.debug("Bad HTTP request from {addr}: {message}", {
      addr: states.get(socket)?.remoteAddr ?? "unknown",
      message: err.message,
    });
    if (socket.writable && err.code !== "ECONNRESET") {
      const status = err.code === "HPE_HEADER_OVERFLOW"
        ? "431 Request Header Fields Too Large"
        : "400 Bad Request";
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });

  const onUpgrade = options.onUpgrade;
  if (onUpgrade !== undefined) {
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Uint8Array) => {
      const state = states.get(socket);
      if (state !== undefined) clearTimeout(state.timer);
      states.delete(socket);
      if (states.size === 0) allClosed?.resolve();
      onUpgrade(req, socket, head);
    });
  }

  const handleConnection = (socket: Duplex, info?: WebConnectionInfo) => {
    if (closed) {
      socket.destroy();
      return;
    }
    (socket as Partial<Socket>).setNoDelay?.(true);
    const state: ConnState = {
      socket,
      remoteAddr: normalizeAddr(
        info?.remoteAddr ?? options.remoteAddrOf?.(socket) ??
          (socket as Partial<Socket>).remoteAddress,
      ),
      busy: false,
      timer: undefined,
    };
    states.set(socket, state);
    arm(state, headersTimeoutMs);
    socket.on("error", (err: Error) => {
      logger.debug("Web connection from {addr} failed: {message}", {
        addr: state.remoteAddr,
        message: err.message,
      });
    });
    socket.once("close", () => {
      clearTimeout(state.timer);
      states.delete(socket);
      if (states.size === 0) allClosed?.resolve();
    });
    server.emit("connection", socket);
    // A socket handed over paused with bytes put back (plain HTTP from the multiplexer): in
    // Deno 2.9.6 node:http does not start reading it by itself (measured).
    if (socket.isPaused()) socket.resume();
  };

  const close = (): Promise<void> => {
    if (!closed) {
      closed = true;
      allClosed = Promise.withResolvers<void>();
      for (const state of states.values()) {
        if (!state.busy) state.socket.destroy();
      }
      if (states.size === 0) allClosed.resolve();
    }
    return allClosed!.promise;
  };

  return {
    handleConnection,
    server,
    get connections() {
      return states.size;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
