/**
 * The diagnostics endpoint of real `teleport start` processes, read with curl, and /metrics
 * parsed by a Prometheus text parser (npm:parse-prometheus-text-format):
 *
 * 1. an auth+proxy process with `teleport.diag_addr`, and a tunnel node (`--diag-addr`) that
 *    joins it: both ready (200); the proxy reports the tunnel, the registered servers and its
 *    backend calls;
 * 2. the auth+proxy process stops, the node restarts: it cannot reach a proxy, so /readyz
 *    answers 400 (starting) and process_state is 3;
 * 3. the auth+proxy process starts again: the node's tunnel comes up, /readyz answers 200;
 * 4. the auth+proxy process stops: the node loses its tunnel, /readyz answers 503 with the
 *    reason, process_state is 2.
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  addNodeToken,
  eventually,
  freePort,
  REPO,
  run,
  startTeleport,
  tempDir,
} from "./_helpers.ts";

interface Family {
  name: string;
  metrics: Array<
    { labels?: Record<string, string>; value?: string; buckets?: Record<string, string> }
  >;
}

async function curl(url: string): Promise<{ status: number; body: string }> {
  const r = await run("curl", ["-sS", "-o", "-", "-w", "\n%{http_code}", url]);
  if (r.code !== 0) throw new Error(`curl ${url} failed: ${r.err}`);
  const at = r.out.lastIndexOf("\n");
  return { status: Number(r.out.slice(at + 1)), body: r.out.slice(0, at) };
}

async function metrics(port: number): Promise<Map<string, Family>> {
  const r = await curl(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200);
  return new Map((parsePrometheusTextFormat(r.body) as Family[]).map((f) => [f.name, f]));
}

function value(m: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const series = m.get(name)?.metrics.find((s) =>
    Object.entries(labels).every(([k, v]) => s.labels?.[k] === v)
  );
  return series === undefined ? undefined : Number(series.value);
}

/** Waits until /readyz answers `status`; returns its body. */
function readyz(port: number, status: number) {
  return eventually(`/readyz on ${port} to answer ${status}`, async () => {
    const r = await curl(`http://127.0.0.1:${port}/readyz`);
    return r.status === status ? JSON.parse(r.body) : undefined;
  }, 60_000);
}

/** A `teleport start` whose output is read as it comes (a tunnel node prints no listener). */
function spawnNode(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}main.ts`, "start", ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const seen = new Set<() => void>();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      out += chunk;
      for (const w of [...seen]) w();
    }
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr)]);
  return {
    /** Resolves once the output matches `re`. */
    async waitFor(re: RegExp): Promise<RegExpExecArray> {
      for (;;) {
        const m = re.exec(out);
        if (m !== null) return m;
        const exited = await Promise.race([
          new Promise<false>((r) => seen.add(() => r(false))),
          child.status.then(() => true),
        ]);
        if (exited && re.exec(out) === null) {
          throw new Error(`teleport start exited before printing ${re}:\n${out}`);
        }
      }
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // gone
      }
      await child.status;
      await done;
    },
  };
}

Deno.test({
  name: "diag_addr serves healthz, readyz transitions and Prometheus metrics of real processes",
  ignore: skipGroup("diag-e2e"),
  fn: async () => {
    await using dir = await tempDir("tp-diag-");
    const config = `${dir.path}/teleport.yaml`;
    const proxyDiag = freePort();
    const webPort = freePort();
    await Deno.writeTextFile(
      config,
      `version: v3
teleport:
  nodename: diag-proxy
  data_dir: ${dir.path}/data
  diag_addr: 127.0.0.1:${proxyDiag}
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
  cluster_name: diag.example
  proxy_listener_mode: multiplex
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${webPort}
ssh_service:
  enabled: false
`,
    );
    let proxy = await startTeleport(["-c", config]);
    let node: ReturnType<typeof spawnNode> | undefined;
    try {
      assert.match(proxy.banner, new RegExp(`Diagnostics: +http://127\\.0\\.0\\.1:${proxyDiag} `));
      const health = await curl(`http://127.0.0.1:${proxyDiag}/healthz`);
      assert.deepEqual([health.status, JSON.parse(health.body)], [200, { status: "ok" }]);
      const ready = await readyz(proxyDiag, 200);
      assert.deepEqual(Object.keys(ready.services).sort(), ["auth", "proxy"]);

      // 1. A tunnel node joins; both are ready and the proxy reports it.
      const { token, pins: ca_pins } = await addNodeToken(config);
      const nodeDiag = freePort();
      const nodeArgs = [
        "--roles=node",
        `--proxy-server=127.0.0.1:${webPort}`,
        `--token=${token}`,
        ...ca_pins.map((p) => `--ca-pin=${p}`),
        "--insecure",
        `--data-dir=${dir.path}/node-data`,
        "--nodename=diag-node",
        `--diag-addr=127.0.0.1:${nodeDiag}`,
      ];
      node = spawnNode(nodeArgs);
      await node.waitFor(/Stop with/);
      await readyz(nodeDiag, 200);
      const nm = await metrics(nodeDiag);
      assert.equal(value(nm, "process_state"), 0);
      assert.equal(value(nm, "teleport_service_state", { service: "node" }), 0);
      assert.equal(value(nm, "server_interactive_sessions_total"), 0);
      assert.ok(value(nm, "process_open_fds")! > 0);
      const pm = await eventually("the proxy to report the node", async () => {
        const m = await metrics(proxyDiag);
        return value(m, "teleport_registered_servers", { type: "node" }) === 1 ? m : undefined;
      });
      assert.equal(value(pm, "teleport_reverse_tunnels_connected", { type: "node" }), 1);
      assert.equal(value(pm, "teleport_connected_resources", { type: "node" }), 1);
      assert.equal(value(pm, "teleport_registered_servers", { type: "proxy" }), 1);
      assert.ok(value(pm, "teleport_backend_write_requests_total", { component: "backend" })! > 0);
      // The parser keeps only the buckets of a labelled histogram (one series each here).
      const inf = (name: string) => Number(pm.get(name)?.metrics[0]?.buckets?.["+Inf"]);
      assert.ok(inf("teleport_backend_read_seconds") > 0);
      // The proxy's own identity and the node's join are host certificate issuances.
      assert.ok(inf("auth_generate_seconds") >= 2);
      assert.ok(value(pm, "teleport_connection_guard_connections")! >= 1);
      assert.equal(value(pm, "teleport_connection_guard_refused_total", { reason: "per-ip" }), 0);
      assert.equal(value(pm, "process_state"), 0);
      await node.stop();
      node = undefined;

      // 2. No proxy: the restarted node is starting (400) until a tunnel comes up.
      await proxy.stop();
      node = spawnNode(nodeArgs);
      await node.waitFor(/Diagnostics on http:\/\/127\.0\.0\.1:\d+/);
      const starting = await curl(`http://127.0.0.1:${nodeDiag}/readyz`);
      assert.equal(starting.status, 400);
      assert.equal(JSON.parse(starting.body).state, "starting");
      assert.equal((await curl(`http://127.0.0.1:${nodeDiag}/healthz`)).status, 200);
      assert.equal(value(await metrics(nodeDiag), "process_state"), 3);

      // 3. The proxy is back: the node's tunnel comes up and it is ready.
      proxy = await startTeleport(["-c", config]);
      await node.waitFor(/Stop with/);
      await readyz(nodeDiag, 200);

      // 4. The proxy (and auth) stop: the node is degraded at once.
      await proxy.stop();
      const degraded = await readyz(nodeDiag, 503);
      assert.equal(degraded.services.node.state, "degraded");
      assert.match(
        degraded.services.node.reason,
        /no reverse tunnel|heartbeat to auth failed/,
        degraded.services.node.reason,
      );
      assert.equal(value(await metrics(nodeDiag), "process_state"), 2);
    } finally {
      await node?.stop();
      await proxy.stop();
    }
  },
});
