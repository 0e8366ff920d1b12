import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { testLogger } from "../log/mod.ts";
import { ALPN_PROXY_SSH, type Multiplexer, startMultiplexer } from "../multiplex/mod.ts";
import {
  connectionUpgradeRequired,
  dialSshRoutingTls,
  dialTlsRoutingStream,
  forgetConnUpgradeDecisions,
} from "./conn_upgrade.ts";
import { webCertificate } from "./_testing.ts";

interface Proxy extends AsyncDisposable {
  mux: Multiplexer;
  port: number;
  /** Streams handed to the proxy-ssh route, in order. */
  ssh: Duplex[];
  upgrades: number;
}

/** A multiplexer (the proxy) whose web server hands upgrades back to it, as lib/service does. */
async function startProxy(plainHttp: boolean): Promise<Proxy> {
  const cert = await webCertificate();
  const { logger } = testLogger();
  const state = { upgrades: 0 };
  const ssh: Duplex[] = [];
  const web = http.createServer((_req, res) => res.end("web\n"));
  const mux = await startMultiplexer({
    listen: { host: "127.0.0.1", port: 0 },
    logger,
    plainHttp,
    tls: { keyPairs: [{ certPem: cert.certPem, keyPem: cert.keyPem }] },
    handlers: {
      web: (socket) => {
        web.emit("connection", socket);
        if (socket.isPaused()) socket.resume();
      },
      proxySsh: (stream) => {
        ssh.push(stream);
        stream.on("data", (c: Buffer) => stream.write(`echo ${c}`));
      },
    },
  });
  web.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    state.upgrades++;
    mux.upgrade(req, socket, head);
  });
  return {
    mux,
    port: mux.addr.port,
    ssh,
    get upgrades() {
      return state.upgrades;
    },
    [Symbol.asyncDispose]: () => mux.close(),
  };
}

/**
 * A load balancer that terminates TLS and offers no ALPN (so it picks none), relaying the bytes
 * to `target` in plain TCP, as haproxy in front of `--insecure-no-tls` does.
 */
async function startTerminatingBalancer(
  target: number,
): Promise<{ port: number } & AsyncDisposable> {
  const cert = await webCertificate();
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (client) => {
    const up = net.connect(target, "127.0.0.1");
    up.setNoDelay(true);
    sockets.add(up);
    client.pipe(up).pipe(client);
    client.on("error", () => up.destroy());
    up.on("error", () => client.destroy());
    client.on("close", () => up.destroy());
    up.on("close", () => {
      sockets.delete(up);
      client.destroy();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    [Symbol.asyncDispose]: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close").catch(() => {});
    },
  };
}

const NO_ENV = () => undefined;

Deno.test("connectionUpgradeRequired() is false when the proxy itself answers TLS", async () => {
  forgetConnUpgradeDecisions();
  await using proxy = await startProxy(false);
  const required = await connectionUpgradeRequired({
    addr: { host: "127.0.0.1", port: proxy.port },
    trust: { insecure: true },
    env: NO_ENV,
  });
  assert.equal(required, false);
});

Deno.test("connectionUpgradeRequired() is true behind a balancer that picks no ALPN", async () => {
  forgetConnUpgradeDecisions();
  await using proxy = await startProxy(true);
  await using lb = await startTerminatingBalancer(proxy.port);
  const o = { addr: { host: "127.0.0.1", port: lb.port }, trust: { insecure: true }, env: NO_ENV };
  assert.equal(await connectionUpgradeRequired(o), true);
  // Cached per address: the same promise answers again.
  assert.equal(connectionUpgradeRequired(o), connectionUpgradeRequired(o));
});

Deno.test("connectionUpgradeRequired() follows TELEPORT_TLS_ROUTING_CONN_UPGRADE", async () => {
  const addr = { host: "127.0.0.1", port: 1 };
  const env = (value: string) => (name: string) =>
    name === "TELEPORT_TLS_ROUTING_CONN_UPGRADE" ? value : undefined;
  assert.equal(await connectionUpgradeRequired({ addr, trust: {}, env: env("true") }), true);
  assert.equal(await connectionUpgradeRequired({ addr, trust: {}, env: env("no") }), false);
  await assert.rejects(
    connectionUpgradeRequired({ addr, trust: {}, env: env("maybe") }),
    /Cannot read TELEPORT_TLS_ROUTING_CONN_UPGRADE: "maybe" is not true or false/,
  );
});

Deno.test("dialSshRoutingTls() upgrades by itself behind a TLS-terminating balancer", async () => {
  forgetConnUpgradeDecisions();
  await using proxy = await startProxy(true);
  await using lb = await startTerminatingBalancer(proxy.port);
  const conn = await dialSshRoutingTls({
    addr: { host: "127.0.0.1", port: lb.port },
    trust: { insecure: true },
    alpnProtocols: [ALPN_PROXY_SSH],
    env: NO_ENV,
  });
  assert.equal(conn.upgraded, true);
  assert.equal(conn.alpnProtocol, ALPN_PROXY_SSH);
  assert.equal(proxy.upgrades, 1);
  const echoed = once(conn.socket, "data");
  conn.socket.write("ping\n");
  assert.equal(String((await echoed)[0]), "echo ping\n");
  conn.socket.destroy();
});

Deno.test("dialSshRoutingTls() dials once, with no test handshake, when the proxy answers", async () => {
  forgetConnUpgradeDecisions();
  await using proxy = await startProxy(false);
  const o = {
    addr: { host: "127.0.0.1", port: proxy.port },
    trust: { insecure: true },
    alpnProtocols: [ALPN_PROXY_SSH],
    env: NO_ENV,
  };
  const conn = await dialSshRoutingTls(o);
  assert.equal(conn.upgraded, false);
  assert.equal(conn.alpnProtocol, ALPN_PROXY_SSH);
  // The attempt decided for this address: no further test.
  assert.equal(await connectionUpgradeRequired(o), false);
  const echoed = once(conn.socket, "data");
  conn.socket.write("x\n");
  await echoed;
  assert.equal(proxy.ssh.length, 1);
  conn.socket.destroy();
});

Deno.test("dialTlsRoutingStream() dials plain TCP when no balancer is in the way", async () => {
  forgetConnUpgradeDecisions();
  await using proxy = await startProxy(false);
  const stream = await dialTlsRoutingStream({
    addr: { host: "127.0.0.1", port: proxy.port },
    trust: { insecure: true },
    env: NO_ENV,
  });
  const t = tls.connect({
    socket: stream,
    rejectUnauthorized: false,
    ALPNProtocols: [ALPN_PROXY_SSH],
  });
  await once(t, "secureConnect");
  assert.equal(t.alpnProtocol, ALPN_PROXY_SSH);
  assert.equal(proxy.upgrades, 0);
  t.destroy();
});
