/**
 * The one adapter from node:http(s) to web-standard handlers: `(Request, ConnInfo) =>
 * Promise<Response>`. One request core ({@link createHttpCore}, internal) serves two kinds of
 * server:
 * - {@link createFedHttpServer}: sockets someone else accepted (the port multiplexer hands over
 *   TLS-terminated or plain sockets), one request per connection (`Connection: close`);
 * - {@link listenHttps}: a server that listens itself with TLS (mutual TLS: node:https, since
 *   `Deno.listenTls` cannot ask for client certificates) and keeps connections alive, behind the
 *   connection guard, optionally reading a header before TLS (the auth API's signed client
 *   address).
 * Handlers see only `Request`, `Response` and {@link ConnInfo} (extended per server through
 * {@link HttpCoreOptions.connInfo}, e.g. the auth API's verified caller), so unit tests call
 * them with `new Request(…)`, without sockets. A handler's throw becomes a status here, in one
 * place: the error's kind decides it (errors/), the body is `{"error":{"kind","message"}}`.
 *
 * What the core does because only the socket can:
 * - Reading is switched per request ({@link readSwitchOf}): the connection is not read while a
 *   handler runs, except for its body while the handler reads it; the next request (keep-alive)
 *   is read once the answer is written. Deno's node:tls socket ignores `pause()`, so a TLS
 *   connection is switched on its TCP handle.
 * - Bounded bodies ({@link HttpCoreOptions.bodyLimit}): a declared Content-Length over the
 *   limit fails the body's first read, before any body byte is read (and without "100
 *   Continue"); a chunked body fails the read that crosses it. Either way the answer is 413.
 * - `Expect: 100-continue` is answered when the handler first reads the body, so a handler that
 *   refuses a request without reading it makes the client never send the body.
 * - A body not read to its end: the answer goes out with `Connection: close`, then at most
 *   {@link HttpCoreOptions.lingerBytes} more are dropped (so a client still sending sees the
 *   answer, not a reset) and the socket is destroyed.
 * - Response bodies stream: what a body yields within the current turn is sent with a
 *   Content-Length; a body still producing after that (a watch, a recording) is sent chunked
 *   (or with the handler's Content-Length), written with backpressure: each write that fills the
 *   socket must drain within `requestTimeoutMs`, else the connection is closed. A client that
 *   goes away cancels the body stream. {@link ConnInfo.closing} is aborted when the server
 *   drains or closes, so a long-lived body can end itself.
 * - Timeouts: `requestTimeoutMs` from the request's headers until its answer is written (a
 *   streamed answer: until its headers are); fed sockets also get `headersTimeoutMs` from the
 *   handover. A listening server's first request is bounded by the guard's handshake deadline.
 * - The connection leaves the connection guard's handshake deadline once the request is in
 *   (fed: headers, and the body when there is one; listening: headers), or when it becomes a
 *   WebSocket.
 * - WebSocket upgrades: a `GET` with `Upgrade: websocket` gets {@link ConnInfo.upgradeWebSocket};
 *   the handler answers with the response it returns, and the adapter then writes the 101 and
 *   hands the raw socket to the {@link WebSocketConnection} (RFC 6455, websocket.ts).
 * - Graceful close: no new connections, idle ones closed, {@link ConnInfo.closing} aborted,
 *   answers in flight finish (their connections then close), WebSockets told to go (1001).
 */
import http from "node:http";
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { httpStatusOf, kindOf, LimitExceededError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  type ConnectionGuard,
  guardOf,
  guardServer,
  listenOptions,
  markEstablished,
} from "./guard.ts";
import { acceptKeyOf, WebSocketConnection, type WebSocketConnectionOptions } from "./websocket.ts";

/** What a handler knows about the connection a request came on. */
export interface ConnInfo {
  /** The client's IP address (`::ffff:` stripped), or "unknown". */
  remoteAddr: string;
  /** The client's port, when known. */
  remotePort?: number;
  /**
   * Aborted when the server drains or closes: a handler streaming a long-lived body (a watch)
   * ends it then, so the drain does not wait for it.
   */
  closing?: AbortSignal;
  /**
   * Present on `GET` requests asking for a WebSocket (`Upgrade: websocket`): returns the
   * connection (not yet open) and the response to return from the handler. Throws
   * BadParameterError when the handshake headers are malformed.
   */
  upgradeWebSocket?: (
    options?: WebSocketConnectionOptions,
  ) => { socket: WebSocketConnection; response: Response };
  /**
   * Present on every request with an `Upgrade` header: returns the 101 response to return from
   * the handler (with `headers` added) and the raw socket once that response is written (the
   * bytes already read after the request in `head`). For protocols other than WebSockets, e.g.
   * `/webapi/connectionupgrade` with `Upgrade: alpn`.
   */
  upgradeRaw?: (headers?: Record<string, string>) => {
    response: Response;
    socket: Promise<{ socket: Duplex; head: Uint8Array }>;
  };
}

/** A web-standard request handler. */
export type HttpHandler<I extends ConnInfo = ConnInfo> = (
  req: Request,
  info: I,
) => Promise<Response>;

/** The most body bytes one request may send, and what the 413's message adds. */
export interface BodyLimit {
  /** Largest body; `Infinity` for none. */
  maxBytes: number;
  /** Appended to the 413's message, e.g. "(the limit without a client certificate)". */
  note?: string;
  /**
   * With it, the request's timer restarts at this on every chunk of the body: a long upload
   * (a session recording) is bounded by how long it stalls, not by how long it is.
   * @default {the request timeout bounds the whole request}
   */
  stallTimeoutMs?: number;
}

/** What both kinds of server take: the handler and how requests are read and answered. */
export interface HttpCoreOptions<I extends ConnInfo = ConnInfo> {
  handler: HttpHandler<I>;
  logger: Logger;
  /** Names the server in logs ("auth API"). @default {"HTTP"} */
  name?: string;
  /**
   * Time from a request's headers until its answer is written (a streamed answer: its headers;
   * then each write that fills the socket must drain within it); then the socket is closed.
   * @default {60000}
   */
  requestTimeoutMs?: number;
  /** Remote address of a connection, when the server is not told it otherwise. */
  remoteAddrOf?: (socket: Duplex) => string | undefined;
  /**
   * What the handler gets beyond {@link ConnInfo} (e.g. the caller a client certificate names),
   * from the socket a request came on; runs before every request.
   * @default {the ConnInfo as is}
   */
  connInfo?: (socket: Duplex, info: ConnInfo) => I | Promise<I>;
  /**
   * The body limit of a request (its headers and connection are known, its body not read).
   * @default {no limit}
   */
  bodyLimit?: (req: Request, info: I) => BodyLimit | undefined;
  /**
   * What is read and dropped of an unread body after the answer, at most; 0 closes the
   * connection as soon as the answer is written.
   * @default {LINGER_BYTES}
   */
  lingerBytes?: number;
  /** The path as logs may show it (secrets masked). @default {the path} */
  redactPath?: (path: string) => string;
  /**
   * Upgrade requests this returns true for skip the handler: the raw request, socket and the
   * bytes read after it go to {@link onTakenUpgrade}, which answers and owns the socket
   * (`/webapi/connectionupgrade`, answered by the port's router). @default {none}
   */
  takeUpgrade?: (req: IncomingMessage) => boolean;
  /** Receives the upgrades {@link takeUpgrade} took. */
  onTakenUpgrade?: (req: IncomingMessage, socket: Duplex, head: Uint8Array) => void;
}

/** What the caller of {@link FedHttpServer.handleConnection} knows about the connection. */
export interface FedConnectionInfo {
  /** The client's IP address (for example from a trusted PROXY header). */
  remoteAddr?: string;
  remotePort?: number;
}

/** Options of {@link createFedHttpServer}. */
export interface FedHttpServerOptions extends HttpCoreOptions<ConnInfo> {
  /** Time from the handover until the request's headers are in; then the socket is closed. @default {10000} */
  headersTimeoutMs?: number;
}

/** An HTTP/1.1 server fed with sockets. */
export interface FedHttpServer extends AsyncDisposable {
  /** Serves one HTTP/1.1 request on an accepted socket. */
  handleConnection(socket: Duplex, info?: FedConnectionInfo): void;
  /** The node:http server (never listening; for integration and diagnostics). */
  readonly server: http.Server;
  /** Connections open (waiting for a request, being answered, or WebSockets). */
  readonly connections: number;
  /**
   * Takes no more connections, closes those without a request, lets requests in flight finish
   * (each at most `requestTimeoutMs`), closes WebSockets (1001, "going away"), and resolves when
   * every connection is closed.
   */
  close(): Promise<void>;
}

/**
 * What is read and dropped of an unread body after the answer, at most. A client still sending
 * when the connection closes may lose the answer to the reset; a client that reads it stops
 * sending and closes, well within this.
 */
export const LINGER_BYTES = 1024 * 1024;

const UNKNOWN_ADDR = "unknown";

/** `::ffff:1.2.3.4` → `1.2.3.4`; empty → "unknown". */
export function normalizeRemoteAddr(addr: string | undefined): string {
  if (addr === undefined || addr === "") return UNKNOWN_ADDR;
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

/** Origin of the URLs handlers see; the client's `Host` stays in the headers only. */
const URL_BASE = "https://proxy.invalid";

/** The request's URL, or undefined when the request target is malformed. */
function urlOf(req: IncomingMessage): URL | undefined {
  const target = req.url ?? "/";
  // Only origin-form targets: `//x` stays a path rather than naming a host.
  if (!target.startsWith("/")) return undefined;
  try {
    return new URL(URL_BASE + target);
  } catch {
    return undefined;
  }
}

function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  return headers;
}

/** The answer to a handler's throw: the error kind's status, `{"error":{"kind","message"}}`. */
export function errorResponse(err: unknown, status = httpStatusOf(err)): Response {
  return Response.json({
    error: {
      kind: kindOf(err) ?? "Internal",
      message: status === 500 ? "internal error, see the server log" : messageOf(err),
    },
  }, { status });
}

/** Starts and stops reading a connection from the network. */
export interface ReadSwitch {
  start(): void;
  stop(): void;
}

interface StreamHandle {
  readStart(): unknown;
  readStop(): unknown;
}

/**
 * The read switch of a connection. Deno's node:tls socket has no read backpressure: paused, it
 * still reads its TCP socket at wire speed into memory (a 500 MiB upload to a paused request is
 * read whole), and neither `pause()` of the TLS socket nor of the TCP socket under it
 * (`_parent`) stops that, while the TCP socket's own stream handle does. So a TLS connection
 * over a TCP socket is switched through that handle; any other socket through `pause()` /
 * `resume()`.
 */
export function readSwitchOf(socket: Duplex): ReadSwitch {
  const parent = (socket as unknown as { _parent?: { _handle?: Partial<StreamHandle> | null } })
    ._parent;
  const handle = parent?._handle;
  if (typeof handle?.readStop !== "function" || typeof handle.readStart !== "function") {
    return { start: () => socket.resume(), stop: () => socket.pause() };
  }
  const h = handle as StreamHandle;
  let reading = true;
  return {
    start() {
      if (reading || socket.destroyed || parent?._handle !== h) return;
      reading = true;
      h.readStart();
    },
    stop() {
      if (!reading || socket.destroyed || parent?._handle !== h) return;
      reading = false;
      h.readStop();
    },
  };
}

/** A request body being read: the stream the handler gets, and what it came to. */
interface Body {
  stream: ReadableStream<Uint8Array>;
  /** Set before the handler runs. */
  limit: BodyLimit | undefined;
  /** The body crossed (or declared more than) its limit. */
  over: boolean;
  /** Called on every chunk of the body that arrives. */
  progress?: () => void;
}

/**
 * The body as a stream that reads the connection only while its consumer keeps up, starts
 * reading (and answers `Expect: 100-continue`) at the first read, and fails past the limit;
 * cancelling it leaves the rest unread.
 */
function bodyOf(req: IncomingMessage, res: ServerResponse, wire: ReadSwitch): Body {
  let started = false;
  let done = false;
  let size = 0;
  const body: Body = { stream: undefined!, limit: undefined, over: false };
  const stop = () => {
    req.pause();
    wire.stop();
  };
  const tooLarge = () => {
    body.over = true;
    return new LimitExceededError(
      `request body is larger than ${body.limit!.maxBytes} bytes` +
        (body.limit!.note === undefined ? "" : ` ${body.limit!.note}`),
    );
  };
  body.stream = new ReadableStream<Uint8Array>({
    start(controller) {
      req.pause();
      req.on("data", (chunk: Buffer) => {
        if (done) return;
        size += chunk.length;
        if (body.limit !== undefined && size > body.limit.maxBytes) {
          done = true;
          stop();
          controller.error(tooLarge());
          return;
        }
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        body.progress?.();
        if ((controller.desiredSize ?? 0) <= 0) stop();
      });
      req.once("end", () => {
        if (done) return;
        done = true;
        wire.stop();
        controller.close();
      });
      const cut = () => {
        if (done) return;
        done = true;
        controller.error(new Error("the request body was cut short"));
      };
      req.once("aborted", cut);
      req.once("error", cut);
      req.once("close", () => {
        if (!req.complete) cut();
      });
    },
    pull(controller) {
      if (!started) {
        started = true;
        const declared = Number(req.headers["content-length"]);
        if (
          body.limit !== undefined && Number.isFinite(declared) && declared > body.limit.maxBytes
        ) {
          // Refused by its declared length: not a byte of it is read.
          done = true;
          controller.error(tooLarge());
          return;
        }
        if (/^100-continue$/i.test(String(req.headers.expect ?? "").trim())) res.writeContinue();
      }
      if (done) return;
      req.resume();
      wire.start();
    },
    cancel() {
      done = true;
      stop();
    },
    // highWaterMark 0: nothing is pulled (and no "100 Continue" sent) before the handler reads.
  }, { highWaterMark: 0 });
  return body;
}

/** Connection bookkeeping for timeouts, keep-alive and graceful close. */
interface ConnState {
  socket: Duplex;
  wire: ReadSwitch;
  remoteAddr: string;
  remotePort: number | undefined;
  /** A request is being answered (its headers are in). */
  busy: boolean;
  /** A request on it went over its body limit: its close is logged with the bytes read. */
  overLimit: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** How a server built on the core treats its connections. */
interface CoreMode {
  /** Connections serve more than one request (else `Connection: close` on every answer). */
  keepAlive: boolean;
  /** The guard's `established()` waits for the request body (else: the headers). */
  establishAfterBody: boolean;
}

/** The request core both servers share (see the module doc). */
interface HttpCore {
  /** Registers a connection (idempotent); `info` overrides its peer address. */
  track(socket: Duplex, info?: FedConnectionInfo): ConnState;
  /** Installs the request, 100-continue, upgrade and client error listeners. */
  attach(server: http.Server): void;
  readonly connections: number;
  readonly inFlight: number;
  readonly closing: AbortSignal;
  readonly draining: boolean;
  /** Aborts `closing`, closes idle connections and WebSockets; answers in flight finish. */
  drain(): void;
  /** Resolves when no request is in flight. */
  quiet(): Promise<void>;
  /** Resolves when no connection is open. */
  allClosed(): Promise<void>;
  /** Destroys every connection. */
  destroyAll(): void;
}

function createHttpCore<I extends ConnInfo>(
  options: HttpCoreOptions<I>,
  mode: CoreMode,
): HttpCore {
  const { logger, handler } = options;
  const name = options.name ?? "HTTP";
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const lingerBytes = options.lingerBytes ?? LINGER_BYTES;
  const redact = options.redactPath ?? ((p: string) => p);
  const connInfo = options.connInfo ??
    ((_socket: Duplex, info: ConnInfo) => info as I);
  const states = new Map<Duplex, ConnState>();
  /** Open WebSockets: closed with 1001 when the server closes. */
  const webSockets = new Set<WebSocketConnection>();
  const closing = new AbortController();
  let inFlight = 0;
  const quietWaiters: Array<() => void> = [];
  const closedWaiters: Array<() => void> = [];

  const arm = (state: ConnState, ms: number) => {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => state.socket.destroy(), ms);
  };

  const wakeClosed = () => {
    if (states.size === 0) { for (const w of closedWaiters.splice(0)) w(); }
  };

  const track = (socket: Duplex, info?: FedConnectionInfo): ConnState => {
    const known = states.get(socket);
    if (known !== undefined) return known;
    (socket as Partial<Socket>).setNoDelay?.(true);
    const state: ConnState = {
      socket,
      wire: readSwitchOf(socket),
      remoteAddr: normalizeRemoteAddr(
        info?.remoteAddr ?? options.remoteAddrOf?.(socket) ??
          (socket as Partial<Socket>).remoteAddress,
      ),
      remotePort: info?.remotePort ?? (socket as Partial<Socket>).remotePort,
      busy: false,
      overLimit: false,
      timer: undefined,
    };
    states.set(socket, state);
    socket.on("error", (err: Error) => {
      logger.debug(`${name} connection from {addr} failed: {message}`, {
        addr: state.remoteAddr,
        message: err.message,
      });
    });
    socket.once("close", () => {
      clearTimeout(state.timer);
      if (state.overLimit) {
        logger.debug(`Closed ${name} connection from {addr} after {bytesRead} bytes`, {
          addr: state.remoteAddr,
          bytesRead: (socket as Partial<Socket>).bytesRead,
        });
      }
      states.delete(socket);
      wakeClosed();
    });
    return state;
  };

  /** A socket handed to another owner ({@link HttpCoreOptions.takeUpgrade}). */
  const forget = (socket: Duplex) => {
    const state = states.get(socket);
    if (state !== undefined) clearTimeout(state.timer);
    states.delete(socket);
    wakeClosed();
  };

  const baseInfo = (state: ConnState): ConnInfo => ({
    remoteAddr: state.remoteAddr,
    ...(state.remotePort === undefined ? {} : { remotePort: state.remotePort }),
    closing: closing.signal,
  });

  /** Runs the handler; a throw becomes the status of its kind (a body over its limit: 413). */
  const run = async (
    request: Request,
    info: ConnInfo,
    path: string,
    body?: Body,
  ): Promise<Response> => {
    try {
      return await handler(request, info as I);
    } catch (err) {
      if (body?.over === true) return errorResponse(err, 413);
      const status = httpStatusOf(err);
      if (status === 500) {
        logger.error(`${name} {method} {path} from {addr} failed: {error}`, {
          method: request.method,
          path: redact(path),
          addr: info.remoteAddr,
          error: err,
        });
      }
      return errorResponse(err, status);
    }
  };

  /** Ends a connection whose request body was not read to the end (see the module doc). */
  const lingerClose = (req: IncomingMessage, state: ConnState) => {
    const socket = state.socket as Socket;
    if (lingerBytes <= 0) {
      socket.once("finish", () => socket.destroy());
      socket.end();
      return;
    }
    let left = lingerBytes;
    req.removeAllListeners("data");
    req.on("data", (chunk: Buffer) => {
      left -= chunk.length;
      if (left < 0) socket.destroy();
    });
    req.resume();
    state.wire.start();
    socket.end();
  };

  /** Resolves when `res` may take more, or is gone; bounded by `requestTimeoutMs`. */
  const drained = (res: ServerResponse, state: ConnState) =>
    new Promise<void>((resolve) => {
      arm(state, requestTimeoutMs);
      const done = () => {
        clearTimeout(state.timer);
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.once("drain", done);
      res.once("close", done);
    });

  /**
   * Writes the answer: what the body yields within this turn goes out with a Content-Length;
   * a body still producing is streamed with backpressure (see the module doc).
   */
  const writeResponse = async (
    req: IncomingMessage,
    res: ServerResponse,
    response: Response,
    state: ConnState,
    conn: { close: boolean },
  ) => {
    const headers: Record<string, string | string[]> = {};
    let handlerSaysClose = false;
    response.headers.forEach((value, key) => {
      if (key === "set-cookie" || key === "transfer-encoding" || key === "keep-alive") return;
      if (key === "connection") {
        handlerSaysClose = /\bclose\b/i.test(value);
        return;
      }
      headers[key] = value;
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) headers["set-cookie"] = cookies;
    conn.close ||= handlerSaysClose;
    if (conn.close) headers["connection"] = "close";
    const noBody = req.method === "HEAD" || response.status === 204 || response.status === 304;
    if (response.body === null || noBody) {
      if (response.body !== null) await response.body.cancel().catch(() => {});
      if (response.body === null && !noBody) headers["content-length"] ??= "0";
      res.writeHead(response.status, headers);
      res.end();
      return;
    }
    const reader = response.body.getReader();
    // What is there this turn (a body made of bytes or text is there at once).
    const first: Uint8Array[] = [];
    let size = 0;
    let ended = false;
    let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
    while (size < 64 * 1024) {
      const read = reader.read();
      let tick: ReturnType<typeof setTimeout> | undefined;
      const next = await Promise.race([
        read,
        new Promise<"later">((r) => tick = setTimeout(() => r("later"), 0)),
      ]);
      clearTimeout(tick);
      if (next === "later") {
        pending = read;
        break;
      }
      if (next.done) {
        ended = true;
        break;
      }
      first.push(next.value);
      size += next.value.byteLength;
    }
    if (ended) {
      headers["content-length"] = String(size);
      res.writeHead(response.status, headers);
      res.end(Buffer.concat(first));
      return;
    }
    // Streamed: the request timer no longer bounds it; each filling write must drain in time.
    clearTimeout(state.timer);
    res.writeHead(response.status, headers);
    let finished = false;
    res.once("close", () => {
      if (!finished) reader.cancel().catch(() => {});
    });
    try {
      for (const chunk of first) {
        if (!res.write(chunk)) await drained(res, state);
      }
      while (!res.destroyed) {
        const next = await (pending ?? reader.read());
        pending = undefined;
        if (next.done) break;
        if (!res.write(next.value)) await drained(res, state);
      }
    } finally {
      finished = true;
    }
    if (!res.destroyed) res.end();
    else reader.cancel().catch(() => {});
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as Duplex;
    const state = track(socket);
    state.busy = true;
    inFlight++;
    res.once("close", () => {
      inFlight--;
      if (inFlight === 0) { for (const w of quietWaiters.splice(0)) w(); }
    });
    state.wire.stop();
    arm(state, requestTimeoutMs);
    const url = urlOf(req);
    const path = redact(url?.pathname ?? "(malformed)");
    let response: Response | undefined;
    let info: ConnInfo = baseInfo(state);
    let body: Body | undefined;
    if (url === undefined) {
      response = Response.json(
        {
          error: { kind: "BadParameter", message: "Cannot read the request: the URL is malformed" },
        },
        { status: 400 },
      );
    } else {
      const method = req.method ?? "GET";
      const hasBody = method !== "GET" && method !== "HEAD";
      if (!mode.establishAfterBody || !hasBody || req.complete) markEstablished(socket);
      else req.once("end", () => markEstablished(socket));
      let request: Request | undefined;
      try {
        if (hasBody) body = bodyOf(req, res, state.wire);
        request = new Request(url, {
          method,
          headers: headersOf(req),
          ...(body === undefined ? {} : { body: body.stream, duplex: "half" }),
        } as RequestInit);
      } catch (err) {
        request = undefined;
        response = Response.json(
          {
            error: {
              kind: "BadParameter",
              message: `Cannot read the request: ${messageOf(err)}`,
            },
          },
          { status: 400 },
        );
      }
      if (request !== undefined) {
        try {
          info = await connInfo(socket, info);
          if (body !== undefined) {
            const limit = body.limit = options.bodyLimit?.(request, info as I);
            const stallMs = limit?.stallTimeoutMs;
            if (stallMs !== undefined) body.progress = () => arm(state, stallMs);
          }
          response = await run(request, info, url.pathname, body);
        } catch (err) {
          response = errorResponse(err);
        }
      }
    }
    if (body?.over === true) {
      state.overLimit = true;
      logger.debug(`Closing ${name} connection from {addr}: request body over {limit} bytes`, {
        addr: state.remoteAddr,
        limit: body.limit?.maxBytes,
      });
    }
    if (response === undefined || res.headersSent || res.destroyed) return;
    const conn = { close: !mode.keepAlive || !req.complete || closing.signal.aborted };
    if (!req.complete) {
      // node:http closes the connection after an answer with `Connection: close` by
      // destroySoon(); this one still has body coming, so close it lingering instead.
      (socket as Socket).destroySoon = () => lingerClose(req, state);
    }
    res.once("finish", () => {
      state.busy = false;
      if (conn.close) return;
      clearTimeout(state.timer);
      // A drain that began while this answer was written: the connection closes now.
      if (closing.signal.aborted) socket.end();
      else state.wire.start();
    });
    try {
      await writeResponse(req, res, response, state, conn);
    } catch (err) {
      logger.warn("Cannot send the answer to {path} from {addr}: {message}", {
        path,
        addr: info.remoteAddr,
        message: messageOf(err),
      });
      socket.destroy();
      return;
    }
    logger.debug("{method} {path} {status} from {addr}", {
      method: req.method,
      path,
      status: response.status,
      addr: info.remoteAddr,
    });
  };
  /** `Upgrade:` requests: WebSockets get upgradeWebSocket; anything else a plain answer. */
  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (options.takeUpgrade?.(req) === true) {
      // The socket leaves this server: its hook answers the request and owns it from now on.
      forget(socket);
      return options.onTakenUpgrade!(req, socket, new Uint8Array(head));
    }
    const state = track(socket);
    state.busy = true;
    arm(state, requestTimeoutMs);
    const url = urlOf(req);
    const refuse = (status: number, message: string) => {
      const body = JSON.stringify({ error: { kind: "BadParameter", message } });
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\nConnection: close\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
          body,
      );
    };
    if (url === undefined) return refuse(400, "Cannot read the request: the URL is malformed");
    let upgraded: { socket: WebSocketConnection; response: Response } | undefined;
    const isWebSocket = req.method === "GET" &&
      String(req.headers.upgrade ?? "").toLowerCase() === "websocket";
    let info: ConnInfo;
    try {
      info = { ...await connInfo(socket, baseInfo(state)) };
    } catch (err) {
      return refuse(400, `Cannot read the request: ${messageOf(err)}`);
    }
    if (isWebSocket) {
      info.upgradeWebSocket = (wsOptions) => {
        const accept = acceptKeyOf(
          req.headers["sec-websocket-key"],
          req.headers["sec-websocket-version"],
        );
        const ws = new WebSocketConnection(wsOptions);
        const response = new Response(null, {
          status: 101,
          headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-accept": accept },
        });
        upgraded = { socket: ws, response };
        return upgraded;
      };
    }
    let raw:
      | { response: Response; socket: PromiseWithResolvers<{ socket: Duplex; head: Uint8Array }> }
      | undefined;
    info.upgradeRaw = (headers = {}) => {
      const socket = Promise.withResolvers<{ socket: Duplex; head: Uint8Array }>();
      socket.promise.catch(() => {});
      raw = { response: new Response(null, { status: 101, headers }), socket };
      return { response: raw.response, socket: socket.promise };
    };
    let request: Request;
    try {
      request = new Request(url, { method: req.method ?? "GET", headers: headersOf(req) });
    } catch (err) {
      return refuse(400, `Cannot read the request: ${messageOf(err)}`);
    }
    const response = await run(request, info, url.pathname);
    if (socket.destroyed) {
      upgraded?.socket.abandon();
      raw?.socket.reject(new Error("the client went away"));
      return;
    }
    const switchTo = (response: Response) => {
      markEstablished(socket);
      clearTimeout(state.timer);
      let text = "HTTP/1.1 101 Switching Protocols\r\n";
      response.headers.forEach((value, name) => text += `${name}: ${value}\r\n`);
      socket.write(text + "\r\n");
    };
    if (upgraded !== undefined && response === upgraded.response) {
      switchTo(response);
      const ws = upgraded.socket;
      webSockets.add(ws);
      void ws.closed.then(() => webSockets.delete(ws));
      ws.attach(socket, new Uint8Array(head));
      if (closing.signal.aborted) ws.close(1001, "the server is shutting down");
      logger.debug("WebSocket {path} open from {addr}", {
        path: redact(url.pathname),
        addr: info.remoteAddr,
      });
      return;
    }
    if (raw !== undefined && response === raw.response) {
      switchTo(response);
      raw.socket.resolve({ socket, head: new Uint8Array(head) });
      return;
    }
    raw?.socket.reject(new Error("not upgraded"));
    upgraded?.socket.abandon();
    let text = `HTTP/1.1 ${response.status} ${http.STATUS_CODES[response.status] ?? ""}\r\n`;
    response.headers.forEach((value, name) => {
      if (name !== "connection" && name !== "content-length") text += `${name}: ${value}\r\n`;
    });
    const body = new Uint8Array(await response.arrayBuffer());
    text += `connection: close\r\ncontent-length: ${body.length}\r\n\r\n`;
    socket.end(Buffer.concat([Buffer.from(text), Buffer.from(body)]));
  };

  const attach = (server: http.Server) => {
    server.on("request", (req, res) => void onRequest(req, res));
    // With a listener, node:http no longer sends "100 Continue" by itself: the body stream
    // sends it when the handler starts reading, so a body refused by its declared length is
    // never sent.
    server.on("checkContinue", (req, res) => void onRequest(req, res));
    server.on("upgrade", (req, socket, head) => void onUpgrade(req, socket as Duplex, head));
    server.maxHeadersCount = 100;
    server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
      logger.debug(`Bad ${name} request from {addr}: {message}`, {
        addr: states.get(socket)?.remoteAddr ?? UNKNOWN_ADDR,
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
  };

  const drain = () => {
    if (closing.signal.aborted) return;
    closing.abort();
    for (const state of states.values()) {
      if (!state.busy) state.socket.destroy();
    }
    // WebSockets live as long as their users: they are told to go (the closing handshake, at
    // most a few seconds) rather than waited for.
    for (const ws of webSockets) ws.close(1001, "the server is shutting down");
  };

  return {
    track,
    attach,
    get connections() {
      return states.size;
    },
    get inFlight() {
      return inFlight;
    },
    closing: closing.signal,
    get draining() {
      return closing.signal.aborted;
    },
    drain,
    quiet: () =>
      inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => quietWaiters.push(r)),
    allClosed: () =>
      states.size === 0 ? Promise.resolve() : new Promise<void>((r) => closedWaiters.push(r)),
    destroyAll: () => {
      for (const state of states.values()) state.socket.destroy();
    },
  };
}

/** Builds the adapter for handed-over sockets; see the module doc. */
export function createFedHttpServer(options: FedHttpServerOptions): FedHttpServer {
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const core = createHttpCore(options, { keepAlive: false, establishAfterBody: true });
  // The request listener is the core's (attach): none here.
  const server = http.createServer({});
  core.attach(server);

  const handleConnection = (socket: Duplex, info?: FedConnectionInfo) => {
    if (core.draining) {
      socket.destroy();
      return;
    }
    const state = core.track(socket, info);
    state.timer = setTimeout(() => socket.destroy(), headersTimeoutMs);
    server.emit("connection", socket);
    // A socket handed over paused with bytes put back (plain HTTP from the multiplexer): in
    // Deno 2.9.6 node:http does not start reading it by itself (measured).
    if (socket.isPaused()) socket.resume();
  };

  const close = (): Promise<void> => {
    core.drain();
    return core.allClosed();
  };

  return {
    handleConnection,
    server,
    get connections() {
      return core.connections;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Options of {@link listenHttps}. */
export interface HttpsListenerOptions<I extends ConnInfo = ConnInfo> extends HttpCoreOptions<I> {
  /** Host to bind ("0.0.0.0", "127.0.0.1", "::"). */
  host: string;
  /** Port (0 picks a free one). */
  port: number;
  /** The TLS context: certificate, key, client CAs, `requestCert`, ALPN ids… */
  tls: https.ServerOptions;
  /** Admission control (per-address caps, handshake deadline). */
  guard: ConnectionGuard;
  /**
   * Time from accept until the TLS handshake is done and the first request's headers are in.
   * @default {5000}
   */
  handshakeTimeoutMs?: number;
  /**
   * Runs on every accepted socket before TLS (e.g. reads a signed client address header):
   * resolves with the socket to run TLS on and the client's address, which the guard's
   * per-address caps then count and {@link ConnInfo.remoteAddr} reports; a rejection closes
   * the connection. @default {none}
   */
  beforeTls?: (socket: Socket) => Promise<{ socket: Socket; addr: string }>;
}

/** A listening HTTPS server with keep-alive (see the module doc). */
export interface HttpsListener extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  /** The node:https server (for diagnostics). */
  readonly server: https.Server;
  /** Connections past TLS, open. */
  readonly connections: number;
  /** Requests being answered. */
  readonly inFlight: number;
  /** Aborted once the server drains or closes (the signal in every {@link ConnInfo}). */
  readonly closing: AbortSignal;
  /** New connections get this TLS context; open ones keep theirs. */
  setSecureContext(tls: https.ServerOptions): void;
  /**
   * Stops accepting: the port is released, idle connections close, `closing` is aborted, and
   * connections close once their answer in flight is written.
   */
  stopAccepting(): void;
  /**
   * Closes every connection; with `graceMs`, first stops accepting and lets the answers in
   * flight finish (up to that long).
   */
  close(o?: { graceMs?: number }): Promise<void>;
}

/** Starts a listening HTTPS server on the core; resolves once it is bound. */
export async function listenHttps<I extends ConnInfo>(
  options: HttpsListenerOptions<I>,
): Promise<HttpsListener> {
  const { logger } = options;
  const name = options.name ?? "HTTP";
  /** Client addresses a {@link HttpsListenerOptions.beforeTls} hook found, by raw socket. */
  const clientAddrs = new WeakMap<object, string>();
  const core = createHttpCore<I>({
    ...options,
    remoteAddrOf: (socket) => {
      // node:tls keeps the accepted socket as `_parent` of the TLSSocket it wraps it in.
      const raw = (socket as TLSSocket & { _parent?: Socket })._parent;
      return (raw === undefined ? undefined : clientAddrs.get(raw)) ??
        options.remoteAddrOf?.(socket) ?? (socket as Partial<Socket>).remoteAddress;
    },
  }, { keepAlive: true, establishAfterBody: false });
  const server = https.createServer(options.tls);
  core.attach(server);
  server.prependListener("secureConnection", (tls: TLSSocket) => void core.track(tls));
  /** Accepted sockets not yet closed: a hard close destroys them, in TLS or not. */
  const raws = new Set<Socket>();
  if (options.beforeTls !== undefined) {
    const beforeTls = options.beforeTls;
    const startTls = server.listeners("connection");
    server.removeAllListeners("connection");
    server.on("connection", (s: Socket) => {
      if (s.destroyed) return; // refused by the guard
      beforeTls(s).then(({ socket, addr }) => {
        // The client's own address is what the per-address caps count.
        if (guardOf(socket)?.rekey(addr) === false) return socket.destroy();
        clientAddrs.set(socket, addr);
        for (const l of startTls) (l as (s: Socket) => void).call(server, socket);
      }, (err) => {
        logger.warn(`Refused ${name} connection from {addr}: {reason}`, {
          addr: s.remoteAddress,
          reason: messageOf(err),
        });
        s.destroy();
      });
    });
  }
  server.prependListener("connection", (s: Socket) => {
    raws.add(s);
    s.once("close", () => raws.delete(s));
  });
  // Runs before the listeners above: refused connections never reach them.
  const guarded = guardServer(server, {
    guard: options.guard,
    name,
    logger,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
  });
  server.on("tlsClientError", (err: Error) => {
    logger.debug(`TLS handshake with a ${name} client failed: {message}`, {
      message: err.message,
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenOptions(options.host, options.port), () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  let unbound: Promise<void> | undefined;
  const unbind = () => unbound ??= new Promise<void>((r) => server.close(() => r()));
  let closed: Promise<void> | undefined;
  const stopAccepting = () => {
    if (closed !== undefined) return;
    void unbind();
    core.drain();
  };
  const close = async (o: { graceMs?: number } = {}) => {
    if (closed === undefined && (o.graceMs ?? 0) > 0) {
      stopAccepting();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        core.quiet(),
        new Promise<void>((r) => timer = setTimeout(r, o.graceMs)),
      ]);
      clearTimeout(timer);
    }
    closed ??= (async () => {
      core.drain();
      const done = unbind();
      core.destroyAll();
      guarded.destroyPending();
      for (const s of raws) s.destroy();
      await done;
    })();
    return closed;
  };
  return {
    host: addr.address,
    port: addr.port,
    server,
    get connections() {
      return core.connections;
    },
    get inFlight() {
      return core.inFlight;
    },
    closing: core.closing,
    setSecureContext: (tls) => server.setSecureContext(tls),
    stopAccepting,
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}
