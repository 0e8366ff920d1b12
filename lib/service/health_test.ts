import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import { MetricsRegistry } from "../metrics/mod.ts";
import { ProcessHealth } from "./health.ts";

function setup() {
  const clock = new FakeClock();
  const metrics = new MetricsRegistry();
  const health = new ProcessHealth({
    clock,
    logger: getComponentLogger("diag"),
    recoveryMs: 10_000,
    metrics,
  });
  const processState = () => metrics.gauge({ name: "process_state", help: "" }).get();
  return { clock, health, processState, metrics };
}

Deno.test("ProcessHealth is starting until every service reported once, then ok", () => {
  const { health, processState } = setup();
  assert.equal(health.state, "starting");
  health.register("auth");
  health.register("node");
  health.ok("auth");
  assert.equal(health.state, "starting");
  assert.equal(processState(), 3);
  health.ok("node");
  assert.equal(health.state, "ok");
  assert.equal(processState(), 0);
});

Deno.test("ProcessHealth.degraded() wins over every other state, and says why", () => {
  const { health, processState } = setup();
  health.register("auth");
  health.register("node");
  health.degraded("node", "heartbeat to auth failed: connection refused");
  assert.equal(health.state, "degraded");
  assert.equal(processState(), 2);
  assert.deepEqual(health.services().node, {
    state: "degraded",
    reason: "heartbeat to auth failed: connection refused",
  });
  assert.deepEqual(health.services().auth, { state: "starting" });
});

Deno.test("ProcessHealth.ok() recovers a degraded service only after reports spanning recoveryMs", () => {
  const { clock, health, processState, metrics } = setup();
  health.register("node");
  health.ok("node");
  health.degraded("node", "down");
  health.ok("node");
  assert.equal(health.state, "recovering");
  assert.equal(processState(), 1);
  clock.advance(5_000);
  health.ok("node");
  assert.equal(health.state, "recovering");
  clock.advance(5_000);
  health.ok("node");
  assert.equal(health.state, "ok");
  assert.equal(
    metrics.gauge({ name: "teleport_service_state", help: "", labelNames: ["service"] })
      .get({ service: "node" }),
    0,
  );
});

Deno.test("ProcessHealth.changed() resolves at the next state change", async () => {
  const { health } = setup();
  health.register("auth");
  const changed = health.changed();
  health.ok("auth");
  await changed;
  assert.equal(health.state, "ok");
});
