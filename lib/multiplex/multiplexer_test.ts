import assert from "node:assert/strict";
import http from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import tls, { type TLSSocket } from "node:tls";
import { Buffer } from "node:buffer";
import { BadParameterError } from "../errors/mod.ts";
import { ConnectionGuard, formatProxyHeaderV1, formatProxyHeaderV2 } from "../net/mod.ts";
import { authAlpn } from "./alpn.ts";
import type { ClientHello } from "./client_hello.ts";
import {
  type ConnectionSource,
  type Multiplexer,
  type MultiplexerHandlers,
  type MultiplexerOptions,
  startMultiplexer,
} from "./multiplexer.ts";
import {
  deadline,
  type LoggedRecord,
  readToEnd,
  run,
  tempDir,
  testLogger,
  type TestPki,
  testPki,
} from "./_testing.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A web handler the way lib/web will do it: node:http fed with terminated TLS sockets. */
function webHandler(): (socket: TLSSocket | Socket, source: ConnectionSource) => void {
  const server = http.createServer((req, res) => {
    const socket = req.socket as TLSSocket;
    res.setHeader("connection", "close");
    const src = sources.get(req.socket);
    res.setHeader("x-client", `${src?.remoteAddr} ${src?.remotePort} ${src?.proxied}`);
    res.end(
      `web ok alpn=${socket.alpnProtocol || "none"} sni=${
        (socket as { servername?: string | false }).servername || "none"
      }\n`,
    );
  });
  return (socket, source) => {
    sources.set(socket, source);
    server.emit("connection", socket);
    // Plain sockets arrive paused with their first bytes put back (lib/web does the same).
    if (socket.isPaused()) socket.resume();
  };
}

/** What the web handler was told about each connection. */
const sources = new WeakMap<object, ConnectionSource>();

interface Setup extends AsyncDisposable {
  mux: Multiplexer;
  port: number;
  pki: TestPki;
  records: LoggedRecord[];
}

async function setup(
  handlers: Partial<MultiplexerHandlers> = {},
  extra: Partial<MultiplexerOptions> = {},
): Promise<Setup> {
  const pki = await testPki();
  const { logger, records } = testLogger();
  const mux = await startMultiplexer({
    listen: { host: "127.0.0.1", port: 0 },
    logger,
    tls: { keyPairs: [pki.proxy, pki.wildcard] },
    handlers: { web: webHandler(), ...handlers },
    ...extra,
  });
  return { mux, port: mux.addr.port, pki, records, [Symbol.asyncDispose]: () => mux.close() };
}

async function dial(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return conn;
}

/** Resolves with the debug records that mention `text`, once there is one. */
function logged(records: LoggedRecord[], text: string): boolean {
  return records.some((r) =>
    r.message.includes(text) ||
    Object.values(r.properties ?? {}).some((v) => String(v).includes(text))
  );
}

async function sClient(port: number, args: string[]): Promise<string> {
  const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, ...args]);
  return r.stdout + r.stderr;
}

Deno.test("startMultiplexer() serves the web handler to curl over TLS", async () => {
  await using s = await setup();
  await using dir = await tempDir();
  const ca = `${dir.path}/ca.pem`;
  await Deno.writeTextFile(ca, s.pki.proxyCaPem);
  // Verified against the CA, by name: the default key pair is served.
  const r = await run("curl", ["-sS", "--cacert", ca, `https://localhost:${s.port}/`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "web ok alpn=http/1.1 sni=localhost\n");
  // -k, by IP address (no SNI), HTTP/1.1 forced: still the web handler.
  const k = await run("curl", ["-sSk", "--http1.1", `https://127.0.0.1:${s.port}/x`]);
  assert.equal(k.code, 0, k.stderr);
  assert.equal(k.stdout, "web ok alpn=http/1.1 sni=none\n");
});

Deno.test("startMultiplexer() gives the web handler clients offering only h2 or no ALPN", async () => {
  await using s = await setup();
  for (const alpn of [undefined, ["h2"]]) {
    const conn = await dial(s.port);
    const t = await Deno.startTls(conn, {
      hostname: "localhost",
      caCerts: [s.pki.proxyCaPem],
      ...(alpn === undefined ? {} : { alpnProtocols: alpn }),
    });
    const hs = await t.handshake();
    assert.equal(hs.alpnProtocol, null);
    await t.write(enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const text = dec.decode(await readToEnd(t));
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.match(text, /web ok alpn=none sni=localhost/);
  }
});

Deno.test("startMultiplexer() reads a ClientHello that spans several records and reads", async () => {
  await using s = await setup();
  const names = Array.from({ length: 80 }, (_, i) => `p${i}`.padEnd(240, "x"));
  const alpn = [...names, "http/1.1"].join(",");
  const out = await sClient(s.port, ["-alpn", alpn, "-servername", "big.example.test"]);
  assert.match(out, /ALPN protocol: http\/1\.1/);
  assert.match(out, /subject=CN ?= ?wildcard/);
});

Deno.test("startMultiplexer() terminates TLS for teleport-proxy-ssh (openssl s_client)", async () => {
  const seen: Duplex[] = [];
  await using s = await setup({
    proxySsh: (socket) => {
      seen.push(socket);
      socket.on("error", () => {});
      socket.end("SSH-2.0-test\r\n");
    },
  });
  const out = await sClient(s.port, ["-alpn", "teleport-proxy-ssh", "-ign_eof"]);
  assert.match(out, /ALPN protocol: teleport-proxy-ssh/);
  assert.match(out, /SSH-2\.0-test\r?\n/);
  assert.equal(seen.length, 1);
  assert.equal((seen[0] as TLSSocket).alpnProtocol, "teleport-proxy-ssh");
});

Deno.test("startMultiplexer() hands plain SSH to the ssh handler with its bytes intact", async () => {
  const got = Promise.withResolvers<Buffer>();
  await using s = await setup({
    ssh: (socket: Socket) => {
      const chunks: Buffer[] = [];
      socket.on("error", () => {});
      socket.on("data", (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        if (all.length >= 15) {
          got.resolve(all);
          socket.end("bye\n");
        }
      });
      socket.resume();
    },
  });
  const conn = await dial(s.port);
  await conn.write(enc.encode("SS")); // not enough to decide: the multiplexer waits
  await conn.write(enc.encode("H-2.0-x\r\nrest"));
  const bytes = await deadline(got.promise, 10_000, "ssh handler");
  assert.equal(bytes.toString("latin1"), "SSH-2.0-x\r\nrest");
  assert.equal(dec.decode(await readToEnd(conn)), "bye\n");
});

Deno.test("startMultiplexer() passes auth TLS through untouched", async () => {
  const pki = await testPki();
  const c1 = authAlpn("c1");
  // The auth server stands apart, with a certificate from another CA.
  const upstream = tls.createServer({
    cert: pki.auth.certPem,
    key: pki.auth.keyPem,
    ALPNProtocols: [c1],
  }, (sock) => sock.end(`auth ok alpn=${sock.alpnProtocol}\n`));
  upstream.on("connection", (sock: Socket) => sock.setNoDelay(true));
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const upstreamPort = (upstream.address() as { port: number }).port;
  const hellos: ClientHello[] = [];
  try {
    await using s = await setup({
      auth: (raw, hello) => {
        hellos.push(hello);
        const up = netConnect(upstreamPort, "127.0.0.1");
        up.setNoDelay(true);
        up.on("error", () => raw.destroy());
        raw.on("error", () => up.destroy());
        raw.pipe(up);
        up.pipe(raw);
      },
    });
    const conn = await dial(s.port);
    // The client trusts only the auth CA: the handshake can only succeed with the auth server.
    const t = await Deno.startTls(conn, {
      hostname: "localhost",
      caCerts: [pki.authCaPem],
      alpnProtocols: [c1],
    });
    const hs = await t.handshake();
    assert.equal(hs.alpnProtocol, c1);
    assert.equal(dec.decode(await readToEnd(t)), `auth ok alpn=${c1}\n`);
    assert.equal(hellos.length, 1);
    assert.deepEqual(hellos[0]!.alpn, [c1]);
    assert.equal(hellos[0]!.serverName, "localhost");
  } finally {
    await new Promise((resolve) => upstream.close(resolve));
  }
});

Deno.test("startMultiplexer() routes teleport-reversetunnelv2 to the reverse tunnel handler", async () => {
  const got = Promise.withResolvers<string>();
  await using s = await setup({
    reverseTunnel: (socket) => {
      got.resolve((socket as TLSSocket).alpnProtocol || "none");
      socket.on("error", () => {});
      socket.end("tunnel\n");
    },
  });
  const conn = await dial(s.port);
  const t = await Deno.startTls(conn, {
    hostname: "localhost",
    caCerts: [s.pki.proxyCaPem],
    alpnProtocols: ["teleport-reversetunnelv2", "teleport-reversetunnel"],
  });
  assert.equal((await t.handshake()).alpnProtocol, "teleport-reversetunnel");
  assert.equal(dec.decode(await readToEnd(t)), "tunnel\n");
  assert.equal(await got.promise, "teleport-reversetunnel");
});

Deno.test("startMultiplexer() refuses an unknown ALPN and routes without a handler", async (t) => {
  await using s = await setup();
  for (
    const alpn of [["foo"], ["teleport-proxy-ssh"], ["teleport-reversetunnel"], [authAlpn("c1")]]
  ) {
    await t.step(alpn[0]!, async () => {
      const conn = await dial(s.port);
      const tlsConn = await Deno.startTls(conn, {
        hostname: "localhost",
        caCerts: [s.pki.proxyCaPem],
        alpnProtocols: alpn,
      });
      await assert.rejects(tlsConn.handshake());
      tlsConn.close();
      assert.ok(logged(s.records, alpn[0]!), `no log record names ${alpn[0]}`);
    });
  }
  assert.ok(logged(s.records, "no route for the offered ALPN protocols"));
  assert.ok(logged(s.records, "no handler for the proxy-ssh route"));
});

Deno.test("startMultiplexer() answers plain HTTP with 400 and an https:// hint", async () => {
  await using s = await setup();
  const conn = await dial(s.port);
  await conn.write(enc.encode("GET / HTTP/1.1\r\nHost: proxy.example.test:3080\r\n\r\n"));
  const text = dec.decode(await readToEnd(conn));
  assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(
    text,
    /\r\n\r\nthis port speaks HTTPS: use https:\/\/proxy\.example\.test:3080\/ instead\n$/,
  );
  // curl reads the whole answer (no reset) and names our address when Host is unusable.
  const r = await run("curl", ["-sS", "-H", "Host: bad host", `http://127.0.0.1:${s.port}/`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `this port speaks HTTPS: use https://127.0.0.1:${s.port}/ instead\n`);
});

Deno.test("startMultiplexer() closes silent, undecided and unknown clients", async () => {
  await using s = await setup({}, { handshakeTimeoutMs: 200 });
  const silent = await dial(s.port);
  assert.equal((await deadline(readToEnd(silent), 10_000, "silent client")).length, 0);
  const undecided = await dial(s.port);
  await undecided.write(enc.encode("SS"));
  assert.equal((await deadline(readToEnd(undecided), 10_000, "undecided client")).length, 0);
  const unknown = await dial(s.port);
  await unknown.write(enc.encode("hello there\n"));
  assert.equal((await deadline(readToEnd(unknown), 10_000, "unknown client")).length, 0);
  assert.ok(logged(s.records, "unknown protocol"));
  assert.ok(logged(s.records, "no handshake within"));
});

Deno.test("startMultiplexer() closes plain SSH without handler, PROXY headers and bad TLS", async () => {
  await using s = await setup();
  const cases: Array<[Uint8Array, string]> = [
    [enc.encode("SSH-2.0-x\r\n"), "plain SSH is not served"],
    [
      enc.encode("PROXY TCP4 10.0.0.1 10.0.0.2 1000 443\r\n"),
      "PROXY protocol v1 header arrived and proxy_protocol is off",
    ],
    [
      Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21),
      "PROXY protocol v2 header arrived and proxy_protocol is off",
    ],
    [Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00), "bad ClientHello"],
  ];
  for (const [bytes, why] of cases) {
    const conn = await dial(s.port);
    await conn.write(bytes);
    assert.equal((await deadline(readToEnd(conn), 10_000, why)).length, 0, why);
    assert.ok(logged(s.records, why), why);
  }
});

Deno.test("startMultiplexer() closes a TLS client that stalls in the handshake", async () => {
  await using s = await setup({ proxySsh: (socket) => socket.destroy() }, {
    handshakeTimeoutMs: 300,
  });
  // A replayed ClientHello (ALPN teleport-proxy-ssh first): the server answers, the client
  // never finishes.
  const hello = await Deno.readFile(new URL("./testdata/deno_connect_tls.bin", import.meta.url));
  const conn = await dial(s.port);
  await conn.write(hello);
  const answer = await deadline(readToEnd(conn), 10_000, "stalled handshake");
  assert.equal(answer[0], 0x16, "the server answered with a handshake record");
  // Half a ClientHello is cut off by the same timer.
  const half = await dial(s.port);
  await half.write(hello.subarray(0, 100));
  assert.equal((await deadline(readToEnd(half), 10_000, "half a ClientHello")).length, 0);
  assert.ok(logged(s.records, "no handshake within"));
});

Deno.test("startMultiplexer() serves a full chain and picks key pairs by SNI", async () => {
  const pki = await testPki();
  await using s = await setup({}, {
    tls: {
      keyPairs: [
        { certPem: pki.proxy.certPem + pki.proxyCaPem, keyPem: pki.proxy.keyPem },
        pki.wildcard,
      ],
    },
  });
  const chain = await sClient(s.port, ["-showcerts", "-servername", "localhost"]);
  assert.equal(chain.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2, chain);
  assert.match(chain, /subject=CN ?= ?proxy/);
  const wild = await sClient(s.port, ["-servername", "node1.example.test"]);
  assert.match(wild, /subject=CN ?= ?wildcard/);
  const none = await sClient(s.port, ["-noservername"]);
  assert.match(none, /subject=CN ?= ?proxy/);
  // A verifying client by name accepts the wildcard certificate it was given.
  const conn = await dial(s.port);
  const t = await Deno.startTls(conn, {
    hostname: "a.example.test",
    caCerts: [pki.proxyCaPem],
    alpnProtocols: ["http/1.1"],
  });
  await t.write(enc.encode("GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n"));
  assert.match(dec.decode(await readToEnd(t)), /web ok alpn=http\/1\.1 sni=a\.example\.test/);
});

Deno.test("Multiplexer.setKeyPairs() swaps certificates and rejects bad ones", async () => {
  await using s = await setup();
  const pki = s.pki;
  assert.throws(() => s.mux.setKeyPairs([]), BadParameterError);
  assert.throws(
    () => s.mux.setKeyPairs([{ certPem: pki.proxy.certPem, keyPem: pki.auth.keyPem }]),
    (err: unknown) => {
      assert.ok(err instanceof BadParameterError);
      assert.match(err.message, /not the private key of the leaf certificate/);
      assert.ok(!err.message.includes("PRIVATE KEY"));
      return true;
    },
  );
  assert.throws(
    () => s.mux.setKeyPairs([{ certPem: "nope", keyPem: pki.proxy.keyPem }]),
    BadParameterError,
  );
  // The failed calls kept the old pairs.
  assert.match(await sClient(s.port, ["-servername", "localhost"]), /subject=CN ?= ?proxy/);
  s.mux.setKeyPairs([pki.wildcard]);
  assert.match(await sClient(s.port, ["-servername", "localhost"]), /subject=CN ?= ?wildcard/);
});

Deno.test("startMultiplexer() admits connections through its guard", async () => {
  const first = Promise.withResolvers<Socket>();
  const { logger } = testLogger();
  const guard = new ConnectionGuard({ logger, maxConnections: 1 });
  await using s = await setup({ ssh: (socket) => first.resolve(socket) }, { guard });
  const a = await dial(s.port);
  await a.write(enc.encode("SSH-2.0-a\r\n"));
  const held = await deadline(first.promise, 10_000, "first connection");
  const b = await dial(s.port);
  assert.equal((await deadline(readToEnd(b), 10_000, "second connection")).length, 0);
  assert.equal(guard.stats.refused.total, 1);
  held.destroy();
  await readToEnd(a);
});

Deno.test("startMultiplexer() gives SSH clients the SSH login time, not the handshake deadline", async () => {
  const first = Promise.withResolvers<Socket>();
  await using s = await setup({ ssh: (socket) => first.resolve(socket) }, {
    handshakeTimeoutMs: 100,
    sshLoginTimeoutMs: 400,
  });
  const a = await dial(s.port);
  await a.write(enc.encode("SSH-2.0-a\r\n"));
  const held = await deadline(first.promise, 10_000, "handed over");
  const closedAt = Promise.withResolvers<void>();
  held.once("close", () => closedAt.resolve());
  // Never declared established: the SSH login deadline closes it.
  await deadline(closedAt.promise, 10_000, "SSH login deadline");
  assert.equal((await readToEnd(a)).length, 0);
  assert.ok(logged(s.records, "no handshake within"));
});

Deno.test("Multiplexer.close() stops listening and closes connections not handed over", async () => {
  const s = await setup();
  const pending = await dial(s.port);
  await pending.write(enc.encode("SS"));
  await s.mux.close();
  assert.equal((await deadline(readToEnd(pending), 10_000, "pending connection")).length, 0);
  await assert.rejects(dial(s.port));
  await s.mux.close(); // twice is fine
});

Deno.test("startMultiplexer() throws BadParameterError for bad options", async () => {
  const pki = await testPki();
  const { logger } = testLogger();
  const base: MultiplexerOptions = {
    listen: { host: "127.0.0.1", port: 0 },
    logger,
    tls: { keyPairs: [pki.proxy] },
    handlers: { web: () => {} },
  };
  const bad: Array<Partial<MultiplexerOptions>> = [
    { listen: { host: "127.0.0.1", port: 70000 } },
    { listen: { host: "", port: 0 } },
    { tls: { keyPairs: [] } },
    { tls: { keyPairs: [{ certPem: pki.proxy.certPem, keyPem: "not a key" }] } },
    { handshakeTimeoutMs: 0 },
    { handshakeTimeoutMs: -1 },
    { sshLoginTimeoutMs: 1.5 },
    { handlers: {} as MultiplexerHandlers },
  ];
  for (const patch of bad) {
    await assert.rejects(startMultiplexer({ ...base, ...patch }), BadParameterError);
  }
});

const LB_DST = { addr: "127.0.0.1", port: 443 };

/** Sends `header`, then does TLS and one GET; returns the response text. */
async function getAfterHeader(s: Setup, header: Uint8Array): Promise<string> {
  const conn = await dial(s.port);
  await conn.write(header);
  const t = await Deno.startTls(conn, { hostname: "localhost", caCerts: [s.pki.proxyCaPem] });
  await t.write(enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  return dec.decode(await readToEnd(t));
}

Deno.test("startMultiplexer() takes the client address from a PROXY header when proxyProtocol is on", async () => {
  const ssh = Promise.withResolvers<[Socket, ConnectionSource]>();
  await using s = await setup({ ssh: (socket, source) => ssh.resolve([socket, source]) }, {
    proxyProtocol: "on",
  });
  // v2 in front of TLS: the web handler is told the header's client, port included.
  const v2 = formatProxyHeaderV2({
    source: { addr: "203.0.113.7", port: 4242 },
    destination: LB_DST,
  });
  assert.match(await getAfterHeader(s, v2), /\r\nx-client: 203\.0\.113\.7 4242 true\r\n/);
  // v1 (IPv6) in front of plain SSH, in the same write: the SSH handler gets both.
  const conn = await dial(s.port);
  await conn.write(enc.encode(
    formatProxyHeaderV1({ addr: "2001:db8::5", port: 5555 }, { addr: "::1", port: 443 }) +
      "SSH-2.0-x\r\n",
  ));
  const [socket, source] = await deadline(ssh.promise, 10_000, "ssh handler");
  assert.deepEqual(source, { remoteAddr: "2001:db8::5", remotePort: 5555, proxied: true });
  socket.resume();
  const first = await deadline(new Promise<Buffer>((r) => socket.once("data", r)), 10_000, "ssh");
  assert.equal(first.toString(), "SSH-2.0-x\r\n");
  socket.destroy();
  conn.close();
  // A LOCAL header (load balancer health check) keeps the socket's own address.
  assert.match(
    await getAfterHeader(s, formatProxyHeaderV2({ command: "local" })),
    /\r\nx-client: 127\.0\.0\.1 \d+ false\r\n/,
  );
});

Deno.test("startMultiplexer() closes connections without exactly one good PROXY header when proxyProtocol is on", async () => {
  await using s = await setup({}, { proxyProtocol: "on" });
  const v1 = enc.encode("PROXY TCP4 198.51.100.1 127.0.0.1 1000 443\r\n");
  const cases: Array<[Uint8Array, string]> = [
    [Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x04), "no PROXY header, and proxy_protocol is on"],
    [enc.encode("GET / HTTP/1.1\r\n\r\n"), "no PROXY header, and proxy_protocol is on"],
    [new Uint8Array([...v1, ...v1]), "a second PROXY header"],
    [enc.encode("PROXY TCP4 1.2.3 127.0.0.1 1000 443\r\n"), "bad PROXY header"],
  ];
  for (const [bytes, why] of cases) {
    const conn = await dial(s.port);
    await conn.write(bytes);
    assert.equal((await deadline(readToEnd(conn), 10_000, why)).length, 0, why);
    assert.ok(logged(s.records, why), why);
  }
});

Deno.test("startMultiplexer() charges the header's client in the guard when proxyProtocol is on", async () => {
  const held: Socket[] = [];
  let next = Promise.withResolvers<void>();
  const { logger } = testLogger();
  // One connection per client address: the load balancer itself would get only one.
  const guard = new ConnectionGuard({ logger, maxConnectionsPerIp: 1 });
  await using s = await setup({
    ssh: (socket) => {
      held.push(socket);
      next.resolve();
    },
  }, { guard, proxyProtocol: "on" });
  const send = async (client: string) => {
    const conn = await dial(s.port);
    const header = formatProxyHeaderV2({ source: { addr: client, port: 1 }, destination: LB_DST });
    await conn.write(new Uint8Array([...header, ...enc.encode("SSH-2.0-x\r\n")]));
    return conn;
  };
  const a = await send("198.51.100.1");
  await deadline(next.promise, 10_000, "client 1");
  next = Promise.withResolvers<void>();
  const b = await send("198.51.100.2");
  await deadline(next.promise, 10_000, "client 2");
  // The same real client again is over its cap: closed.
  const c = await send("198.51.100.1");
  assert.equal((await deadline(readToEnd(c), 10_000, "client 1 again")).length, 0);
  assert.equal(held.length, 2);
  assert.equal(guard.stats.refused["per-ip"], 1);
  for (const h of held) h.destroy();
  await readToEnd(a);
  await readToEnd(b);
});

Deno.test("startMultiplexer() accepts a PROXY header with port 0 and a warning when proxyProtocol is unspecified", async () => {
  await using s = await setup({}, { proxyProtocol: "unspecified" });
  const v2 = formatProxyHeaderV2({
    source: { addr: "203.0.113.9", port: 999 },
    destination: LB_DST,
  });
  assert.match(await getAfterHeader(s, v2), /\r\nx-client: 203\.0\.113\.9 0 true\r\n/);
  const warning = s.records.find((r) => r.message.includes("with the source port zeroed"));
  assert.equal(warning?.level, "warn");
  // Without a header: served as the socket's peer.
  const conn = await dial(s.port);
  const t = await Deno.startTls(conn, { hostname: "localhost", caCerts: [s.pki.proxyCaPem] });
  await t.write(enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  assert.match(dec.decode(await readToEnd(t)), /\r\nx-client: 127\.0\.0\.1 \d+ false\r\n/);
});

Deno.test("startMultiplexer() serves plain HTTP to the web handler when plainHttp is set", async () => {
  await using s = await setup({}, { plainHttp: true, proxyProtocol: "on" });
  const r = await run("curl", [
    "-sS",
    "-i",
    "--haproxy-protocol",
    `http://127.0.0.1:${s.port}/plain`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^HTTP\/1\.1 200/);
  assert.match(r.stdout, /web ok alpn=none sni=none/);
  // curl's v1 header names curl's own address; the handler was told so.
  assert.match(r.stdout, /\r\nx-client: 127\.0\.0\.1 \d+ true\r\n/);
  // TLS clients are still served on the same port.
  const v1 = enc.encode(formatProxyHeaderV1({ addr: "192.0.2.1", port: 7 }, LB_DST));
  assert.match(await getAfterHeader(s, v1), /x-client: 192\.0\.2\.1 7 true/);
});
