/**
 * Teleport's ping framing (`alpn-ping` connection upgrades; protocol notes §1 "-ping variants"):
 * every write becomes a frame of a big-endian uint32 length followed by that many bytes; a frame
 * of length 0 is a ping and is dropped by the reader. One side (the proxy) sends a ping every
 * `pingIntervalMs`, so that a load balancer in front never sees the connection idle.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import { BadParameterError, ConnectionProblemError } from "../errors/mod.ts";

/** Largest frame written: bigger writes are split. */
export const MAX_PING_FRAME_WRITE = 64 * 1024;
/**
 * Largest frame accepted from the peer (Teleport's frames carry one TLS record, about 16 KiB); a
 * bigger length closes the connection, so a peer cannot make us buffer without end.
 */
export const MAX_PING_FRAME_READ = 1024 * 1024;

const PING = Buffer.alloc(4);

/** Options of {@linkcode pingConn}. */
export interface PingConnOptions {
  /** Send a ping this often; 0 sends none (the side that only answers). @default {0} */
  pingIntervalMs?: number;
}

/** One frame (length + payload) for `payload`. */
export function encodePingFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(4 + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.set(payload, 4);
  return frame;
}

/**
 * Reads frames from chunks: {@linkcode PingFrameReader.push} returns the payloads now complete
 * (pings dropped) or throws ConnectionProblemError for a frame over {@link MAX_PING_FRAME_READ}.
 */
export class PingFrameReader {
  #buf: Buffer = Buffer.alloc(0);

  /** Bytes of an unfinished frame held. */
  get buffered(): number {
    return this.#buf.length;
  }

  push(chunk: Uint8Array): Buffer[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > MAX_PING_FRAME_READ) {
        throw new ConnectionProblemError(
          `Cannot read a ping-framed connection: a frame of ${len} bytes is larger than the ` +
            `${MAX_PING_FRAME_READ} allowed`,
        );
      }
      if (this.#buf.length < 4 + len) break;
      if (len > 0) out.push(this.#buf.subarray(4, 4 + len));
      this.#buf = this.#buf.subarray(4 + len);
    }
    return out;
  }
}

/**
 * Wraps `stream` in ping framing: what is written to the result goes out framed, what arrives
 * is unframed (pings dropped). Closing either side closes the other.
 */
export function pingConn(stream: Duplex, options: PingConnOptions = {}): Duplex {
  const interval = options.pingIntervalMs ?? 0;
  if (!Number.isInteger(interval) || interval < 0) {
    throw new BadParameterError(
      `Cannot frame the connection: pingIntervalMs must be a non-negative integer, received ${interval}`,
    );
  }
  const reader = new PingFrameReader();
  let timer: ReturnType<typeof setInterval> | undefined;
  const framed: Duplex = new Duplex({
    read() {
      stream.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      let last = true;
      for (let at = 0; at < chunk.length; at += MAX_PING_FRAME_WRITE) {
        last = stream.write(encodePingFrame(chunk.subarray(at, at + MAX_PING_FRAME_WRITE)));
      }
      if (last) callback();
      else stream.once("drain", () => callback());
    },
    final(callback) {
      stream.end();
      callback();
    },
    destroy(err, callback) {
      clearInterval(timer);
      stream.destroy();
      callback(err);
    },
  });
  stream.on("data", (chunk: Buffer) => {
    let payloads: Buffer[];
    try {
      payloads = reader.push(chunk);
    } catch (err) {
      framed.destroy(err as Error);
      return;
    }
    for (const p of payloads) {
      if (!framed.push(p)) stream.pause();
    }
  });
  stream.once("end", () => {
    if (reader.buffered > 0) {
      framed.destroy(
        new ConnectionProblemError("Cannot read a ping-framed connection: it ended mid-frame"),
      );
      return;
    }
    framed.push(null);
  });
  stream.once("error", (err: Error) => framed.destroy(err));
  stream.once("close", () => {
    clearInterval(timer);
    if (!framed.destroyed) framed.destroy();
  });
  if (interval > 0) {
    timer = setInterval(() => {
      if (stream.writable) stream.write(PING);
    }, interval);
  }
  return framed;
}
