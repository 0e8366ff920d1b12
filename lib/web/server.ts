/**
 * The proxy's web API as one web-standard handler, `(Request, ConnInfo) => Promise<Response>`
 * ({@link WebServer.handler}; unit tests call it with `new Request(…)`), served on sockets someone
 * else accepted through lib/net's one node:http adapter ({@link WebServer.handleConnection}: the
 * port multiplexer hands over TLS-terminated sockets; tests use a node:tls server). The adapter
 * owns what only the socket can do: one request per connection, header and request timers,
 * `100 Continue` only when the body is read, closing (not draining) after a refused body, and
 * WebSocket upgrades.
 *
 * A request goes through these steps:
 * 1. Route by path (`/v1/webapi/…` is `/webapi/…`), then method (404 / 405 JSON errors).
 * 2. State-changing calls (any method but GET/HEAD, and every route that takes a body) from
 *    another site are refused with 403: `Sec-Fetch-Site: cross-site`, or an `Origin` that is not
 *    the proxy's public address or the authority the request was sent to (see origin.ts for why
 *    those two). Requests without `Origin` (tsh, curl) pass.
 * 3. Per-IP token bucket for the credential endpoints (429 with Retry-After).
 * 4. JSON body (routes that take one): `application/json` only (415), at most 64 KiB (413),
 *    valid JSON (400). A declared `Content-Length` over the limit is refused before any of the
 *    body is read; a chunked body is read up to the limit (http.ts).
 * 5. The handler calls auth through {@link WebAuthApi}; a kinded error becomes its HTTP status
 *    and `{"error":{"message"}}` (the one mapping: lib/errors' httpStatusOf, plus
 *    {@link HttpError} for 401); anything else is a 500 whose details stay in the log.
 * 6. Every response carries the security headers and `Cache-Control: no-store`.
 *
 * Secrets never reach the log: bodies are never logged, and token path segments are masked
 * ({@link redactPath}). Nothing the client sends about the server's own name (`Host`) is
 * copied into a page or an answer: the landing page names the configured public address, or
 * lets the browser fill in the address it is showing.
 */
import type { Duplex } from "node:stream";
import type http from "node:http";
import type { IncomingMessage } from "node:http";
import type { Clock } from "../clock/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  httpStatusOf,
  isKind,
  messageOf,
  NotFoundError,
} from "../errors/mod.ts";
import { type Logger, maskSecret } from "../log/mod.ts";
import {
  type ConnInfo,
  createFedHttpServer,
  type FedConnectionInfo,
  normalizeRemoteAddr,
  type RateLimit,
  RateLimiter,
} from "../net/mod.ts";
import { HttpError, readJsonBody } from "./http.ts";
import { bearerOf, sessionCookie, type WebSession, WebSessions } from "./sessions.ts";
import { API_CSP, LANDING_PAGE_CSP, landingPage } from "./pages.ts";
import {
  AuthPingCache,
  buildFindResponse,
  buildPingResponse,
  checkProxySettings,
  DEFAULT_SESSION_TTL_MS,
  type ProxyFacts,
} from "./ping.ts";
import { checkRequestOrigin } from "./origin.ts";
import { serveWebUi } from "./ui.ts";
import {
  checkUserToken,
  formatHostSigner,
  formatSshLoginResponse,
  formatUserTokenResponse,
  parseChangePasswordRequest,
  parseCreateSshCertRequest,
  parseMfaCode,
  parseMfaReplaceRequest,
  parseRegisterRequest,
  parseWebLoginRequest,
  parseWebPasswordChange,
} from "./requests.ts";
import type { HostCaResponse, ProxySettings, WebAuthApi, WebClusterAccess } from "./types.ts";
import { listNodePage, parseResourceQuery } from "./resources.ts";
import {
  checkSid,
  formatRecordingEvent,
  formatTracker,
  parseEventSearch,
  playerRecording,
} from "./cluster_api.ts";
import { parseTerminalParams, runTerminal } from "./terminal.ts";

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
   * The proxy around the web API: nodes, routing, auth as the user. Without it the cluster
   * routes (`/webapi/sites/…`) answer 404.
   */
  cluster?: WebClusterAccess;
  /** Time a terminal WebSocket has to send its token. @default {4000} */
  terminalAuthTimeoutMs?: number;
  /** Interval of a terminal's pings and latency (`l`) frames. @default {30000} */
  terminalPingIntervalMs?: number;
  /** Web sessions of the browser UI (cookie + bearer). @default {30 min idle, 10 s cache} */
  webSessions?: { idleTimeoutMs?: number; cacheMs?: number };
  /**
   * Remote address of a connection, when {@link WebServer.handleConnection} is not told it.
   * @default {the socket's remoteAddress}
   */
  remoteAddrOf?: (socket: Duplex) => string | undefined;
  /**
   * Takes `/webapi/connectionupgrade` requests (`Connection: Upgrade`, L7 load balancers) off
   * this server: the raw request and socket go to the hook, which answers and owns the socket.
   * @default {none: those requests get the handler's answer}
   */
  onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Uint8Array) => void;
  /**
   * The host CA keys (authorized_keys lines) and certificates (PEM) the cluster trusts now,
   * served at `GET /webapi/hostca`. @default {none: that route answers 404}
   */
  hostCertAuthority?: () => Promise<{ sshKeys: string[]; tlsCerts: string[] }>;
}

/** What the caller of {@link WebServer.handleConnection} knows about the connection. */
export type WebConnectionInfo = FedConnectionInfo;

/** The web API, fed with sockets. */
export interface WebServer extends AsyncDisposable {
  /** The whole API as a web-standard handler (what handleConnection serves). */
  handler(req: Request, info: ConnInfo): Promise<Response>;
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

export { MAX_BODY_BYTES } from "./http.ts";
import { MAX_BODY_BYTES, SECURITY_HEADERS } from "./http.ts";

const DEFAULT_LOGIN_RATE: RateLimit = { burst: 10, perMinute: 20 };
/** Ping, find and the pages: Teleport's "high" unauthenticated limiter (480 at once, 120/min). */
const DEFAULT_PUBLIC_RATE: RateLimit = { burst: 480, perMinute: 120 };

/** Headers on every API response: the web port's, and no caching. */
const API_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...SECURITY_HEADERS,
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
  /** `Set-Cookie` values. */
  cookies?: string[];
}

interface RequestContext {
  req: Request;
  info: ConnInfo;
  url: URL;
  /** The client's IP address, or "unknown". */
  remoteAddr: string;
  /** The parsed JSON body (routes with `body: true`). */
  body: unknown;
  /** The caller's web session (routes with `session: true`). */
  session: WebSession;
}

type LimiterName = "login" | "join" | "account" | "public";

interface Route {
  /** Allowed methods; `GET` also allows `HEAD`. */
  method: "GET" | "POST" | "PUT" | "DELETE";
  pattern: RegExp;
  /** Takes a JSON body. */
  body?: boolean;
  /**
   * Needs a web session: the session cookie and its bearer token (401 without both), or only
   * the cookie for `"cookie"` (WebSockets: the token comes in the first message; the upgrade
   * must also come from the proxy's own origin, as state-changing calls do).
   */
  session?: true | "cookie";
  limiter?: LimiterName;
  /** "Cannot <action>" in errors. */
  action: string;
  handler: (ctx: RequestContext, params: string[]) => Promise<Reply | Response>;
}

/** The request's path without one trailing slash, `/v1/webapi/…` read as `/webapi/…`. */
function pathOf(url: URL): string {
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/$/, "") : url.pathname;
  return path.startsWith("/v1/webapi/") ? path.slice(3) : path;
}

function jsonReply(status: number, json: unknown): Reply {
  return { status, json };
}

function errorReply(status: number, message: string): Reply {
  return { status, json: { error: { message } } };
}

/** The address to tell auth, when there is one. */
function knownAddr(addr: string): string | undefined {
  return addr === "unknown" ? undefined : addr;
}

/** Methods that never change state. */
const SAFE_METHODS = new Set(["GET", "HEAD"]);

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

  const sessions = new WebSessions({
    auth,
    clock,
    logger,
    certTtlMs: DEFAULT_SESSION_TTL_MS,
    ...options.webSessions,
  });

  /** The cluster access for `:site`; 404 for another cluster or without one. */
  const siteOf = (site: string, action: string): WebClusterAccess => {
    const cluster = options.cluster;
    if (cluster === undefined || site !== cluster.clusterName) {
      throw new NotFoundError(`Cannot ${action}: this proxy serves no cluster named "${site}"`);
    }
    return cluster;
  };

  const clusterRoutes: Route[] = [
    {
      method: "GET",
      pattern: /^\/webapi\/sites\/([^/]+)\/resources$/,
      session: true,
      action: "list resources",
      handler: async (ctx, [site]) => {
        const cluster = siteOf(site!, "list resources");
        const q = parseResourceQuery(ctx.url.searchParams);
        const user = await cluster.certifyUser(ctx.session.sshCertBlob, ctx.remoteAddr);
        return jsonReply(
          200,
          listNodePage(await cluster.nodes(), q, {
            checker: user.checker,
            hasTunnel: (name) => cluster.hasTunnel(name),
          }),
        );
      },
    },
    {
      method: "GET",
      pattern: /^\/webapi\/sites\/([^/]+)\/connect\/ws$/,
      session: "cookie",
      action: "open the terminal",
      handler: (ctx, [site]) => {
        const cluster = siteOf(site!, "open the terminal");
        const params = parseTerminalParams(ctx.url.searchParams.get("params"));
        if (ctx.info.upgradeWebSocket === undefined) {
          throw new BadParameterError(
            "Cannot open the terminal: this endpoint speaks WebSocket only (send Upgrade: websocket)",
          );
        }
        const { socket, response } = ctx.info.upgradeWebSocket({ maxMessageBytes: 1024 * 1024 });
        void runTerminal({
          ws: socket,
          session: ctx.session,
          sessions,
          params,
          cluster,
          remoteAddr: ctx.remoteAddr,
          ...(ctx.info.remotePort === undefined ? {} : { remotePort: ctx.info.remotePort }),
          logger,
          ...(options.terminalAuthTimeoutMs === undefined
            ? {}
            : { authTimeoutMs: options.terminalAuthTimeoutMs }),
          ...(options.terminalPingIntervalMs === undefined
            ? {}
            : { pingIntervalMs: options.terminalPingIntervalMs }),
        });
        return Promise.resolve(response);
      },
    },
    {
      method: "GET",
      pattern: /^\/webapi\/sites\/([^/]+)\/sessions$/,
      session: true,
      action: "list active sessions",
      handler: async (ctx, [site]) => {
        const api = siteOf(site!, "list active sessions").userApi(ctx.session.record);
        return jsonReply(200, { sessions: (await api.listSessionTrackers()).map(formatTracker) });
      },
    },
    {
      method: "GET",
      pattern: /^\/webapi\/sites\/([^/]+)\/events\/search$/,
      session: true,
      action: "search the audit log",
      handler: async (ctx, [site]) => {
        const api = siteOf(site!, "search the audit log").userApi(ctx.session.record);
        const res = await api.searchEvents(
          parseEventSearch(ctx.url.searchParams, "search the audit log"),
        );
        return jsonReply(200, { events: res.events, startKey: res.lastKey ?? "" });
      },
    },
    {
      method: "GET",
      pattern: /^\/webapi\/sites\/([^/]+)\/events\/search\/sessions$/,
      session: true,
      action: "list recordings",
      handler: async (ctx, [site]) => {
        const api = siteOf(site!, "list recordings").userApi(ctx.session.record);
        const q = parseEventSearch(ctx.url.searchParams, "list recordings");
        const res = await api.searchEvents({ ...q, types: ["session.end"] });
        return jsonReply(200, {
          sessions: res.events.filter((e) => e.interactive === true).map(formatRecordingEvent),
          startKey: res.lastKey ?? "",
        });
      },
    },
    {
      method: "GET",
      pattern: /^\/webapi\/sites\/([^/]+)\/sessionlength\/([^/]+)$/,
      session: true,
      action: "read the session length",
      handler: async (ctx, [site, sid]) => {
        const api = siteOf(site!, "read the session length").userApi(ctx.session.record);
        checkSid(sid!, "read the session length");
        const rec = await playerRecording(await api.downloadRecording(sid!));
        return jsonReply(200, { durationMs: rec.durationMs });
      },
    },
    {
      method: "GET",
      pattern: /^\/webapi\/sites\/([^/]+)\/recordings\/([^/]+)$/,
      session: true,
      action: "read the recording",
      handler: async (ctx, [site, sid]) => {
        const api = siteOf(site!, "read the recording").userApi(ctx.session.record);
        checkSid(sid!, "read the recording");
        return jsonReply(200, await playerRecording(await api.downloadRecording(sid!)));
      },
    },
  ];

  const userApiOf = (ctx: RequestContext, action: string) => {
    if (options.cluster === undefined) throw new NotFoundError(`Cannot ${action} here`);
    return options.cluster.userApi(ctx.session.record);
  };

  const accountRoutes: Route[] = [
    {
      method: "GET",
      pattern: /^\/webapi\/mfa\/devices$/,
      session: true,
      action: "list second-factor devices",
      handler: async (ctx) =>
        jsonReply(200, {
          devices: await userApiOf(ctx, "list second-factor devices").listMfaDevices(),
        }),
    },
    {
      method: "POST",
      pattern: /^\/webapi\/mfa\/devices\/totp\/replace$/,
      body: true,
      session: true,
      limiter: "login",
      action: "replace the OTP device",
      handler: async (ctx) => {
        const req = parseMfaReplaceRequest(ctx.body);
        const r = await userApiOf(ctx, "replace the OTP device").beginTotpReplace(req);
        return jsonReply(200, { otpauth_uri: r.uri, otp_secret: r.secret, expires: r.expires });
      },
    },
    {
      method: "PUT",
      pattern: /^\/webapi\/mfa\/devices\/totp$/,
      body: true,
      session: true,
      limiter: "login",
      action: "add the OTP device",
      handler: async (ctx) => {
        const code = parseMfaCode(ctx.body);
        await userApiOf(ctx, "add the OTP device").finishTotpReplace(code);
        logger.info("User {user} replaced their OTP device from the web UI", {
          user: ctx.session.record.user,
        });
        return jsonReply(200, { ok: true });
      },
    },
    {
      method: "PUT",
      pattern: /^\/webapi\/users\/password$/,
      body: true,
      session: true,
      limiter: "login",
      action: "change the password",
      handler: async (ctx) => {
        const cluster = options.cluster;
        if (cluster === undefined) throw new NotFoundError("Cannot change the password here");
        const req = parseWebPasswordChange(ctx.body);
        await cluster.userApi(ctx.session.record).changePassword(req);
        logger.info("User {user} changed their password from the web UI", {
          user: ctx.session.record.user,
        });
        return jsonReply(200, { ok: true });
      },
    },
  ];

  const routes: Route[] = [
    ...clusterRoutes,
    ...accountRoutes,
    {
      method: "POST",
      pattern: /^\/webapi\/sessions\/web$/,
      body: true,
      limiter: "login",
      action: "log in",
      handler: async (ctx) => {
        const req = parseWebLoginRequest(ctx.body);
        try {
          const { record, bearer } = await sessions.login({
            ...req,
            ...(knownAddr(ctx.remoteAddr) === undefined ? {} : { remoteAddr: ctx.remoteAddr }),
          });
          logger.info("User {user} logged in to the web UI from {addr}", {
            user: req.user,
            addr: ctx.remoteAddr,
          });
          return {
            ...jsonReply(200, sessions.response(record, bearer)),
            cookies: [sessionCookie(record.id)],
          };
        } catch (err) {
          logger.info("Web login of user {user} from {addr} failed: {message}", {
            user: req.user,
            addr: ctx.remoteAddr,
            message: messageOf(err),
          });
          throw err;
        }
      },
    },
    {
      method: "DELETE",
      pattern: /^\/webapi\/sessions\/web$/,
      session: true,
      action: "log out",
      handler: async (ctx) => {
        await sessions.logout(ctx.session);
        logger.info("User {user} logged out of the web UI", { user: ctx.session.record.user });
        return { ...jsonReply(200, { ok: true }), cookies: [sessionCookie("", true)] };
      },
    },
    {
      method: "POST",
      pattern: /^\/webapi\/sessions\/web\/renew$/,
      session: true,
      action: "renew the web session",
      handler: async (ctx) => {
        const record = await sessions.renew(ctx.session);
        const bearer = bearerOf(ctx.req.headers.get("authorization"))!;
        return jsonReply(200, sessions.response(record, bearer));
      },
    },
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
      // The browser UI's assets (ui.ts): a fixed set held in memory, answered 304 by ETag; not
      // throttled, since one page load asks for about twenty of them (several users behind
      // one NAT address would otherwise run out of the public budget).
      method: "GET",
      pattern: /^\/web\/app\/.+$/,
      action: "serve a web UI asset",
      handler: (ctx) => Promise.resolve(serveWebUi(ctx.req)),
    },
    {
      // The browser UI (ui.ts): the app page for /web and every path below it (invite and
      // reset links included).
      method: "GET",
      pattern: /^\/web(?:\/.*)?$/,
      action: "show the web UI",
      limiter: "public",
      handler: (ctx) => Promise.resolve(serveWebUi(ctx.req)),
    },
    {
      method: "GET",
      pattern: /^\/$/,
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

  /** The reply as a Response with the security headers. */
  const toResponse = (reply: Reply | Response): Response => {
    if (reply instanceof Response) {
      if (reply.status === 101) return reply;
      for (const [name, value] of Object.entries(API_HEADERS)) {
        if (!reply.headers.has(name)) reply.headers.set(name, value);
      }
      if (!reply.headers.has("content-security-policy")) {
        reply.headers.set("content-security-policy", API_CSP);
      }
      return reply;
    }
    const isHtml = reply.html !== undefined;
    const headers = new Headers({
      ...API_HEADERS,
      "content-security-policy": reply.csp ?? API_CSP,
      "content-type": isHtml ? "text/html; charset=utf-8" : "application/json",
      ...reply.headers,
    });
    for (const cookie of reply.cookies ?? []) headers.append("set-cookie", cookie);
    return new Response(isHtml ? reply.html! : JSON.stringify(reply.json ?? {}), {
      status: reply.status,
      headers,
    });
  };

  const route = async (req: Request, info: ConnInfo): Promise<Reply | Response> => {
    const remoteAddr = normalizeRemoteAddr(info.remoteAddr);
    const url = new URL(req.url);
    const path = pathOf(url);
    const method = req.method === "HEAD" ? "GET" : req.method;
    const matching = routes.filter((r) => r.pattern.test(path));
    if (matching.length === 0) return errorReply(404, `Cannot find ${path}`);
    const r = matching.find((r) => r.method === method);
    if (!SAFE_METHODS.has(method) || r?.body === true || r?.session === "cookie") {
      const why = checkRequestOrigin({
        origin: req.headers.get("origin") ?? undefined,
        secFetchSite: req.headers.get("sec-fetch-site") ?? undefined,
        host: req.headers.get("host") ?? undefined,
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
    try {
      let body: unknown = undefined;
      if (r.body) body = await readJsonBody(req, r.action, MAX_BODY_BYTES);
      const params = (r.pattern.exec(path) ?? []).slice(1).map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw new BadParameterError(`Cannot ${r.action}: the path is not valid percent-encoding`);
        }
      });
      const session = r.session === undefined
        ? undefined as unknown as WebSession
        : await sessions.authenticate(
          req,
          r.action,
          r.session === "cookie" ? { bearer: null } : {},
        );
      return await r.handler({ req, info, url, remoteAddr, body, session }, params);
    } catch (err) {
      if (err instanceof HttpError) return errorReply(err.status, err.message);
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

  /** The web-standard handler: every answer carries the security headers. */
  const handler = async (req: Request, info: ConnInfo): Promise<Response> =>
    toResponse(await route(req, info));

  const onUpgrade = options.onUpgrade;
  const http = createFedHttpServer({
    handler,
    logger,
    headersTimeoutMs: options.headersTimeoutMs ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
    ...(options.remoteAddrOf === undefined ? {} : { remoteAddrOf: options.remoteAddrOf }),
    redactPath,
    ...(onUpgrade === undefined ? {} : {
      takeUpgrade: (req: IncomingMessage) =>
        /^(?:\/v1)?\/webapi\/connectionupgrade\/?(?:\?|$)/.test(req.url ?? ""),
      onTakenUpgrade: onUpgrade,
    }),
  });

  return {
    handler,
    handleConnection: (socket, info) => http.handleConnection(socket, info),
    server: http.server,
    get connections() {
      return http.connections;
    },
    close: () => http.close(),
    [Symbol.asyncDispose]: () => http.close(),
  };
}
