/**
 * The one adapter from node:http to web-standard handlers: `(Request, ConnInfo) =>
 * Promise<Response>`. It serves sockets someone else accepted (the port multiplexer hands over
 * TLS-terminated or plain sockets; tests use node:tls or node:net servers) and never listens
 * itself. Handlers see only `Request`, `Response` and {@link ConnInfo}, so unit tests call them
 * with `new Request(…)`, without sockets.
 *
 * What stays here because only the socket can do it:
 * - One request per connection (`Connection: close`): node:http keeps connections alive only for
 *   servers that listen themselves. Header and request timeouts are our own timers.
 * - `Expect: 100-continue` is answered when the handler first reads the body, so a handler that
 *   refuses a body by its declared length (413) makes the client never send it.
 * - A body not read to its end: the answer goes out with a FIN, then at most
 *   {@link LINGER_BYTES} more are dropped (so a client still sending sees the answer, not a
 *   reset) and the socket is destroyed.
 * - The connection leaves the connection guard's handshake deadline once the request is in
 *   (headers, and the body when there is one), or when it becomes a WebSocket.
 * - WebSocket upgrades: a `GET` with `Upgrade: websocket` gets {@link ConnInfo.upgradeWebSocket};
 *   the handler answers with the response it returns, and the adapter then writes the 101 and
 *   hands the raw socket to the {@link WebSocketConnection} (RFC 6455, websocket.ts).
 */
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { httpStatusOf, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { markEstablished } from "./guard.ts";
import { acceptKeyOf, WebSocketConnection, type WebSocketConnectionOptions } from "./websocket.ts";

/** What a handler knows about the connection a request came on. */
export interface ConnInfo {
  /** The client's IP address (`::ffff:` stripped), or "unknown". */
  remoteAddr: string;
  /** The client's port, when known. */
  remotePort?: number;
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
export type HttpHandler = (req: Request, info: ConnInfo) => Promise<Response>;

/** What the caller of {@link FedHttpServer.handleConnection} knows about the connection. */
export interface FedConnectionInfo {
  /** The client's IP address (for example from a trusted PROXY header). */
  remoteAddr?: string;
  remotePort?: number;
}

/** Options of {@link createFedHttpServer}. */
export interface FedHttpServerOptions {
  handler: HttpHandler;
  logger: Logger;
  /** Time from the handover until the request's headers are in; then the socket is closed. @default {10000} */
  headersTimeoutMs?: number;
  /** Time one request may take, body and response included; then the socket is closed. @default {60000} */
  requestTimeoutMs?: number;
  /** Remote address of a connection, when {@link FedHttpServer.handleConnection} is not told it. */
  remoteAddrOf?: (socket: Duplex) => string | undefined;
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

/**
 * The body as a stream that starts reading (and answers `Expect: 100-continue`) at the first
 * read; cancelling it leaves the rest unread.
 */
function bodyOf(req: IncomingMessage, res: ServerResponse): ReadableStream<Uint8Array> {
  let started = false;
  let done = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      req.pause();
      req.on("data", (chunk: Buffer) => {
        if (done) return;
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) req.pause();
      });
      req.once("end", () => {
        if (done) return;
        done = true;
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
    pull() {
      if (!started) {
        started = true;
        if (/^100-continue$/i.test(String(req.headers.expect ?? "").trim())) res.writeContinue();
      }
      if (!done) req.resume();
    },
    cancel() {
      done = true;
      req.pause();
    },
    // highWaterMark 0: nothing is pulled (and no "100 Continue" sent) before the handler reads.
  }, { highWaterMark: 0 });
}

/** Ends a connection whose request body was not read to the end (see the module doc). */
function lingerClose(req: IncomingMessage, socket: Socket): void {
  let left = LINGER_BYTES;
  req.removeAllListeners("data");
  req.on("data", (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) socket.destroy();
  });
  req.resume();
  socket.end();
}

/** Connection bookkeeping for timeouts and graceful close. */
interface ConnState {
  socket: Duplex;
  remoteAddr: string;
  remotePort: number | undefined;
  /** A request arrived (its headers are in). */
  busy: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const INTERNAL_ERROR = JSON.stringify({ error: { message: "internal error, see the server log" } });

/** Builds the adapter; see the module doc. */
export function createFedHttpServer(options: FedHttpServerOptions): FedHttpServer {
  const { logger, handler } = options;
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const redact = options.redactPath ?? ((p: string) => p);
  const states = new Map<Duplex, ConnState>();
  /** Open WebSockets: closed with 1001 when the server closes. */
  const webSockets = new Set<WebSocketConnection>();
  let closed = false;
  let allClosed: PromiseWithResolvers<void> | undefined;

  const arm = (state: ConnState, ms: number) => {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => state.socket.destroy(), ms);
  };

  const stateOf = (socket: Duplex): ConnState | undefined => states.get(socket);

  /** A socket handed to another owner ({@link FedHttpServerOptions.takeUpgrade}). */
  const forget = (socket: Duplex) => {
    const state = states.get(socket);
    if (state !== undefined) clearTimeout(state.timer);
    states.delete(socket);
    if (states.size === 0) allClosed?.resolve();
  };

  const infoOf = (socket: Duplex): { remoteAddr: string; remotePort?: number } => {
    const state = stateOf(socket);
    const remoteAddr = state?.remoteAddr ??
      normalizeRemoteAddr((socket as Partial<Socket>).remoteAddress);
    const remotePort = state?.remotePort ?? (socket as Partial<Socket>).remotePort;
    return remotePort === undefined ? { remoteAddr } : { remoteAddr, remotePort };
  };

  /** Runs the handler; a throw becomes a 500 (handlers map their own errors). */
  const run = async (request: Request, info: ConnInfo, path: string): Promise<Response> => {
    try {
      return await handler(request, info);
    } catch (err) {
      const status = httpStatusOf(err);
      if (status === 500) {
        logger.error("HTTP {method} {path} from {addr} failed: {error}", {
          method: request.method,
          path: redact(path),
          addr: info.remoteAddr,
          error: err,
        });
        return new Response(INTERNAL_ERROR, {
          status,
          headers: { "content-type": "application/json" },
        });
      }
      return Response.json({ error: { message: messageOf(err) } }, { status });
    }
  };

  const writeResponse = async (res: ServerResponse, response: Response) => {
    const headers: Record<string, string | string[]> = {};
    response.headers.forEach((value, name) => {
      if (name === "set-cookie") return;
      headers[name] = value;
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) headers["set-cookie"] = cookies;
    // One request per connection (see the module doc).
    headers["connection"] = "close";
    if (response.body === null) {
      headers["content-length"] ??= "0";
      res.writeHead(response.status, headers);
      res.end();
      return;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    headers["content-length"] = String(bytes.length);
    res.writeHead(response.status, headers);
    res.end(res.req.method === "HEAD" ? undefined : Buffer.from(bytes));
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as Duplex;
    const state = stateOf(socket);
    if (state !== undefined) {
      state.busy = true;
      // Also bounds the flush of the response: node:http ends the socket after it.
      arm(state, requestTimeoutMs);
    }
    const conn = infoOf(socket);
    const url = urlOf(req);
    let response: Response | undefined;
    if (url === undefined) {
      response = Response.json(
        { error: { message: "Cannot read the request: the URL is malformed" } },
        { status: 400 },
      );
    } else {
      const method = req.method ?? "GET";
      const hasBody = method !== "GET" && method !== "HEAD";
      if (!hasBody || req.complete) markEstablished(socket);
      else req.once("end", () => markEstablished(socket));
      let request: Request | undefined;
      try {
        request = new Request(url, {
          method,
          headers: headersOf(req),
          ...(hasBody ? { body: bodyOf(req, res), duplex: "half" } : {}),
        } as RequestInit);
      } catch (err) {
        request = undefined;
        response = Response.json(
          { error: { message: `Cannot read the request: ${messageOf(err)}` } },
          { status: 400 },
        );
      }
      if (request !== undefined) response = await run(request, conn, url.pathname);
    }
    if (response === undefined || res.headersSent || res.destroyed) return;
    if (!req.complete) {
      // node:http closes the connection after the answer (`Connection: close`) with
      // destroySoon(); this one still has body coming, so close it lingering instead.
      const s = req.socket as Socket;
      s.destroySoon = () => lingerClose(req, s);
    }
    try {
      await writeResponse(res, response);
    } catch (err) {
      logger.warn("Cannot send the answer to {path} from {addr}: {message}", {
        path: redact(url?.pathname ?? "(malformed)"),
        addr: conn.remoteAddr,
        message: messageOf(err),
      });
      socket.destroy();
      return;
    }
    logger.debug("{method} {path} {status} from {addr}", {
      method: req.method,
      path: redact(url?.pathname ?? "(malformed)"),
      status: response.status,
      addr: conn.remoteAddr,
    });
  };

  /** `Upgrade:` requests: WebSockets get upgradeWebSocket; anything else a plain answer. */
  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (options.takeUpgrade?.(req) === true) {
      // The socket leaves this server: its hook answers the request and owns it from now on.
      forget(socket);
      return options.onTakenUpgrade!(req, socket, new Uint8Array(head));
    }
    const state = stateOf(socket);
    if (state !== undefined) {
      state.busy = true;
      arm(state, requestTimeoutMs);
    }
    const conn = infoOf(socket);
    const url = urlOf(req);
    const refuse = (status: number, message: string) => {
      const body = JSON.stringify({ error: { message } });
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
    const info: ConnInfo = { ...conn };
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
    if (upgraded !== undefined && response === upgraded.response) {
      markEstablished(socket);
      if (state !== undefined) clearTimeout(state.timer);
      let text = "HTTP/1.1 101 Switching Protocols\r\n";
      response.headers.forEach((value, name) => text += `${name}: ${value}\r\n`);
      socket.write(text + "\r\n");
      const ws = upgraded.socket;
      webSockets.add(ws);
      void ws.closed.then(() => webSockets.delete(ws));
      ws.attach(socket, new Uint8Array(head));
      if (closed) ws.close(1001, "the server is shutting down");
      logger.debug("WebSocket {path} open from {addr}", {
        path: redact(url.pathname),
        addr: conn.remoteAddr,
      });
      return;
    }
    if (raw !== undefined && response === raw.response) {
      markEstablished(socket);
      if (state !== undefined) clearTimeout(state.timer);
      let text = "HTTP/1.1 101 Switching Protocols\r\n";
      response.headers.forEach((value, name) => text += `${name}: ${value}\r\n`);
      socket.write(text + "\r\n");
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

  const server = http.createServer({}, (req, res) => void onRequest(req, res));
  // With a listener, node:http no longer sends "100 Continue" by itself: the body stream sends
  // it when the handler starts reading, so a body refused by its declared length is never sent.
  server.on("checkContinue", (req, res) => void onRequest(req, res));
  server.on("upgrade", (req, socket, head) => void onUpgrade(req, socket as Duplex, head));
  server.maxHeadersCount = 100;
  server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
    logger.debug("Bad HTTP request from {addr}: {message}", {
      addr: stateOf(socket)?.remoteAddr ?? UNKNOWN_ADDR,
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

  const handleConnection = (socket: Duplex, info?: FedConnectionInfo) => {
    if (closed) {
      socket.destroy();
      return;
    }
    (socket as Partial<Socket>).setNoDelay?.(true);
    const remotePort = info?.remotePort ?? (socket as Partial<Socket>).remotePort;
    const state: ConnState = {
      socket,
      remoteAddr: normalizeRemoteAddr(
        info?.remoteAddr ?? options.remoteAddrOf?.(socket) ??
          (socket as Partial<Socket>).remoteAddress,
      ),
      remotePort,
      busy: false,
      timer: undefined,
    };
    states.set(socket, state);
    arm(state, headersTimeoutMs);
    socket.on("error", (err: Error) => {
      logger.debug("HTTP connection from {addr} failed: {message}", {
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
      // WebSockets live as long as their users: they are told to go (the closing handshake, at
      // most a few seconds) rather than waited for.
      for (const ws of webSockets) ws.close(1001, "the server is shutting down");
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
