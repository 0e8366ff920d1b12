import assert from "node:assert/strict";
import net from "node:net";
import type { Buffer } from "node:buffer";
import { testLogger } from "../log/mod.ts";
import {
  type ClientSourceResult,
  type ProxyProtocolMode,
  readClientSource,
  type ReadClientSourceOptions,
} from "./client_source.ts";
import { formatProxyHeaderV1, formatProxyHeaderV2 } from "./proxy_protocol.ts";

const SIGNED_TLV = 0xe4;

/**
 * Connects from 127.0.0.9 to a real listener, writes `first` then an SSH banner, and returns
 * what readClientSource decided plus the bytes left in the socket.
 */
async function decide(
  first: Uint8Array[],
  mode: ProxyProtocolMode,
  extra: Partial<ReadClientSourceOptions> = {},
): Promise<{ result: ClientSourceResult; rest: string; warnings: string[] }> {
  const { logger, records } = testLogger();
  const { promise, resolve } = Promise.withResolvers<
    { result: ClientSourceResult; rest: string }
  >();
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    readClientSource(sock, {
      mode,
      setting: "x.proxy_protocol",
      logger,
      timeoutMs: 60_000,
      ...extra,
    }).then((result) => {
      if (!result.ok) {
        sock.destroy();
        return resolve({ result, rest: "" });
      }
      sock.once("data", (d: Buffer) => {
        resolve({ result, rest: d.toString() });
        sock.destroy();
      });
      sock.resume();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const c = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.9" });
    c.setNoDelay(true);
    c.on("error", () => {});
    await new Promise((r) => c.once("connect", r));
    for (const b of first) c.write(b);
    c.write("SSH-2.0-test\r\n");
    const closed = new Promise((r) => c.once("close", r));
    const got = await promise;
    await closed;
    const warnings = records.filter((r) => r.level === "warn").map((r) =>
      JSON.stringify(r.properties)
    );
    return { ...got, warnings };
  } finally {
    await new Promise((r) => server.close(r));
  }
}

const lbHeader = (addr: string, port: number) =>
  formatProxyHeaderV2({
    source: { addr, port },
    destination: { addr: "127.0.0.1", port: 3023 },
  });

Deno.test("readClientSource() serves a client without a header at its socket address in every mode but on", async () => {
  for (const mode of ["off", "unspecified"] as const) {
    const { result, rest } = await decide([], mode);
    assert.ok(result.ok, mode);
    assert.equal(result.source.remoteAddr, "127.0.0.9");
    assert.ok(result.source.remotePort > 0);
    assert.equal(result.source.proxied, false);
    assert.equal(rest, "SSH-2.0-test\r\n");
  }
  const on = await decide([], "on");
  assert.equal(on.result.ok, false);
  assert.match(
    (on.result as { reason: string }).reason,
    /no PROXY header, and x\.proxy_protocol is on/,
  );
});

Deno.test("readClientSource() refuses v1 and v2 headers when off", async () => {
  const v1 = await decide([
    new TextEncoder().encode(
      formatProxyHeaderV1({ addr: "203.0.113.50", port: 1 }, { addr: "127.0.0.1", port: 2 }),
    ),
  ], "off");
  assert.equal(v1.result.ok, false);
  assert.match(
    (v1.result as { reason: string }).reason,
    /v1 header arrived and x\.proxy_protocol is off/,
  );
  const v2 = await decide([lbHeader("203.0.113.50", 1)], "off");
  assert.match((v2.result as { reason: string }).reason, /v2 header arrived/);
});

Deno.test("readClientSource() takes the client from the header when on", async () => {
  const { result, rest, warnings } = await decide([lbHeader("192.0.2.7", 40000)], "on");
  assert.deepEqual(result, {
    ok: true,
    source: { remoteAddr: "192.0.2.7", remotePort: 40000, proxied: true },
  });
  assert.equal(rest, "SSH-2.0-test\r\n");
  assert.deepEqual(warnings, []);
});

Deno.test("readClientSource() zeroes the port and warns when unspecified", async () => {
  const { result, warnings } = await decide([lbHeader("192.0.2.7", 40000)], "unspecified");
  assert.deepEqual(result, {
    ok: true,
    source: { remoteAddr: "192.0.2.7", remotePort: 0, proxied: true },
  });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /192\.0\.2\.7/);
});

Deno.test("readClientSource() refuses a second load balancer header", async () => {
  const { result } = await decide([lbHeader("192.0.2.7", 1), lbHeader("192.0.2.8", 2)], "on");
  assert.equal(result.ok, false);
  assert.match((result as { reason: string }).reason, /a second PROXY header/);
});

Deno.test("readClientSource() lets a verified signed header after the load balancer's win", async () => {
  const signed = formatProxyHeaderV2({
    source: { addr: "198.51.100.4", port: 4444 },
    destination: { addr: "127.0.0.1", port: 3022 },
    tlvs: [{ type: SIGNED_TLV, value: Uint8Array.of(1) }],
  });
  const verify = {
    tlvType: SIGNED_TLV,
    verify: (h: { source?: { addr: string; port: number } }) => Promise.resolve(h.source!),
  };
  const ok = await decide([lbHeader("192.0.2.7", 1), signed], "on", { signed: verify });
  assert.deepEqual(ok.result, {
    ok: true,
    source: { remoteAddr: "198.51.100.4", remotePort: 4444, proxied: true },
  });
  assert.equal(ok.rest, "SSH-2.0-test\r\n");
  // Signed headers are checked in every mode, and one that does not verify is refused.
  const off = await decide([signed], "off", { signed: verify });
  assert.equal(off.result.ok, true);
  const bad = await decide([signed], "off", {
    signed: { tlvType: SIGNED_TLV, verify: () => Promise.reject(new Error("not a proxy")) },
  });
  assert.deepEqual(bad.result, { ok: false, reason: "not a proxy" });
});
