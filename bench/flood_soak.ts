/**
 * Flood and slow-client soak (issue 11 finding 1), local only and bounded: one real
 * `teleport start --roles=auth,proxy,node` on 127.0.0.1, then
 *
 * 1. a flood of silent TLS ClientHellos asking for the auth pass-through ALPN on the web port
 *    (what crashed the whole daemon before: ~6,900 of them filled 20,000 descriptors) from
 *    `--spread` loopback addresses, `--n` connections in all, held for `--hold` seconds;
 * 2. slow clients on the web and auth ports that send one byte a second.
 *
 * Every 250 ms it samples the daemon's open descriptors and RSS and asks `/webapi/ping` (curl),
 * and prints flood size, refusals, peaks, ping success during the flood, and whether the process
 * survived. Usage: `deno task bench:flood [--n=10000] [--spread=40] [--hold=10] [--slow=500]`.
 */
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { authAlpn } from "../lib/multiplex/mod.ts";
import { captureClientHello, freePort } from "../tests/e2e/_helpers.ts";
import { openFilesLimit, out, procStatusKiB, startDaemon } from "./_common.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "10000" },
    spread: { type: "string", default: "40" },
    hold: { type: "string", default: "10" },
    slow: { type: "string", default: "500" },
  },
});
const N = Number(values.n);
const SPREAD = Number(values.spread);
const HOLD_S = Number(values.hold);
const SLOW = Number(values.slow);
const CLUSTER = "soak.example";

function openFiles(pid: number): number {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
    return n;
  } catch {
    return -1;
  }
}

async function ping(port: number): Promise<boolean> {
  const p = await new Deno.Command("curl", {
    args: ["-sk", "-m", "5", `https://127.0.0.1:${port}/webapi/ping`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return p.code === 0 && new TextDecoder().decode(p.stdout).includes(CLUSTER);
}

const dir = await Deno.makeTempDir({ prefix: "tp-soak-" });
const [authPort, webPort, sshPort] = [freePort(), freePort(), freePort()];
await Deno.writeTextFile(
  `${dir}/teleport.yaml`,
  `version: v3
teleport:
  nodename: soak-node
  data_dir: ${dir}/data
  log:
    severity: WARN
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${authPort}
  cluster_name: ${CLUSTER}
  proxy_listener_mode: multiplex
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${webPort}
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:${sshPort}
`,
);
const d = await startDaemon(["-c", `${dir}/teleport.yaml`]);
const limit = openFilesLimit(d.pid);
const base = { fds: openFiles(d.pid), rssKiB: procStatusKiB(d.pid, "VmRSS") };
out(
  `teleport pid ${d.pid}: open-files limit ${limit}; idle ${base.fds} fds, RSS ${base.rssKiB} KiB`,
);

let peakFds = base.fds;
let peakRss = base.rssKiB;
let pings = 0;
let pingsOk = 0;
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    peakFds = Math.max(peakFds, openFiles(d.pid));
    peakRss = Math.max(peakRss, procStatusKiB(d.pid, "VmRSS"));
    pings++;
    if (await ping(webPort)) pingsOk++;
    await new Promise((r) => setTimeout(r, 250));
  }
})();

const hello = await captureClientHello(authAlpn(CLUSTER));
const socks: Socket[] = [];
let closedByServer = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: N }, (_, i) =>
  new Promise<void>((resolve) => {
    const s = connect({
      host: "127.0.0.1",
      port: webPort,
      localAddress: `127.0.4.${(i % SPREAD) + 1}`,
    });
    s.setNoDelay(true);
    socks.push(s);
    s.on("error", () => {});
    s.once("close", () => {
      closedByServer++;
      resolve();
    });
    s.resume(); // read what the server sends, so its close is seen
    s.once("connect", () => {
      s.write(hello);
      resolve();
    });
  })));
out(
  `flood: ${N} silent ClientHellos from ${SPREAD} addresses opened in ` +
    `${((performance.now() - t0) / 1000).toFixed(1)} s; holding ${HOLD_S} s…`,
);
await new Promise((r) => setTimeout(r, HOLD_S * 1000));
const floodPings = { pings, pingsOk };
const closedDuring = closedByServer;
for (const s of socks) s.destroy();

// Slow clients: one byte a second on the web and auth ports.
const slow: Socket[] = [];
let slowCut = 0;
for (let i = 0; i < SLOW; i++) {
  const s = connect({ host: "127.0.0.1", port: i % 2 ? webPort : authPort });
  s.setNoDelay(true);
  s.on("error", () => {});
  s.once("close", () => slowCut++);
  slow.push(s);
}
const drip = setInterval(() => {
  for (const s of slow) if (!s.destroyed) s.write(Uint8Array.of(0x16));
}, 1000);
await new Promise((r) => setTimeout(r, 12_000));
clearInterval(drip);
for (const s of slow) s.destroy();

sampling = false;
await sampler;
const alive = openFiles(d.pid) > 0;
const after = await ping(webPort);
out();
out(`| | value |`);
out(`|---|---|`);
out(`| flood connections (silent ClientHello, auth ALPN) | ${N} from ${SPREAD} addresses |`);
out(`| closed by the server while held ${HOLD_S} s | ${closedDuring} |`);
out(`| peak open descriptors / limit | ${peakFds} / ${limit} |`);
out(
  `| peak RSS (MiB), idle → peak | ${(base.rssKiB / 1024).toFixed(0)} → ${
    (peakRss / 1024).toFixed(0)
  } |`,
);
out(`| pings answered during the flood | ${floodPings.pingsOk} / ${floodPings.pings} |`);
out(`| slow clients cut within 12 s (1 byte/s) | ${slowCut} / ${SLOW} |`);
out(`| process alive, ping after | ${alive}, ${after} |`);
await d.stop();
await Deno.remove(dir, { recursive: true });
