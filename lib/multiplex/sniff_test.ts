import assert from "node:assert/strict";
import { HTTP_METHODS, MAX_SNIFF_BYTES, PROXY_V2_SIGNATURE, sniffProtocol } from "./sniff.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("sniffProtocol() recognises SSH, TLS, HTTP and PROXY headers", () => {
  assert.equal(sniffProtocol(bytes("SSH-2.0-OpenSSH_9.2\r\n")), "ssh");
  assert.equal(sniffProtocol(bytes("SSH-")), "ssh");
  for (const minor of [0, 1, 2, 3, 4]) {
    assert.equal(sniffProtocol(Uint8Array.of(0x16, 0x03, minor)), "tls", `minor ${minor}`);
  }
  assert.equal(sniffProtocol(Uint8Array.of(0x16, 0x03, 0x01, 0x01, 0x60, 0x01)), "tls");
  for (const m of HTTP_METHODS) {
    assert.equal(sniffProtocol(bytes(`${m} / HTTP/1.1\r\n`)), "http", m);
  }
  assert.equal(sniffProtocol(bytes("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n")), "proxy-v1");
  const v2 = new Uint8Array(16);
  v2.set(PROXY_V2_SIGNATURE);
  v2.set([0x21, 0x11, 0x00, 0x0c], 12);
  assert.equal(sniffProtocol(v2), "proxy-v2");
});

Deno.test("sniffProtocol() says incomplete while the bytes could still be a protocol", () => {
  for (
    const s of [
      "",
      "S",
      "SS",
      "SSH",
      "G",
      "GE",
      "GET",
      "P",
      "PU",
      "PUT",
      "PR",
      "PROXY",
      "CONNEC",
      "OPTIONS",
    ]
  ) {
    assert.equal(sniffProtocol(bytes(s)), "incomplete", JSON.stringify(s));
  }
  assert.equal(sniffProtocol(Uint8Array.of(0x16)), "incomplete");
  assert.equal(sniffProtocol(Uint8Array.of(0x16, 0x03)), "incomplete");
  for (let n = 1; n < PROXY_V2_SIGNATURE.length; n++) {
    assert.equal(sniffProtocol(PROXY_V2_SIGNATURE.subarray(0, n)), "incomplete", `v2 ${n}`);
  }
});

Deno.test("sniffProtocol() says unknown when no protocol fits", () => {
  assert.equal(sniffProtocol(bytes("SSH2")), "unknown");
  assert.equal(sniffProtocol(bytes("get / HTTP/1.1")), "unknown");
  assert.equal(sniffProtocol(bytes("GET/")), "unknown");
  assert.equal(sniffProtocol(bytes("PROXY\r\n")), "unknown");
  assert.equal(sniffProtocol(bytes("hello")), "unknown");
  assert.equal(sniffProtocol(Uint8Array.of(0x16, 0x03, 0x05)), "unknown");
  assert.equal(sniffProtocol(Uint8Array.of(0x16, 0x02)), "unknown");
  assert.equal(sniffProtocol(Uint8Array.of(0x80, 0x2e, 0x01)), "unknown"); // SSLv2 hello
  assert.equal(sniffProtocol(Uint8Array.of(0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f)), "unknown"); // Postgres
  assert.equal(sniffProtocol(Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x01)), "unknown");
});

Deno.test("sniffProtocol() decides every input of MAX_SNIFF_BYTES bytes", () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256;
  const starts = [bytes("SSH-"), bytes("PROXY "), bytes("GET "), Uint8Array.of(0x16, 0x03, 0x03)];
  for (let i = 0; i < 2000; i++) {
    const data = Uint8Array.from({ length: MAX_SNIFF_BYTES }, rand);
    if (i % 2 === 0) data.set(starts[i % starts.length]!.subarray(0, 1 + (i % 3)));
    assert.notEqual(sniffProtocol(data), "incomplete");
  }
  assert.notEqual(sniffProtocol(PROXY_V2_SIGNATURE), "incomplete");
});
