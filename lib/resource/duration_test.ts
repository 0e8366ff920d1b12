import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "./mod.ts";

Deno.test("parseDuration() reads Go durations", () => {
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("12h0m0s"), 43_200_000);
  assert.equal(parseDuration("1.5h"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.throws(() => parseDuration("10", "--ttl"), /Cannot parse --ttl: "10" is not a duration/);
  assert.throws(() => parseDuration("1x"), /not a duration/);
  assert.throws(() => parseDuration(""), /not a duration/);
});

Deno.test("formatDuration() writes Go style", () => {
  assert.equal(formatDuration(43_200_000), "12h0m0s");
  assert.equal(formatDuration(1_800_000), "30m0s");
  assert.equal(formatDuration(1500), "1.5s");
});
