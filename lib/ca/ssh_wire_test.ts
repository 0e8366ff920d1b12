import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import { SshReader, SshWriter, UINT64_MAX } from "./ssh_wire.ts";

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

Deno.test("SshWriter.mpint() encodes the RFC 4251 §5 examples exactly", () => {
  const cases: Array<[bigint, string]> = [
    [0n, "00 00 00 00"],
    [0x9a378f9b2e332a7n, "00 00 00 08 09 a3 78 f9 b2 e3 32 a7"],
    [0x80n, "00 00 00 02 00 80"],
    [-0x1234n, "00 00 00 02 ed cc"],
    [-0xdeadbeefn, "00 00 00 05 ff 21 52 41 11"],
  ];
  for (const [value, want] of cases) {
    const bytes = new SshWriter().mpint(value).bytes();
    assert.equal(hex(bytes), want, `mpint ${value}`);
    const r = new SshReader(bytes);
    assert.equal(r.mpint(), value);
    r.end();
  }
});

Deno.test("SshWriter and SshReader round-trip every data type", () => {
  const bytes = new SshWriter()
    .byte(7)
    .boolean(true)
    .uint32(0xdeadbeef)
    .uint64(UINT64_MAX)
    .uint64(1n)
    .string("héllo")
    .string(new Uint8Array([0, 1, 2]))
    .mpintBytes(new Uint8Array([0xff, 0x01]))
    .nameList(["aes128-ctr", "aes256-ctr"])
    .nameList([])
    .raw(new Uint8Array([9, 9]))
    .bytes();
  const r = new SshReader(bytes);
  assert.equal(r.byte(), 7);
  assert.equal(r.boolean(), true);
  assert.equal(r.uint32(), 0xdeadbeef);
  assert.equal(r.uint64(), UINT64_MAX);
  assert.equal(r.uint64(), 1n);
  assert.equal(r.text(), "héllo");
  assert.deepEqual(r.string(), new Uint8Array([0, 1, 2]));
  assert.deepEqual(r.mpintBytes(), new Uint8Array([0xff, 0x01]));
  assert.deepEqual(r.nameList(), ["aes128-ctr", "aes256-ctr"]);
  assert.deepEqual(r.nameList(), []);
  assert.deepEqual(r.raw(2), new Uint8Array([9, 9]));
  assert.equal(r.remaining, 0);
  r.end();
});

Deno.test("SshWriter.mpintBytes() adds a zero byte when the high bit is set", () => {
  assert.equal(
    hex(new SshWriter().mpintBytes(new Uint8Array([0x80])).bytes()),
    "00 00 00 02 00 80",
  );
  assert.equal(
    hex(new SshWriter().mpintBytes(new Uint8Array([0, 0, 5])).bytes()),
    "00 00 00 01 05",
  );
});

Deno.test("SshReader throws BadParameterError when data is truncated", () => {
  const bytes = new SshWriter().string("abcdef").bytes();
  assert.throws(() => new SshReader(bytes.subarray(0, 3)).string(), BadParameterError);
  assert.throws(() => new SshReader(bytes.subarray(0, 8)).string(), /truncated string/);
  assert.throws(() => new SshReader(new Uint8Array(7)).uint64(), BadParameterError);
  assert.throws(() => new SshReader(new Uint8Array(0)).byte(), BadParameterError);
});

Deno.test("SshReader.end() throws when trailing data remains", () => {
  const r = new SshReader(new SshWriter().uint32(1).byte(0).bytes(), "test message");
  r.uint32();
  assert.throws(() => r.end(), /Cannot parse test message: 1 bytes of trailing data/);
});

Deno.test("SshReader.text() rejects invalid UTF-8", () => {
  const bytes = new SshWriter().string(new Uint8Array([0xc3, 0x28])).bytes();
  assert.throws(() => new SshReader(bytes).text(), BadParameterError);
});

Deno.test("SshReader.mpintBytes() rejects negative values and strips leading zeros", () => {
  assert.throws(() => new SshReader(new SshWriter().mpint(-5n).bytes()).mpintBytes(), /negative/);
  const padded = new SshWriter().string(new Uint8Array([0, 0, 0x7f])).bytes();
  assert.deepEqual(new SshReader(padded).mpintBytes(), new Uint8Array([0x7f]));
});

Deno.test("SshWriter rejects out-of-range numbers and bad name-list entries", () => {
  assert.throws(() => new SshWriter().uint32(-1), BadParameterError);
  assert.throws(() => new SshWriter().uint32(2 ** 32), BadParameterError);
  assert.throws(() => new SshWriter().uint64(UINT64_MAX + 1n), BadParameterError);
  assert.throws(() => new SshWriter().byte(256), BadParameterError);
  assert.throws(() => new SshWriter().nameList(["a,b"]), BadParameterError);
  assert.throws(() => new SshWriter().nameList([""]), BadParameterError);
});
