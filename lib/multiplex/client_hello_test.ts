import assert from "node:assert/strict";
import {
  type ClientHello,
  MAX_CLIENT_HELLO_BYTES,
  MAX_CLIENT_HELLO_RECORDS,
  parseClientHello,
} from "./client_hello.ts";

const capture = (name: string) => Deno.readFile(new URL(`./testdata/${name}`, import.meta.url));

function ok(data: Uint8Array): ClientHello {
  const r = parseClientHello(data);
  assert.equal(r.kind, "ok", r.kind === "error" ? r.reason : "incomplete");
  return (r as { hello: ClientHello }).hello;
}

function error(data: Uint8Array): string {
  const r = parseClientHello(data);
  assert.equal(r.kind, "error");
  return (r as { reason: string }).reason;
}

/** Record-layer header (RFC 8446 §5.1) for a handshake fragment. */
function record(fragment: Uint8Array, version = 0x0301): Uint8Array {
  const out = new Uint8Array(5 + fragment.length);
  out.set([0x16, version >> 8, version & 0xff, fragment.length >> 8, fragment.length & 0xff]);
  out.set(fragment, 5);
  return out;
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The handshake message carried by a capture (record headers removed). */
function handshakeOf(wire: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let pos = 0;
  while (pos + 5 <= wire.length) {
    const len = (wire[pos + 3]! << 8) | wire[pos + 4]!;
    parts.push(wire.subarray(pos + 5, pos + 5 + len));
    pos += 5 + len;
  }
  return cat(...parts);
}

/** Re-splits a handshake message into records of `size` bytes. */
function fragment(message: Uint8Array, size: number): Uint8Array {
  const records: Uint8Array[] = [];
  for (let i = 0; i < message.length; i += size) {
    records.push(record(message.subarray(i, i + size)));
  }
  return cat(...records);
}

const u16 = (n: number) => [n >> 8, n & 0xff];
const vec8 = (b: number[]) => [b.length, ...b];
const vec16 = (b: number[]) => [...u16(b.length), ...b];
const ascii = (s: string) => Array.from(new TextEncoder().encode(s));

interface HelloParts {
  version?: number;
  sessionId?: number[];
  suites?: number[];
  compression?: number[];
  /** [type, data] pairs, or undefined for no extensions block at all. */
  extensions?: Array<[number, number[]]>;
  /** The bytes inside the extensions vector, as given (instead of `extensions`). */
  rawExtensions?: number[];
}

/** Builds a ClientHello handshake message (RFC 8446 §4.1.2) from parts. */
function helloMessage(p: HelloParts = {}): Uint8Array {
  const body = [
    ...u16(p.version ?? 0x0303),
    ...new Array(32).fill(7),
    ...vec8(p.sessionId ?? []),
    ...vec16((p.suites ?? [0x1301]).flatMap(u16)),
    ...vec8(p.compression ?? [0]),
  ];
  if (p.extensions !== undefined) {
    body.push(...vec16(p.extensions.flatMap(([t, d]) => [...u16(t), ...vec16(d)])));
  }
  if (p.rawExtensions !== undefined) body.push(...vec16(p.rawExtensions));
  return Uint8Array.from([
    1,
    body.length >> 16,
    (body.length >> 8) & 0xff,
    body.length & 0xff,
    ...body,
  ]);
}

const sniExt = (name: string): [number, number[]] => [0, vec16([0, ...vec16(ascii(name))])];
const alpnExt = (...names: string[]): [number, number[]] => [
  16,
  vec16(names.flatMap((n) => vec8(ascii(n)))),
];

Deno.test("parseClientHello() reads SNI and ALPN from openssl s_client", async () => {
  const hello = ok(await capture("openssl_s_client.bin"));
  assert.equal(hello.serverName, "proxy.example.com");
  assert.deepEqual(hello.alpn, ["teleport-proxy-ssh", "http/1.1"]);
  assert.equal(hello.legacyVersion, 0x0303);
  assert.equal(hello.tlsVersion, 0x0304);
  assert.ok(hello.supportedVersions.includes(0x0303));
  assert.ok(hello.cipherSuites.includes(0x1301));
  assert.equal(hello.byteLength, 357);
});

Deno.test("parseClientHello() reads a ClientHello from Deno.connectTls", async () => {
  const hello = ok(await capture("deno_connect_tls.bin"));
  assert.equal(hello.serverName, "localhost");
  assert.deepEqual(hello.alpn, ["teleport-proxy-ssh", "h2", "http/1.1"]);
  assert.equal(hello.tlsVersion, 0x0304);
});

Deno.test("parseClientHello() reads a ClientHello from Deno.startTls", async () => {
  const hello = ok(await capture("deno_start_tls.bin"));
  assert.equal(hello.serverName, "6331.teleport.cluster.local");
  assert.deepEqual(hello.alpn, ["teleport-auth@6331.teleport.cluster.local"]);
});

Deno.test("parseClientHello() reads a ClientHello from node:tls", async () => {
  const hello = ok(await capture("node_tls.bin"));
  assert.equal(hello.serverName, "proxy.example.com");
  assert.deepEqual(hello.alpn, ["teleport-reversetunnelv2", "teleport-reversetunnel"]);
});

Deno.test("parseClientHello() joins a ClientHello spread over two records", async () => {
  const wire = await capture("openssl_big_alpn.bin");
  const hello = ok(wire);
  assert.equal(hello.serverName, "big.example.com");
  assert.equal(hello.alpn.length, 81);
  assert.equal(hello.alpn[80], "http/1.1");
  assert.equal(hello.byteLength, wire.length);
  // Every cut inside the first record or the second says incomplete.
  for (const cut of [0, 1, 5, 16389, 16390, 16394, wire.length - 1]) {
    assert.deepEqual(parseClientHello(wire.subarray(0, cut)), { kind: "incomplete" }, `${cut}`);
  }
});

Deno.test("parseClientHello() says incomplete for every prefix of a capture", async () => {
  for (const name of ["openssl_s_client.bin", "deno_start_tls.bin", "node_tls.bin"]) {
    const wire = await capture(name);
    for (let n = 0; n < wire.length; n++) {
      assert.deepEqual(
        parseClientHello(wire.subarray(0, n)),
        { kind: "incomplete" },
        `${name}@${n}`,
      );
    }
    assert.equal(parseClientHello(wire).kind, "ok");
  }
});

Deno.test("parseClientHello() reassembles a ClientHello fragmented into small records", async () => {
  const message = handshakeOf(await capture("node_tls.bin"));
  const wire = fragment(message, 7);
  const hello = ok(wire);
  assert.equal(hello.serverName, "proxy.example.com");
  assert.equal(hello.byteLength, wire.length);
  for (let n = 0; n < wire.length; n += 3) {
    assert.equal(parseClientHello(wire.subarray(0, n)).kind, "incomplete", `${n}`);
  }
});

Deno.test("parseClientHello() ignores bytes after the ClientHello", async () => {
  const wire = await capture("openssl_s_client.bin");
  const hello = ok(cat(wire, Uint8Array.of(0x14, 0x03, 0x03, 0, 1, 1, 0xff)));
  assert.equal(hello.byteLength, wire.length);
});

Deno.test("parseClientHello() accepts a TLS 1.2 ClientHello without extensions", () => {
  const hello = ok(record(helloMessage({ version: 0x0303, suites: [0xc02f, 0x009c] })));
  assert.deepEqual(hello.alpn, []);
  assert.equal(hello.serverName, undefined);
  assert.equal(hello.tlsVersion, 0x0303);
  assert.deepEqual(hello.cipherSuites, [0xc02f, 0x009c]);
});

Deno.test("parseClientHello() skips GREASE and unknown extensions", () => {
  const hello = ok(record(helloMessage({
    extensions: [
      [0x0a0a, []],
      sniExt("a.example.com"),
      [43, vec8([0x3a, 0x3a, 0x03, 0x04, 0x03, 0x03])],
      [0xfe0d, [1, 2, 3]],
      alpnExt("h2", "http/1.1"),
    ],
  })));
  assert.equal(hello.serverName, "a.example.com");
  assert.deepEqual(hello.alpn, ["h2", "http/1.1"]);
  assert.deepEqual(hello.supportedVersions, [0x0304, 0x0303]);
  assert.equal(hello.tlsVersion, 0x0304);
});

Deno.test("parseClientHello() returns an error for malformed input", async (t) => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["an alert record", Uint8Array.of(0x15, 0x03, 0x03, 0, 2, 2, 40), /not a handshake/],
    ["an SSLv2 hello", Uint8Array.of(0x80, 0x2e, 0x01, 0x00, 0x02), /not a handshake/],
    ["a record version 0x02", Uint8Array.of(0x16, 0x02, 0x00), /protocol version/],
    ["an empty record", Uint8Array.of(0x16, 0x03, 0x01, 0, 0), /empty/],
    ["a record over 16 KiB", Uint8Array.of(0x16, 0x03, 0x01, 0x40, 0x01), /16384/],
    ["a ServerHello", record(Uint8Array.of(2, 0, 0, 0)), /type 2/],
    ["a ServerHello type byte alone", record(Uint8Array.of(2)), /type 2/],
    ["a ClientHello over 64 KiB", record(Uint8Array.of(1, 0x01, 0x00, 0x00)), /64 KiB/],
    ["a non-TLS legacy_version", record(helloMessage({ version: 0x0200 })), /legacy_version/],
    ["a session id of 33 bytes", record(helloMessage({ sessionId: new Array(33).fill(1) })), /32/],
    ["no cipher suites", record(helloMessage({ suites: [] })), /cipher_suites/],
    ["no compression methods", record(helloMessage({ compression: [] })), /compression/],
    [
      "a duplicated extension",
      record(helloMessage({ extensions: [alpnExt("h2"), alpnExt("h2")] })),
      /twice/,
    ],
    ["an empty ALPN list", record(helloMessage({ extensions: [[16, [0, 0]]] })), /empty/],
    ["an empty ALPN name", record(helloMessage({ extensions: [[16, [0, 1, 0]]] })), /empty/],
    [
      "an ALPN name past its list",
      record(helloMessage({ extensions: [[16, [0, 2, 5, 0x61]]] })),
      /past the end/,
    ],
    [
      "a non-ASCII host name",
      record(helloMessage({ extensions: [[0, vec16([0, ...vec16([0xc3, 0xa9])])]] })),
      /ASCII/,
    ],
    [
      "an extension longer than the block",
      record(helloMessage({ rawExtensions: [0, 16, 0, 10, 0, 2] })),
      /past the end/,
    ],
    [
      "trailing bytes after the extensions",
      (() => {
        const m = helloMessage({ extensions: [alpnExt("h2")] });
        const bigger = cat(m, Uint8Array.of(0));
        bigger[3] = bigger[3]! + 1; // body length covers the stray byte
        return record(bigger);
      })(),
      /trailing/,
    ],
    [
      "another record type between fragments",
      cat(record(helloMessage().subarray(0, 10)), Uint8Array.of(0x17, 0x03, 0x03, 0, 1, 0)),
      /record 2 is not a handshake/,
    ],
  ];
  for (const [name, data, reason] of cases) {
    await t.step(name, () => assert.match(error(data), reason));
  }
});

Deno.test("parseClientHello() limits the number of records", async () => {
  const message = handshakeOf(await capture("node_tls.bin"));
  const reason = error(fragment(message, 1));
  assert.match(reason, new RegExp(`more than ${MAX_CLIENT_HELLO_RECORDS} records`));
});

Deno.test("parseClientHello() accepts a ClientHello of exactly 64 KiB", () => {
  // 4 + 2 + 32 + 1 + 4 + 2 + 2 = 47 bytes before the extension payload; 4 bytes per extension.
  const pad = MAX_CLIENT_HELLO_BYTES - 47 - 4;
  const message = helloMessage({ extensions: [[21, new Array(pad).fill(0)]] });
  assert.equal(message.length, MAX_CLIENT_HELLO_BYTES);
  assert.equal(ok(fragment(message, 16384)).alpn.length, 0);
  const over = helloMessage({ extensions: [[21, new Array(pad + 1).fill(0)]] });
  assert.match(error(fragment(over, 16384)), /64 KiB/);
});
