// WebSockets through the HTTP adapter, against Deno's own WebSocket client (an independent
// RFC 6455 implementation) over real sockets on 127.0.0.1.
import assert from "node:assert/strict";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { testLogger } from "../log/mod.ts";
import { createFedHttpServer, type HttpHandler } from "./http_server.ts";
import { acceptKeyOf, encodeFrame, WebSocketConnection } from "./websocket.ts";

async function serve(handler: HttpHandler) {
  const { logger } = testLogger();
  const http = createFedHttpServer({ handler, logger });
  const listener = net.createServer((s) => http.handleConnection(s));
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
  const port = (listener.address() as AddressInfo).port;
  return {
    port,
    [Symbol.asyncDispose]: async () => {
      await new Promise<void>((r) => listener.close(() => r()));
      await http.close();
    },
  };
}

/** Echoes every message back, then closes with 4000 on "bye". */
const echo: HttpHandler = (_req, info) => {
  if (info.upgradeWebSocket === undefined) {
    return Promise.resolve(new Response("no", { status: 426 }));
  }
  const { socket, response } = info.upgradeWebSocket();
  (async () => {
    for await (const m of socket) {
      if (m === "bye") return socket.close(4000, "done");
      socket.send(m);
    }
  })();
  return Promise.resolve(response);
};

Deno.test("acceptKeyOf() computes RFC 6455's example accept value", () => {
  assert.equal(acceptKeyOf("dGhlIHNhbXBsZSBub25jZQ==", "13"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.throws(() => acceptKeyOf("short", "13"), /Sec-WebSocket-Key/);
  assert.throws(() => acceptKeyOf("dGhlIHNhbXBsZSBub25jZQ==", "8"), /Version must be 13/);
});

Deno.test("WebSocketConnection echoes text and binary to Deno's WebSocket client and closes cleanly", async () => {
  await using s = await serve(echo);
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/echo`);
  ws.binaryType = "arraybuffer";
  const got: Array<string | number[]> = [];
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  ws.onmessage = (e) => {
    got.push(typeof e.data === "string" ? e.data : [...new Uint8Array(e.data)]);
    if (got.length === 3) ws.send("bye");
  };
  await new Promise((resolve) => ws.onopen = resolve);
  ws.send("héllo");
  ws.send(new Uint8Array([1, 2, 3]));
  ws.send("x".repeat(70_000));
  const ev = await closed;
  assert.deepEqual(got.slice(0, 2), ["héllo", [1, 2, 3]]);
  assert.equal((got[2] as string).length, 70_000);
  assert.equal(ev.code, 4000);
  assert.equal(ev.reason, "done");
});

Deno.test("WebSocketConnection reassembles fragments and refuses unmasked client frames", async () => {
  await using s = await serve(echo);
  const sock = net.connect(s.port, "127.0.0.1");
  sock.setNoDelay(true);
  await new Promise((r) => sock.once("connect", r));
  sock.write(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  const client = new WebSocketConnection({ role: "client" });
  let head = new Uint8Array(0);
  await new Promise<void>((resolve) => {
    const onData = (d: Uint8Array) => {
      const merged = new Uint8Array(head.length + d.length);
      merged.set(head);
      merged.set(d, head.length);
      head = merged;
      const text = new TextDecoder().decode(head);
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      assert.match(text, /^HTTP\/1.1 101 /);
      assert.match(text, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
      sock.off("data", onData);
      client.attach(sock, head.subarray(end + 4));
      resolve();
    };
    sock.on("data", onData);
  });
  // "ab" + "cd" as a text frame and a continuation, masked by hand.
  const mask = new Uint8Array([1, 2, 3, 4]);
  const first = encodeFrame(1, new TextEncoder().encode("ab"), mask);
  first[0] = 0x01; // FIN off
  sock.write(first);
  sock.write(encodeFrame(0, new TextEncoder().encode("cd"), mask));
  assert.equal(await client.next(), "abcd");
  // An unmasked frame from a client is a protocol error (1002).
  sock.write(encodeFrame(1, new TextEncoder().encode("no mask")));
  assert.equal(await client.next(), undefined);
  assert.equal((await client.closed).code, 1002);
  sock.destroy();
});

Deno.test("createFedHttpServer() answers a WebSocket handshake the handler refuses with its status", async () => {
  await using s = await serve(() => Promise.resolve(Response.json({ no: 1 }, { status: 401 })));
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/x`);
  const ev = await new Promise<Event>((resolve) => {
    ws.onerror = resolve;
    ws.onclose = resolve;
  });
  assert.ok(ev.type === "error" || ev.type === "close");
});
