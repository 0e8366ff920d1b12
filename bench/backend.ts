/**
 * Backend throughput and watch latency, Deno KV (a file in a temporary directory) beside
 * PostgreSQL 15 (a server of its own, started like the tests do, or `--pg-url`):
 *
 * - sequential ops/s of put, get, compareAndSwap, keepAlive and getRange (100 items);
 * - put ops/s with `--parallel` concurrent writers (PostgreSQL serializes only its event
 *   append and commit; Deno KV serializes every commit in the process);
 * - watch latency: from the start of a put until a watcher in the same process receives its
 *   event (p50/p99/max), one put at a time.
 *
 * With `--audit=N` (N > 0) it also fills a PostgreSQL audit log (lib/events/pg_audit_log.ts)
 * with N events spread over 30 days (inserted with generate_series, one every few seconds)
 * and times the searches `tctl audit ls --since=24h` makes: the first and a later page of 500,
 * newest first, filtered by event type, and by session id.
 *
 * Run as root (the server runs as the `postgres` OS user):
 *   npx -y deno@2.9.6 task bench:backend [--ops=2000] [--parallel=16] [--audit=1000000]
 *     [--pg-url=postgresql://…]
 * The server of its own runs with `fsync = off` (as in the tests); a real deployment fsyncs on
 * commit, which costs more per write on slow disks. Not a test: it asserts nothing.
 */
import { parseArgs } from "node:util";
import { type Backend, openBackend, type PgServer, startPostgres } from "../lib/backend/mod.ts";
import { openPostgresAuditLog } from "../lib/events/mod.ts";
import { testLogger } from "../lib/log/mod.ts";
import { out, percentile } from "./_common.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    ops: { type: "string", default: "2000" },
    parallel: { type: "string", default: "16" },
    "pg-url": { type: "string" },
    audit: { type: "string", default: "0" },
  },
});
const OPS = Number(args.values.ops);
const PARALLEL = Number(args.values.parallel);
const encoder = new TextEncoder();
const value = encoder.encode(JSON.stringify({ kind: "node", spec: { hostname: "x".repeat(200) } }));

interface Result {
  [metric: string]: number;
}

async function rate(n: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return n / ((performance.now() - t0) / 1000);
}

async function measure(b: Backend): Promise<Result> {
  const r: Result = {};
  const key = (i: number) => ["bench", "k", String(i % 1000).padStart(4, "0")];
  r["put ops/s"] = await rate(OPS, (i) => b.put({ key: key(i), value }));
  r["get ops/s"] = await rate(OPS, (i) => b.get(key(i)));
  let current = await b.put({ key: ["bench", "cas"], value });
  r["CAS ops/s"] = await rate(OPS, async () => {
    current = await b.compareAndSwap(current.revision, { key: ["bench", "cas"], value });
  });
  const expires = () => new Date(Date.now() + 60_000);
  r["keepAlive ops/s"] = await rate(OPS, (i) => b.keepAlive(key(i), expires()));
  for (let i = 0; i < 100; i++) {
    await b.put({ key: ["bench", "range", String(i).padStart(3, "0")], value });
  }
  r["getRange(100) ops/s"] = await rate(
    Math.max(1, OPS / 10),
    () => b.getRange({ prefix: ["bench", "range"] }),
  );
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < OPS) {
      const i = next++;
      await b.put({ key: ["bench", "par", String(i % 1000)], value });
    }
  }));
  r[`put ops/s, ${PARALLEL} parallel`] = OPS / ((performance.now() - t0) / 1000);

  const controller = new AbortController();
  const it = b.watch({ prefixes: [["lat"]], signal: controller.signal })[Symbol.asyncIterator]();
  await it.next(); // init
  const latencies: number[] = [];
  const rounds = Math.min(OPS, 500);
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    await b.put({ key: ["lat", String(i)], value });
    await it.next();
    latencies.push(performance.now() - start);
  }
  controller.abort();
  latencies.sort((a, b) => a - b);
  r["watch latency p50 ms"] = percentile(latencies, 50);
  r["watch latency p99 ms"] = percentile(latencies, 99);
  r["watch latency max ms"] = latencies.at(-1)!;
  return r;
}

/** Fills an audit log with `n` events over 30 days and times 24-hour searches. */
async function measureAudit(server: PgServer, n: number): Promise<void> {
  await server.psql("CREATE DATABASE audit OWNER teleport");
  const uri = server.url.replace(/\/teleport$/, "/audit");
  await using log = await openPostgresAuditLog({ uri, logger: testLogger().logger });
  const now = Date.now();
  const span = 30 * 86_400_000;
  const t0 = performance.now();
  // Event i happens at now - span + i * span / n; every 10th is session.start of sid s<i/10>.
  await server.psql(
    `INSERT INTO audit_events (time_ms, event, sid, data)
     SELECT t, ev, sid, json_build_object('event', ev, 'code', 'T0000I', 'uid', 'u' || i,
       'time', to_char(to_timestamp(t / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       'cluster_name', 'bench', 'user', 'user' || (i % 50), 'sid', sid)::text
     FROM (SELECT i, ${now - span} + i * ${span / n}::bigint AS t,
       CASE WHEN i % 10 = 0 THEN 'session.start' ELSE 'exec' END AS ev,
       'sid' || (i / 10) AS sid FROM generate_series(0, ${n - 1}) AS i) AS g`,
    "audit",
  );
  await server.psql("ANALYZE audit_events", "audit");
  out();
  out(
    `audit log: ${n} events over 30 days inserted in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  const since = { from: new Date(now - 86_400_000), to: new Date(now) };
  const timeIt = async (label: string, fn: () => Promise<unknown>) => {
    const runs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      await fn();
      runs.push(performance.now() - start);
    }
    runs.sort((a, b) => a - b);
    out(
      `${label.padEnd(60)} p50 ${percentile(runs, 50).toFixed(2)} ms, max ${
        runs.at(-1)!.toFixed(2)
      } ms`,
    );
  };
  const first = await log.search({ ...since, order: "desc", limit: 500 });
  await timeIt(
    "search --since=24h, newest 500",
    () => log.search({ ...since, order: "desc", limit: 500 }),
  );
  await timeIt(
    "search --since=24h, second page of 500",
    () => log.search({ ...since, order: "desc", limit: 500, startKey: first.lastKey! }),
  );
  await timeIt(
    "search --since=24h, types=[session.start], 500",
    () => log.search({ ...since, types: ["session.start"], limit: 500 }),
  );
  const sid = `sid${Math.floor(n / 10) - 5}`;
  await timeIt(`search --since=24h, sid=${sid}`, () => log.search({ ...since, sid }));
  const plan = await server.psql(
    `EXPLAIN SELECT id FROM audit_events WHERE time_ms >= ${now - 86_400_000}
       AND time_ms <= ${now} ORDER BY time_ms DESC, id DESC LIMIT 501`,
    "audit",
  );
  out(`plan: ${plan.trim().split("\n").map((l) => l.trim()).join(" | ")}`);
}

const dir = await Deno.makeTempDir({ prefix: "bench_backend_" });
try {
  out(`bench:backend: ${OPS} sequential ops per kind, ${PARALLEL} parallel writers`);
  let kv: Result;
  {
    await using b = await openBackend(`kv:${dir}/bench.kv`);
    kv = await measure(b);
  }
  let pg: Result;
  const external = args.values["pg-url"];
  if (external !== undefined) {
    await using b = await openBackend(external);
    await b.deleteRange({ prefix: ["bench"] });
    await b.deleteRange({ prefix: ["lat"] });
    pg = await measure(b);
  } else {
    await using server = await startPostgres();
    {
      await using b = await openBackend(server.url);
      pg = await measure(b);
    }
    const audit = Number(args.values.audit);
    if (audit > 0) await measureAudit(server, audit);
  }
  const pad = (s: string, n: number) => s.padStart(n);
  out(`${"metric".padEnd(32)}${pad("Deno KV", 12)}${pad("PostgreSQL", 12)}${pad("PG/KV", 8)}`);
  for (const metric of Object.keys(kv)) {
    const a = kv[metric]!;
    const b = pg[metric]!;
    const digits = metric.includes("ms") ? 2 : 0;
    out(
      `${metric.padEnd(32)}${pad(a.toFixed(digits), 12)}${pad(b.toFixed(digits), 12)}${
        pad((b / a).toFixed(2), 8)
      }`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
