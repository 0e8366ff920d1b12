/**
 * A Duplex over an SSH channel for running a second SSH connection inside it (ssh2 in ssh2).
 * ssh2 must never re-enter itself: its ChaCha20-Poly1305 code keeps scratch state (the nonce
 * and MAC buffers) in module globals and hands the encrypted packet length to the socket
 * before it encrypts the payload. With a channel as the socket, that write runs the carrying
 * connection's encryption in the middle of the nested one and garbles it (measured: hangs and
 * "Invalid typed array length"); ssh2 over an in-memory Duplex fails the same way until
 * delivery is deferred. So both directions are copied and handed on from a microtask, in
 * order. Wrap a channel right after it is opened, before data can arrive.
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";

/** How much the wrapper buffers for its reader before it pauses `inner`. */
const READ_BUFFER = 256 * 1024;

/**
 * Wraps `inner`: reads are copied and deferred; writes, end and destroy pass through. The read
 * side keeps backpressure: when the wrapper's reader falls behind, `inner` is paused (an ssh2
 * channel then stops opening its window, holding the peer back) and resumed when it reads
 * again.
 */
export function copyingStream(inner: Duplex): Duplex {
  let ended = false;
  const outer = new Duplex({
    readableHighWaterMark: READ_BUFFER,
    read() {
      if (inner.isPaused()) inner.resume();
    },
    write(chunk: Uint8Array, _encoding, callback) {
      // Deferred: ssh2's ChaCha20-Poly1305 cipher keeps scratch state in module globals and
      // writes the packet length before it encrypts the rest, so a synchronous write into the
      // carrying connection (another ssh2 encrypting) would corrupt the nested packet.
      const copy = Buffer.from(chunk);
      queueMicrotask(() => {
        if (inner.destroyed) return callback(null);
        inner.write(copy, (err?: Error | null) => callback(err ?? null));
      });
    },
    final(callback) {
      inner.end();
      callback();
    },
    destroy(err, callback) {
      inner.destroy();
      callback(err);
    },
  });
  inner.on("data", (chunk: Uint8Array) => {
    const copy = Buffer.from(chunk);
    queueMicrotask(() => {
      if (!outer.push(copy) && !outer.destroyed) inner.pause();
    });
  });
  inner.on("end", () => {
    ended = true;
    queueMicrotask(() => outer.push(null));
  });
  inner.on("error", (err: Error) => queueMicrotask(() => outer.destroy(err)));
  inner.on("close", () =>
    queueMicrotask(() => {
      if (!ended && !outer.destroyed) outer.destroy();
    }));
  return outer;
}
