import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { connect as netConnect, createServer, type Socket } from "node:net";
import { Duplex as DuplexStream, Writable } from "node:stream";
import { setImmediate } from "node:timers";
import type { Duplex } from "node:stream";
import { generateSshKeyPair } from "../ca/mod.ts";
import { bytesEqual, serve, testCa } from "./_testing.ts";
import { connectSsh } from "./client.ts";
import { coalesceWrites } from "./coalesce.ts";
import { type SessionRequest, startSshServer } from "./server.ts";

/** A Writable that records each chunk its `write()` passed down. */
function recorder(): { stream: Writable; chunks: Uint8Array[] } {
  const chunks: Uint8Array[] = [];
  const stream = new Writable({
    write(chunk: Uint8Array, _enc, cb) {
      chunks.push(Uint8Array.from(chunk));
      cb();
    },
  });
  return { stream, chunks };
}

/** Counts the writes that reach `socket.write` below the coalescer installed later. */
function countWrites(socket: Socket): { count(): number } {
  let n = 0;
  const write = socket.write as (...args: unknown[]) => boolean;
  socket.write = function (this: Socket, ...args: unknown[]) {
    n++;
    return write.apply(this, args);
  } as typeof socket.write;
  return { count: () => n };
}

Deno.test("coalesceWrites() writes the chunks of one turn as one chunk, in order", async () => {
  const { stream, chunks } = recorder();
  coalesceWrites(stream as unknown as Duplex);
  stream.write(Buffer.from("len:"));
  stream.write(Buffer.from("payload:"));
  stream.write(Buffer.from("mac"));
  await Promise.resolve(); // microtasks of the same turn still gather
  assert.equal(chunks.length, 0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(chunks.length, 1);
  assert.equal(new TextDecoder().decode(chunks[0]), "len:payload:mac");
  stream.write(Buffer.from("next"));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(chunks.length, 2);
  assert.equal(new TextDecoder().decode(chunks[1]), "next");
});

Deno.test("coalesceWrites() flushes pending chunks before a string write, end() and destroy()", async () => {
  const { stream, chunks } = recorder();
  coalesceWrites(stream as unknown as Duplex);
  stream.write(Buffer.from("a"));
  stream.write("b");
  stream.write(Buffer.from("c"));
  const finished = new Promise((resolve) => stream.once("finish", resolve));
  stream.end(Buffer.from("d"));
  await finished;
  assert.deepEqual(chunks.map((c) => new TextDecoder().decode(c)), ["a", "b", "c", "d"]);

  const other = recorder();
  coalesceWrites(other.stream as unknown as Duplex);
  other.stream.write(Buffer.from("before destroy"));
  other.stream.destroy();
  assert.deepEqual(other.chunks.map((c) => new TextDecoder().decode(c)), ["before destroy"]);
});

Deno.test("coalesceWrites() writes at once when a turn gathers 64 KiB or more", () => {
  const { stream, chunks } = recorder();
  coalesceWrites(stream as unknown as Duplex);
  coalesceWrites(stream as unknown as Duplex); // a second call changes nothing
  for (let i = 0; i < 5; i++) stream.write(new Uint8Array(16 * 1024).fill(i));
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0]!.length, 64 * 1024);
  stream.destroy();
  assert.equal(chunks.length, 2);
  assert.equal(chunks[1]!.length, 16 * 1024);
  assert.ok(chunks[1]!.every((b) => b === 4));
});

/** A Duplex whose written chunks are recorded and whose readable side the test pushes. */
function loop(): { stream: Duplex; chunks: string[]; written: Promise<void> } {
  const chunks: string[] = [];
  const written = Promise.withResolvers<void>();
  const stream = new DuplexStream({
    read() {},
    write(chunk: Uint8Array, _enc, cb) {
      chunks.push(new TextDecoder().decode(chunk));
      written.resolve();
      cb();
    },
  });
  return { stream, chunks, written: written.promise };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

Deno.test("coalesceWrites() holds the first writes until the first read, then adds the answer", async () => {
  const { stream, chunks } = loop();
  coalesceWrites(stream, { holdUntilFirstRead: true, firstReadWaitMs: 60_000 });
  stream.on("data", (d: Uint8Array) => {
    stream.write(Buffer.from(`kexinit(${new TextDecoder().decode(d)})`));
  });
  stream.write(Buffer.from("ident:"));
  await turn();
  await turn();
  assert.deepEqual(chunks, []); // still held after the turns end
  stream.push(Buffer.from("client"));
  await turn();
  await turn();
  assert.deepEqual(chunks, ["ident:kexinit(client)"]);
  // After the first read, turns flush as usual.
  stream.write(Buffer.from("a"));
  stream.write(Buffer.from("b"));
  await turn();
  assert.deepEqual(chunks, ["ident:kexinit(client)", "ab"]);
  stream.destroy();
});

Deno.test("coalesceWrites() releases held writes when the peer waits, and on end() and destroy()", async () => {
  const waiting = loop();
  coalesceWrites(waiting.stream, { holdUntilFirstRead: true, firstReadWaitMs: 1 });
  waiting.stream.write(Buffer.from("ident"));
  await waiting.written; // the peer that reads first still hears us
  assert.deepEqual(waiting.chunks, ["ident"]);
  waiting.stream.destroy();

  const ended = loop();
  coalesceWrites(ended.stream, { holdUntilFirstRead: true, firstReadWaitMs: 60_000 });
  ended.stream.write(Buffer.from("a"));
  ended.stream.end(Buffer.from("b"));
  assert.deepEqual(ended.chunks, ["a", "b"]);
  ended.stream.destroy();

  const destroyed = loop();
  coalesceWrites(destroyed.stream, { holdUntilFirstRead: true, firstReadWaitMs: 60_000 });
  destroyed.stream.write(Buffer.from("disconnect"));
  destroyed.stream.destroy();
  assert.deepEqual(destroyed.chunks, ["disconnect"]);
});

Deno.test("SshServer answers the client's identification with its own and its KEXINIT in one write", async () => {
  const ca = await testCa();
  const host = await generateSshKeyPair("ed25519");
  await using server = await startSshServer<unknown>({
    hostKey: host,
    hostCertificate: (await ca.host(["127.0.0.1"], { key: host })).cert,
    authenticate: () => ({ ok: false, reason: "no logins in this test" }),
    handlers: {},
  });
  const firstWrite = Promise.withResolvers<Uint8Array>();
  const tcp = createServer((s) => {
    const write = s.write as (...args: unknown[]) => boolean;
    s.write = function (this: Socket, ...args: unknown[]) {
      firstWrite.resolve(Uint8Array.from(args[0] as Uint8Array));
      return write.apply(this, args);
    } as typeof s.write;
    server.handleSocket(s);
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  const client = netConnect({ host: "127.0.0.1", port: (tcp.address() as { port: number }).port });
  client.setNoDelay(true);
  try {
    await new Promise((r) => client.once("connect", r));
    client.write("SSH-2.0-test\r\n");
    const first = await firstWrite.promise;
    const ident = "SSH-2.0-Teleport\r\n";
    assert.equal(new TextDecoder().decode(first.subarray(0, ident.length)), ident);
    // The KEXINIT packet follows in the same write: uint32 length, padding length, msg 20.
    const packet = first.subarray(ident.length);
    assert.ok(packet.length > 6, `only ${packet.length} bytes after the identification`);
    assert.equal(new DataView(packet.buffer, packet.byteOffset).getUint32(0) + 4, packet.length);
    assert.equal(packet[5], 20);
  } finally {
    client.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
  }
});

/** A server whose exec "echo" sends stdin back and "sink" counts it. */
async function echoServer() {
  const ca = await testCa();
  const host = await generateSshKeyPair("ed25519");
  const alice = await ca.user(["alice"]);
  const server = await serve<{ login: string }>({
    hostKey: host,
    hostCertificate: (await ca.host(["127.0.0.1"], { key: host })).cert,
    authenticate: () => ({ ok: true, context: { login: "alice" } }),
    handlers: {
      session: (open) =>
        open.accept((req: SessionRequest) => {
          if (req.type !== "exec" || req.command !== "echo") return req.reject();
          const ch = req.accept();
          ch.pipe(ch, { end: false });
          ch.on("end", () => {
            ch.exit(0);
            ch.end();
          });
        }),
    },
  });
  const dial = async () => {
    const socket = netConnect({ host: "127.0.0.1", port: server.addr.port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return socket;
  };
  const connect = (socket: Socket) =>
    connectSsh({
      socket,
      username: "alice",
      key: alice.key,
      certificate: alice.cert,
      verifyHostKey: ({ keyBlob }) => bytesEqual(keyBlob, host.publicKeyBlob),
    });
  return { server, dial, connect };
}

Deno.test("connectSsh() sends one SSH packet as one socket write (chacha20-poly1305)", async () => {
  const { server, dial, connect } = await echoServer();
  await using _server = server;
  const socket = await dial();
  const writes = countWrites(socket); // installed below the coalescer connectSsh adds
  await using client = await connect(socket);
  assert.ok(writes.count() > 0);
  // Each keepalive is one packet (a global request); its reply proves it left. Without
  // coalescing, chacha20-poly1305 writes length, payload and MAC separately (3 writes).
  for (let i = 0; i < 3; i++) {
    const before = writes.count();
    await client.ping(5_000);
    assert.equal(writes.count() - before, 1);
  }
});

Deno.test("coalesced writes lose and reorder nothing: 32 MiB both ways through exec", async () => {
  const { server, dial, connect } = await echoServer();
  await using _server = server;
  await using client = await connect(await dial());
  const size = 32 * 1024 * 1024;
  const data = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(data.subarray(off, off + 65536));
  }
  const r = await client.exec("echo", { stdin: data });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.length, size);
  const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  assert.equal(digest(r.stdout), digest(data));
});
