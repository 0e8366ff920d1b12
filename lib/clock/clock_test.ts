import assert from "node:assert/strict";
import { FakeClock } from "./mod.ts";

Deno.test("FakeClock.sleep() resolves only once time is advanced past it", async () => {
  const clock = new FakeClock(0);
  let woke = false;
  const p = clock.sleep(100).then(() => woke = true);
  clock.advance(99);
  await Promise.resolve();
  assert.equal(woke, false);
  clock.advance(1);
  await p;
  assert.equal(woke, true);
  assert.equal(clock.now().getTime(), 100);
});

Deno.test("FakeClock.sleep() rejects when its signal aborts", async () => {
  const clock = new FakeClock(0);
  const ac = new AbortController();
  const p = clock.sleep(100, ac.signal);
  ac.abort(new Error("stop"));
  await assert.rejects(p, /stop/);
  assert.equal(clock.sleepers, 0);
});
