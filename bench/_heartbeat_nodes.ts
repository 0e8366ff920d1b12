/**
 * Worker of bench/ha.ts: runs one real {@linkcode NodeService} per node identity of a JSON file,
 * in reverse tunnel mode (no listener), each with its own {@linkcode AuthClient} (mutual TLS,
 * its own keep-alive connections) to one auth address, wired as lib/service/node_service.ts
 * wires it, so every node does what a joined node does to auth on its own schedule: heartbeats,
 * user and host CA refreshes and the host CA rotation check (all three read the CAs through one
 * shared {@linkcode CaReader}), session tracker and recording upload loops; with `watch` in the
 * spec, each node also keeps one resource watch (lib/authclient {@linkcode ResourceFeed}) that
 * feeds its CA reader and role cache, as production nodes do. Not a test and not for use outside
 * the bench.
 *
 *   deno run -A bench/_heartbeat_nodes.ts --identities=FILE
 *
 * stdout `started <n>` once every node service runs; stdin `quit` (or its end) exits at once.
 */
import { parseArgs } from "node:util";
import { AuthClient, CaReader, ResourceFeed } from "../lib/authclient/mod.ts";
import { RealClock } from "../lib/clock/mod.ts";
import {
  CA_REFRESH_INTERVAL_MS,
  NODE_HEARTBEAT_INTERVAL_MS,
  SERVER_ANNOUNCE_TTL_MS,
} from "../lib/config/mod.ts";
import { configureLogging, getComponentLogger } from "../lib/log/mod.ts";
import { NodeService, runPeriodic } from "../lib/node/mod.ts";
import type { Role } from "../lib/resource/mod.ts";
import { eachLine } from "./_common.ts";

/** What the parent writes for each worker. */
export interface HeartbeatNodes {
  authHost: string;
  authPort: number;
  /** Host CA certificates (trust for the auth API). */
  tlsCaCerts: string[];
  userCaKeys: string[];
  hostCaKeys: string[];
  nodes: Array<{ hostId: string; keyPem: string; sshCert: string; tlsCert: string }>;
  /** Nodes follow a resource watch (production) instead of polling only. */
  watch: boolean;
}

const { values } = parseArgs({ options: { identities: { type: "string" } } });
if (values.identities === undefined) {
  throw new Error("Cannot start the heartbeat nodes: give --identities=FILE");
}
configureLogging({ severity: "ERROR", format: "text", output: "stderr" });
const spec = JSON.parse(await Deno.readTextFile(values.identities)) as HeartbeatNodes;
const clock = new RealClock();
const logger = getComponentLogger("bench:node");
const ac = new AbortController();
const dir = await Deno.makeTempDir({ prefix: "tp-bench-nodes-" });
const services: NodeService[] = [];
for (const [i, n] of spec.nodes.entries()) {
  const auth = new AuthClient({
    host: spec.authHost,
    port: spec.authPort,
    caCertPems: spec.tlsCaCerts,
    identity: { certPem: n.tlsCert, keyPem: n.keyPem },
  });
  const feed = spec.watch
    ? new ResourceFeed({
      client: auth,
      kinds: ["cert_authority", "role"],
      logger,
      signal: ac.signal,
    })
    : undefined;
  const cas = new CaReader({
    list: () => auth.listResources("cert_authority"),
    clock,
    ttlMs: Math.min(5000, CA_REFRESH_INTERVAL_MS / 2),
    ...(feed === undefined ? {} : { watch: feed }),
  });
  services.push(
    await NodeService.start({
      keyPem: n.keyPem,
      sshCert: n.sshCert,
      userCaKeys: spec.userCaKeys,
      hostCaKeys: spec.hostCaKeys,
      hostId: n.hostId,
      nodeName: `bench-node-${i}`,
      auth: {
        getResource: (kind, name) =>
          kind === "cert_authority" && (name === "host" || name === "user")
            ? cas.read(name)
            : auth.getResource(kind, name),
        heartbeatNode: (node) => auth.heartbeatNode(node),
        emitEvents: (events) => auth.emitEvents(events),
        uploadRecording: (sid, body) => auth.uploadRecording(sid, body),
        upsertSessionTracker: (tracker) => auth.upsertSessionTracker(tracker),
        deleteSessionTracker: (sid) => auth.deleteSessionTracker(sid),
        listRoles: async () => await auth.listResources("role") as Role[],
      },
      ...(feed === undefined ? {} : { watch: feed }),
      labels: { bench: "ha" },
      recordingsDir: `${dir}/${i}`,
      version: "bench",
      clock,
      logger,
      heartbeatIntervalMs: NODE_HEARTBEAT_INTERVAL_MS,
      heartbeatTtlMs: SERVER_ANNOUNCE_TTL_MS,
      caRefreshIntervalMs: CA_REFRESH_INTERVAL_MS,
    }),
  );
  void runPeriodic({
    name: "Host CA rotation check",
    task: async () => {
      await cas.read("host");
    },
    intervalMs: CA_REFRESH_INTERVAL_MS,
    clock,
    logger,
    signal: ac.signal,
  });
}
Deno.stdout.writeSync(new TextEncoder().encode(`started ${services.length}\n`));
await eachLine(Deno.stdin.readable, (line) => {
  if (line.trim() === "quit") Deno.exit(0);
});
Deno.exit(0);
