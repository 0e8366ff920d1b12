import assert from "node:assert/strict";
import type { RecordingRecord } from "../events/mod.ts";
import { playbackDelay, playRecording, terminalResizeSequence } from "./play.ts";

async function* records(list: RecordingRecord[]): AsyncGenerator<RecordingRecord> {
  for (const r of list) yield r;
}
const enc = new TextEncoder();

Deno.test("playbackDelay() scales gaps by the speed and caps idle time", () => {
  assert.equal(playbackDelay(0, 500, 1, 2000), 500);
  assert.equal(playbackDelay(0, 500, 2, 2000), 250);
  assert.equal(playbackDelay(1000, 61_000, 1, 2000), 2000);
  assert.equal(playbackDelay(500, 400, 1, 2000), 0);
});

Deno.test("playRecording() writes output at the recorded pace with an injected sleep", async () => {
  const slept: number[] = [];
  const written: string[] = [];
  const result = await playRecording({
    records: records([
      { t: 0, type: "print", data: enc.encode("a") },
      { t: 100, type: "resize", cols: 100, rows: 30 },
      { t: 300, type: "print", data: enc.encode("b") },
      { t: 100_300, type: "print", data: enc.encode("c") },
      { t: 100_301, type: "end" },
    ]),
    write: (d) => void written.push(new TextDecoder().decode(d)),
    sleep: (ms) => {
      slept.push(ms);
      return Promise.resolve();
    },
    speed: 2,
  });
  assert.deepEqual(written, ["a", "\x1b[8;30;100t", "b", "c"]);
  assert.deepEqual(slept, [50, 100, 2000]);
  assert.deepEqual(result, { prints: 3, bytes: 3, resizes: 1, sleptMs: 2150 });
});

Deno.test("playRecording() sets the initial size and each recorded resize when they happen", async () => {
  const written: string[] = [];
  const result = await playRecording({
    records: records([
      { t: 0, type: "print", data: enc.encode("$ ") },
      { t: 10, type: "resize", cols: 132, rows: 43 },
      { t: 20, type: "resize", cols: 0, rows: 0 },
      { t: 30, type: "print", data: enc.encode("wide") },
    ]),
    write: (d) => void written.push(new TextDecoder().decode(d)),
    sleep: () => Promise.resolve(),
    initialSize: { cols: 80, rows: 24 },
  });
  assert.deepEqual(written, ["\x1b[8;24;80t", "$ ", "\x1b[8;43;132t", "wide"]);
  assert.equal(result.resizes, 2);
  assert.deepEqual(terminalResizeSequence(100, 30), new TextEncoder().encode("\x1b[8;30;100t"));
});

Deno.test("playRecording() refuses a speed that is not positive", async () => {
  await assert.rejects(
    playRecording({
      records: records([]),
      write: () => {},
      sleep: () => Promise.resolve(),
      speed: 0,
    }),
    /Cannot play at speed 0/,
  );
});
