import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { MetricsRegistry } from "../metrics/mod.ts";
import { MemoryBackend, ReportingBackend, runBackendConformance } from "./mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("ReportingBackend passes the backend conformance suite", async (t) => {
  await runBackendConformance(t, () => {
    const clock = new FakeClock();
    const backend = new ReportingBackend(new MemoryBackend({ clock }), {
      metrics: new MetricsRegistry(),
    });
    return Promise.resolve({ backend, clock });
  });
});

Deno.test("ReportingBackend counts requests, failures and precondition refusals by kind", async () => {
  const metrics = new MetricsRegistry();
  await using b = new ReportingBackend(new MemoryBackend({ clock: new FakeClock() }), { metrics });
  const item = await b.create({ key: ["a"], value: enc("1") });
  await assert.rejects(b.create({ key: ["a"], value: enc("2") })); // exists: precondition
  await assert.rejects(b.compareAndSwap("stale", { key: ["a"], value: enc("3") }));
  await b.compareAndSwap(item.revision, { key: ["a"], value: enc("4") });
  await b.get(["a"]);
  await assert.rejects(b.get(["missing"])); // a read of a missing key is no failure
  await b.getRange({ prefix: [] });
  await b.deleteRange({ prefix: ["a"] });
  const l = { component: "backend" };
  const c = (name: string) => metrics.counter({ name, help: "", labelNames: ["component"] }).get(l);
  assert.equal(c("teleport_backend_write_requests_total"), 2);
  assert.equal(c("teleport_backend_write_requests_failed_total"), 0);
  assert.equal(c("teleport_backend_atomic_write_requests_total"), 2);
  assert.equal(c("teleport_backend_write_requests_failed_precondition_total"), 2);
  assert.equal(c("teleport_backend_read_requests_total"), 2);
  assert.equal(c("teleport_backend_read_requests_failed_total"), 0);
  assert.equal(c("teleport_backend_batch_read_requests_total"), 1);
  assert.equal(c("teleport_backend_batch_write_requests_total"), 1);
  const h = metrics.histogram({
    name: "teleport_backend_read_seconds",
    help: "",
    labelNames: ["component"],
  });
  assert.equal(h.get(l).count, 2);
  await b.close();
  await assert.rejects(b.get(["a"]));
  assert.equal(c("teleport_backend_read_requests_failed_total"), 1);
});
