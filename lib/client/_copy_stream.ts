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

/** Wraps `inner`: reads are copied and deferred; writes, end and destroy pass through. */
export function copyingStream(inner: Duplex): Duplex {
  let ended = false;
  const outer = new Duplex({
    read() {},
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
    queueMicrotask(() => outer.push(copy));
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
