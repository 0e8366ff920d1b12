/**
 * Reverse tunnel scale: N lightweight agents (AgentPool instances in a few worker processes,
 * bench/_tunnel_agents.ts) hold tunnels to one real `teleport start --roles=auth,proxy`
 * process. For each N of `--n` (a fresh cluster each time) it measures:
 *
 * - registration of N node identities with a static token over the auth API (in parallel);
 * - the time until all N tunnels are up from a cold start of the agents;
 * - the proxy's RSS idle and with N tunnels up → RSS per tunnel, and its CPU with N idle
 *   tunnels (keepalives and heartbeats); the workers' RSS per agent;
 * - a proxy restart: SIGTERM (the proxy drains: it asks every agent to reconnect elsewhere),
 *   start again with the same config, data dir and ports; the time from the SIGTERM until all
 *   N agents are back, the process's own stop and start times, and the spread of the
 *   per-agent reconnect moments (p50/p90/p99/max).
 *
 * The same run holds `--openssh` plain `ssh -N` sessions to a stock sshd on a high loopback port
 * and sums the RSS (and PSS) of every sshd process (listener and per-connection children) →
 * sshd memory per connection, printed beside ours with the ratio.
 *
 * Run as root (it creates the OS user `td_bench` for sshd):
 *   npx -y deno@2.9.6 task bench:tunnels [--n=1000,10000] [--workers=4] [--parallel=24]
 *     [--openssh=200] [--mode=separate|multiplex] [--timeout=300] [--no-warmup]
 * `--workers` defaults to one per 2,500 agents; `--mode=multiplex` sends tunnels as TLS with
 * ALPN `teleport-reversetunnel` to the web port instead of SSH to the tunnel port; `--timeout`
 * (seconds) bounds each wait; `--no-warmup` skips the workers' createHash() warm-up (see
 * _tunnel_agents.ts). TP_BENCH_AGENT_LOG=WARN|INFO|DEBUG echoes the logs of proxy and agents.
 * The proxy logs at WARN. Not a test: it asserts nothing about timing.
 */
import { parseArgs } from "node:util";
import {
  benchSetup,
  cmdline,
  cpuSeconds,
  type Daemon,
  descendants,
  eachLine,
  openFilesLimit,
  out,
  percentile,
  procStatusKiB,
  pssKiB,
  settle,
  spawnRaised,
  startDaemon,
} from "./_common.ts";
import type { AgentIdentities } from "./_tunnel_agents.ts";
import { registerNodes } from "./_register.ts";
import { startSshd } from "../tests/e2e/_sshd.ts";
import { freePort, REPO, run } from "../tests/e2e/_helpers.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "1000" },
    workers: { type: "string" },
    parallel: { type: "string", default: "24" },
    openssh: { type: "string", default: "200" },
    mode: { type: "string", default: "separate" },
    timeout: { type: "string", default: "300" },
    warmup: { type: "boolean", default: true },
  },
  allowNegative: true,
});
const SIZES = values.n.split(",").map((s) => Number(s.trim()));
const PARALLEL = Number(values.parallel);
const OPENSSH = Number(values.openssh);
const MODE = values.mode;
const TIMEOUT_MS = Number(values.timeout) * 1000;
if (
  SIZES.some((n) => !Number.isInteger(n) || n < 1) || !(PARALLEL >= 1) || !(OPENSSH >= 0) ||
  (MODE !== "separate" && MODE !== "multiplex") || !(TIMEOUT_MS > 0)
) {
  throw new Error(
    "Cannot run the tunnel bench: --n takes positive integers (1000,10000), --parallel a " +
      "positive number, --openssh a count, --mode separate or multiplex, --timeout seconds",
  );
}
const LOGIN = "td_bench";
const AGENTS = new URL("./_tunnel_agents.ts", import.meta.url).pathname;
const CLUSTER = "bench.example";
/** With TP_BENCH_AGENT_LOG set (see _tunnel_agents.ts), logs of proxy and agents go to stderr. */
const ECHO = Deno.env.get("TP_BENCH_AGENT_LOG") !== undefined;
const echo = (prefix: string, line: string) => {
  if (ECHO) Deno.stderr.writeSync(new TextEncoder().encode(`${prefix} ${line}\n`));
};

/** Resolves the next time `notify` is called. */
class Changes {
  #waiters = new Set<() => void>();
  next(): Promise<void> {
    return new Promise((r) => this.#waiters.add(r));
  }
  notify(): void {
    const w = [...this.#waiters];
    this.#waiters.clear();
    for (const f of w) f();
  }
  /** Waits until `pred()` holds or `ms` pass; returns whether it held. */
  async until(pred: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.next(), new Promise((r) => timer = setTimeout(r, left))]);
      clearTimeout(timer);
    }
    return true;
  }
}

function startTeleport(config: string): Promise<Daemon> {
  return startDaemon(["--config", config], {
    raiseOpenFiles: true,
    onLog: (l) => echo("[proxy]", l),
  });
}

/** One agent worker process. */
interface Worker {
  pid: number;
  count: number;
  up: number;
  sinceMark: number;
  send(cmd: string): Promise<void>;
  report(): Promise<{ times: number[]; downs: number[] }>;
  stderr(): string;
  quit(): Promise<void>;
}

function startWorker(
  file: string,
  count: number,
  port: number,
  tls: boolean,
  changes: Changes,
): { worker: Worker; started: Promise<void> } {
  const child = spawnRaised(Deno.execPath(), [
    "run",
    "-A",
    AGENTS,
    `--identities=${file}`,
    "--host=127.0.0.1",
    `--port=${port}`,
    ...(tls ? ["--tls"] : []),
    ...(values.warmup ? [] : ["--no-warmup"]),
  ], { cwd: REPO, env: { ...Deno.env.toObject(), NO_COLOR: "1" }, stdin: "piped" });
  const started = Promise.withResolvers<void>();
  let pendingReport: PromiseWithResolvers<{ times: number[]; downs: number[] }> | undefined;
  let times: number[] = [];
  let stderr = "";
  const errDone = eachLine(child.stderr, (l) => {
    echo(`[agents ${file}]`, l);
    if (stderr.length < 20_000) stderr += l + "\n";
  });
  const w: Worker = {
    pid: child.pid,
    count,
    up: 0,
    sinceMark: 0,
    async send(cmd) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(cmd + "\n"));
      writer.releaseLock();
    },
    async report() {
      pendingReport = Promise.withResolvers();
      await w.send("report");
      return await pendingReport.promise;
    },
    stderr: () => stderr,
    async quit() {
      await w.send("quit").catch(() => {});
      await child.status;
      await Promise.all([outDone, errDone]);
    },
  };
  const outDone = eachLine(child.stdout, (l) => {
    const [kind, a, b] = l.split(" ");
    if (kind === "started") started.resolve();
    else if (kind === "up") {
      w.up = Number(a);
      w.sinceMark = Number(b);
      changes.notify();
    } else if (kind === "times") times = JSON.parse(l.slice(6));
    else if (kind === "downs") pendingReport?.resolve({ times, downs: JSON.parse(l.slice(6)) });
  });
  child.status.then((s) => {
    started.reject(new Error(`agent worker exited (${s.code}):\n${stderr}`));
    pendingReport?.reject(new Error(`agent worker exited (${s.code}):\n${stderr}`));
  });
  started.promise.catch(() => {});
  return { worker: w, started: started.promise };
}

/** Registers `n` node identities with the static token, `parallel` at a time. */
async function registerAgents(authPort: number, token: string, n: number) {
  const reg = await registerNodes({
    authPort,
    token,
    n,
    parallel: PARALLEL,
    namePrefix: "bench-agent",
  });
  const agents: AgentIdentities["agents"] = reg.nodes.map((r) => ({
    hostId: r.hostId,
    keyPem: r.keyPem,
    sshCert: r.sshCert,
  }));
  return { agents, hostCaKeys: reg.sshCaKeys.host, ms: reg.ms };
}

/** RSS of an idle agent worker (no agents): the Deno baseline each worker carries. */
async function idleWorkerKiB(dir: string): Promise<number> {
  const file = `${dir}/agents-none.json`;
  const none: AgentIdentities = { clusterName: CLUSTER, hostCaKeys: [], agents: [] };
  await Deno.writeTextFile(file, JSON.stringify(none));
  const { worker, started } = startWorker(file, 0, 1, false, new Changes());
  await started;
  await settle(2000);
  const kib = procStatusKiB(worker.pid, "VmRSS");
  await worker.quit();
  return kib;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const sec = (ms: number) => (ms / 1000).toFixed(1);
const mib = (kib: number) => (kib / 1024).toFixed(0);

interface Result {
  n: number;
  workers: number;
  registerMs: number;
  coldMs: number | string;
  /** Per agent: ms from spawning the workers to its tunnel being up. */
  coldTimes: number[];
  workersStartedMs: number;
  proxyIdleKiB: number;
  proxyUpKiB: number;
  proxyCpuPct: number;
  workersKiB: number;
  workerIdleKiB: number;
  fdLimit: number;
  stopMs: number;
  restartReadyMs: number;
  backMs: number | string;
  reconnect: number[];
  drainNoticed: number[];
  proxyAfterKiB: number;
  notes: string[];
}

async function runOne(n: number, workerIdleKiB: number): Promise<Result> {
  const workers = Math.max(1, values.workers ? Number(values.workers) : Math.ceil(n / 2500));
  const dir = await Deno.makeTempDir({ prefix: `tp-bench-tunnels-${n}-` });
  const token = crypto.getRandomValues(new Uint8Array(16)).reduce(
    (s, b) => s + b.toString(16).padStart(2, "0"),
    "",
  );
  const [authPort, webPort, sshPort, tunnelPort] = [freePort(), freePort(), freePort(), freePort()];
  const config = `${dir}/teleport.yaml`;
  await Deno.writeTextFile(
    config,
    `version: v3
teleport:
  nodename: bench-proxy
  data_dir: ${dir}/data
  log:
    severity: WARN
  connection_limits:
    # Thousands of registrations from one address, on purpose.
    rates: [{ period: 1s, average: 100000, burst: 100000 }]
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${authPort}
  cluster_name: ${CLUSTER}
  proxy_listener_mode: ${MODE}
  tokens:
    - "node:${token}"
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${webPort}
${
      MODE === "separate"
        ? `  listen_addr: 127.0.0.1:${sshPort}\n  tunnel_listen_addr: 127.0.0.1:${tunnelPort}\n`
        : ""
    }ssh_service:
  enabled: false
`,
  );
  const notes: string[] = [];
  const changes = new Changes();
  const running: Worker[] = [];
  let tp = await startTeleport(config);
  out(`N=${n}: teleport pid ${tp.pid} ready in ${sec(tp.startMs)} s; registering ${n} nodes…`);
  try {
    const reg = await registerAgents(authPort, token, n);
    // A fresh process for the idle figure: registration garbage would blur the baseline.
    out(`N=${n}: registered in ${sec(reg.ms)} s; restarting the proxy for a clean baseline…`);
    await tp.stop();
    tp = await startTeleport(config);
    await settle(5000);
    const proxyIdleKiB = procStatusKiB(tp.pid, "VmRSS");

    const per = Math.ceil(n / workers);
    const t0 = Date.now();
    const starts: Promise<void>[] = [];
    for (let w = 0; w < workers; w++) {
      const slice = reg.agents.slice(w * per, (w + 1) * per);
      if (slice.length === 0) continue;
      const file = `${dir}/agents-${w}.json`;
      const spec: AgentIdentities = {
        clusterName: CLUSTER,
        hostCaKeys: reg.hostCaKeys,
        agents: slice,
      };
      await Deno.writeTextFile(file, JSON.stringify(spec));
      const { worker, started } = startWorker(
        file,
        slice.length,
        MODE === "separate" ? tunnelPort : webPort,
        MODE === "multiplex",
        changes,
      );
      running.push(worker);
      starts.push(started);
    }
    await Promise.all(starts);
    const workersStartedMs = Date.now() - t0;
    const fdLimit = Math.min(openFilesLimit(tp.pid), ...running.map((w) => openFilesLimit(w.pid)));
    out(`N=${n}: ${running.length} workers started in ${sec(workersStartedMs)} s; dialling…`);
    const total = () => running.reduce((s, w) => s + w.up, 0);
    const since = () => running.reduce((s, w) => s + w.sinceMark, 0);
    const allUp = await changes.until(() => total() === n, TIMEOUT_MS);
    const coldMs: number | string = allUp
      ? Date.now() - t0
      : `timeout (${total()}/${n} up after ${sec(TIMEOUT_MS)} s)`;
    out(`N=${n}: cold start ${typeof coldMs === "number" ? `${sec(coldMs)} s` : coldMs}`);
    if (!allUp) {
      notes.push(
        `N=${n}: not all tunnels came up: ${
          running.map((w) => w.stderr()).join("").slice(0, 2000)
        }`,
      );
    }

    const coldTimes = sorted(
      (await Promise.all(running.map((w) => w.report()))).flatMap((r) => r.times)
        .filter((t) => t >= t0).map((t) => t - t0),
    );
    await settle(5000);
    const proxyUpKiB = procStatusKiB(tp.pid, "VmRSS");
    const workersKiB = running.reduce((s, w) => s + procStatusKiB(w.pid, "VmRSS"), 0);
    const cpu0 = cpuSeconds(tp.pid);
    const c0 = performance.now();
    await settle(15_000);
    const proxyCpuPct = (cpuSeconds(tp.pid) - cpu0) / ((performance.now() - c0) / 1000) * 100;

    // Restart: mark, SIGTERM, start again on the same ports, wait for every agent.
    const tStop = Date.now();
    await Promise.all(running.map((w) => w.send(`mark ${tStop}`)));
    await tp.stop();
    const stopMs = Date.now() - tStop;
    out(`N=${n}: proxy stopped in ${sec(stopMs)} s (up now ${total()}); starting again…`);
    tp = await startTeleport(config);
    const restartReadyMs = tp.startMs;
    const back = await changes.until(() => since() === n, TIMEOUT_MS);
    const backMs: number | string = back
      ? Date.now() - tStop
      : `timeout (${since()}/${n} back after ${sec(TIMEOUT_MS)} s)`;
    out(`N=${n}: all back ${typeof backMs === "number" ? `${sec(backMs)} s` : backMs}`);
    const reports = await Promise.all(running.map((w) => w.report()));
    const reconnect = sorted(
      reports.flatMap((r) => r.times).filter((t) => t >= tStop).map((t) => t - tStop),
    );
    const drainNoticed = sorted(
      reports.flatMap((r) => r.downs).filter((t) => t >= tStop).map((t) => t - tStop),
    );
    await settle(5000);
    const proxyAfterKiB = procStatusKiB(tp.pid, "VmRSS");
    return {
      n,
      workers: running.length,
      registerMs: reg.ms,
      coldMs,
      coldTimes,
      workersStartedMs,
      proxyIdleKiB,
      proxyUpKiB,
      proxyCpuPct,
      workersKiB,
      workerIdleKiB,
      fdLimit,
      stopMs,
      restartReadyMs,
      backMs,
      reconnect,
      drainNoticed,
      proxyAfterKiB,
      notes,
    };
  } finally {
    await Promise.all(running.map((w) => w.quit()));
    const logs = tp.logs();
    await tp.stop();
    const errors = logs.split("\n").filter((l) => /ERROR|Unhandled/.test(l));
    if (errors.length > 0) {
      out(`N=${n}: the proxy logged ${errors.length} error lines, first: ${errors[0]}`);
    }
    await Deno.remove(dir, { recursive: true });
  }
}

/** `count` `ssh -N` sessions held to a stock sshd: memory per connection, server and client. */
async function measureOpenssh(count: number) {
  const dir = await benchSetup("tp-bench-tunnels-ssh-", LOGIN);
  try {
    const keygen = async (...args: string[]) => {
      const r = await run("ssh-keygen", ["-q", ...args]);
      if (r.code !== 0) throw new Error(`ssh-keygen ${args.join(" ")}: ${r.err}`);
    };
    await keygen("-t", "ed25519", "-N", "", "-f", `${dir}/ca`);
    await keygen("-t", "ed25519", "-N", "", "-f", `${dir}/user`);
    await keygen("-s", `${dir}/ca`, "-I", "bench", "-n", LOGIN, "-V", "-5m:+2h", `${dir}/user.pub`);
    await Deno.mkdir(`${dir}/sshd`);
    await using sshd = await startSshd(
      `${dir}/sshd`,
      `${dir}/ca.pub`,
      "MaxStartups 2000\nClientAliveInterval 30\n",
    );
    const listener = descendants(Deno.pid).find((p) => cmdline(p).includes(`${dir}/sshd/`));
    if (listener === undefined) throw new Error("Cannot find the sshd listener process");
    await settle(1000);
    const idleRss = procStatusKiB(listener, "VmRSS");
    const idlePss = pssKiB(listener);
    const clients: Deno.ChildProcess[] = [];
    const accepted = () => (sshd.log().match(/Accepted publickey for /g) ?? []).length;
    const t0 = performance.now();
    for (let i = 0; i < count; i += 25) {
      for (let j = i; j < Math.min(count, i + 25); j++) {
        clients.push(
          new Deno.Command("ssh", {
            args: [
              "-N",
              "-F",
              "/dev/null",
              "-p",
              String(sshd.port),
              "-i",
              `${dir}/user`,
              "-o",
              `CertificateFile=${dir}/user-cert.pub`,
              "-o",
              "IdentitiesOnly=yes",
              "-o",
              "BatchMode=yes",
              "-o",
              "StrictHostKeyChecking=no",
              "-o",
              "UserKnownHostsFile=/dev/null",
              "-o",
              "ServerAliveInterval=15",
              "-o",
              "LogLevel=ERROR",
              `${LOGIN}@127.0.0.1`,
            ],
            stdin: "null",
            stdout: "null",
            stderr: "null",
          }).spawn(),
        );
      }
      const want = Math.min(count, i + 25);
      const deadline = Date.now() + 60_000;
      while (accepted() < want) {
        if (Date.now() > deadline) throw new Error(`sshd accepted ${accepted()}/${want}`);
        await settle(50);
      }
    }
    const connectMs = performance.now() - t0;
    await settle(3000);
    const tree = [listener, ...descendants(listener)];
    const rss = tree.reduce((s, p) => s + procStatusKiB(p, "VmRSS"), 0);
    const pss = tree.reduce((s, p) => s + pssKiB(p), 0);
    const clientRss = clients.reduce((s, c) => s + procStatusKiB(c.pid, "VmRSS"), 0);
    const clientPss = clients.reduce((s, c) => s + pssKiB(c.pid), 0);
    for (const c of clients) c.kill("SIGTERM");
    await Promise.all(clients.map((c) => c.status));
    return {
      count,
      processes: tree.length,
      connectMs,
      rssPerConn: (rss - idleRss) / Math.max(1, count),
      pssPerConn: (pss - idlePss) / Math.max(1, count),
      clientRss: clientRss / Math.max(1, count),
      clientPss: clientPss / Math.max(1, count),
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

out(`tunnel scale: mode ${MODE}, N = ${SIZES.join(", ")}, registration ${PARALLEL} in parallel`);
const ssh = OPENSSH > 0 ? await measureOpenssh(OPENSSH) : undefined;
if (ssh) {
  out(
    `OpenSSH: ${ssh.count} ssh -N sessions up in ${
      sec(ssh.connectMs)
    } s (${ssh.processes} sshd processes)`,
  );
}
const tmp = await Deno.makeTempDir({ prefix: "tp-bench-tunnels-idle-" });
const workerIdleKiB = await idleWorkerKiB(tmp);
await Deno.remove(tmp, { recursive: true });
const results: Result[] = [];
for (const n of SIZES) results.push(await runOne(n, workerIdleKiB));

const col = (s: string) => s.padStart(14);
const row = (label: string, f: (r: Result) => string) =>
  out(`  ${label.padEnd(52)}${results.map((r) => col(f(r))).join("")}`);
const time = (v: number | string) => typeof v === "number" ? sec(v) : "timeout";
const pct = (xs: number[], p: number) => xs.length === 0 ? "-" : sec(percentile(xs, p));
const perTunnel = (r: Result) => (r.proxyUpKiB - r.proxyIdleKiB) / r.n;
const perAgent = (r: Result) => (r.workersKiB - r.workers * r.workerIdleKiB) / r.n;
out();
out(`reverse tunnels (proxy_listener_mode ${MODE}; one auth+proxy process)`);
row("N (tunnels)", (r) => `${r.n}`);
row("agent worker processes", (r) => `${r.workers}`);
row("open-files limit (lowest of proxy and workers)", (r) => `${r.fdLimit}`);
row(`registration, ${PARALLEL} in parallel (s)`, (r) => sec(r.registerMs));
row("agent workers started, keys imported (s)", (r) => sec(r.workersStartedMs));
row("cold start: all N tunnels up (s)", (r) => time(r.coldMs));
row(
  "  per agent p50 / p99 (s from spawning the workers)",
  (r) => `${pct(r.coldTimes, 50)}/${pct(r.coldTimes, 99)}`,
);
row("proxy RSS idle, fresh process (MiB)", (r) => mib(r.proxyIdleKiB));
row("proxy RSS with N tunnels (MiB)", (r) => mib(r.proxyUpKiB));
row("proxy RSS per tunnel (KiB)", (r) => perTunnel(r).toFixed(1));
row("proxy CPU with N idle tunnels (% of a core)", (r) => r.proxyCpuPct.toFixed(1));
row("agent workers RSS per agent, net of idle Deno (KiB)", (r) => perAgent(r).toFixed(1));
row("restart: SIGTERM → process exited (s)", (r) => sec(r.stopMs));
row("restart: start → ready (s)", (r) => sec(r.restartReadyMs));
row("restart: SIGTERM → all N agents back (s)", (r) => time(r.backMs));
row(
  "  reconnect p50 / p99 (s from SIGTERM)",
  (r) => `${pct(r.reconnect, 50)}/${pct(r.reconnect, 99)}`,
);
row(
  "  reconnect p90 / max (s from SIGTERM)",
  (r) => `${pct(r.reconnect, 90)}/${pct(r.reconnect, 100)}`,
);
row(
  "  agents saw the drain p50 / max (s)",
  (r) => `${pct(r.drainNoticed, 50)}/${pct(r.drainNoticed, 100)}`,
);
row("proxy RSS after restart with N tunnels (MiB)", (r) => mib(r.proxyAfterKiB));
row(
  "proxy RSS per tunnel after restart (KiB)",
  (r) => ((r.proxyAfterKiB - r.proxyIdleKiB) / r.n).toFixed(1),
);
out(`  (an idle agent worker process: ${mib(workerIdleKiB)} MiB RSS)`);
if (ssh) {
  out();
  out(`OpenSSH, ${ssh.count} ssh -N sessions to one sshd (memory per connection, KiB)`);
  out(
    `  sshd (listener + per-connection processes) RSS sum   ${
      ssh.rssPerConn.toFixed(1).padStart(10)
    }`,
  );
  out(
    `  sshd PSS sum (shared pages split)                    ${
      ssh.pssPerConn.toFixed(1).padStart(10)
    }`,
  );
  out(
    `  ssh client process RSS                               ${
      ssh.clientRss.toFixed(1).padStart(10)
    }`,
  );
  out(
    `  ssh client process PSS                               ${
      ssh.clientPss.toFixed(1).padStart(10)
    }`,
  );
  out();
  out("ratios (ours / OpenSSH; memory per connection, <1 = leaner)");
  for (const r of results) {
    out(
      `  N=${r.n}: proxy per tunnel / sshd per connection: RSS ${
        (perTunnel(r) / ssh.rssPerConn).toFixed(3)
      }  PSS ${(perTunnel(r) / ssh.pssPerConn).toFixed(2)}; agent / ssh client: RSS ${
        (perAgent(r) / ssh.clientRss).toFixed(3)
      }  PSS ${(perAgent(r) / ssh.clientPss).toFixed(2)}`,
    );
  }
}
for (const r of results) for (const n of r.notes) out(n);
