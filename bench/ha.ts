/**
 * High availability figures (`deno task bench:ha`, as root), in two parts:
 *
 * 1. **Auth load from a fleet** (`--nodes`, default 1000): one `teleport start --roles=auth` on
 *    a PostgreSQL 15 of its own; `--nodes` real node services (lib/node NodeService in reverse
 *    tunnel mode, each with its own mutual-TLS auth client, in `--workers` processes:
 *    bench/_heartbeat_nodes.ts) heartbeat and refresh their CAs on their production schedule.
 *    Over `--seconds` it samples auth's `auth_api_requests_total` every second and prints
 *    requests/s (mean, busiest second, per route), auth's CPU and the open watch streams; then
 *    it restarts auth on the same port with the fleet connected and prints the requests in the
 *    busiest second of the `--restart-seconds` after it is back. `--watch=on` runs the nodes as
 *    production does (one resource watch each feeding their CA reader and role cache), `off`
 *    as before watches (polling only), `both` (default) one after the other.
 * 2. **Failover** (`--rounds`, default 2, in network namespaces: the layout of tests/e2e/_ha.ts,
 *    two auth servers on PostgreSQL behind haproxy, two proxies behind haproxy, a direct and a
 *    tunnel node, a client host): each round `kill -9`s one auth server while probes run
 *    back to back from the client through the load balancer — `tsh ssh root@nodea true` (needs
 *    no auth) and `tsh ls` (answered by auth) — then restarts it; a last round does the same to
 *    a proxy; one more round drops every packet of auth1's host instead (a host that vanishes
 *    sends no resets). Prints, per round and probe kind, the probes in flight at the failure
 *    (how many failed, the longest), the probes started after it that failed, and when the
 *    first of those to succeed finished. A probe is a `deno run` of tsh (about half a second),
 *    which bounds the resolution.
 *
 *   npx -y deno@2.9.6 task bench:ha [--nodes=1000] [--workers=2] [--seconds=120] [--rounds=2]
 *     [--watch=both|on|off] [--restart-seconds=60] [--settle=5] [--skip-load] [--skip-failover]
 */
import { parseArgs } from "node:util";
import { startPostgres } from "../lib/backend/mod.ts";
import { freePort, REPO } from "../tests/e2e/_helpers.ts";
import { type Proc, Topology } from "../tests/e2e/_netns.ts";
import { HaCluster, LOGIN, type Member, serverUp, waitForCount } from "../tests/e2e/_ha.ts";
import { tsh, type TshClient } from "../tests/e2e/_topology_enroll.ts";
import { cpuSeconds, eachLine, out, settle, startDaemon } from "./_common.ts";
import type { HeartbeatNodes } from "./_heartbeat_nodes.ts";
import { registerNodes } from "./_register.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "1000" },
    workers: { type: "string", default: "2" },
    seconds: { type: "string", default: "120" },
    rounds: { type: "string", default: "2" },
    watch: { type: "string", default: "both" },
    "restart-seconds": { type: "string", default: "60" },
    settle: { type: "string", default: "5" },
    "skip-load": { type: "boolean", default: false },
    "skip-failover": { type: "boolean", default: false },
  },
});
const NODES = Number(values.nodes);
const WORKERS = Number(values.workers);
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const RESTART_SECONDS = Number(values["restart-seconds"]);
const SETTLE_SECONDS = Number(values.settle);
const WATCH_MODES = { both: [false, true], on: [true], off: [false] } as const;
if (!Object.hasOwn(WATCH_MODES, values.watch)) {
  throw new Error("Cannot run the HA bench: --watch takes both, on or off");
}
for (
  const [name, v] of [
    ["nodes", NODES],
    ["workers", WORKERS],
    ["seconds", SECONDS],
    ["restart-seconds", RESTART_SECONDS],
    ["settle", SETTLE_SECONDS],
  ] as const
) {
  if (!Number.isInteger(v) || v <= 0) {
    throw new Error(`Cannot run the HA bench: --${name} takes a positive integer`);
  }
}
if (!Number.isInteger(ROUNDS) || ROUNDS < 0) {
  throw new Error("Cannot run the HA bench: --rounds takes an integer ≥ 0");
}
if (Deno.uid() !== 0) {
  throw new Error("Cannot run the HA bench: run it as root (initdb as postgres, namespaces)");
}

const CLUSTER = "bench-ha";
const PARALLEL = 24;
const sec = (ms: number) => (ms / 1000).toFixed(1);

/** Sum of `auth_api_requests_total` per route from a /metrics text. */
function requestCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/^auth_api_requests_total\{route="([^"]*)"\} (\d+(?:\.\d+)?)/gm)) {
    counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return counts;
}
const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** The `auth_watch_streams` gauge from a /metrics text (0 when absent). */
function watchStreams(text: string): number {
  return Number(/^auth_watch_streams (\d+)/m.exec(text)?.[1] ?? 0);
}

/** Part 1: requests/s against auth from `NODES` heartbeating nodes (with watches or without). */
async function fleetLoad(watch: boolean): Promise<void> {
  out(
    `fleet load: ${NODES} nodes in ${WORKERS} worker(s), ${SECONDS} s window, ` +
      `resource watches ${watch ? "on" : "off"}`,
  );
  await using pg = await startPostgres();
  const dir = await Deno.makeTempDir({ prefix: "tp-bench-ha-" });
  const token = crypto.randomUUID().replaceAll("-", "");
  const [authPort, diagPort] = [freePort(), freePort()];
  await Deno.writeTextFile(`${dir}/pg-password`, `${pg.password}\n`, { mode: 0o600 });
  const url = new URL(pg.url);
  url.password = "";
  const config = `${dir}/teleport.yaml`;
  await Deno.writeTextFile(
    config,
    `version: v3
teleport:
  nodename: bench-auth
  data_dir: ${dir}/data
  diag_addr: 127.0.0.1:${diagPort}
  log:
    severity: WARN
  connection_limits:
    # Thousands of registrations and clients from one address, on purpose.
    rates: [{ period: 1s, average: 100000, burst: 100000 }]
    max_connections: 100000
    max_pending_connections: 100000
  storage:
    type: postgresql
    conn_string: ${url.href}
    password_file: ${dir}/pg-password
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${authPort}
  cluster_name: ${CLUSTER}
  tokens:
    - "node:${token}"
proxy_service:
  enabled: false
ssh_service:
  enabled: false
`,
  );
  let auth = await startDaemon(["--config", config]);
  const workers: Deno.ChildProcess[] = [];
  try {
    out(`auth pid ${auth.pid} ready in ${sec(auth.startMs)} s; registering ${NODES} nodes…`);
    const reg = await registerNodes({
      authPort,
      token,
      n: NODES,
      parallel: PARALLEL,
      namePrefix: "bench-node",
    });
    const { nodes, caCerts } = reg;
    const cas = reg.sshCaKeys;
    out(`registered in ${sec(reg.ms)} s; starting the node services…`);
    const t1 = performance.now();
    const per = Math.ceil(NODES / WORKERS);
    const started: Promise<void>[] = [];
    for (let w = 0; w < WORKERS; w++) {
      const slice = nodes.slice(w * per, (w + 1) * per);
      if (slice.length === 0) continue;
      const file = `${dir}/nodes-${w}.json`;
      const spec: HeartbeatNodes = {
        authHost: "127.0.0.1",
        authPort,
        tlsCaCerts: caCerts,
        userCaKeys: cas.user,
        hostCaKeys: cas.host,
        nodes: slice,
        watch,
      };
      await Deno.writeTextFile(file, JSON.stringify(spec));
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${REPO}bench/_heartbeat_nodes.ts`, `--identities=${file}`],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      workers.push(child);
      const ready = Promise.withResolvers<void>();
      void eachLine(child.stdout, (l) => {
        if (l.startsWith("started")) ready.resolve();
      });
      void child.status.then((s) => ready.reject(new Error(`worker exited with ${s.code}`)));
      started.push(ready.promise);
    }
    await Promise.all(started);
    out(`${NODES} node services running in ${sec(performance.now() - t1)} s; sampling…`);
    const metrics = async () => await (await fetch(`http://127.0.0.1:${diagPort}/metrics`)).text();
    const scrape = async () => requestCounts(await metrics());
    // Nodes make their first requests as they start; the window begins `--settle` s after.
    await settle(SETTLE_SECONDS * 1000);
    const first = await scrape();
    const cpu0 = cpuSeconds(auth.pid);
    const w0 = performance.now();
    let prev = total(first);
    let busiest = 0;
    for (let s = 0; s < SECONDS; s++) {
      await settle(1_000);
      const now = total(await scrape());
      busiest = Math.max(busiest, now - prev);
      prev = now;
    }
    const lastText = await metrics();
    const last = requestCounts(lastText);
    const window = (performance.now() - w0) / 1000;
    const cpu = (cpuSeconds(auth.pid) - cpu0) / window;
    const rate = (total(last) - total(first)) / window;
    out();
    out(
      `auth load with ${NODES} nodes heartbeating (one auth server, PostgreSQL backend, ` +
        `watches ${watch ? "on" : "off"})`,
    );
    out(`  requests/s to auth, mean over ${window.toFixed(0)} s      ${rate.toFixed(1)}`);
    out(`  requests per node per minute                  ${(rate * 60 / NODES).toFixed(2)}`);
    out(`  busiest second (requests)                     ${busiest}`);
    out(`  auth CPU (% of a core)                        ${(cpu * 100).toFixed(1)}`);
    out(`  open watch streams                            ${watchStreams(lastText)}`);
    out("  by route (requests/s):");
    const routes = [...last].map(([r, n]) => [r, (n - (first.get(r) ?? 0)) / window] as const)
      .filter(([, r]) => r > 0).sort((a, b) => b[1] - a[1]);
    for (const [route, r] of routes) out(`    ${route.padEnd(44)} ${r.toFixed(2)}`);

    // Auth restarts on the same port with the fleet connected: what comes at it once it is back.
    await auth.stop();
    const down = performance.now();
    auth = await startDaemon(["--config", config]);
    out();
    out(`auth restarted (down ${sec(performance.now() - down)} s); sampling ${RESTART_SECONDS} s…`);
    const back = performance.now();
    prev = 0;
    busiest = 0;
    let busiestAt = 0;
    let allWatching: number | undefined;
    const perSecond: number[] = [];
    const routeTotals = new Map<string, number>();
    for (let s = 0; s < RESTART_SECONDS; s++) {
      await settle(1_000);
      const text = await metrics();
      const counts = requestCounts(text);
      const now = total(counts);
      perSecond.push(now - prev);
      if (now - prev > busiest) [busiest, busiestAt] = [now - prev, s + 1];
      prev = now;
      for (const [r, n] of counts) routeTotals.set(r, n);
      if (watch && allWatching === undefined && watchStreams(text) >= NODES) {
        allWatching = (performance.now() - back) / 1000;
      }
    }
    out(`  requests in the ${RESTART_SECONDS} s after auth is back           ${prev}`);
    out(`  busiest second (requests; second no.)         ${busiest} (${busiestAt})`);
    out(`  first 10 seconds                              ${perSecond.slice(0, 10).join(" ")}`);
    if (watch) {
      out(
        `  all ${NODES} watch streams back after           ${
          allWatching === undefined
            ? `not within ${RESTART_SECONDS} s`
            : `${allWatching.toFixed(1)} s`
        }`,
      );
    }
    out("  by route (requests):");
    for (const [route, n] of [...routeTotals].sort((a, b) => b[1] - a[1])) {
      out(`    ${route.padEnd(44)} ${n}`);
    }
  } finally {
    for (const w of workers) {
      try {
        w.kill("SIGKILL");
      } catch {
        // gone
      }
      await w.status;
    }
    await auth.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** One probe: when it started and ended (performance.now()), and whether it worked. */
interface Probe {
  start: number;
  end: number;
  ok: boolean;
}

/** Runs `probe` back to back until `stop` resolves (the last one runs to its end). */
async function probeLoop(probe: () => Promise<boolean>, stop: Promise<void>): Promise<Probe[]> {
  const results: Probe[] = [];
  let stopped = false;
  void stop.then(() => stopped = true);
  while (!stopped) {
    const start = performance.now();
    const ok = await probe();
    results.push({ start, end: performance.now(), ok });
  }
  return results;
}

/**
 * One line per probe kind: probes in flight at the failure (failed, longest), probes started
 * after it (failed), when the first of those to succeed finished, and what a probe took before.
 */
function summary(name: string, probes: Probe[], failedAt: number): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const inFlight = probes.filter((p) => p.start < failedAt && p.end > failedAt);
  const after = probes.filter((p) => p.start >= failedAt);
  const firstOk = after.find((p) => p.ok);
  const before = probes.filter((p) => p.end <= failedAt && p.ok).map((p) => p.end - p.start)
    .sort((a, b) => a - b);
  const longest = Math.max(0, ...inFlight.map((p) => p.end - p.start));
  return `${name.padEnd(18)} in flight ${inFlight.length} (${
    inFlight.filter((p) => !p.ok).length
  } failed, longest ${s(longest)}); after: ${
    after.filter((p) => !p.ok).length
  } of ${after.length} failed, first success done ${
    firstOk === undefined ? "never" : s(firstOk.end - failedAt)
  } after the failure; one probe before: ${
    before.length === 0 ? "?" : s(before[before.length >> 1]!)
  }`;
}

/** Part 2: kill -9 of auth servers and a proxy under probes. */
async function failover(): Promise<void> {
  out();
  out(`failover: ${ROUNDS} auth round(s) and one proxy round, in network namespaces`);
  await using topo = await Topology.create({ label: "bench-ha" });
  await using ha = await HaCluster.create(topo);
  await ha.startAuths();
  await ha.startProxies();
  const alice: TshClient = await ha.enrollAndLogin("alice");
  await ha.startNodes();
  const ssh = async () => (await tsh(alice, ["ssh", `${LOGIN}@nodea`, "true"])).code === 0;
  const ls = async () => (await tsh(alice, ["ls"])).code === 0;
  while (!(await ssh()) || !(await ls())) await settle(200);
  /**
   * Probes from 1.5 s before `fail` until 8 s after it; then `heal` and wait until the load
   * balancer `lb` sees server `index` up again.
   */
  const round = async (
    label: string,
    fail: () => Promise<void>,
    heal: () => Promise<void>,
    lb: () => Proc | undefined,
    index: number,
  ) => {
    const done = Promise.withResolvers<void>();
    const loops = Promise.all([probeLoop(ssh, done.promise), probeLoop(ls, done.promise)]);
    await settle(1_500);
    const failedAt = performance.now();
    await fail();
    await settle(8_000);
    done.resolve();
    const [s, l] = await loops;
    out(`  ${label}`);
    out(`    ${summary("tsh ssh (no auth)", s, failedAt)}`);
    out(`    ${summary("tsh ls (auth)", l, failedAt)}`);
    const ups = lb()!.matches(serverUp(index)).length;
    await heal();
    await waitForCount(lb()!, serverUp(index), ups + 1, 60_000);
  };
  const kill = (m: Member) => () => ha.kill(m);
  const restart = (m: Member) => async () => void await ha.start(m);
  // The host vanishes: every packet in or out is dropped (no resets, unlike kill -9).
  const BLACKHOLE = "table inet tp_blackhole {\n" +
    "  chain in { type filter hook input priority 0; policy drop; iif lo accept; }\n" +
    "  chain out { type filter hook output priority 0; policy drop; oif lo accept; }\n}\n";
  for (let r = 0; r < ROUNDS; r++) {
    const i = r % 2;
    const a = ha.auths[i]!;
    await round(
      `round ${r + 1}: kill -9 auth${i + 1}`,
      kill(a),
      restart(a),
      () => ha.authHaproxy,
      i,
    );
  }
  const a1 = ha.auths[0]!;
  await round(
    "auth1's host unreachable (all packets dropped)",
    () => a1.host.nft(BLACKHOLE),
    () => a1.host.nft("delete table inet tp_blackhole\n"),
    () => ha.authHaproxy,
    0,
  );
  const pa = ha.proxies[0]!;
  await round("kill -9 proxya", kill(pa), restart(pa), () => ha.webHaproxy, 0);
}

if (!values["skip-load"]) {
  for (const watch of WATCH_MODES[values.watch as keyof typeof WATCH_MODES]) {
    await fleetLoad(watch);
  }
}
if (!values["skip-failover"]) await failover();
