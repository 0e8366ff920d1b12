/** Moving bytes between this process's stdio and SSH channels, with backpressure. */
import type { Readable, Writable } from "node:stream";
import { writeAll } from "./_env.ts";

/**
 * Writes everything `readable` emits to `out` (a Deno writer), pausing while a write is
 * pending; resolves when the stream ends, closes or fails.
 */
export function pumpToWriter(
  readable: Readable,
  out: { write(p: Uint8Array): Promise<number> },
): Promise<void> {
  return new Promise<void>((resolve) => {
    let pending = Promise.resolve();
    const done = () => {
      pending.then(resolve, resolve);
    };
    readable.on("data", (chunk: Uint8Array) => {
      readable.pause();
      pending = pending.then(() => writeAll(out, chunk)).then(
        () => {
          readable.resume();
        },
        () => {
          readable.destroy();
        },
      );
    });
    readable.once("end", done);
    readable.once("close", done);
    readable.once("error", done);
  });
}

/**
 * Reads `input` (a Deno reader) into `writable` until the end of the input, then ends it.
 * Stops early when `stopped()` turns true or a write fails. Resolves true at the end of the
 * input.
 */
export async function pumpFromReader(
  input: { read(p: Uint8Array): Promise<number | null> },
  writable: Writable,
  stopped: () => boolean,
): Promise<boolean> {
  const buf = new Uint8Array(32 * 1024);
  while (!stopped()) {
    let n: number | null;
    try {
      n = await input.read(buf);
    } catch {
      return false;
    }
    if (stopped()) return false;
    if (n === null) {
      if (!writable.destroyed && !writable.writableEnded) writable.end();
      return true;
    }
    if (n === 0) continue;
    if (writable.destroyed || writable.writableEnded) return false;
    const ok = writable.write(buf.slice(0, n));
    if (!ok) {
      await new Promise<void>((resolve) => {
        const finish = () => {
          writable.off("drain", finish);
          writable.off("close", finish);
          resolve();
        };
        writable.once("drain", finish);
        writable.once("close", finish);
      });
    }
  }
  return false;
}
