import assert from "node:assert/strict";
import net from "node:net";
import type { Buffer } from "node:buffer";
import { generateSshKeyPair, signSshCertificate } from "../ca/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import { ClientAddrVerifier, signClientAddrHeader } from "../identity/mod.ts";
import { testLogger } from "../log/mod.ts";
import { formatProxyHeaderV2 } from "../net/mod.ts";
import type { SocketAddresses } from "../ssh/mod.ts";
import { type ClientAddrListenerOptions, listenWithClientAddr } from "./client_addr.ts";

/** A listener whose `serve` reports each connection's addresses and first bytes. */
async function setup(extra: Partial<ClientAddrListenerOptions> = {}) {
  const ca = await generateSshKeyPair("ed25519");
  const clock = new FakeClock(Date.now());
  const { logger, records } = testLogger();
  const served: Array<PromiseWithResolvers<{ addrs: SocketAddresses; first: string }>> = [];
  let next = Promise.withResolvers<{ addrs: SocketAddresses; first: string }>();
  served.push(next);
  const listener = await listenWithClientAddr({
    listen: { hostname: "127.0.0.1", port: 0 },
    verifier: new ClientAddrVerifier({
      hostCaKeys: () => [ca.publicKeyBlob],
      clusterName: "c1",
      clock,
    }),
    serve: (socket, addrs) => {
      const mine = next;
      next = Promise.withResolvers();
      served.push(next);
      socket.once("data", (d: Buffer) => {
        mine.resolve({ addrs, first: d.toString() });
        socket.destroy();
      });
      socket.resume();
    },
    logger,
    firstBytesTimeoutMs: 60_000,
    ...extra,
  });
  const connect = async (first: Uint8Array) => {
    const c = net.connect({
      host: "127.0.0.1",
      port: listener.addr.port,
      localAddress: "127.0.0.9",
    });
    c.setNoDelay(true);
    await new Promise((r) => c.once("connect", r));
    c.write(first);
    c.write("SSH-2.0-test\r\n");
    const closed = new Promise((r) => c.once("close", r));
    c.on("error", () => {});
    return { c, closed };
  };
  const proxyCert = async (role: string) => {
    const key = await generateSshKeyPair("ed25519");
    const cert = await signSshCertificate({
      signer: ca,
      publicKeyBlob: key.publicKeyBlob,
      certType: "host",
      keyId: `${role}.c1`,
      principals: [`${role}.c1`],
      validAfter: new Date(Date.now() - 60_000),
      validBefore: "forever",
      extensions: { "x-teleport-role": role, "x-teleport-authority": "c1" },
    });
    return { ...key, certificate: cert.blob };
  };
  return { listener, records, served: () => served[0]!.promise, connect, proxyCert, clock };
}

Deno.test("listenWithClientAddr() serves a proxy-signed client at the signed address", async () => {
  const s = await setup();
  try {
    const header = await signClientAddrHeader({
      signer: await s.proxyCert("Proxy"),
      source: { addr: "192.0.2.10", port: 5555 },
      destination: { addr: "127.0.0.1", port: s.listener.addr.port },
      now: s.clock.now(),
    });
    const { closed } = await s.connect(header);
    const got = await s.served();
    assert.deepEqual(got.addrs, { remoteAddr: "192.0.2.10", remotePort: 5555 });
    assert.equal(got.first, "SSH-2.0-test\r\n");
    await closed;
  } finally {
    await s.listener.close();
  }
});

Deno.test("listenWithClientAddr() serves a client without a header at its socket address", async () => {
  const s = await setup();
  try {
    const { closed } = await s.connect(new Uint8Array(0));
    const got = await s.served();
    assert.deepEqual(got.addrs, {});
    assert.equal(got.first, "SSH-2.0-test\r\n");
    await closed;
  } finally {
    await s.listener.close();
  }
});

Deno.test("listenWithClientAddr() closes connections whose header it cannot trust", async (t) => {
  const s = await setup();
  try {
    const cases: Array<[string, () => Promise<Uint8Array>, RegExp]> = [
      ["unsigned", () =>
        Promise.resolve(formatProxyHeaderV2({
          source: { addr: "192.0.2.10", port: 1 },
          destination: { addr: "127.0.0.1", port: s.listener.addr.port },
        })), /header arrived and ssh_service\.proxy_protocol is off/],
      ["signed by a node", async () =>
        signClientAddrHeader({
          signer: await s.proxyCert("Node"),
          source: { addr: "192.0.2.10", port: 1 },
          destination: { addr: "127.0.0.1", port: s.listener.addr.port },
          now: s.clock.now(),
        }), /is not a proxy/],
      ["malformed", () => {
        const b = formatProxyHeaderV2({}).slice();
        b[12] = 0x2f;
        return Promise.resolve(b);
      }, /bad PROXY header: PROXY v2 command 15/],
    ];
    for (const [name, make, reason] of cases) {
      await t.step(name, async () => {
        const { closed } = await s.connect(await make());
        await closed;
        const warn = s.records.findLast((r) => r.level === "warn");
        assert.match(String(warn?.properties?.reason), reason);
        assert.match(String(warn?.properties?.peer), /^127\.0\.0\.9:\d+$/);
      });
    }
  } finally {
    await s.listener.close();
  }
});

Deno.test("listenWithClientAddr() takes a load balancer's client, and a proxy's after it, when proxyProtocol is on", async () => {
  const s = await setup({ proxyProtocol: "on" });
  try {
    const lb = formatProxyHeaderV2({
      source: { addr: "192.0.2.20", port: 2020 },
      destination: { addr: "127.0.0.1", port: s.listener.addr.port },
    });
    const direct = await s.connect(lb);
    assert.deepEqual((await s.served()).addrs, { remoteAddr: "192.0.2.20", remotePort: 2020 });
    await direct.closed;
  } finally {
    await s.listener.close();
  }
  const t = await setup({ proxyProtocol: "on" });
  try {
    const lb = formatProxyHeaderV2({
      source: { addr: "192.0.2.20", port: 2020 },
      destination: { addr: "127.0.0.1", port: t.listener.addr.port },
    });
    const signed = await signClientAddrHeader({
      signer: await t.proxyCert("Proxy"),
      source: { addr: "192.0.2.10", port: 5555 },
      destination: { addr: "127.0.0.1", port: t.listener.addr.port },
      now: t.clock.now(),
    });
    const viaLb = await t.connect(new Uint8Array([...lb, ...signed]));
    assert.deepEqual((await t.served()).addrs, { remoteAddr: "192.0.2.10", remotePort: 5555 });
    await viaLb.closed;
    const bare = await t.connect(new Uint8Array(0));
    await bare.closed;
    const warn = t.records.findLast((r) => r.level === "warn");
    assert.match(
      String(warn?.properties?.reason),
      /no PROXY header, and ssh_service\.proxy_protocol is on/,
    );
  } finally {
    await t.listener.close();
  }
});
