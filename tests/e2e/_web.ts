/**
 * A client of the proxy's web API as the browser UI uses it: JSON calls over HTTPS with the
 * session cookie and bearer token, and the terminal WebSocket (lib/net's RFC 6455 client side
 * over node:tls; the proxy's certificate is self-signed, so it is not verified here).
 */
import https from "node:https";
import tls from "node:tls";
import { WebSocketConnection } from "../../lib/net/mod.ts";
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
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  sock.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      (cookie === undefined ? "" : `Cookie: ${cookie}\r\n`) + "\r\n",
  );
  const ws = new WebSocketConnection({ role: "client", maxMessageBytes: 16 * 1024 * 1024 });
  const status = await new Promise<string>((resolve, reject) => {
    let head = new Uint8Array(0);
    const onData = (d: Uint8Array) => {
      const merged = new Uint8Array(head.length + d.length);
      merged.set(head);
      merged.set(d, head.length);
      head = merged;
      const text = new TextDecoder().decode(head);
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      sock.off("data", onData);
      const line = text.slice(0, text.indexOf("\r\n"));
      if (line.includes(" 101 ")) ws.attach(sock, head.subarray(end + 4));
      else sock.destroy();
      resolve(text);
    };
    sock.on("data", onData);
    sock.once("error", reject);
  });
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
