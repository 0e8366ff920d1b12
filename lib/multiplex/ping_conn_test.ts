import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import net, { type Socket } from "node:net";
import { once } from "node:events";
import type { Duplex } from "node:stream";
import { encodePingFrame, MAX_PING_FRAME_READ, pingConn, PingFrameReader } from "./ping_conn.ts";
import {
  encodeWebsocketFrame,
  websocketAccept,
  websocketConn,
  WebsocketFrameReader,
} from "./websocket.ts";
import { deadline } from "./_testing.ts";

/** Two ends of a real loopback TCP connection. */
async function socketPair(): Promise<[Socket, Socket] & AsyncDisposable> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, "connection");
  const a = net.connect(port, "127.0.0.1");
  a.setNoDelay(true);
  const [b] = await accepted as [Socket];
  b.setNoDelay(true);
  server.close();
  const pair = [a, b] as [Socket, Socket] & AsyncDisposable;
  pair[Symbol.asyncDispose] = async () => {
    a.destroy();
    b.destroy();
    await once(server, "close").catch(() => {});
  };
  return pair;
}

/** Reads `n` bytes from a stream. */
function readBytes(stream: Duplex, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        stream.off("data", onData);
        stream.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on("data", onData);
    stream.once("error", reject);
  });
}

Deno.test("PingFrameReader.push() drops pings and joins frames split across chunks", () => {
  const r = new PingFrameReader();
  const wire = Buffer.concat([
    encodePingFrame(new Uint8Array(0)),
    encodePingFrame(Buffer.from("hello")),
    encodePingFrame(new Uint8Array(0)),
    encodePingFrame(Buffer.from("world!")),
  ]);
  const out: string[] = [];
  for (const byte of wire) out.push(...r.push(Uint8Array.of(byte)).map((b) => b.toString()));
  assert.deepEqual(out, ["hello", "world!"]);
  assert.equal(r.buffered, 0);
});

Deno.test("PingFrameReader.push() throws when a frame is larger than allowed", () => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(MAX_PING_FRAME_READ + 1);
  assert.throws(() => new PingFrameReader().push(head), /larger than the 1048576 allowed/);
});

Deno.test("pingConn() carries bytes both ways and its pings never reach the reader", async () => {
  await using pair = await socketPair();
  const [a, b] = pair;
  const pinger = pingConn(a, { pingIntervalMs: 1 });
  const answerer = pingConn(b);
  // Pings flow while a big write (split into several frames) crosses.
  const big = Buffer.alloc(200_000, 7);
  const got = readBytes(answerer, big.length + 3);
  pinger.write(big);
  pinger.write("end");
  const data = await deadline(got, 10_000, "the framed transfer");
  assert.deepEqual(data, Buffer.concat([big, Buffer.from("end")]));
  const back = readBytes(pinger, 2);
  answerer.write("ok");
  assert.equal((await deadline(back, 10_000, "the answer")).toString(), "ok");
  pinger.destroy();
  await once(answerer, "close");
});

Deno.test("pingConn() fails the stream when the peer sends an oversized frame", async () => {
  await using pair = await socketPair();
  const [a, b] = pair;
  const framed = pingConn(b);
  const failed = once(framed, "error");
  framed.resume();
  const head = Buffer.alloc(4);
  head.writeUInt32BE(0xffffffff);
  a.write(head);
  const [err] = await deadline(failed, 10_000, "the error");
  assert.match(String((err as Error).message), /larger than/);
});

Deno.test("websocketAccept() matches the example of RFC 6455", () => {
  assert.equal(websocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("WebsocketFrameReader.push() unmasks client frames and refuses unmasked ones", () => {
  const mask = Uint8Array.of(1, 2, 3, 4);
  const server = new WebsocketFrameReader("server");
  const long = Buffer.alloc(70_000, 9);
  const frames = server.push(
    Buffer.concat([
      encodeWebsocketFrame(2, Buffer.from("abc"), mask),
      encodeWebsocketFrame(2, long, mask),
      encodeWebsocketFrame(9, Buffer.from("p"), mask),
    ]),
  );
  assert.deepEqual(frames.map((f) => [f.opcode, f.payload.length]), [[2, 3], [2, 70_000], [9, 1]]);
  assert.equal(frames[0]!.payload.toString(), "abc");
  assert.deepEqual(frames[1]!.payload, long);
  assert.throws(
    () => new WebsocketFrameReader("server").push(encodeWebsocketFrame(2, Buffer.from("x"))),
    /client frame is not masked/,
  );
  assert.throws(
    () => new WebsocketFrameReader("client").push(encodeWebsocketFrame(2, Buffer.from("x"), mask)),
    /server frame is masked/,
  );
  // A control frame may not be longer than 125 bytes.
  assert.throws(
    () => new WebsocketFrameReader("client").push(encodeWebsocketFrame(9, Buffer.alloc(126))),
    /control frame/,
  );
});

Deno.test("websocketConn() carries bytes both ways and answers pings with pongs", async () => {
  await using pair = await socketPair();
  const [a, b] = pair;
  const client = websocketConn(a, { role: "client" });
  const server = websocketConn(b, { role: "server", pingIntervalMs: 1 });
  // Pongs come back for the server's pings: watch the wire under the server.
  const pong = new Promise<void>((resolve) => {
    const reader = new WebsocketFrameReader("server");
    const onData = (c: Buffer) => {
      if (reader.push(c).some((f) => f.opcode === 0xa)) {
        b.off("data", onData);
        resolve();
      }
    };
    b.on("data", onData);
  });
  await deadline(pong, 10_000, "a pong");
  const big = Buffer.alloc(150_000, 3);
  const got = readBytes(server, big.length);
  client.write(big);
  assert.deepEqual(await deadline(got, 10_000, "the client's bytes"), big);
  const back = readBytes(client, 5);
  server.write("hello");
  assert.equal((await deadline(back, 10_000, "the server's bytes")).toString(), "hello");
  const ended = once(server, "end");
  server.resume();
  client.end();
  await deadline(ended, 10_000, "the end of the server's stream");
});

Deno.test("websocketConn() refuses a text frame with close 1003", async () => {
  await using pair = await socketPair();
  const [a, b] = pair;
  const server = websocketConn(b, { role: "server" });
  const failed = once(server, "error");
  server.resume();
  const closeFrame = readBytes(a, 4);
  a.write(encodeWebsocketFrame(1, Buffer.from("hi"), Uint8Array.of(9, 9, 9, 9)));
  const [err] = await deadline(failed, 10_000, "the error");
  assert.match(String((err as Error).message), /text frame/);
  const frame = await deadline(closeFrame, 10_000, "the close frame");
  assert.equal(frame[0], 0x88);
  assert.equal(frame.readUInt16BE(2), 1003);
});
