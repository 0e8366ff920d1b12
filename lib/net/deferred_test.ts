import assert from "node:assert/strict";
import https from "node:https";
import net, { type AddressInfo, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { Buffer } from "node:buffer";
import { deferredDuplex, dialTcp } from "./mod.ts";
import { selfSignedCertificate, startEchoServer, startFakeConnectProxy } from "./_testing.ts";

function once<T = unknown>(emitter: Duplex | net.Server, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (v: T) => resolve(v)));
}

function readAll(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    s.on("data", (d: Buffer) => text += d.toString());
    s.once("end", () => resolve(text));
    s.once("error", reject);
  });
}

function connect(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.setNoDelay(true);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** A server that greets, then echoes until the client ends. */
async function startGreeter() {
  const closed: Array<Promise<void>> = [];
  const sockets = new Set<Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    const { promise, resolve } = Promise.withResolvers<void>();
    closed.push(promise);
    s.on("close", () => {
      sockets.delete(s);
      resolve();
    });
    s.on("error", () => {});
    s.write("hello;");
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    closed,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

Deno.test("deferredDuplex() buffers writes until open() resolves, then pipes both ways", async () => {
  await using greeter = await startGreeter();
  const opened = Promise.withResolvers<Duplex>();
  const d = deferredDuplex(() => opened.promise);
  d.write("early;");
  d.end("late;");
  const all = readAll(d);
  const closed = once(d, "close");
  opened.resolve(await connect(greeter.port));
  assert.equal(await all, "hello;early;late;");
  await closed;
  await greeter.closed[0];
});

Deno.test("deferredDuplex() is destroyed with the error of open()", async () => {
  const boom = new Error("proxy said no");
  const d = deferredDuplex(() => Promise.reject(boom));
  assert.equal(await once(d, "error"), boom);
  assert.ok(d.destroyed);
  const sync = deferredDuplex(() => {
    throw boom;
  });
  assert.equal(await once(sync, "error"), boom);
});

Deno.test("deferredDuplex() destroys the stream open() yields after it was destroyed", async () => {
  await using greeter = await startGreeter();
  const opened = Promise.withResolvers<Duplex>();
  const d = deferredDuplex(() => opened.promise);
  d.destroy();
  const inner = await connect(greeter.port);
  const innerClosed = once(inner, "close");
  opened.resolve(inner);
  await innerClosed;
  await greeter.closed[0];
});

Deno.test("deferredDuplex() passes destroy and errors both ways", async () => {
  await using greeter = await startGreeter();
  // Destroying the deferred stream closes the real one.
  const a = deferredDuplex(() => connect(greeter.port));
  a.on("data", () => {});
  await new Promise((resolve) => a.once("data", resolve));
  a.destroy();
  await greeter.closed[0];
  // An error of the real stream destroys the deferred one with it.
  let inner: Duplex | undefined;
  const b = deferredDuplex(async () => inner = await connect(greeter.port));
  await new Promise((resolve) => b.once("data", resolve));
  const failed = once(b, "error");
  inner!.destroy(new Error("reset by peer"));
  assert.equal((await failed as Error).message, "reset by peer");
  await greeter.closed[1];
});

Deno.test("deferredDuplex() carries node:https requests through dialTcp and a CONNECT proxy", async () => {
  const cert = await selfSignedCertificate(["auth.example.test"]);
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    res.end(`hello ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await using proxy = await startFakeConnectProxy({
    route: () => ({ host: "127.0.0.1", port }),
  });
  const settings = { httpsProxy: proxy.url };
  const socketFor = (o: tls.ConnectionOptions) =>
    tls.connect({
      ...o,
      socket: deferredDuplex(() => dialTcp("auth.example.test", 443, { proxy: settings })),
    });
  const get = (o: https.RequestOptions) =>
    new Promise<string>((resolve, reject) => {
      const req = https.request({
        host: "auth.example.test",
        port: 443,
        path: "/ping",
        ca: cert.certPem,
        ...o,
      }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => text += d);
        res.on("end", () => resolve(`${res.statusCode} ${text}`));
      });
      req.on("error", reject);
      req.end();
    });
  try {
    // Per request (no `agent`: with one, node:https ignores createConnection).
    assert.equal(
      await get({
        createConnection: (o: tls.ConnectionOptions) => socketFor(o),
      } as https.RequestOptions),
      "200 hello /ping",
    );
    assert.equal(proxy.requests.length, 1);
    // On a keep-alive agent: three requests, one tunnel.
    class ProxyAgent extends https.Agent {
      override createConnection(o: tls.ConnectionOptions): Duplex {
        return socketFor(o);
      }
    }
    const agent = new ProxyAgent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) assert.equal(await get({ agent }), "200 hello /ping");
    } finally {
      agent.destroy();
    }
    assert.deepEqual(proxy.requests.map((r) => r.target), [
      "auth.example.test:443",
      "auth.example.test:443",
    ]);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

Deno.test("deferredDuplex() reports a failed dial as the TLS socket's error", async () => {
  await using echo = await startEchoServer();
  await using proxy = await startFakeConnectProxy({
    answer: () => "HTTP/1.1 403 Forbidden\r\n\r\n",
    route: () => ({ host: "127.0.0.1", port: echo.port }),
  });
  const socket = tls.connect({
    servername: "auth.example.test",
    socket: deferredDuplex(() =>
      dialTcp("auth.example.test", 443, { proxy: { httpsProxy: proxy.url } })
    ),
  });
  const err = await once<Error>(socket as unknown as Duplex, "error");
  assert.match(err.message, /the proxy answered HTTP 403 Forbidden to CONNECT/);
});
