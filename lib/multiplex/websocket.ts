/**
 * The little of RFC 6455 that a WebSocket connection upgrade needs: binary frames carrying a
 * byte stream (the inner TLS connection), control frames (ping, pong, close) answered, client
 * frames masked, and the `Sec-WebSocket-Accept` value of the handshake.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import { Duplex } from "node:stream";
import { BadParameterError, ConnectionProblemError } from "../errors/mod.ts";

/** The GUID of RFC 6455 §1.3. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Largest frame payload written: bigger writes are split. */
export const MAX_WEBSOCKET_FRAME_WRITE = 64 * 1024;
/** Largest frame payload accepted; a bigger one closes the connection (1009). */
export const MAX_WEBSOCKET_FRAME_READ = 1024 * 1024;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2). */
export function websocketAccept(key: string): string {
  return createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
}

/** A fresh `Sec-WebSocket-Key`: 16 random bytes in base64. */
export function newWebsocketKey(): string {
  return randomBytes(16).toString("base64");
}

/** True when `key` is what RFC 6455 asks for: base64 of 16 bytes. */
export function isWebsocketKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key);
}

/** One frame; `mask` present for frames a client sends. */
export function encodeWebsocketFrame(
  opcode: number,
  payload: Uint8Array,
  mask?: Uint8Array,
): Buffer {
  const len = payload.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (mask === undefined ? 0 : 4));
  head[0] = 0x80 | opcode;
  head[1] = (mask === undefined ? 0 : 0x80) | (len < 126 ? len : len < 65536 ? 126 : 127);
  if (lenBytes === 2) head.writeUInt16BE(len, 2);
  if (lenBytes === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (mask === undefined) return Buffer.concat([head, payload]);
  head.set(mask, 2 + lenBytes);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([head, body]);
}

/** A frame read by {@linkcode WebsocketFrameReader}. */
export interface WebsocketFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/**
 * Reads frames from chunks. `role` is who reads: a server requires masked frames, a client
 * unmasked ones (RFC 6455 §5.1). Throws ConnectionProblemError for a frame that breaks the rules.
 */
export class WebsocketFrameReader {
  #buf: Buffer = Buffer.alloc(0);
  #role: "server" | "client";

  constructor(role: "server" | "client") {
    this.#role = role;
  }

  push(chunk: Uint8Array): WebsocketFrame[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    const frames: WebsocketFrame[] = [];
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) break;
      const fin = (b[0]! & 0x80) !== 0;
      if ((b[0]! & 0x70) !== 0) throw bad("a frame sets reserved bits (no extension was agreed)");
      const opcode = b[0]! & 0x0f;
      const masked = (b[1]! & 0x80) !== 0;
      if (masked !== (this.#role === "server")) {
        throw bad(
          this.#role === "server" ? "a client frame is not masked" : "a server frame is masked",
        );
      }
      let len = b[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(MAX_WEBSOCKET_FRAME_READ)) throw tooLarge(big);
        len = Number(big);
        at = 10;
      }
      if (len > MAX_WEBSOCKET_FRAME_READ) throw tooLarge(BigInt(len));
      if (opcode >= 0x8 && (len > 125 || !fin)) {
        throw bad("a control frame is fragmented or longer than 125 bytes");
      }
      const maskAt = at;
      if (masked) at += 4;
      if (b.length < at + len) break;
      const payload = Buffer.from(b.subarray(at, at + len));
      if (masked) {
        for (let i = 0; i < payload.length; i++) payload[i]! ^= b[maskAt + (i & 3)]!;
      }
      frames.push({ fin, opcode, payload });
      this.#buf = b.subarray(at + len);
    }
    return frames;
  }

  get buffered(): number {
    return this.#buf.length;
  }
}

function bad(why: string): ConnectionProblemError {
  return new ConnectionProblemError(`Cannot read the WebSocket connection: ${why}`);
}

function tooLarge(len: bigint): ConnectionProblemError {
  return bad(`a frame of ${len} bytes is larger than the ${MAX_WEBSOCKET_FRAME_READ} allowed`);
}

/** Options of {@linkcode websocketConn}. */
export interface WebsocketConnOptions {
  /** `client` masks what it sends and expects unmasked frames; `server` the other way round. */
  role: "server" | "client";
  /** Send a ping frame this often; 0 sends none. @default {0} */
  pingIntervalMs?: number;
}

/**
 * A byte stream over an upgraded WebSocket connection: writes go out as binary frames, binary
 * (and continuation) frames come in as bytes; pings are answered, pongs dropped, a close frame
 * is answered and ends the stream. Text frames are refused (close 1003).
 */
export function websocketConn(stream: Duplex, options: WebsocketConnOptions): Duplex {
  const { role } = options;
  const interval = options.pingIntervalMs ?? 0;
  if (!Number.isInteger(interval) || interval < 0) {
    throw new BadParameterError(
      `Cannot frame the WebSocket connection: pingIntervalMs must be a non-negative integer, received ${interval}`,
    );
  }
  const reader = new WebsocketFrameReader(role);
  const frame = (opcode: number, payload: Uint8Array) =>
    encodeWebsocketFrame(opcode, payload, role === "client" ? randomBytes(4) : undefined);
  let closeSent = false;
  let ended = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  const sendClose = (code: number) => {
    if (closeSent || !stream.writable) return;
    closeSent = true;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code, 0);
    stream.write(frame(OP_CLOSE, body));
  };
  const conn: Duplex = new Duplex({
    read() {
      stream.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      let last = true;
      for (let at = 0; at < chunk.length; at += MAX_WEBSOCKET_FRAME_WRITE) {
        last = stream.write(frame(OP_BINARY, chunk.subarray(at, at + MAX_WEBSOCKET_FRAME_WRITE)));
      }
      if (last) callback();
      else stream.once("drain", () => callback());
    },
    final(callback) {
      sendClose(1000);
      stream.end();
      callback();
    },
    destroy(err, callback) {
      clearInterval(timer);
      // After a close frame for a protocol error the stream ends by itself (see fail()).
      if (!failing) stream.destroy();
      callback(err);
    },
  });
  /**
   * A protocol error: the close frame goes out before the connection ends (destroying the
   * socket at once could drop it), and a peer that does not close is cut after 2 s.
   */
  let failing = false;
  const fail = (code: number, err: Error) => {
    failing = true;
    sendClose(code);
    stream.end();
    const cut = setTimeout(() => stream.destroy(), 2000);
    stream.once("close", () => clearTimeout(cut));
    conn.destroy(err);
  };
  stream.on("data", (chunk: Buffer) => {
    if (ended || failing) return;
    let frames: WebsocketFrame[];
    try {
      frames = reader.push(chunk);
    } catch (err) {
      fail(/larger than/.test((err as Error).message) ? 1009 : 1002, err as Error);
      return;
    }
    for (const f of frames) {
      if (f.opcode === OP_BINARY || f.opcode === OP_CONTINUATION) {
        if (f.payload.length > 0 && !conn.push(f.payload)) stream.pause();
      } else if (f.opcode === OP_PING) {
        if (stream.writable) stream.write(frame(OP_PONG, f.payload));
      } else if (f.opcode === OP_CLOSE) {
        sendClose(1000);
        stream.end();
        ended = true;
        conn.push(null);
        return;
      } else if (f.opcode !== OP_PONG) {
        fail(
          1003,
          bad(
            f.opcode === OP_TEXT
              ? "a text frame arrived; only binary frames carry the connection"
              : `unknown opcode ${f.opcode}`,
          ),
        );
        return;
      }
    }
  });
  stream.once("end", () => {
    if (ended) return;
    ended = true;
    conn.push(null);
  });
  stream.once("error", (err: Error) => conn.destroy(err));
  stream.once("close", () => {
    clearInterval(timer);
    if (!conn.destroyed) conn.destroy();
  });
  if (interval > 0) {
    timer = setInterval(() => {
      if (stream.writable) stream.write(frame(OP_PING, Buffer.alloc(0)));
    }, interval);
  }
  return conn;
}
