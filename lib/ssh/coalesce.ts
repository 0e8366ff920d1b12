/**
 * Write coalescing for the streams ssh2 writes to. ssh2 hands each SSH packet to the socket in
 * pieces (protocol/crypto.js: chacha20-poly1305 writes length, payload and MAC separately,
 * AES-GCM length, ciphertext and tag), and several packets per event (a reply and a window
 * adjust). With no-delay each piece leaves as its own TCP segment, or its own TLS record on a
 * TLS socket; a middlebox that leaves Nagle on (tinyproxy) then holds every piece after the
 * first until the previous one is acknowledged, a delayed-ACK wait per piece.
 * {@link coalesceWrites} gathers the writes made in one turn of the event loop into one.
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
 * stream does nothing.
 */
export function coalesceWrites(stream: Duplex): void {
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
  const onTurnEnd = () => {
    scheduled = false;
    flush();
  };

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
