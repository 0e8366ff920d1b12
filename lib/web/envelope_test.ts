import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";
import { parseTerminalParams } from "./terminal.ts";

Deno.test("encodeEnvelope() writes protobuf fields 1-3 and decodeEnvelope() reads them back", () => {
  const bytes = encodeEnvelope({ version: "1", type: "r", payload: "héllo" });
  // field 1 "1", field 2 "r", field 3 "héllo" (6 bytes of UTF-8)
  assert.deepEqual(
    [...bytes],
    [0x0a, 1, 0x31, 0x12, 1, 0x72, 0x1a, 6, 0x68, 0xc3, 0xa9, 0x6c, 0x6c, 0x6f],
  );
  assert.deepEqual(decodeEnvelope(bytes), { version: "1", type: "r", payload: "héllo" });
  const long = "x".repeat(300);
  assert.equal(
    decodeEnvelope(encodeEnvelope({ version: "1", type: "r", payload: long })).payload,
    long,
  );
});

Deno.test("decodeEnvelope() skips unknown fields and refuses truncated frames", () => {
  // field 9 varint 150, then field 2 "w"
  assert.equal(decodeEnvelope(Uint8Array.from([0x48, 0x96, 0x01, 0x12, 1, 0x77])).type, "w");
  assert.throws(() => decodeEnvelope(Uint8Array.from([0x1a, 5, 0x61])), /runs past the end/);
  assert.throws(() => decodeEnvelope(Uint8Array.from([0x0b])), /wire type 3/);
});

Deno.test("parseTerminalParams() validates every field before anything is dialled", () => {
  const ok = parseTerminalParams(
    JSON.stringify({ server_id: "node-1", login: "alice", term: { w: 80, h: 24 } }),
  );
  assert.deepEqual(ok, { server_id: "node-1", login: "alice", term: { w: 80, h: 24 } });
  const bad: unknown[] = [
    null,
    "{",
    { server_id: "../x", login: "alice", term: { w: 80, h: 24 } },
    { server_id: "n", login: "a b", term: { w: 80, h: 24 } },
    { server_id: "n", login: "alice", term: { w: 0, h: 24 } },
    { server_id: "n", login: "alice", term: { w: 80, h: 5000 } },
    { server_id: "n", login: "alice", term: { w: 80, h: 24 }, sid: "../../etc" },
    { server_id: "n", login: "alice", term: { w: 80, h: 24 }, mode: "moderator" },
  ];
  for (const p of bad) {
    assert.throws(
      () => parseTerminalParams(p === null ? null : typeof p === "string" ? p : JSON.stringify(p)),
      /^BadParameterError: Cannot open the terminal: /,
      JSON.stringify(p),
    );
  }
});
