import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { RateLimiter } from "./rate_limiter.ts";

Deno.test("RateLimiter.take() allows the burst, then refuses until time refills", () => {
  const clock = new FakeClock(0);
  const limiter = new RateLimiter({ burst: 2, perMinute: 6, clock });
  assert.deepEqual(limiter.take("1.2.3.4"), { allowed: true });
  assert.deepEqual(limiter.take("1.2.3.4"), { allowed: true });
  assert.deepEqual(limiter.take("1.2.3.4"), { allowed: false, retryAfterMs: 10_000 });
  clock.advance(4_000);
  assert.deepEqual(limiter.take("1.2.3.4"), { allowed: false, retryAfterMs: 6_000 });
  clock.advance(6_000);
  assert.deepEqual(limiter.take("1.2.3.4"), { allowed: true });
  assert.equal(limiter.take("1.2.3.4").allowed, false);
});

Deno.test("RateLimiter.take() keeps one bucket per key", () => {
  const clock = new FakeClock(0);
  const limiter = new RateLimiter({ burst: 1, perMinute: 1, clock });
  assert.equal(limiter.take("a").allowed, true);
  assert.equal(limiter.take("a").allowed, false);
  assert.equal(limiter.take("b").allowed, true);
});

Deno.test("RateLimiter.take() never refills beyond the burst", () => {
  const clock = new FakeClock(0);
  const limiter = new RateLimiter({ burst: 3, perMinute: 60, clock });
  limiter.take("k");
  clock.advance(3_600_000);
  for (let i = 0; i < 3; i++) assert.equal(limiter.take("k").allowed, true);
  assert.equal(limiter.take("k").allowed, false);
});

Deno.test("RateLimiter.take() forgets full buckets first when it tracks too many keys", () => {
  const clock = new FakeClock(0);
  const limiter = new RateLimiter({ burst: 2, perMinute: 60, clock, maxKeys: 3 });
  limiter.take("busy");
  limiter.take("busy");
  limiter.take("x");
  limiter.take("y");
  clock.advance(1_500); // x and y are full again; busy has 1.5 of 2
  limiter.take("z");
  assert.equal(limiter.size, 2);
  // busy kept its state: one attempt left (1.5 tokens), then refused.
  assert.equal(limiter.take("busy").allowed, true);
  assert.equal(limiter.take("busy").allowed, false);
  for (const k of ["p", "q", "r", "s"]) limiter.take(k);
  assert.ok(limiter.size <= 3);
});

Deno.test("new RateLimiter() rejects a non-positive rate", () => {
  const clock = new FakeClock(0);
  assert.throws(() => new RateLimiter({ burst: 0, perMinute: 1, clock }), /burst must be/);
  assert.throws(() => new RateLimiter({ burst: 1, perMinute: 0, clock }), /perMinute must be/);
});
