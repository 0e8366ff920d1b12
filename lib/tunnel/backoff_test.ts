import assert from "node:assert/strict";
import { Backoff } from "./backoff.ts";

Deno.test("Backoff.next() doubles the ceiling up to maxMs with half of it jittered", () => {
  const low = new Backoff({ baseMs: 1000, maxMs: 8000, random: () => 0 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => low.next()), [500, 1000, 2000, 4000, 4000]);
  const high = new Backoff({ baseMs: 1000, maxMs: 8000, random: () => 0.999 });
  const d = [1, 2, 3, 4, 5].map(() => high.next());
  assert.ok(d.every((x, i) => x < Math.min(8000, 1000 * 2 ** i)), String(d));
  high.reset();
  assert.equal(high.attempt, 0);
  assert.ok(high.next() < 1000);
});

Deno.test("Backoff spreads many agents over the window (no thundering herd)", () => {
  const delays = Array.from({ length: 1000 }, () => new Backoff({ baseMs: 1000 }).next());
  const buckets = new Set(delays.map((d) => Math.floor(d / 50)));
  assert.ok(buckets.size >= 9, `only ${buckets.size} distinct 50 ms buckets`);
});
