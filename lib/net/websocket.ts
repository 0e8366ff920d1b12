/**
 * WebSockets (RFC 6455) over a raw socket, after an HTTP/1.1 upgrade: framing, masking,
 * fragmentation, ping/pong and the closing handshake, without extensions. The server side is
 * attached by the HTTP adapter (http_server.ts) after it wrote the 101; tests use the client side
 * ({@link WebSocketConnection} with `role: "client"` masks what it sends).
 *
 * Messages are read with {@link WebSocketConnection.next} (or `for await`); when the reader lags
 * behind, the socket is paused, so a fast sender is held back by TCP rather than by memory.
 */
import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { BadParameterError } from "../errors/mod.ts";

/** The GUID of RFC 6455 §1.3. */
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** `Sec-WebSocket-Accept` for a client's key; BadParameterError when key or version is wrong. */
export function acceptKeyOf(
  key: string | string[] | undefined,
  version: string | string[] | undefined,
): string {
  if (version !== "13") {
    throw new BadParameterError(
      "Cannot open a WebSocket: Sec-WebSocket-Version must be 13 (RFC 6455)",
    );
  }
  if (typeof key !== "string" || !/^[A-Za-z0-9+/]{22}==$/.test(key.trim())) {
    throw new BadParameterError(
      "Cannot open a WebSocket: Sec-WebSocket-Key must be 16 random bytes in base64",
    );
  }
  return createHash("sha1").update(key.trim() + WS_GUID).digest("base64");
}

/** Frame opcodes. */
const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** A message: text frames give strings, binary frames bytes. */
export type WebSocketMessage = string | Uint8Array;

/** Options of {@link WebSocketConnection}. */
export interface WebSocketConnectionOptions {
  /** Largest message (after reassembly) accepted; bigger ones close with 1009. @default {1048576} */
  maxMessageBytes?: number;
  /** Messages read but not yet taken before the socket is paused. @default {64} */
  queueLimit?: number;
  /** "client" masks outgoing frames and expects unmasked ones. @default {"server"} */
  role?: "server" | "client";
}

/** How a WebSocket ended. */
export interface WebSocketClose {
  code: number;
  reason: string;
}

/** Encodes one frame; `mask` (4 bytes) for the client side. */
export function encodeFrame(opcode: number, payload: Uint8Array, mask?: Uint8Array): Uint8Array {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = 2 + ext + (mask ? 4 : 0);
  const out = new Uint8Array(head + len);
  out[0] = 0x80 | opcode;
  out[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (ext === 2) view.setUint16(2, len);
  if (ext === 8) view.setBigUint64(2, BigInt(len));
  if (mask) {
    out.set(mask, 2 + ext);
    for (let i = 0; i < len; i++) out[head + i] = payload[i]! ^ mask[i & 3]!;
  } else {
    out.set(payload, head);
  }
  return out;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** One WebSocket, server or client side; see the module doc. */
export class WebSocketConnection {
  readonly #maxMessage: number;
  readonly #queueLimit: number;
  readonly #client: boolean;
  #socket: Duplex | undefined;
  #buf = new Uint8Array(0);
  #fragments: Uint8Array[] = [];
  #fragmentOp = 0;
  #fragmentBytes = 0;
  #queue: WebSocketMessage[] = [];
  #waiters: Array<(m: WebSocketMessage | undefined) => void> = [];
  #closeSent = false;
  #ended = false;
  #closed = Promise.withResolvers<WebSocketClose>();
  /** Called with each pong's payload (latency probes). */
  onPong: ((payload: Uint8Array) => void) | undefined;

  constructor(options: WebSocketConnectionOptions = {}) {
    this.#maxMessage = options.maxMessageBytes ?? 1024 * 1024;
    this.#queueLimit = options.queueLimit ?? 64;
    this.#client = options.role === "client";
  }

  /** Resolves when the socket is gone, with the close code (1006: no closing handshake). */
  get closed(): Promise<WebSocketClose> {
    return this.#closed.promise;
  }

  /** True once closing started or the socket is gone. */
  get isClosed(): boolean {
    return this.#closeSent || this.#ended;
  }

  /** Bytes written but not yet sent. */
  get bufferedAmount(): number {
    return this.#socket?.writableLength ?? 0;
  }

  /** Resolves once what was written has been handed to the OS (at once when nothing waits). */
  whenDrained(): Promise<void> {
    const s = this.#socket;
    if (s === undefined || !s.writableNeedDrain || s.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        s.off("drain", done);
        s.off("close", done);
        resolve();
      };
      s.on("drain", done);
      s.on("close", done);
    });
  }

  /** Starts the connection on `socket` (after the upgrade); `head` = bytes already read. */
  attach(socket: Duplex, head: Uint8Array = new Uint8Array(0)): void {
    if (this.#socket !== undefined) throw new Error("Cannot attach a WebSocket twice");
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("error", () => socket.destroy());
    socket.once("close", () => this.#gone({ code: 1006, reason: "" }));
    if (head.length > 0) this.#onData(head);
    if (socket.isPaused()) socket.resume();
  }

  /** The upgrade did not happen: readers see the end. */
  abandon(): void {
    this.#gone({ code: 1006, reason: "not upgraded" });
  }

  /** The next message, or undefined once the connection is closed. */
  next(): Promise<WebSocketMessage | undefined> {
    const m = this.#queue.shift();
    if (m !== undefined) {
      if (this.#queue.length < this.#queueLimit && this.#socket?.isPaused()) this.#socket.resume();
      return Promise.resolve(m);
    }
    if (this.#ended || this.#closeSent && this.#socket === undefined) {
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WebSocketMessage> {
    for (let m = await this.next(); m !== undefined; m = await this.next()) yield m;
  }

  /** Sends a text (string) or binary message; ignored once closing. */
  send(data: WebSocketMessage): void {
    if (typeof data === "string") this.#write(OP.text, encoder.encode(data));
    else this.#write(OP.binary, data);
  }

  /** Sends a ping. */
  ping(payload: Uint8Array = new Uint8Array(0)): void {
    this.#write(OP.ping, payload);
  }

  /** Starts the closing handshake; the socket ends when the peer answers (or at once, `force`). */
  close(code = 1000, reason = "", force = false): void {
    if (!this.#closeSent && this.#socket !== undefined && !this.#ended) {
      const r = encoder.encode(reason).slice(0, 123);
      const payload = new Uint8Array(2 + r.length);
      new DataView(payload.buffer).setUint16(0, code);
      payload.set(r, 2);
      this.#write(OP.close, payload);
      this.#closeSent = true;
      // A peer that never answers the close does not hold the socket.
      const timer = setTimeout(() => this.#socket?.destroy(), 5000);
      this.#closed.promise.finally(() => clearTimeout(timer));
      if (force) this.#socket.end();
    } else if (this.#socket === undefined) {
      this.#closeSent = true;
      this.#gone({ code, reason });
    }
    this.#flushWaiters();
  }

  #write(opcode: number, payload: Uint8Array): void {
    const s = this.#socket;
    if (s === undefined || this.#closeSent || this.#ended || s.destroyed) return;
    const mask = this.#client ? crypto.getRandomValues(new Uint8Array(4)) : undefined;
    s.write(encodeFrame(opcode, payload, mask));
  }

  #gone(close: WebSocketClose): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#closed.resolve(close);
    this.#flushWaiters();
  }

  #flushWaiters(): void {
    if (this.#queue.length > 0) return;
    if (!this.#ended && !this.#closeSent) return;
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  #fail(code: number, reason: string): void {
    this.close(code, reason, true);
    this.#socket?.destroy();
    this.#gone({ code, reason });
  }

  #deliver(m: WebSocketMessage): void {
    const w = this.#waiters.shift();
    if (w !== undefined) return w(m);
    this.#queue.push(m);
    if (this.#queue.length >= this.#queueLimit) this.#socket?.pause();
  }

  #onData(chunk: Uint8Array): void {
    if (this.#ended) return;
    const merged = new Uint8Array(this.#buf.length + chunk.length);
    merged.set(this.#buf);
    merged.set(chunk, this.#buf.length);
    this.#buf = merged;
    let off = 0;
    while (!this.#ended) {
      const b = this.#buf;
      if (b.length - off < 2) break;
      const b0 = b[off]!;
      const b1 = b[off + 1]!;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      if ((b0 & 0x70) !== 0) return this.#fail(1002, "no extension was negotiated");
      if (masked === this.#client) {
        return this.#fail(
          1002,
          this.#client ? "server frames are not masked" : "client frames must be masked",
        );
      }
      let len = b1 & 0x7f;
      let p = off + 2;
      if (len === 126) {
        if (b.length - p < 2) break;
        len = (b[p]! << 8) | b[p + 1]!;
        p += 2;
      } else if (len === 127) {
        if (b.length - p < 8) break;
        const big = new DataView(b.buffer, b.byteOffset + p, 8).getBigUint64(0);
        if (big > BigInt(this.#maxMessage)) return this.#fail(1009, "message too big");
        len = Number(big);
        p += 8;
      }
      const control = opcode >= 8;
      if (control && (!fin || len > 125)) return this.#fail(1002, "bad control frame");
      if (!control && this.#fragmentBytes + len > this.#maxMessage) {
        return this.#fail(1009, "message too big");
      }
      const maskKey = masked ? b.subarray(p, p + 4) : undefined;
      if (masked) p += 4;
      if (b.length - p < len) break;
      const payload = b.slice(p, p + len);
      if (maskKey !== undefined) {
        for (let i = 0; i < len; i++) payload[i]! ^= maskKey[i & 3]!;
      }
      off = p + len;
      this.#frame(fin, opcode, payload);
    }
    this.#buf = this.#buf.slice(off);
  }

  #frame(fin: boolean, opcode: number, payload: Uint8Array): void {
    switch (opcode) {
      case OP.ping:
        return this.#write(OP.pong, payload);
      case OP.pong:
        return this.onPong?.(payload);
      case OP.close: {
        const code = payload.length >= 2 ? new DataView(payload.buffer).getUint16(0) : 1005;
        let reason = "";
        try {
          reason = strictDecoder.decode(payload.subarray(2));
        } catch {
          return this.#fail(1007, "close reason is not UTF-8");
        }
        if (!this.#closeSent) {
          this.#write(OP.close, payload.length >= 2 ? payload.subarray(0, 2) : new Uint8Array(0));
          this.#closeSent = true;
        }
        this.#socket?.end();
        return this.#gone({ code, reason });
      }
      case OP.text:
      case OP.binary:
        if (this.#fragments.length > 0) return this.#fail(1002, "expected a continuation frame");
        if (fin) return this.#message(opcode, payload);
        this.#fragmentOp = opcode;
        this.#fragments = [payload];
        this.#fragmentBytes = payload.length;
        return;
      case OP.cont: {
        if (this.#fragments.length === 0) return this.#fail(1002, "unexpected continuation frame");
        this.#fragments.push(payload);
        this.#fragmentBytes += payload.length;
        if (!fin) return;
        const whole = Buffer.concat(this.#fragments);
        this.#fragments = [];
        this.#fragmentBytes = 0;
        return this.#message(this.#fragmentOp, new Uint8Array(whole));
      }
      default:
        return this.#fail(1002, `unknown opcode ${opcode}`);
    }
  }

  #message(opcode: number, payload: Uint8Array): void {
    if (this.#closeSent) return;
    if (opcode === OP.binary) return this.#deliver(payload);
    try {
      this.#deliver(strictDecoder.decode(payload));
    } catch {
      this.#fail(1007, "text message is not UTF-8");
    }
  }
}
