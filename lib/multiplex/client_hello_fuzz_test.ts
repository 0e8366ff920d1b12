/**
 * Fuzz and property tests of the first-bytes parsers: {@link parseClientHello} and
 * {@link sniffProtocol}. Corpus: the real captures in testdata/ plus generated ClientHellos.
 */
import assert from "node:assert/strict";
import { fuzz, invariant, Rng } from "../testing/mod.ts";
import { type ClientHelloResult, parseClientHello } from "./client_hello.ts";
import { MAX_SNIFF_BYTES, sniffProtocol, type SniffResult } from "./sniff.ts";

const CAPTURES = [
  "openssl_s_client.bin",
  "deno_connect_tls.bin",
  "deno_start_tls.bin",
  "node_tls.bin",
  "openssl_big_alpn.bin",
];
const corpus = await Promise.all(
  CAPTURES.map((name) => Deno.readFile(new URL(`./testdata/${name}`, import.meta.url))),
);

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const vec8 = (b: number[]) => [b.length & 0xff, ...b];
const vec16 = (b: number[]) => [...u16(b.length), ...b];
const ascii = (s: string) => Array.from(new TextEncoder().encode(s));
const GREASE = [0x0a0a, 0x1a1a, 0x2a2a, 0xfafa];

/** A printable ASCII token of 1–`max` characters. */
function token(rng: Rng, max: number): string {
  const n = 1 + rng.int(max);
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(0x21 + rng.int(94));
  return s;
}

/** What {@link generateHello} put into the message. */
interface Generated {
  wire: Uint8Array;
  messageLength: number;
  serverName?: string;
  alpn: string[];
  versions: number[];
}

/** A well-formed ClientHello (RFC 8446 §4.1.2) with random fields, split into random records. */
function generateHello(rng: Rng): Generated {
  const serverName = rng.chance(0.7) ? token(rng, 40) : undefined;
  const alpn = rng.chance(0.7) ? Array.from({ length: 1 + rng.int(5) }, () => token(rng, 30)) : [];
  const versions = rng.chance(0.6) ? [0x0304, 0x0303].slice(0, 1 + rng.int(2)) : [];
  const extensions: Array<[number, number[]]> = [];
  if (rng.chance(0.5)) extensions.push([rng.pick(GREASE), []]);
  if (serverName !== undefined) {
    extensions.push([0, vec16([0, ...vec16(ascii(serverName))])]);
  }
  if (alpn.length > 0) extensions.push([16, vec16(alpn.flatMap((n) => vec8(ascii(n))))]);
  if (versions.length > 0) {
    const list = [...(rng.chance(0.5) ? u16(rng.pick(GREASE)) : []), ...versions.flatMap(u16)];
    extensions.push([43, vec8(list)]);
  }
  if (rng.chance(0.5)) extensions.push([0xff00 + rng.int(200), Array.from(rng.bytes(rng.int(40)))]);
  for (let i = extensions.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [extensions[i], extensions[j]] = [extensions[j]!, extensions[i]!];
  }
  const suites = Array.from({ length: 1 + rng.int(8) }, () => rng.u32() & 0xffff);
  const body = [
    ...u16(0x0303),
    ...rng.bytes(32),
    ...vec8(Array.from(rng.bytes(rng.int(33)))),
    ...vec16(suites.flatMap(u16)),
    ...vec8([0]),
  ];
  if (extensions.length > 0 || rng.chance(0.5)) {
    body.push(...vec16(extensions.flatMap(([t, d]) => [...u16(t), ...vec16(d)])));
  }
  const message = [1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff, ...body];
  const records: number[] = [];
  for (let at = 0; at < message.length;) {
    const size = rng.chance(0.7) ? message.length - at : 1 + rng.int(message.length - at);
    records.push(0x16, 0x03, rng.pick([1, 3]), ...u16(size), ...message.slice(at, at + size));
    at += size;
  }
  return {
    wire: Uint8Array.from(records),
    messageLength: message.length,
    ...(serverName === undefined ? {} : { serverName }),
    alpn,
    versions,
  };
}

/** Checks the documented outcomes of one parse; returns the result for further checks. */
function checkParse(data: Uint8Array): ClientHelloResult {
  const r = parseClientHello(data);
  switch (r.kind) {
    case "incomplete":
      return r;
    case "error":
      invariant(typeof r.reason === "string" && r.reason !== "", "an error has a reason");
      // The parser turns anything but its own Malformed into this reason: that is a crash.
      invariant(!r.reason.startsWith("unexpected parser failure"), r.reason);
      return r;
    case "ok": {
      const h = r.hello;
      invariant(h.byteLength > 0 && h.byteLength <= data.length, "byteLength within the input");
      invariant(h.alpn.every((p) => p.length > 0), "ALPN names are non-empty");
      invariant(
        h.serverName === undefined || /^[\x21-\x7e]{1,255}$/.test(h.serverName),
        "server name is printable ASCII",
      );
      invariant(h.cipherSuites.length > 0, "at least one cipher suite");
      return r;
    }
    default:
      throw new Error(`unknown result ${JSON.stringify(r)}`);
  }
}

Deno.test("parseClientHello() survives 100k mutated captures and generated hellos", async () => {
  const kinds = { ok: 0, error: 0, incomplete: 0 };
  await fuzz({
    name: "parseClientHello()",
    corpus,
    dictionary: [
      Uint8Array.of(0x16, 0x03, 0x01),
      Uint8Array.of(0x16, 0x03, 0x03, 0x40, 0x00),
      Uint8Array.of(0x00, 0x10),
      Uint8Array.of(0x00, 0x00),
      Uint8Array.of(0x00, 0x2b),
      Uint8Array.of(0x0a, 0x0a),
      Uint8Array.of(0xff, 0xff),
    ],
    generators: [(rng) => generateHello(rng).wire],
    check(input, rng) {
      const r = checkParse(input);
      kinds[r.kind]++;
      if (r.kind === "ok") {
        // Bytes after the ClientHello do not change the answer.
        const head = input.subarray(0, r.hello.byteLength);
        assert.deepEqual(parseClientHello(head), r);
        if (rng.chance(0.2)) {
          const more = new Uint8Array(head.length + 8);
          more.set(head);
          more.set(rng.bytes(8), head.length);
          assert.deepEqual(parseClientHello(more), r);
        }
      } else if (r.kind === "incomplete" && input.length > 0) {
        // Incomplete is monotone: a shorter prefix cannot be an error or a result.
        const cut = rng.int(input.length);
        invariant(
          parseClientHello(input.subarray(0, cut)).kind === "incomplete",
          `prefix ${cut} of an incomplete input is incomplete`,
        );
      }
    },
  });
  // The mutations reach every outcome, not just early refusals.
  assert.ok(
    kinds.ok > 1000 && kinds.error > 1000 && kinds.incomplete > 1000,
    JSON.stringify(kinds),
  );
});

Deno.test("parseClientHello() reads back every field of generated ClientHellos", () => {
  const rng = new Rng(0x5eed);
  for (let i = 0; i < 5000; i++) {
    const g = generateHello(rng);
    const r = parseClientHello(g.wire);
    assert.equal(r.kind, "ok", `case ${i}: ${JSON.stringify(r)}`);
    if (r.kind !== "ok") continue;
    assert.equal(r.hello.serverName, g.serverName);
    assert.deepEqual(r.hello.alpn, g.alpn);
    assert.deepEqual(r.hello.supportedVersions, g.versions);
    assert.equal(r.hello.byteLength, g.wire.length);
    for (const cut of [0, 1 + rng.int(g.wire.length - 1)]) {
      assert.equal(parseClientHello(g.wire.subarray(0, cut)).kind, "incomplete", `cut ${cut}`);
    }
  }
});

const SNIFF_RESULTS: readonly SniffResult[] = [
  "ssh",
  "tls",
  "http",
  "proxy-v1",
  "proxy-v2",
  "unknown",
  "incomplete",
];

Deno.test("sniffProtocol() decides within 12 bytes and never changes its mind", async () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  await fuzz({
    name: "sniffProtocol()",
    corpus: [
      ...corpus.slice(0, 4),
      enc("SSH-2.0-OpenSSH_9.2\r\n"),
      enc("GET /webapi/ping HTTP/1.1\r\n"),
      enc("PROXY TCP4 127.0.0.1 127.0.0.2 1000 443\r\n"),
      Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21),
    ],
    dictionary: ["SSH-", "PROXY ", "POST ", "PATCH ", "\r\n", "\x16\x03"],
    maxLength: 64,
    check(input) {
      const r = sniffProtocol(input);
      invariant(SNIFF_RESULTS.includes(r), `known result ${r}`);
      if (input.length >= MAX_SNIFF_BYTES) invariant(r !== "incomplete", "decided by 12 bytes");
      for (let n = 0; n < Math.min(input.length, MAX_SNIFF_BYTES + 1); n++) {
        const early = sniffProtocol(input.subarray(0, n));
        invariant(
          early === "incomplete" || early === r,
          `prefix ${n} said ${early}, the whole input ${r}`,
        );
      }
    },
  });
});
