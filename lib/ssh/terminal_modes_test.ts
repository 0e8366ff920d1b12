import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import { encodeTerminalModes, parseTerminalModes } from "./terminal_modes.ts";

Deno.test("encodeTerminalModes() round-trips through parseTerminalModes()", () => {
  const modes = { VINTR: 3, ECHO: 1, IUTF8: 1, TTY_OP_ISPEED: 38400 };
  const bytes = encodeTerminalModes(modes);
  assert.deepEqual(
    [...bytes.subarray(0, 5)],
    [1, 0, 0, 0, 3], // VINTR, uint32 3
  );
  assert.equal(bytes.at(-1), 0); // TTY_OP_END
  assert.deepEqual(parseTerminalModes(bytes), modes);
});

Deno.test("parseTerminalModes() skips unknown opcodes and stops at 160 or TTY_OP_END", () => {
  const bytes = new Uint8Array([
    ...[99, 0, 0, 0, 7], // unknown opcode below 160: skipped
    ...[53, 0, 0, 0, 1], // ECHO 1
    ...[160, 1, 2, 3], // undefined opcode: stop
    ...[51, 0, 0, 0, 1],
  ]);
  assert.deepEqual(parseTerminalModes(bytes), { ECHO: 1 });
  assert.deepEqual(parseTerminalModes(new Uint8Array([0, 53, 0, 0, 0, 1])), {});
  assert.deepEqual(parseTerminalModes(new Uint8Array([])), {});
});

Deno.test("parseTerminalModes() throws when an argument is truncated", () => {
  assert.throws(() => parseTerminalModes(new Uint8Array([53, 0, 0])), BadParameterError);
});

Deno.test("encodeTerminalModes() throws for an unknown name", () => {
  assert.throws(() => encodeTerminalModes({ NOPE: 1 }), BadParameterError);
});
