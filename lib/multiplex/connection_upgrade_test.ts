import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { once } from "node:events";
import http from "node:http";
import net, { type Socket } from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { ConnectionGuard } from "../net/mod.ts";
import {
  checkUpgradeRequest,
  requestConnectionUpgrade,
  type UpgradeType,
} from "./connection_upgrade.ts";
import {
  type ConnectionSource,
  type Multiplexer,
  type MultiplexerOptions,
  startMultiplexer,
} from "./multiplexer.ts";
import { deadline, run, testLogger, testPki } from "./_testing.ts";

const WS_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

Deno.test("checkUpgradeRequest() accepts alpn, alpn-ping and WebSocket upgrades", () => {
  const req = (headers: Record<string, string>) => ({
    method: "GET",
    url: "/webapi/connectionupgrade",
    headers: { connection: "keep-alive, Upgrade", ...headers },
  });
  assert.deepEqual(checkUpgradeRequest(req({ upgrade: "alpn" })), {
    ok: true,
    type: "alpn",
    protocol: "alpn",
  });
  assert.deepEqual(checkUpgradeRequest(req({ upgrade: "ALPN-Ping" })), {
    ok: true,
    type: "alpn-ping",
    protocol: "alpn-ping",
  });
  // X-Teleport-Upgrade wins over an Upgrade header a balancer rewrote.
  assert.deepEqual(
    checkUpgradeRequest(req({ upgrade: "websocket", "x-teleport-upgrade": "alpn-ping" })),
    { ok: true, type: "alpn-ping", protocol: "alpn-ping" },
  );
  assert.deepEqual(
    checkUpgradeRequest(req({
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": WS_KEY,
      "sec-websocket-protocol": "chat, alpn",
    })),
    { ok: true, type: "websocket", protocol: "alpn", websocketKey: WS_KEY },
  );
});

Deno.test("checkUpgradeRequest() refuses with a clear message when a header is wrong", () => {
  const cases: Array<[Record<string, unknown>, number, RegExp]> = [
    [{ headers: { connection: "upgrade", upgrade: "h2c" } }, 400, /unsupported upgrade type "h2c"/],
    [{ headers: { upgrade: "alpn" } }, 400, /lacks "Connection: Upgrade"/],
    [{ headers: { connection: "upgrade" } }, 400, /"\(none\)"/],
    [
      { url: "/webapi/ping", headers: { connection: "upgrade", upgrade: "alpn" } },
      404,
      /at \/webapi\/ping/,
    ],
    [{ method: "POST", headers: { connection: "upgrade", upgrade: "alpn" } }, 405, /use GET/],
    [
      { headers: { connection: "upgrade", upgrade: "websocket", "sec-websocket-version": "13" } },
      400,
      /Sec-WebSocket-Key/,
    ],
    [
      {
        headers: {
          connection: "upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": WS_KEY,
          "sec-websocket-protocol": "chat",
        },
      },
      400,
      /subprotocol "chat"; offer alpn or alpn-ping/,
    ],
  ];
  for (const [partial, status, message] of cases) {
    const r = checkUpgradeRequest({
      method: "GET",
      url: "/webapi/connectionupgrade",
      headers: {},
      ...partial,
    });
    assert.equal(r.ok, false, JSON.stringify(partial));
    if (!r.ok) {
      assert.equal(r.status, status, r.message);
      assert.match(r.message, message);
      assert.match(r.message, /^Cannot upgrade the connection/);
    }
  }
});

interface Setup extends AsyncDisposable {
  mux: Multiplexer;
  port: number;
  guard: ConnectionGuard;
  /** Sources the proxy-ssh handler was given. */
  sources: ConnectionSource[];
  /** Resolves with the next proxy-ssh stream. */
  nextSsh(): Promise<Duplex>;
  logged(text: string): boolean;
}

/** A multiplexer whose web handler feeds node:http with an `upgrade` listener (as lib/web). */
async function setup(extra: Partial<MultiplexerOptions> = {}): Promise<Setup> {
  const pki = await testPki();
  const { logger, records } = testLogger();
  const guard = new ConnectionGuard({ logger });
  const web = http.createServer((_req, res) => res.end("plain web\n"));
  const sources: ConnectionSource[] = [];
  const waiting: Array<(s: Duplex) => void> = [];
  const arrived: Duplex[] = [];
  const mux: Multiplexer = await startMultiplexer({
    listen: { host: "127.0.0.1", port: 0 },
    logger,
    guard,
    tls: { keyPairs: [pki.proxy] },
    handlers: {
      web: (socket) => {
        web.emit("connection", socket);
        if (socket.isPaused()) socket.resume();
      },
      proxySsh: (stream, source) => {
        sources.push(source);
        const w = waiting.shift();
        if (w !== undefined) w(stream);
        else arrived.push(stream);
      },
    },
    ...extra,
  });
  web.on("upgrade", (req, socket: Duplex, head: Buffer) => mux.upgrade(req, socket, head));
  return {
    mux,
    port: mux.addr.port,
    guard,
    sources,
    nextSsh: () => {
      const s = arrived.shift();
      return s !== undefined ? Promise.resolve(s) : new Promise((r) => waiting.push(r));
    },
    logged: (text) =>
      records.some((r) =>
        r.message.includes(text) ||
        Object.values(r.properties ?? {}).some((v) => String(v) === text)
      ),
    [Symbol.asyncDispose]: () => mux.close(),
  };
}

/** TLS (ALPN http/1.1) to the port, or plain TCP when `plain`. */
async function dialOuter(port: number, plain = false): Promise<Duplex> {
  if (plain) {
    const s = net.connect(port, "127.0.0.1");
    s.setNoDelay(true);
    await once(s, "connect");
    return s;
  }
  const s = tls.connect({
    host: "127.0.0.1",
    port,
    rejectUnauthorized: false,
    ALPNProtocols: ["http/1.1"],
  });
  s.setNoDelay(true);
  await once(s, "secureConnect");
  return s;
}

/** Inner TLS with ALPN `teleport-proxy-ssh` over an upgraded stream. */
async function innerTls(stream: Duplex): Promise<tls.TLSSocket> {
  const t = tls.connect({
    socket: stream,
    rejectUnauthorized: false,
    ALPNProtocols: ["teleport-proxy-ssh"],
  });
  await once(t, "secureConnect");
  assert.equal(t.alpnProtocol, "teleport-proxy-ssh");
  return t;
}

function readLine(stream: Duplex): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const onData = (c: Buffer) => {
      text += c.toString();
      if (text.includes("\n")) {
        stream.off("data", onData);
        resolve(text);
      }
    };
    stream.on("data", onData);
  });
}

for (const type of ["alpn", "alpn-ping", "websocket"] as UpgradeType[]) {
  Deno.test(`Multiplexer.upgrade() routes the TLS inside ${type === "websocket" ? "a" : "an"} ${type} upgrade by ALPN`, async () => {
    await using s = await setup({ upgradePingIntervalMs: 5 });
    const outer = await dialOuter(s.port);
    const upgraded = await deadline(
      requestConnectionUpgrade(outer, { host: `127.0.0.1:${s.port}`, type }),
      10_000,
      "the upgrade",
    );
    const inner = await deadline(innerTls(upgraded), 10_000, "the inner handshake");
    const server = await s.nextSsh();
    // Bytes cross both ways (with pings flowing on alpn-ping).
    server.on("data", (c: Buffer) => server.write(`echo ${c}`));
    const line = readLine(inner);
    inner.write("hello\n");
    assert.equal(await deadline(line, 10_000, "the echo"), "echo hello\n");
    assert.equal(s.sources[0]!.remoteAddr, "127.0.0.1");
    assert.ok(s.logged(type), "the upgrade is logged with its type");
    // One guarded connection, not two: the inner one rides on the outer one's accounting.
    assert.equal(s.guard.stats.connections, 1);
    const closed = once(server, "close");
    inner.destroy();
    outer.destroy();
    await deadline(closed, 10_000, "the inner stream's close");
  });
}

Deno.test("Multiplexer.upgrade() works on plain HTTP from a TLS-terminating balancer", async () => {
  await using s = await setup({ plainHttp: true });
  const outer = await dialOuter(s.port, true);
  const upgraded = await requestConnectionUpgrade(outer, { host: "lb.example", type: "alpn" });
  const inner = await deadline(innerTls(upgraded), 10_000, "the inner handshake");
  await s.nextSsh();
  inner.destroy();
  outer.destroy();
});

Deno.test("Multiplexer.upgrade() answers curl --no-alpn with 101 and X-Teleport-Upgrade", async () => {
  await using s = await setup();
  const r = await run("curl", [
    "-sSik",
    "--no-alpn",
    "--max-time",
    "2",
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: alpn-ping",
    `https://127.0.0.1:${s.port}/webapi/connectionupgrade`,
  ]);
  // curl waits for more after the 101 (the inner TLS it never starts): its time limit ends it.
  assert.match(r.stdout, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(r.stdout, /\r\nX-Teleport-Upgrade: alpn-ping\r\n/i);
});

Deno.test("Multiplexer.upgrade() refuses an unknown Upgrade value with 400", async () => {
  await using s = await setup();
  const r = await run("curl", [
    "-sSk",
    "-w",
    "%{http_code}",
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: h2c",
    `https://127.0.0.1:${s.port}/webapi/connectionupgrade`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /unsupported upgrade type "h2c".*400$/s);
  // Upgrades elsewhere than /webapi/connectionupgrade get a 404.
  const other = await dialOuter(s.port);
  other.write(
    "GET /webapi/ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: alpn\r\n\r\n",
  );
  const answer = await deadline(readLine(other), 10_000, "the 404");
  assert.match(answer, /^HTTP\/1\.1 404 Not Found/);
  other.destroy();
});

Deno.test("Multiplexer.upgrade() closes an upgraded connection that never sends a ClientHello", async () => {
  await using s = await setup({ handshakeTimeoutMs: 300 });
  const outer = await dialOuter(s.port);
  const upgraded = await requestConnectionUpgrade(outer, { host: "x", type: "alpn" });
  upgraded.resume();
  // The handshake deadline of the outer connection still runs: the guard closes it.
  await deadline(once(outer, "close"), 10_000, "the close");
});

Deno.test("Multiplexer.upgrade() refuses a second upgrade inside an upgraded connection", async () => {
  await using s = await setup();
  const outer = await dialOuter(s.port);
  const upgraded = await requestConnectionUpgrade(outer, { host: "x", type: "alpn" });
  // Inside: TLS with ALPN http/1.1 reaches the web server, which may not upgrade again.
  const inner = tls.connect({
    socket: upgraded,
    rejectUnauthorized: false,
    ALPNProtocols: ["http/1.1"],
  });
  await once(inner, "secureConnect");
  await assert.rejects(
    requestConnectionUpgrade(inner, { host: "x", type: "alpn", where: "inner" }),
    /inside an upgrade already/,
  );
  (outer as Socket).destroy();
});
