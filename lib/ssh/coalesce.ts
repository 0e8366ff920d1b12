/**
 * Write coalescing for the streams ssh2 writes to. ssh2 hands each SSH packet to the socket in
 * pieces (protocol/crypto.js: chacha20-poly1305 writes length, payload and MAC separately,
 * AES-GCM length, ciphertext and tag), and several packets per event (a reply and a window
 * adjust). With no-delay each piece leaves as its own TCP segment, or its own TLS record on a
 * TLS socket; a middlebox that leaves Nagle on (tinyproxy) then holds every piece after the
 * first until the previous one is acknowledged, a delayed-ACK wait per piece.
 * {@link coalesceWrites} gathers the writes made in one turn of the event loop into one.
 *
 * A server may also hold what it writes before the client's first bytes (its identification
 * string) until they arrive ({@link CoalesceOptions.holdUntilFirstRead}): ssh2 writes the
 * server's identification at once and its KEXINIT only on reading the client's, so a client
 * that also sends at once crosses the server's identification with its own and answers it with
 * its KEXINIT, which then crosses the server's KEXINIT; its next packet (the key exchange init)
 * follows one that nothing answered, and behind a relay with Nagle on waits for a delayed ACK.
 * Held, the server's identification leaves with its KEXINIT as the answer to the client's
 * identification, and every flight of the handshake answers the other side's.
 */
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { setImmediate } from "node:timers";

/**
 * Pending bytes above which a batch is written at once instead of at the end of the turn, so a
 * bulk write (ssh2 sends a whole window of packets in one call) starts leaving early and the
 * copy stays bounded. 64 KiB is bigger than a default SSH packet (32 KiB of data).
 */
const FLUSH_BYTES = 64 * 1024;

/**
 * How long a held first write waits for the peer's first bytes, in ms, so a client that reads
 * the server's identification before sending its own (ssh-keyscan does) still gets it.
 */
export const DEFAULT_FIRST_READ_WAIT_MS = 200;

/** Options for {@link coalesceWrites}. */
export interface CoalesceOptions {
  /**
   * Hold the writes made before the stream first reads data until it does (they leave at the
   * end of that turn, with what was written in answer) or until `firstReadWaitMs` passed.
   * @default {false}
   */
  holdUntilFirstRead?: boolean;
  /** @default {DEFAULT_FIRST_READ_WAIT_MS} */
  firstReadWaitMs?: number;
}

const installed = new WeakSet<object>();

type WriteCallback = (err?: Error | null) => void;

/**
 * Makes `stream` gather the binary chunks written to it (without a callback) during one turn of
 * the event loop and write them as one chunk at the turn's end (`setImmediate`, so replies
 * sent across `await`s of one event, e.g. exit-status, EOF and CLOSE, go together), or as soon as
 * {@link FLUSH_BYTES} are pending. Order is kept: a write with a callback or a string, `end()`,
 * `destroy()` and the flush all write what is pending first. ssh2 ignores `write()`'s return
 * value (its flow control is the channel window), so the gathered write returns whether the
 * stream was below its high-water mark after the last real write. Calling it twice on the same
 * stream does nothing. With `holdUntilFirstRead`, see {@link CoalesceOptions}; a write with a
 * callback or a string, `end()` and `destroy()` still write what is held first.
 */
export function coalesceWrites(stream: Duplex, options: CoalesceOptions = {}): void {
  if (installed.has(stream)) return;
  installed.add(stream);
  type Method<R> = (this: Duplex, ...args: unknown[]) => R;
  const write = stream.write as Method<boolean>;
  const end = stream.end as Method<Duplex>;
  const destroy = stream.destroy as Method<Duplex>;
  let pending: Uint8Array[] = [];
  let size = 0;
  let scheduled = false;
  let below = true;

  const flush = () => {
    if (pending.length === 0) return;
    const chunks = pending;
    const total = size;
    pending = [];
    size = 0;
    if (stream.destroyed) return;
    // More than one chunk is copied into a fresh buffer; ssh2 allocates each piece anew.
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
    below = write.call(stream, data);
  };
  // Set while writes are held for the first read (see CoalesceOptions).
  let holding = options.holdUntilFirstRead === true;
  let holdTimer: ReturnType<typeof setTimeout> | undefined;
  const onTurnEnd = () => {
    scheduled = false;
    if (!holding) flush();
  };
  const release = () => {
    if (!holding) return;
    holding = false;
    clearTimeout(holdTimer);
    if (!scheduled) {
      scheduled = true;
      setImmediate(onTurnEnd);
    }
  };
  if (holding) {
    const waitMs = options.firstReadWaitMs ?? DEFAULT_FIRST_READ_WAIT_MS;
    holdTimer = setTimeout(release, waitMs);
    // Observed without a 'data' listener of its own, which would start the stream flowing
    // before its reader is attached.
    const emit = stream.emit as Method<boolean>;
    stream.emit = function (this: Duplex, event: unknown, ...args: unknown[]) {
      if (event === "data") release();
      else if (event === "close") clearTimeout(holdTimer);
      return emit.call(this, event, ...args);
    } as typeof stream.emit;
  }

  stream.write = function (
    this: Duplex,
    chunk: unknown,
    encoding?: BufferEncoding | WriteCallback,
    cb?: WriteCallback,
  ): boolean {
    if (!(chunk instanceof Uint8Array) || encoding !== undefined || cb !== undefined) {
      flush();
      return write.call(this, chunk, encoding, cb);
    }
    if (chunk.length === 0) return below;
    pending.push(chunk);
    size += chunk.length;
    if (size >= FLUSH_BYTES) {
      flush();
    } else if (!scheduled) {
      scheduled = true;
      setImmediate(onTurnEnd);
    }
    return below;
  } as typeof stream.write;

  stream.end = function (this: Duplex, ...args: unknown[]) {
    flush();
    return end.apply(this, args);
  } as typeof stream.end;

  stream.destroy = function (this: Duplex, ...args: unknown[]) {
    // What was written before destroy() (e.g. a DISCONNECT) still goes out, as it did when
    // each piece was written at once.
    if (!this.destroyed && !this.writableEnded) flush();
    return destroy.apply(this, args);
  } as typeof stream.destroy;
}
