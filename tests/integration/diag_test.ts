/**
 * The diagnostics endpoint of an in-process auth service, through curl: /healthz, /readyz
 * going 200 → 503 when the backend fails, /metrics read back by a Prometheus text parser, and
 * the per-address request limit.
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { RealClock } from "../../lib/clock/mod.ts";
import { resolveProcessConfig } from "../../lib/config/mod.ts";
import { getComponentLogger } from "../../lib/log/mod.ts";
import { MetricsRegistry } from "../../lib/metrics/mod.ts";
import { ConnectionGuard } from "../../lib/net/mod.ts";
import {
  type HealthState,
  ProcessHealth,
  startDiagServer,
  TeleportProcess,
} from "../../lib/service/mod.ts";
import { run } from "../e2e/_helpers.ts";

interface Family {
  name: string;
  metrics: Array<{ labels?: Record<string, string>; value?: string; count?: string }>;
}

async function waitState(proc: TeleportProcess, state: HealthState): Promise<void> {
  while (proc.health.state !== state) await proc.health.changed();
}

async function curl(url: string): Promise<{ status: number; body: string }> {
  const r = await run("curl", ["-sS", "-o", "-", "-w", "\n%{http_code}", url]);
  const at = r.out.lastIndexOf("\n");
  return { status: Number(r.out.slice(at + 1)), body: r.out.slice(0, at) };
}

Deno.test("diag endpoint of an auth process: readyz follows the backend, metrics parse", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "tp-diag-" });
  const config = resolveProcessConfig({
    flags: { roles: "auth", dataDir, clusterName: "example", diagAddr: "127.0.0.1:0" },
    hostname: "testhost",
    env: {},
  });
  config.auth.listenAddr = { host: "127.0.0.1", port: 0 };
  const proc = await TeleportProcess.start({
    config,
    hostname: "testhost",
    backendUri: "memory:",
    healthCheckIntervalMs: 100,
  });
  try {
    const base = `http://127.0.0.1:${proc.diag!.addr.port}`;
    await waitState(proc, "ok");
    assert.deepEqual(JSON.parse((await curl(`${base}/healthz`)).body), { status: "ok" });
    const ready = await curl(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(JSON.parse(ready.body).services.auth.state, "ok");

    const text = (await curl(`${base}/metrics`)).body;
    const families = new Map(
      (parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]),
    );
    const value = (name: string) => Number(families.get(name)?.metrics[0]?.value);
    assert.equal(value("process_state"), 0);
    assert.ok(value("teleport_backend_read_requests_total") > 0);
    assert.ok(value("teleport_backend_write_requests_total") > 0);
    assert.ok(families.has("teleport_backend_read_seconds"));
    // No user or host has asked for certificates yet: the histogram is declared, empty.
    assert.match(text, /^# TYPE auth_generate_seconds histogram$/m);
    assert.ok(value("teleport_connection_guard_connections") >= 1); // this curl
    assert.ok(value("process_open_fds") > 0);
    assert.equal(value("user_login_total"), 0);
    assert.ok(families.has("teleport_registered_servers"));

    // The backend fails: readiness goes to degraded (503) at the next check.
    await proc.backend!.close();
    await waitState(proc, "degraded");
    const degraded = await curl(`${base}/readyz`);
    assert.equal(degraded.status, 503);
    assert.match(JSON.parse(degraded.body).services.auth.reason, /backend fails/);
    const after = (await curl(`${base}/metrics`)).body;
    assert.match(after, /^process_state 2$/m);
    assert.match(
      after,
      /^teleport_backend_read_requests_failed_total\{component="backend"\} [1-9]/m,
    );
  } finally {
    await proc.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("startDiagServer() answers 429 with Retry-After to an address over its rate", async () => {
  const logger = getComponentLogger("diag");
  const metrics = new MetricsRegistry();
  const clock = new RealClock();
  const health = new ProcessHealth({ clock, logger, recoveryMs: 10_000, metrics });
  await using diag = await startDiagServer({
    host: "127.0.0.1",
    port: 0,
    guard: new ConnectionGuard({ logger }),
    health,
    metrics,
    clock,
    logger,
    rateLimit: { burst: 2, perMinute: 1 },
  });
  const url = `http://127.0.0.1:${diag.addr.port}/healthz`;
  assert.equal((await curl(url)).status, 200);
  assert.equal((await curl(url)).status, 200);
  const r = await run("curl", ["-sS", "-i", url]);
  assert.match(r.out, /^HTTP\/1\.1 429/);
  assert.match(r.out, /^Retry-After: \d+/mi);
  assert.match(r.out, /too many requests from this address/);
});
