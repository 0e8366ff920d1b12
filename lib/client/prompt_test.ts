import assert from "node:assert/strict";
import { LinePrompter, type PromptInput } from "./prompt.ts";

/** Input that serves `chunks` one per read, then EOF. */
function input(chunks: string[], terminal = false): PromptInput & { raw: boolean[] } {
  const enc = new TextEncoder();
  const queue = chunks.map((c) => enc.encode(c));
  const raw: boolean[] = [];
  return {
    raw,
    isTerminal: () => terminal,
    setRaw: (mode: boolean) => void raw.push(mode),
    read(p: Uint8Array) {
      const next = queue.shift();
      if (next === undefined) return Promise.resolve(null);
      p.set(next);
      return Promise.resolve(next.length);
    },
  };
}

function output(): { writeSync(p: Uint8Array): number; text(): string } {
  let text = "";
  return {
    writeSync(p) {
      text += new TextDecoder().decode(p);
      return p.length;
    },
    text: () => text,
  };
}

Deno.test("LinePrompter reads answers as lines when stdin is not a terminal", async () => {
  const inp = input(["secret pass\ncode1", "23\n"]);
  const out = output();
  const p = new LinePrompter(inp, out);
  assert.equal(
    await p.prompt("Enter password for Teleport user alice:", { secret: true }),
    "secret pass",
  );
  assert.equal(await p.prompt("Enter your OTP token:", { secret: true }), "code123");
  assert.equal(out.text(), "Enter password for Teleport user alice: Enter your OTP token: ");
  assert.deepEqual(inp.raw, []);
});

Deno.test("LinePrompter takes a last line without newline and fails at the end of input", async () => {
  const p = new LinePrompter(input(["a\r\nb"]), output());
  assert.equal(await p.ask("q1", { secret: false }), "a");
  assert.equal(await p.ask("q2", { secret: false }), "b");
  await assert.rejects(
    p.ask("q3", { secret: true }),
    /Cannot read the answer to "q3": standard input ended/,
  );
});

Deno.test("LinePrompter reads a secret on a terminal in raw mode without echo", async () => {
  const inp = input(["pw", "x\x7fd", "\r"], true);
  const out = output();
  const p = new LinePrompter(inp, out);
  assert.equal(await p.ask("Password:", { secret: true }), "pwd");
  assert.deepEqual(inp.raw, [true, false]);
  assert.equal(out.text(), "Password: \n");
});

Deno.test("LinePrompter restores the terminal when Ctrl-C interrupts a secret", async () => {
  const inp = input(["ab\x03"], true);
  await assert.rejects(
    new LinePrompter(inp, output()).ask("Password:", { secret: true }),
    /interrupted/,
  );
  assert.deepEqual(inp.raw, [true, false]);
});
