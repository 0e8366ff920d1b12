import assert from "node:assert/strict";
import {
  formatIpBytes,
  formatProxyHeaderV1,
  formatProxyHeaderV2,
  MAX_PROXY_V1_BYTES,
  MAX_PROXY_V2_LENGTH,
  parseIp,
  parseProxyHeader,
  PROXY_V2_SIGNATURE,
  type ProxyHeaderResult,
} from "./proxy_protocol.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));

function header(r: ProxyHeaderResult) {
  assert.equal(r.kind, "header", r.kind === "error" ? r.reason : r.kind);
  return r as Extract<ProxyHeaderResult, { kind: "header" }>;
}

Deno.test("parseProxyHeader() reads a v2 IPv4 header with TLVs and says what it consumed", () => {
  // Built by hand from the spec: PROXY, INET/STREAM, 12 address bytes + one TLV of 2 bytes.
  const bytes = new Uint8Array([
    ...PROXY_V2_SIGNATURE,
    ...hex("2111" + "0011"),
    ...hex("7f000001" + "0a000002" + "1f90" + "0bb8"),
    ...hex("e50002abcd"),
    ...enc("SSH-2.0-x\r\n"),
  ]);
  const r = header(parseProxyHeader(bytes));
  assert.equal(r.consumed, 16 + 17);
  assert.deepEqual(r.header, {
    version: 2,
    command: "proxy",
    family: "inet",
    source: { addr: "127.0.0.1", port: 8080 },
    destination: { addr: "10.0.0.2", port: 3000 },
    tlvs: [{ type: 0xe5, value: hex("abcd") }],
  });
});

Deno.test("parseProxyHeader() reads v2 IPv6, UNSPEC and LOCAL headers", () => {
  const v6 = formatProxyHeaderV2({
    source: { addr: "2001:db8::1", port: 1 },
    destination: { addr: "::1", port: 65535 },
  });
  assert.deepEqual(header(parseProxyHeader(v6)).header.source, { addr: "2001:db8::1", port: 1 });
  assert.deepEqual(header(parseProxyHeader(v6)).header.destination, { addr: "::1", port: 65535 });
  const local = header(parseProxyHeader(formatProxyHeaderV2({ command: "local" }))).header;
  assert.equal(local.command, "local");
  assert.equal(local.family, "unspec");
  assert.equal(local.source, undefined);
});

Deno.test("formatProxyHeaderV2() maps IPv4 into IPv6 when the families differ", () => {
  const h = header(parseProxyHeader(formatProxyHeaderV2({
    source: { addr: "192.0.2.7", port: 5000 },
    destination: { addr: "fe80::2", port: 22 },
  }))).header;
  assert.equal(h.family, "inet6");
  assert.deepEqual(h.source, { addr: "::ffff:192.0.2.7", port: 5000 });
});

Deno.test("parseProxyHeader() answers incomplete for every proper prefix of a header", () => {
  const full = formatProxyHeaderV2({
    source: { addr: "127.0.0.2", port: 40000 },
    destination: { addr: "127.0.0.1", port: 3022 },
    tlvs: [{ type: 0xe4, value: new Uint8Array(300).fill(7) }],
  });
  for (let n = 0; n < full.length; n++) {
    assert.equal(parseProxyHeader(full.subarray(0, n)).kind, "incomplete", `prefix ${n}`);
  }
  const line = enc(formatProxyHeaderV1({ addr: "1.2.3.4", port: 1 }, { addr: "5.6.7.8", port: 2 }));
  for (let n = 0; n < line.length; n++) {
    assert.equal(parseProxyHeader(line.subarray(0, n)).kind, "incomplete", `v1 prefix ${n}`);
  }
});

Deno.test("parseProxyHeader() refuses malformed v2 headers with a reason", async (t) => {
  const good = formatProxyHeaderV2({
    source: { addr: "127.0.0.1", port: 1 },
    destination: { addr: "127.0.0.1", port: 2 },
    tlvs: [{ type: 0xe0, value: hex("0102") }],
  });
  const cases: Array<[string, (b: Uint8Array) => void, RegExp]> = [
    ["version 1 nibble", (b) => b[12] = 0x11, /version nibble/],
    ["command 2", (b) => b[12] = 0x22, /command 2/],
    ["AF_UNIX", (b) => b[13] = 0x31, /AF_UNIX/],
    ["family 4", (b) => b[13] = 0x41, /family 4/],
    ["transport 3", (b) => b[13] = 0x13, /transport 3/],
    ["addresses without transport", (b) => b[13] = 0x10, /no transport/],
    ["length below the addresses", (b) => b[15] = 11, /too short/],
    ["TLV overrun", (b) => b[16 + 12 + 2] = 9, /overruns/],
  ];
  for (const [name, mutate, reason] of cases) {
    await t.step(name, () => {
      const b = good.slice();
      mutate(b);
      const r = parseProxyHeader(b);
      assert.equal(r.kind, "error");
      assert.match((r as { reason: string }).reason, reason);
    });
  }
  await t.step("length above the bound", () => {
    const b = good.slice();
    b[14] = 0x10;
    b[15] = 0x01;
    const r = parseProxyHeader(b);
    assert.equal(r.kind, "error");
    assert.match((r as { reason: string }).reason, new RegExp(`exceeds ${MAX_PROXY_V2_LENGTH}`));
  });
  await t.step("truncated TLV header", () => {
    const b = formatProxyHeaderV2({ tlvs: [{ type: 0xe1, value: new Uint8Array(0) }] }).slice();
    b[15] = 2; // 2 bytes left: a TLV needs 3
    const r = parseProxyHeader(b.subarray(0, 18));
    assert.equal(r.kind, "error");
    assert.match((r as { reason: string }).reason, /truncated/);
  });
});

Deno.test("parseProxyHeader() reads v1 lines and refuses bad ones", () => {
  const r = header(parseProxyHeader(enc("PROXY TCP6 ::1 2001:db8::a 1 22\r\nrest")));
  assert.equal(r.consumed, 33);
  assert.deepEqual(r.header.destination, { addr: "2001:db8::a", port: 22 });
  assert.equal(header(parseProxyHeader(enc("PROXY UNKNOWN whatever\r\n"))).header.family, "unspec");
  const bad: Array<[string, RegExp]> = [
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /CRLF/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", /6 fields/],
    ["PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", /not TCP4/],
    ["PROXY TCP4 ::1 5.6.7.8 1 2\r\n", /not TCP4 addresses/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", /ports/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", /ports/],
    ["PROXY TCP4 1.2.3.4\x005.6.7.8 1 2\r\n", /printable/],
    [`PROXY ${"x".repeat(MAX_PROXY_V1_BYTES)}`, /longer than 107/],
    ["HELLO", /not a PROXY/],
  ];
  for (const [line, reason] of bad) {
    const res = parseProxyHeader(enc(line));
    assert.equal(res.kind, "error", line);
    assert.match((res as { reason: string }).reason, reason, line);
  }
});

Deno.test("formatProxyHeaderV2() refuses what does not fit", () => {
  assert.throws(
    () =>
      formatProxyHeaderV2({
        source: { addr: "host", port: 1 },
        destination: { addr: "::1", port: 1 },
      }),
    /not an IP address/,
  );
  assert.throws(
    () =>
      formatProxyHeaderV2({
        source: { addr: "::1", port: 70000 },
        destination: { addr: "::1", port: 1 },
      }),
    /out of range/,
  );
  assert.throws(
    () =>
      formatProxyHeaderV2({ tlvs: [{ type: 0xe0, value: new Uint8Array(MAX_PROXY_V2_LENGTH) }] }),
    /exceed/,
  );
});

Deno.test("formatIpBytes() and parseIp() round-trip canonical addresses", () => {
  for (
    const a of [
      "0.0.0.0",
      "255.1.2.3",
      "::",
      "::1",
      "1::",
      "2001:db8::1:0:0:1",
      "fe80::",
      "1:2:3:4:5:6:7:8",
      "::ffff:10.0.0.1",
    ]
  ) {
    assert.equal(formatIpBytes(parseIp(a)!), a);
  }
  assert.equal(formatIpBytes(parseIp("2001:DB8:0:0:0:0:0:1")!), "2001:db8::1");
  assert.equal(parseIp("1.2.3"), undefined);
  assert.equal(parseIp("fe80::1%eth0"), undefined);
});

/** Seeded PRNG (mulberry32), so a failing case can be replayed from its number. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("parseProxyHeader() gives only documented results for 120k mutated and random inputs", () => {
  const rand = prng(0x5eed);
  const int = (n: number) => Math.floor(rand() * n);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const seeds: Uint8Array[] = [
    formatProxyHeaderV2({
      source: { addr: "127.0.0.1", port: 1 },
      destination: { addr: "127.0.0.2", port: 2 },
      tlvs: [{ type: 0xe4, value: bytes(200) }, { type: 0x01, value: enc("h2") }],
    }),
    formatProxyHeaderV2({
      source: { addr: "2001:db8::1", port: 3 },
      destination: { addr: "::1", port: 4 },
    }),
    formatProxyHeaderV2({ command: "local" }),
    enc(formatProxyHeaderV1({ addr: "10.1.2.3", port: 5 }, { addr: "10.3.2.1", port: 6 })),
    enc(formatProxyHeaderV1({ addr: "::1", port: 5 }, { addr: "fe80::9", port: 6 })),
    enc("PROXY UNKNOWN\r\n"),
  ];
  const counts = { incomplete: 0, error: 0, header: 0 };
  for (let i = 0; i < 120_000; i++) {
    let input: Uint8Array;
    const mode = i % 4;
    if (mode === 3) {
      // Random bytes, half of them behind a real signature so the body parser is reached.
      const body = bytes(int(64));
      input = i % 8 === 3 ? new Uint8Array([...PROXY_V2_SIGNATURE, ...body]) : body;
    } else {
      const b = seeds[int(seeds.length)]!.slice();
      const edits = 1 + int(4);
      let out: Uint8Array = b;
      for (let e = 0; e < edits; e++) {
        const k = int(4);
        if (k === 0 && out.length > 0) out[int(out.length)] = int(256);
        else if (k === 1) out = out.subarray(0, int(out.length + 1));
        else if (k === 2) out = new Uint8Array([...out, ...bytes(int(16))]);
        else if (out.length > 15) {
          // Length field edits reach the bounds checks directly.
          out[14] = int(256);
          out[15] = int(256);
        }
      }
      input = out;
    }
    const r = parseProxyHeader(input);
    counts[r.kind]++;
    if (r.kind === "header") {
      assert.ok(r.consumed > 0 && r.consumed <= input.length, `case ${i}`);
      assert.ok(r.consumed <= Math.max(16 + MAX_PROXY_V2_LENGTH, MAX_PROXY_V1_BYTES), `case ${i}`);
      // A header that parses formats back to the same bytes (v2 PROXY/LOCAL STREAM).
      const h = r.header;
      if (h.version === 2 && (input[13]! & 0x0f) === (h.family === "unspec" ? 0 : 1)) {
        const again = formatProxyHeaderV2({
          command: h.command,
          ...(h.source ? { source: h.source, destination: h.destination! } : {}),
          tlvs: h.tlvs,
        });
        if (h.family !== "unspec") {
          assert.deepEqual(again, input.subarray(0, r.consumed), `case ${i}`);
        }
      }
    } else if (r.kind === "error") {
      assert.equal(typeof r.reason, "string", `case ${i}`);
      assert.ok(r.reason.length > 0, `case ${i}`);
    } else {
      assert.ok(input.length < 16 + MAX_PROXY_V2_LENGTH, `case ${i}: incomplete past the bound`);
    }
  }
  // Every kind of result is reached, so the mutations exercise all branches.
  assert.ok(
    counts.incomplete > 1000 && counts.error > 1000 && counts.header > 1000,
    JSON.stringify(counts),
  );
});
