/**
 * The shared request core over real TLS sockets (listenHttps: keep-alive, limits, read and write
 * backpressure, the closing signal) and the same handlers called with `new Request(…)`.
 */
import assert from "node:assert/strict";
import type { TLSSocket } from "node:tls";
import { testLogger } from "../log/mod.ts";
import { selfSignedCertificate } from "./_testing.ts";
import { ConnectionGuard } from "./guard.ts";
import { type ConnInfo, type HttpHandler, type HttpsListener, listenHttps } from "./http_server.ts";

const MiB = 1024 * 1024;
const enc = new TextEncoder();
const dec = new TextDecoder();

interface TestServer extends AsyncDisposable {
  listener: HttpsListener;
  certPem: string;
  /** The server side of the most recent TLS connection. */
  lastTls(): TLSSocket;
}

async function startServer(
  handler: HttpHandler,
  o: { bodyLimit?: number; requestTimeoutMs?: number; stallTimeoutMs?: number } = {},
): Promise<TestServer> {
  const { certPem, keyPem } = await selfSignedCertificate(["127.0.0.1"], { leaf: true });
  const { logger } = testLogger();
  const listener = await listenHttps({
    name: "test",
    logger,
    host: "127.0.0.1",
    port: 0,
    tls: { cert: certPem, key: keyPem },
    guard: new ConnectionGuard({ logger }),
    handler,
    ...(o.bodyLimit === undefined && o.stallTimeoutMs === undefined ? {} : {
      bodyLimit: () => ({
        maxBytes: o.bodyLimit ?? Infinity,
        ...(o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: o.stallTimeoutMs }),
      }),
    }),
    ...(o.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: o.requestTimeoutMs }),
    lingerBytes: 0,
  });
  let tls: TLSSocket | undefined;
  listener.server.on("secureConnection", (s: TLSSocket) => tls = s);
  return {
    listener,
    certPem,
    lastTls: () => tls!,
    [Symbol.asyncDispose]: () => listener.close(),
  };
}

/** A TLS client connection reading HTTP/1.1 answers. */
class Client {
  #buf = new Uint8Array(0);
  #eof = false;
  private constructor(readonly conn: Deno.TlsConn) {}

  static async connect(server: TestServer): Promise<Client> {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: server.listener.port });
    tcp.setNoDelay(true);
    return new Client(
      await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [server.certPem] }),
    );
  }

  async send(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? enc.encode(text) : text;
    for (let off = 0; off < bytes.length;) off += await this.conn.write(bytes.subarray(off));
  }

  /** Reads more bytes; false at EOF (or a reset). */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk).catch(() => null);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  async #take(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!await this.#fill()) throw new Error("connection closed");
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  async #line(): Promise<string> {
    for (;;) {
      const i = this.#buf.findIndex((b, j) => b === 13 && this.#buf[j + 1] === 10);
      if (i >= 0) return dec.decode(await this.#take(i + 2)).slice(0, -2);
      if (!await this.#fill()) throw new Error("connection closed");
    }
  }

  /** The status line and headers (lower-case names) of the next answer. */
  async head(): Promise<{ status: number; headers: Map<string, string> }> {
    const status = Number((await this.#line()).split(" ")[1]);
    const headers = new Map<string, string>();
    for (let line = await this.#line(); line !== ""; line = await this.#line()) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    return { status, headers };
  }

  /** The next chunk of a chunked body; undefined at its end. */
  async chunk(): Promise<Uint8Array | undefined> {
    const size = parseInt(await this.#line(), 16);
    const data = await this.#take(size);
    await this.#take(2);
    return size === 0 ? undefined : data;
  }

  /** A whole answer. */
  async answer(): Promise<{ status: number; headers: Map<string, string>; body: string }> {
    const { status, headers } = await this.head();
    let body = "";
    if (headers.get("transfer-encoding") === "chunked") {
      for (let c = await this.chunk(); c !== undefined; c = await this.chunk()) {
        body += dec.decode(c);
      }
    } else {
      body = dec.decode(await this.#take(Number(headers.get("content-length") ?? 0)));
    }
    return { status, headers, body };
  }

  /** True when the server closed the connection (after what was read). */
  async closed(): Promise<boolean> {
    while (await this.#fill());
    return this.#buf.length === 0;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** Echoes the method, path, client address and body; `/close` asks to close the connection. */
const echo: HttpHandler = async (req: Request, info: ConnInfo) => {
  const body = req.body === null ? "" : await req.text();
  const path = new URL(req.url).pathname;
  return new Response(`${req.method} ${path} ${info.remoteAddr} ${body}`, {
    headers: path === "/close" ? { connection: "close" } : {},
  });
};

Deno.test("echo handler answers `new Request(…)` without sockets", async () => {
  const res = await echo(
    new Request("https://x.invalid/a", { method: "POST", body: "hi" }),
    { remoteAddr: "192.0.2.1" },
  );
  assert.equal(await res.text(), "POST /a 192.0.2.1 hi");
});

Deno.test("listenHttps() serves several requests on one connection until the handler says close", async () => {
  await using server = await startServer(echo);
  const client = await Client.connect(server);
  try {
    await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    const a = await client.answer();
    assert.equal(a.status, 200);
    assert.equal(a.body, "GET /a 127.0.0.1 ");
    assert.notEqual(a.headers.get("connection"), "close");
    await client.send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert.equal((await client.answer()).body, "POST /b 127.0.0.1 hello");
    await client.send("GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
    const last = await client.answer();
    assert.equal(last.body, "GET /close 127.0.0.1 ");
    assert.equal(last.headers.get("connection"), "close");
    assert.ok(await client.closed());
  } finally {
    client.close();
  }
});

Deno.test("listenHttps() refuses a body over its limit by Content-Length before reading it", async () => {
  await using server = await startServer(echo, { bodyLimit: 1024 });
  const client = await Client.connect(server);
  try {
    // "100 Continue" is never sent: the client would send the body only after it.
    await client.send(
      `POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${MiB}\r\nExpect: 100-continue\r\n\r\n`,
    );
    const refused = await client.answer();
    assert.equal(refused.status, 413);
    assert.equal(refused.headers.get("connection"), "close");
    assert.deepEqual(JSON.parse(refused.body).error, {
      kind: "LimitExceeded",
      message: "request body is larger than 1024 bytes",
    });
    assert.ok(await client.closed());
  } finally {
    client.close();
  }
});

Deno.test("listenHttps() cuts a chunked body at its limit and keeps bodies within it alive", async () => {
  await using server = await startServer(echo, { bodyLimit: 1024 });
  const client = await Client.connect(server);
  try {
    await client.send("PUT /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    await client.send("3\r\nabc\r\n0\r\n\r\n");
    assert.equal((await client.answer()).body, "PUT /ok 127.0.0.1 abc");
    await client.send("PUT /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    const chunk = "x".repeat(600);
    for (let i = 0; i < 4; i++) await client.send(`${(600).toString(16)}\r\n${chunk}\r\n`);
    const refused = await client.answer();
    assert.equal(refused.status, 413);
    assert.equal(refused.headers.get("connection"), "close");
    assert.ok(await client.closed());
  } finally {
    client.close();
  }
});

Deno.test("listenHttps() lets a body with a stall timeout outlast the request timeout while it keeps coming", async () => {
  /** Sends a chunked body of 30 chunks, 80 ms apart (2.4 s); the answer, or undefined. */
  const upload = async (server: TestServer) => {
    const client = await Client.connect(server);
    try {
      await client.send("PUT /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (let i = 0; i < 30; i++) {
        await client.send("1\r\nx\r\n").catch(() => {});
        await new Promise((r) => setTimeout(r, 80));
      }
      await client.send("0\r\n\r\n").catch(() => {});
      return await client.answer().catch(() => undefined);
    } finally {
      client.close();
    }
  };
  {
    // The whole request is bounded by the request timeout (1 s) without one.
    await using server = await startServer(echo, { requestTimeoutMs: 1000 });
    assert.equal(await upload(server), undefined);
  }
  await using server = await startServer(echo, { requestTimeoutMs: 1000, stallTimeoutMs: 1000 });
  const answer = await upload(server);
  assert.equal(answer?.body, `PUT /rec 127.0.0.1 ${"x".repeat(30)}`);
});

Deno.test("listenHttps() reads a request body only as fast as the handler consumes it", async () => {
  const size = 32 * MiB;
  let maxAhead = 0;
  let consumed = 0;
  let tls: () => TLSSocket = () => undefined!;
  await using server = await startServer(async (req) => {
    const socket = tls();
    for await (const chunk of req.body!) {
      consumed += chunk.byteLength;
      maxAhead = Math.max(maxAhead, socket.bytesRead - consumed);
      // A slow consumer: one chunk per turn of the event loop.
      await new Promise((r) => setTimeout(r, 0));
    }
    return new Response(String(consumed));
  });
  tls = server.lastTls;
  const client = await Client.connect(server);
  try {
    await client.send(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
    const block = new Uint8Array(MiB);
    for (let i = 0; i < size / MiB; i++) await client.send(block);
    const answer = await client.answer();
    assert.equal(answer.body, String(size));
    // Without backpressure the server reads the body at wire speed, tens of MiB ahead.
    assert.ok(maxAhead < 4 * MiB, `the server read ${maxAhead} bytes ahead of the handler`);
  } finally {
    client.close();
  }
});

Deno.test("listenHttps() writes a streamed answer with backpressure and cancels it when the client goes away", async () => {
  let produced = 0;
  let clientRead = 0;
  let maxAhead = 0;
  const cancelled = Promise.withResolvers<void>();
  await using server = await startServer(() =>
    Promise.resolve(
      new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            c.enqueue(new Uint8Array(64 * 1024));
            produced += 64 * 1024;
            maxAhead = Math.max(maxAhead, produced - clientRead);
          },
          cancel() {
            cancelled.resolve();
          },
        }),
      ),
    )
  );
  const client = await Client.connect(server);
  await client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  const { status, headers } = await client.head();
  assert.equal(status, 200);
  assert.equal(headers.get("transfer-encoding"), "chunked");
  while (clientRead < 16 * MiB) {
    clientRead += (await client.chunk())!.byteLength;
    // A slow reader: one chunk per three turns of the event loop.
    for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 0));
  }
  client.close();
  await cancelled.promise;
  // Without backpressure the body is produced as fast as it can be; with it, at most what the
  // client read plus the socket buffers.
  assert.ok(maxAhead < 12 * MiB, `produced ${maxAhead} bytes ahead of the client`);
});

Deno.test("listenHttps() ends a long-lived streamed answer through ConnInfo.closing on a graceful close", async () => {
  const started = Promise.withResolvers<void>();
  await using server = await startServer((_req, info) => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode("event 1\n"));
        started.resolve();
        info.closing!.addEventListener("abort", () => {
          c.enqueue(enc.encode("bye\n"));
          c.close();
        }, { once: true });
      },
    });
    return Promise.resolve(new Response(body));
  });
  const client = await Client.connect(server);
  try {
    await client.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
    await started.promise;
    const { status } = await client.head();
    assert.equal(status, 200);
    assert.equal(dec.decode(await client.chunk()), "event 1\n");
    assert.equal(server.listener.inFlight, 1);
    // A grace far longer than the test: the answer ends because the handler ends it.
    const closing = server.listener.close({ graceMs: 600_000 });
    assert.equal(dec.decode(await client.chunk()), "bye\n");
    assert.equal(await client.chunk(), undefined, "the chunked body ended cleanly");
    await closing;
    assert.ok(server.listener.closing.aborted);
    assert.ok(await client.closed());
  } finally {
    client.close();
  }
});
