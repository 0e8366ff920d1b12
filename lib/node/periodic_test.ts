import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import { backoffDelay, runPeriodic } from "./periodic.ts";

Deno.test("backoffDelay() doubles up to the cap, jittered within [d/2, d]", () => {
  const o = { minMs: 1000, maxMs: 8000 };
  assert.equal(backoffDelay(1, { ...o, random: () => 0 }), 500);
  assert.equal(backoffDelay(1, { ...o, random: () => 0.999999 }), 1000);
  assert.equal(backoffDelay(3, { ...o, random: () => 0.999999 }), 4000);
  assert.equal(backoffDelay(10, { ...o, random: () => 0.999999 }), 8000);
});

Deno.test("runPeriodic() retries a failing task with backoff, then resumes the interval", async () => {
  const clock = new FakeClock();
  const ac = new AbortController();
  const runs: number[] = [];
  let fail = 2;
  const tick = () => new Promise((r) => setTimeout(r, 0));
  const done = runPeriodic({
    name: "test task",
    intervalMs: 60_000,
    backoffMinMs: 1000,
    backoffMaxMs: 30_000,
    random: () => 0.999999,
    clock,
    logger: getComponentLogger("node:test"),
    signal: ac.signal,
    task: () => {
      runs.push(clock.now().getTime());
      return fail-- > 0 ? Promise.reject(new Error("auth down")) : Promise.resolve();
    },
  });
  const t0 = clock.now().getTime();
  for (const step of [1000, 2000, 60_000]) {
    await tick(); // let the loop reach its sleep
    clock.advance(step);
  }
  await tick();
  assert.deepEqual(runs.map((t) => t - t0), [0, 1000, 3000, 63_000]);
  ac.abort();
  await done;
});

Deno.test("runPeriodic() runs up to a seventh of the interval early, at random", async () => {
  const clock = new FakeClock();
  const ac = new AbortController();
  const runs: number[] = [];
  const tick = () => new Promise((r) => setTimeout(r, 0));
  const done = runPeriodic({
    name: "test task",
    intervalMs: 70_000,
    random: () => 0.999999,
    clock,
    logger: getComponentLogger("node:test"),
    signal: ac.signal,
    task: () => {
      runs.push(clock.now().getTime());
      return Promise.resolve();
    },
  });
  const t0 = clock.now().getTime();
  await tick();
  clock.advance(60_000); // 70 s less a seventh: a fleet started together drifts apart
  await tick();
  assert.deepEqual(runs.map((t) => t - t0), [0, 60_000]);
  ac.abort();
  await done;
});
