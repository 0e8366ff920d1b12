/**
 * Worker of bench/tunnel_scale.ts: runs one reverse tunnel {@linkcode AgentPool} per node
 * identity of a JSON file, all dialling one proxy's tunnel address, with the pool's defaults
 * (keepalive 15 s, heartbeat 60 s, backoff 1→30 s with jitter). Not a test and not for use
 * outside the bench.
 *
 *   deno run -A bench/_tunnel_agents.ts --identities=FILE --host=127.0.0.1 --port=P [--tls]
 *     [--no-warmup]
 *
 * Protocol with the parent (one line each way):
 *
 * - stdout `started <n>`: every pool has been started (keys imported);
 * - stdout `up <up> <upSinceMark>` whenever the count changes (at most every 200 ms): agents
 *   holding a live tunnel now, and those of them that came up at or after the last mark;
 * - stdin `mark <epoch ms>`: starts a new measurement (a restart);
 * - stdin `report`: stdout `times <json>`, the epoch-ms moment each agent last came up (0 when
 *   it never did) and `downs <json>`, the moment each last went down;
 * - stdin `quit` (or end of input): exits at once (the parent measures nothing after it).
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { importSshPrivateKey, parseAuthorizedKey } from "../lib/ca/mod.ts";
import { RealClock } from "../lib/clock/mod.ts";
import { configureLogging, getComponentLogger } from "../lib/log/mod.ts";
import { dialTcp } from "../lib/net/mod.ts";
import { AgentPool, type TunnelAddr } from "../lib/tunnel/mod.ts";
import { eachLine } from "./_common.ts";

/** What the parent writes for each worker. */
export interface AgentIdentities {
  clusterName: string;
  /** The cluster's host CA keys, authorized_keys lines. */
  hostCaKeys: string[];
  agents: Array<{ hostId: string; keyPem: string; sshCert: string }>;
}

const { values } = parseArgs({
  options: {
    identities: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    tls: { type: "boolean", default: false },
    warmup: { type: "boolean", default: true },
  },
  allowNegative: true,
});
if (values.identities === undefined || values.port === undefined) {
  throw new Error("Cannot start the agents: give --identities=FILE and --port=PORT");
}
// Agents warn once per failed attempt streak; at thousands of agents that floods the parent.
// TP_BENCH_AGENT_LOG=DEBUG|INFO|WARN shows more (for a small N).
const severity = Deno.env.get("TP_BENCH_AGENT_LOG");
configureLogging({
  severity: severity === "DEBUG" || severity === "INFO" || severity === "WARN" ? severity : "ERROR",
  format: "text",
  output: "stderr",
});

// Deno runs pending microtasks inside the first createHash() of a process (it loads its hash
// code lazily). ssh2's key exchange hashes right there, and lib/ssh answers the host key check
// from a microtask: the check lands in the middle of ssh2's finish(), the client never sends
// NEWKEYS and that first connection hangs until its 30 s timeout. Warming createHash up here
// keeps that bug (reported to lib/ssh) out of the figures; --no-warmup shows it.
if (values.warmup) createHash("sha256").update("warm-up").digest();

const spec = JSON.parse(await Deno.readTextFile(values.identities)) as AgentIdentities;
const addr: TunnelAddr = {
  host: values.host,
  port: Number(values.port),
  tls: values.tls,
  source: "bench",
};
const caBlobs = spec.hostCaKeys.map((k) => parseAuthorizedKey(k).blob);
const clock = new RealClock();
const logger = getComponentLogger("bench:agent");
const enc = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));

const upAt = new Float64Array(spec.agents.length);
const downAt = new Float64Array(spec.agents.length);
const isUp = new Uint8Array(spec.agents.length);
let mark = 0;
let up = 0;
let flush: ReturnType<typeof setTimeout> | undefined;

function countSinceMark(): number {
  let n = 0;
  for (let i = 0; i < isUp.length; i++) if (isUp[i] === 1 && upAt[i]! >= mark) n++;
  return n;
}

function changed(): void {
  flush ??= setTimeout(() => {
    flush = undefined;
    say(`up ${up} ${countSinceMark()}`);
  }, 200);
}

/** Follows one pool's up/down transitions. */
async function watch(i: number, pool: AgentPool): Promise<void> {
  while (true) {
    const now = pool.proxies.length > 0;
    if (now && isUp[i] === 0) {
      isUp[i] = 1;
      upAt[i] = Date.now();
      up++;
      changed();
    } else if (!now && isUp[i] === 1) {
      isUp[i] = 0;
      downAt[i] = Date.now();
      up--;
      changed();
    }
    await pool.changed();
  }
}

for (let i = 0; i < spec.agents.length; i++) {
  const a = spec.agents[i]!;
  const pool = AgentPool.start({
    hostId: a.hostId,
    clusterName: spec.clusterName,
    key: await importSshPrivateKey(a.keyPem),
    certificate: parseAuthorizedKey(a.sshCert).blob,
    hostCaKeys: () => caBlobs,
    resolve: () => Promise.resolve(addr),
    // Proxy settings from the environment as a real agent would; the bench sets none.
    dial: (host, port) => dialTcp(host, port, { logger }),
    serveLocalNode: (stream) => stream.destroy(),
    version: "bench",
    clock,
    logger,
  });
  void watch(i, pool);
}
say(`started ${spec.agents.length}`);

await eachLine(Deno.stdin.readable, (line) => {
  const [cmd, arg] = line.trim().split(" ");
  if (cmd === "mark") {
    mark = Number(arg);
    say(`up ${up} ${countSinceMark()}`);
  } else if (cmd === "report") {
    say(`times ${JSON.stringify(Array.from(upAt))}`);
    say(`downs ${JSON.stringify(Array.from(downAt))}`);
  } else if (cmd === "quit") {
    Deno.exit(0);
  }
});
Deno.exit(0);
