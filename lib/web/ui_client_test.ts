// The browser modules' pure functions, run in Deno (they are plain ES modules).
import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope } from "./static/app/tty.js";
import { safeRedirect } from "./static/app/api.js";
import { labelQuery } from "./static/app/resources.js";
import { plainKeyText } from "./static/app/keys.js";

Deno.test("encodeEnvelope() writes protobuf fields 1-3 that decodeEnvelope() reads back", () => {
  const bytes = encodeEnvelope("r", "ls -l\r");
  assert.deepEqual(
    [...bytes],
    [0x0a, 1, 0x31, 0x12, 1, 0x72, 0x1a, 6, ...new TextEncoder().encode("ls -l\r")],
  );
  const big = new Uint8Array(300).fill(0xff); // not UTF-8: bytes pass through as they are
  const env = decodeEnvelope(encodeEnvelope("r", big));
  assert.equal(env.version, "1");
  assert.equal(env.type, "r");
  assert.deepEqual(env.payload, big);
});

Deno.test("decodeEnvelope() skips unknown fields and refuses cut-short input", () => {
  // field 4 varint 150, then type "c"
  const env = decodeEnvelope(new Uint8Array([0x20, 0x96, 0x01, 0x12, 1, 0x63]));
  assert.equal(env.type, "c");
  assert.equal(env.payload.length, 0);
  assert.throws(() => decodeEnvelope(new Uint8Array([0x1a, 5, 1, 2])), /cut short/);
  assert.throws(() => decodeEnvelope(new Uint8Array([0x0a])), /cut short/);
});

Deno.test("safeRedirect() follows only paths of the web UI", () => {
  assert.equal(safeRedirect("/web/cluster/a/audit?x=1"), "/web/cluster/a/audit?x=1");
  assert.equal(safeRedirect("/web"), "/web");
  for (
    const bad of [
      "//evil.example/web",
      "https://evil.example/web",
      "/\\evil.example",
      "/web\\..\\x",
      "/webapi/x",
      "/webevil",
      "javascript:alert(1)",
      null,
    ]
  ) {
    assert.equal(safeRedirect(bad), "/web", String(bad));
  }
});

Deno.test("labelQuery() turns name=value pairs into the API's predicate", () => {
  assert.equal(labelQuery(""), "");
  assert.equal(labelQuery("env=prod"), 'labels["env"] == "prod"');
  assert.equal(
    labelQuery(' env = prod , team="x" '),
    'labels["env"] == "prod" && labels["team"] == "\\"x\\""',
  );
  assert.equal(labelQuery("env"), null);
});

Deno.test("plainKeyText() takes plain characters from a keydown and leaves the rest to xterm", () => {
  const key = (k: string, more: Record<string, unknown> = {}) => ({
    type: "keydown",
    key: k,
    ctrlKey: false,
    altKey: false,
    metaKey: false,
    ...more,
  });
  for (const k of ["a", "Z", " ", "é", "€", "~", "😀"]) assert.equal(plainKeyText(key(k)), k);
  for (
    const k of ["Enter", "Backspace", "Tab", "Escape", "Dead", "Shift", "ArrowUp", "F1", "\x7f"]
  ) {
    assert.equal(plainKeyText(key(k)), undefined, k);
  }
  for (const mod of ["ctrlKey", "altKey", "metaKey"]) {
    assert.equal(plainKeyText(key("c", { [mod]: true })), undefined, mod);
  }
  assert.equal(plainKeyText(key("a", { type: "keypress" })), undefined);
  assert.equal(plainKeyText(key("a", { isComposing: true })), undefined);
  assert.equal(plainKeyText(key("a", { keyCode: 229 })), undefined);
  assert.equal(plainKeyText(key("e"), { afterDeadKey: true }), undefined);
  assert.equal(plainKeyText(key("a"), { screenReader: true }), undefined);
  // macOS: upper-case letters keep xterm's keypress path (its caps-lock fix for input methods).
  assert.equal(plainKeyText(key("A"), { isMac: true }), undefined);
  assert.equal(plainKeyText(key("a"), { isMac: true }), "a");
});
