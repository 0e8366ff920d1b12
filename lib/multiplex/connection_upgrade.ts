/**
 * `GET /webapi/connectionupgrade`: TLS routing through a load balancer that speaks only HTTP
 * (protocol notes §1 "L7 load balancers"; production ops §5). The client asks to switch
 * protocols; after `101 Switching Protocols` the connection carries a whole TLS connection whose
 * ALPN picks the route exactly as on the raw port.
 *
 * | request | after the 101 |
 * |---|---|
 * | `Upgrade: alpn` (or `X-Teleport-Upgrade: alpn`) | the raw bytes |
 * | `Upgrade: alpn-ping` | ping framing ({@linkcode pingConn}): uint32 length + bytes, 0 = ping; the proxy pings every 30 s |
 * | `Upgrade: websocket`, `Sec-WebSocket-Protocol: alpn` or `alpn-ping` | binary WebSocket frames ({@linkcode websocketConn}); with `alpn-ping` the proxy sends WebSocket pings |
 *
 * `X-Teleport-Upgrade` wins over `Upgrade` (some load balancers rewrite `Upgrade`). `Connection`
 * must name `upgrade`. The server never dials anything the client names: the inner connection
 * goes to the port's own ALPN router.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { IncomingHttpHeaders } from "node:http";
import type { Duplex } from "node:stream";
import { ConnectionProblemError } from "../errors/mod.ts";
import { pingConn } from "./ping_conn.ts";
import { isWebsocketKey, newWebsocketKey, websocketAccept, websocketConn } from "./websocket.ts";

/** The path of the upgrade endpoint. */
export const CONNECTION_UPGRADE_PATH = "/webapi/connectionupgrade";
/** The header that names the upgrade type besides (and before) `Upgrade`. */
export const TELEPORT_UPGRADE_HEADER = "X-Teleport-Upgrade";
/** How often the proxy pings an `alpn-ping` connection (Teleport's `ProxyPingInterval`). */
export const DEFAULT_UPGRADE_PING_INTERVAL_MS = 30_000;

/** Upgrade types: `alpn`, `alpn-ping`, or a WebSocket carrying one of them. */
export type UpgradeType = "alpn" | "alpn-ping" | "websocket";
/** What flows inside: the bytes as they are, or ping-framed. */
export type UpgradeProtocol = "alpn" | "alpn-ping";

const PROTOCOLS: readonly UpgradeProtocol[] = ["alpn", "alpn-ping"];
const TYPES: readonly UpgradeType[] = ["alpn", "alpn-ping", "websocket"];

/** The request, as node:http parsed it. */
export interface UpgradeRequest {
  method?: string | undefined;
  url?: string | undefined;
  headers: IncomingHttpHeaders;
}

/** The verdict of {@linkcode checkUpgradeRequest}. */
export type UpgradeCheck =
  | { ok: true; type: UpgradeType; protocol: UpgradeProtocol; websocketKey?: string }
  | { ok: false; status: number; message: string };

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(", ") : v;
}

function tokens(value: string | undefined): string[] {
  return (value ?? "").split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== "");
}

function refuse(status: number, message: string): UpgradeCheck {
  return { ok: false, status, message };
}

/** Checks a request for an upgrade; see the module doc for what is accepted. */
export function checkUpgradeRequest(req: UpgradeRequest): UpgradeCheck {
  let path: string;
  try {
    path = new URL(req.url ?? "/", "http://proxy.invalid").pathname.replace(/(.)\/$/, "$1");
  } catch {
    return refuse(400, "Cannot upgrade the connection: the URL is malformed");
  }
  if (path !== CONNECTION_UPGRADE_PATH) {
    return refuse(
      404,
      `Cannot upgrade the connection at ${path}: upgrades are served at ${CONNECTION_UPGRADE_PATH} only`,
    );
  }
  if (req.method !== "GET") {
    return refuse(405, `Cannot upgrade the connection: use GET, not ${req.method}`);
  }
  if (!tokens(header(req.headers, "connection")).includes("upgrade")) {
    return refuse(400, 'Cannot upgrade the connection: the request lacks "Connection: Upgrade"');
  }
  const named = tokens(header(req.headers, TELEPORT_UPGRADE_HEADER));
  const upgrade = named.length > 0 ? named : tokens(header(req.headers, "upgrade"));
  const type = TYPES.find((t) => upgrade.includes(t));
  if (type === undefined) {
    return refuse(
      400,
      `Cannot upgrade the connection: unsupported upgrade type ${
        JSON.stringify(upgrade.join(", ") || "(none)")
      }; send "Upgrade: alpn", "Upgrade: alpn-ping" or a WebSocket with subprotocol alpn or alpn-ping`,
    );
  }
  if (type !== "websocket") return { ok: true, type, protocol: type };
  if (header(req.headers, "sec-websocket-version")?.trim() !== "13") {
    return refuse(400, "Cannot upgrade the connection: send Sec-WebSocket-Version: 13");
  }
  const key = header(req.headers, "sec-websocket-key")?.trim() ?? "";
  if (!isWebsocketKey(key)) {
    return refuse(
      400,
      "Cannot upgrade the connection: Sec-WebSocket-Key must be 16 bytes in base64",
    );
  }
  const offered = tokens(header(req.headers, "sec-websocket-protocol"));
  const protocol = offered.find((p): p is UpgradeProtocol =>
    (PROTOCOLS as readonly string[]).includes(p)
  );
  if (protocol === undefined) {
    return refuse(
      400,
      `Cannot upgrade the connection: unsupported WebSocket subprotocol ${
        JSON.stringify(offered.join(", ") || "(none)")
      }; offer alpn or alpn-ping`,
    );
  }
  return { ok: true, type, protocol, websocketKey: key };
}

/** The HTTP answer that refuses an upgrade (the connection closes after it). */
export function upgradeRefusal(status: number, message: string): string {
  const reason: Record<number, string> = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
  };
  const body = `${message}\n`;
  return `HTTP/1.1 ${status} ${reason[status] ?? "Error"}\r\n` +
    "Content-Type: text/plain; charset=utf-8\r\n" +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    "Connection: close\r\n\r\n" + body;
}

/** Options of {@linkcode acceptUpgrade}. */
export interface AcceptUpgradeOptions {
  /** Ping interval of `alpn-ping` (framing or WebSocket pings). @default {30000} */
  pingIntervalMs?: number;
}

/**
 * Answers an accepted upgrade with `101 Switching Protocols` on `socket` and returns the stream
 * that carries the inner connection (`head`, the bytes node:http read past the request, put in
 * front).
 */
export function acceptUpgrade(
  socket: Duplex,
  upgrade: Extract<UpgradeCheck, { ok: true }>,
  head: Uint8Array,
  options: AcceptUpgradeOptions = {},
): Duplex {
  const lines = ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade"];
  if (upgrade.type === "websocket") {
    lines.push(
      "Upgrade: websocket",
      `Sec-WebSocket-Accept: ${websocketAccept(upgrade.websocketKey ?? "")}`,
      `Sec-WebSocket-Protocol: ${upgrade.protocol}`,
    );
  } else {
    lines.push(`Upgrade: ${upgrade.type}`);
  }
  lines.push(`${TELEPORT_UPGRADE_HEADER}: ${upgrade.type}`);
  socket.write(lines.join("\r\n") + "\r\n\r\n");
  if (head.length > 0) socket.unshift(Buffer.from(head));
  const ping = upgrade.protocol === "alpn-ping"
    ? options.pingIntervalMs ?? DEFAULT_UPGRADE_PING_INTERVAL_MS
    : 0;
  if (upgrade.type === "websocket") {
    return websocketConn(socket, { role: "server", pingIntervalMs: ping });
  }
  return upgrade.type === "alpn-ping" ? pingConn(socket, { pingIntervalMs: ping }) : socket;
}

/** Options of {@linkcode requestConnectionUpgrade}. */
export interface RequestUpgradeOptions {
  /** The `Host` header (the load balancer's name and port). */
  host: string;
  /** @default {"alpn-ping"} */
  type?: UpgradeType;
  /** For `websocket`: the subprotocol. @default {"alpn-ping"} */
  websocketProtocol?: UpgradeProtocol;
  /** Time allowed for the answer, in ms. @default {30000} */
  timeoutMs?: number;
  /** Names the proxy in errors. @default {host} */
  where?: string;
}

/** Largest answer header read before giving up. */
const MAX_ANSWER_BYTES = 16 * 1024;

/**
 * The client side: sends the upgrade request on `stream` (usually TLS to a load balancer),
 * reads the `101` and returns the stream for the inner TLS connection. Throws
 * ConnectionProblemError when the server refuses or answers something else.
 */
export function requestConnectionUpgrade(
  stream: Duplex,
  options: RequestUpgradeOptions,
): Promise<Duplex> {
  const type = options.type ?? "alpn-ping";
  const protocol = options.websocketProtocol ?? "alpn-ping";
  const where = options.where ?? options.host;
  const key = newWebsocketKey();
  const lines = [
    `GET ${CONNECTION_UPGRADE_PATH} HTTP/1.1`,
    `Host: ${options.host}`,
    "Connection: Upgrade",
  ];
  if (type === "websocket") {
    lines.push(
      "Upgrade: websocket",
      "Sec-WebSocket-Version: 13",
      `Sec-WebSocket-Key: ${key}`,
      `Sec-WebSocket-Protocol: ${protocol}`,
    );
  } else {
    lines.push(`Upgrade: ${type}`);
  }
  lines.push(`${TELEPORT_UPGRADE_HEADER}: ${type}`);
  return new Promise<Duplex>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err?: Error) => {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("error", onError);
      stream.off("close", onClose);
      if (err !== undefined) {
        stream.destroy();
        reject(err);
      }
    };
    const fail = (why: string) =>
      done(
        new ConnectionProblemError(
          `Cannot upgrade the connection to proxy ${where} (${CONNECTION_UPGRADE_PATH}): ${why}`,
        ),
      );
    const onError = (err: Error) => fail(err.message);
    const onClose = () => fail("the connection closed before the answer");
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > MAX_ANSWER_BYTES) fail("the answer's header is too large");
        return;
      }
      const [status = "", ...rest] = buf.subarray(0, end).toString("latin1").split("\r\n");
      const headers = new Map<string, string>();
      for (const line of rest) {
        const i = line.indexOf(":");
        if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
      }
      const code = /^HTTP\/1\.[01] (\d{3})/.exec(status)?.[1];
      if (code !== "101") {
        const body = buf.subarray(end + 4).toString("utf8").trim().slice(0, 300);
        return fail(
          `it answered ${JSON.stringify(status)}${body === "" ? "" : ` (${body})`}; is this a ` +
            "Teleport proxy behind the load balancer, and does the balancer pass upgrades?",
        );
      }
      const got = (headers.get(TELEPORT_UPGRADE_HEADER.toLowerCase()) ??
        headers.get("upgrade") ?? "").toLowerCase();
      if (got !== type) {
        return fail(`it switched to ${JSON.stringify(got)}, not ${JSON.stringify(type)}`);
      }
      if (
        type === "websocket" && headers.get("sec-websocket-accept") !== websocketAccept(key)
      ) {
        return fail("its Sec-WebSocket-Accept does not match the key sent");
      }
      done();
      stream.pause();
      const left = buf.subarray(end + 4);
      if (left.length > 0) stream.unshift(left);
      if (type === "websocket") {
        const sub = (headers.get("sec-websocket-protocol") ?? "").toLowerCase();
        if (sub !== protocol) {
          stream.destroy();
          return reject(
            new ConnectionProblemError(
              `Cannot upgrade the connection to proxy ${where}: it chose WebSocket subprotocol ` +
                `${JSON.stringify(sub)}, not ${protocol}`,
            ),
          );
        }
        resolve(websocketConn(stream, { role: "client" }));
        return;
      }
      resolve(type === "alpn-ping" ? pingConn(stream) : stream);
    };
    const timeoutMs = options.timeoutMs ?? 30_000;
    const timer = setTimeout(() => fail(`no answer in ${timeoutMs} ms`), timeoutMs);
    stream.on("data", onData);
    stream.once("error", onError);
    stream.once("close", onClose);
    stream.write(lines.join("\r\n") + "\r\n\r\n");
  });
}
