/**
 * A client of the proxy's web API as the browser UI uses it: JSON calls over HTTPS with the
 * session cookie and bearer token, and the terminal WebSocket (lib/net's RFC 6455 client side
 * over node:tls; the proxy's certificate is self-signed, so it is not verified here).
 */
import https from "node:https";
import tls from "node:tls";
import { connectWebSocket, WebSocketConnection } from "../../lib/net/mod.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../../lib/web/mod.ts";

/** A logged-in browser. */
export interface WebLogin {
  cookie: string;
  token: string;
  setCookie: string;
}

/** One JSON answer. */
export interface WebAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** Calls `path` on the proxy; `login` adds the cookie and the bearer token. */
export function webCall(
  port: number,
  method: string,
  path: string,
  o: { body?: unknown; cookie?: string; token?: string; headers?: Record<string, string> } = {},
): Promise<WebAnswer> {
  const text = o.body === undefined ? undefined : JSON.stringify(o.body);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port,
      method,
      path,
      rejectUnauthorized: false,
      headers: {
        ...(text === undefined ? {} : { "content-type": "application/json" }),
        ...(o.cookie === undefined ? {} : { cookie: o.cookie }),
        ...(o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }),
        ...o.headers,
      },
    }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => data += d);
      res.on("end", () => {
        let body: unknown = data;
        try {
          body = JSON.parse(data);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on("error", reject);
    req.end(text);
  });
}

/** Logs in through `POST /v1/webapi/sessions/web`. */
export async function webLogin(
  port: number,
  user: string,
  pass: string,
  otp: string,
): Promise<WebLogin> {
  const res = await webCall(port, "POST", "/v1/webapi/sessions/web", {
    body: { user, pass, second_factor_token: otp },
  });
  if (res.status !== 200) throw new Error(`web login failed: ${JSON.stringify(res.body)}`);
  const setCookie = String((res.headers["set-cookie"] as string[])[0]);
  return {
    cookie: setCookie.split(";")[0]!,
    token: (res.body as { token: string }).token,
    setCookie,
  };
}

/** An open terminal WebSocket. */
export interface WebTerminal {
  ws: WebSocketConnection;
  /** The handshake's status line. */
  status: string;
  /** Sends an envelope. */
  send(type: string, payload: string): void;
  /** The next message: an envelope, a text message, or undefined once closed. */
  next(): Promise<Envelope | string | undefined>;
}

/** Opens `path` as a WebSocket with `cookie` (no token: the caller sends it). */
export async function openWebSocket(
  port: number,
  path: string,
  cookie?: string,
): Promise<WebTerminal> {
  const sock = tls.connect({
    host: "127.0.0.1",
    port,
    rejectUnauthorized: false,
    ALPNProtocols: ["http/1.1"],
  });
  sock.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    sock.once("secureConnect", resolve);
    sock.once("error", reject);
  });
  const r = await connectWebSocket(sock, {
    path,
    host: `127.0.0.1:${port}`,
    headers: cookie === undefined ? {} : { cookie },
    maxMessageBytes: 16 * 1024 * 1024,
  });
  const ws = r.ws ?? new WebSocketConnection({ role: "client" });
  if (r.ws === undefined) ws.abandon();
  const status = r.head;
  return {
    ws,
    status,
    send: (type, payload) => ws.send(encodeEnvelope({ version: "1", type, payload })),
    next: async () => {
      const m = await ws.next();
      return m === undefined || typeof m === "string" ? m : decodeEnvelope(m);
    },
  };
}
