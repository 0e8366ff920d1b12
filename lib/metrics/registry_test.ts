import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { BadParameterError } from "../errors/mod.ts";
import { MetricsRegistry } from "./mod.ts";

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Array<{
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }>;
}

function parse(text: string): Map<string, Family> {
  const families = parsePrometheusTextFormat(text) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

Deno.test("MetricsRegistry.render() writes counters, gauges and histograms a Prometheus parser reads back", async () => {
  const r = new MetricsRegistry();
  const logins = r.counter({ name: "user_login_total", help: "Logins", labelNames: ["result"] });
  logins.inc({ result: "success" });
  logins.inc({ result: "success" }, 2);
  logins.inc({ result: "failure" });
  r.gauge({ name: "process_state", help: "State" }).set(3);
  const h = r.histogram({ name: "auth_generate_seconds", help: "Latency", buckets: [0.1, 1] });
  h.observe(0.05);
  h.observe(0.5);
  h.observe(7);
  const m = parse(await r.render());
  assert.deepEqual(m.get("user_login_total")?.metrics, [
    { labels: { result: "success" }, value: "3" },
    { labels: { result: "failure" }, value: "1" },
  ]);
  assert.equal(m.get("user_login_total")?.type, "COUNTER");
  assert.equal(m.get("process_state")?.metrics[0]?.value, "3");
  const hist = m.get("auth_generate_seconds")!;
  assert.equal(hist.type, "HISTOGRAM");
  assert.deepEqual(hist.metrics[0]?.buckets, { "0.1": "1", "1": "2", "+Inf": "3" });
  assert.equal(hist.metrics[0]?.count, "3");
  assert.equal(Number(hist.metrics[0]?.sum), 7.55);
});

Deno.test("MetricsRegistry.render() escapes label values and help text", async () => {
  const r = new MetricsRegistry();
  r.gauge({ name: "x", help: "back\\slash\nnewline", labelNames: ["v"] }).set(1, {
    v: 'a"b\\c\nd',
  });
  const text = await r.render();
  assert.match(text, /^# HELP x back\\\\slash\\nnewline$/m);
  assert.match(text, /^x\{v="a\\"b\\\\c\\nd"\} 1$/m);
  assert.equal(parse(text).get("x")?.metrics[0]?.labels?.v, 'a"b\\c\nd');
});

Deno.test("MetricsRegistry.render() runs collectors first and survives a failing one", async () => {
  const errors: unknown[] = [];
  const r = new MetricsRegistry({ onCollectorError: (e) => errors.push(e) });
  const g = r.gauge({ name: "open", help: "Open things" });
  let live = 4;
  r.addCollector(() => g.set(live));
  r.addCollector(() => {
    throw new Error("broken source");
  });
  assert.match(await r.render(), /^open 4$/m);
  live = 7;
  assert.match(await r.render(), /^open 7$/m);
  assert.equal(errors.length, 2);
});

Deno.test("MetricsRegistry.counter() returns the registered metric for the same shape and refuses another", () => {
  const r = new MetricsRegistry();
  const a = r.counter({ name: "c_total", help: "C", labelNames: ["k"] });
  assert.equal(r.counter({ name: "c_total", help: "C", labelNames: ["k"] }), a);
  assert.throws(
    () => r.gauge({ name: "c_total", help: "C", labelNames: ["k"] }),
    BadParameterError,
  );
  assert.throws(() => r.counter({ name: "c_total", help: "C" }), /already a counter/);
});

Deno.test("Counter.inc() refuses missing, unknown or negative input with a clear error", () => {
  const r = new MetricsRegistry();
  const c = r.counter({ name: "c_total", help: "C", labelNames: ["k"] });
  assert.throws(() => c.inc(), /label "k" is missing/);
  assert.throws(() => c.inc({ k: "a", z: "b" }), /no label "z"/);
  assert.throws(() => c.inc({ k: "a" }, -1), /only goes up/);
});

Deno.test("MetricsRegistry refuses bad metric names, label names and buckets", () => {
  const r = new MetricsRegistry();
  assert.throws(() => r.counter({ name: "9bad", help: "" }), BadParameterError);
  assert.throws(() => r.counter({ name: "ok", help: "", labelNames: ["__x"] }), BadParameterError);
  assert.throws(() => r.histogram({ name: "h", help: "", labelNames: ["le"] }), /not le/);
  assert.throws(() => r.histogram({ name: "h2", help: "", buckets: [1, 1] }), /ascending/);
});

Deno.test("Gauge.reset() drops series that no longer exist", async () => {
  const r = new MetricsRegistry();
  const g = r.gauge({ name: "servers", help: "S", labelNames: ["version"] });
  g.set(2, { version: "1.0" });
  g.reset();
  g.set(1, { version: "2.0" });
  const text = await r.render();
  assert.doesNotMatch(text, /1\.0/);
  assert.match(text, /^servers\{version="2.0"\} 1$/m);
});
