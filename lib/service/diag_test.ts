import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { FakeClock } from "../clock/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import { MetricsRegistry } from "../metrics/mod.ts";
import { handleDiagRequest } from "./diag.ts";
import { ProcessHealth } from "./health.ts";

function sources() {
  const metrics = new MetricsRegistry();
  const health = new ProcessHealth({
    clock: new FakeClock(),
    logger: getComponentLogger("diag"),
    recoveryMs: 10_000,
    metrics,
  });
  health.register("auth");
  return { metrics, health };
}

Deno.test("handleDiagRequest() answers /healthz 200 whatever the readiness", async () => {
  const src = sources();
  src.health.degraded("auth", "backend down");
  const r = await handleDiagRequest("GET", "/healthz", src);
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { status: "ok" });
});

Deno.test("handleDiagRequest() answers /readyz 400 starting, 200 ok, 503 degraded, 400 recovering", async () => {
  const src = sources();
  const readyz = async () => {
    const r = await handleDiagRequest("GET", "/readyz", src);
    return { status: r.status, body: JSON.parse(r.body) };
  };
  let r = await readyz();
  assert.equal(r.status, 400);
  assert.equal(r.body.state, "starting");
  src.health.ok("auth");
  r = await readyz();
  assert.equal(r.status, 200);
  assert.equal(r.body.status, "ok");
  src.health.degraded("auth", "the backend fails: closed");
  r = await readyz();
  assert.equal(r.status, 503);
  assert.deepEqual(r.body.services.auth, {
    state: "degraded",
    reason: "the backend fails: closed",
  });
  src.health.ok("auth");
  r = await readyz();
  assert.equal(r.status, 400);
  assert.equal(r.body.state, "recovering");
});

Deno.test("handleDiagRequest() serves /metrics in the Prometheus text format", async () => {
  const src = sources();
  const r = await handleDiagRequest("GET", "/metrics?x=1", src);
  assert.equal(r.status, 200);
  assert.match(r.contentType, /^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(r.body) as Array<{ name: string }>;
  assert.ok(families.some((f) => f.name === "process_state"));
});

Deno.test("handleDiagRequest() refuses unknown paths and other methods with a clear error", async () => {
  const src = sources();
  const nf = await handleDiagRequest("GET", "/debug", src);
  assert.equal(nf.status, 404);
  assert.match(JSON.parse(nf.body).error, /has \/healthz, \/readyz and \/metrics/);
  const post = await handleDiagRequest("POST", "/readyz", src);
  assert.equal(post.status, 405);
  assert.equal(post.headers?.Allow, "GET, HEAD");
});
