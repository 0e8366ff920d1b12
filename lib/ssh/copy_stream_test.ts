import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { Duplex } from "node:stream";
import { copyingStream } from "./copy_stream.ts";

/** A Duplex whose readable side the test feeds with `push()` and whose writes it records. */
function innerStream(): { inner: Duplex; written: Uint8Array[] } {
  const written: Uint8Array[] = [];
  const inner = new Duplex({
    read() {},
    write(chunk: Uint8Array, _encoding, callback) {
      written.push(chunk);
      callback();
    },
  });
  return { inner, written };
}

/** Lets pending microtasks, ticks and I/O callbacks run (no wall-clock wait). */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

Deno.test("copyingStream() hands reads on from a microtask, as copies", async () => {
  const { inner } = innerStream();
  const outer = copyingStream(inner);
  const got: Uint8Array[] = [];
  outer.on("data", (d: Uint8Array) => got.push(d));
  const chunk = Buffer.from("abc");
  inner.emit("data", chunk);
  assert.equal(got.length, 0, "delivered inside the inner stream's 'data' event");
  chunk.fill(0); // the source reuses its buffer
  while (got.length === 0) await turn();
  assert.equal(Buffer.concat(got).toString(), "abc");
});

Deno.test("copyingStream() hands writes on from a microtask, as copies", async () => {
  const { inner, written } = innerStream();
  const outer = copyingStream(inner);
  const chunk = Buffer.from("xyz");
  const done = new Promise<void>((resolve, reject) =>
    outer.write(chunk, (err) => err ? reject(err) : resolve())
  );
  assert.equal(written.length, 0, "written to the inner stream synchronously");
  chunk.fill(0);
  await done;
  assert.equal(Buffer.concat(written).toString(), "xyz");
  const finished = once(inner, "finish");
  outer.end();
  await finished;
});

Deno.test("copyingStream() pauses the inner stream while its reader falls behind", async () => {
  const { inner } = innerStream();
  const outer = copyingStream(inner);
  const chunk = new Uint8Array(64 * 1024);
  const total = 4 * 1024 * 1024;
  // Nobody reads the wrapper. Data arrives a chunk per event-loop turn, as from a socket: the
  // wrapper buffers about its high-water mark (256 KiB), then pauses `inner`, which keeps the
  // rest (an ssh2 channel would stop opening its window).
  for (let i = 0; i < total / chunk.length; i++) {
    inner.push(Uint8Array.from(chunk.fill(i % 256)));
    await turn();
  }
  inner.push(null);
  assert.ok(inner.isPaused(), "the inner stream was not paused");
  assert.ok(outer.readableLength <= 320 * 1024, `buffered ${outer.readableLength} bytes`);
  assert.ok(inner.readableLength > 0);

  const parts: Uint8Array[] = [];
  outer.on("data", (d: Uint8Array) => parts.push(d));
  await once(outer, "end");
  const all = Buffer.concat(parts);
  assert.equal(all.length, total);
  for (let i = 0; i < total / chunk.length; i++) {
    assert.equal(all[i * chunk.length], i % 256, `chunk ${i} out of order`);
  }
});

Deno.test("copyingStream() destroys the wrapper when the inner stream fails or closes", async () => {
  const a = innerStream();
  const outerA = copyingStream(a.inner);
  const failed = once(outerA, "error");
  a.inner.destroy(new Error("boom"));
  const [err] = await failed;
  assert.equal((err as Error).message, "boom");

  const b = innerStream();
  const outerB = copyingStream(b.inner);
  outerB.on("error", () => {});
  const closed = once(outerB, "close");
  b.inner.destroy();
  await closed;
  assert.ok(outerB.destroyed);

  const c = innerStream();
  const outerC = copyingStream(c.inner);
  const innerClosed = once(c.inner, "close");
  outerC.destroy();
  await innerClosed;
});
