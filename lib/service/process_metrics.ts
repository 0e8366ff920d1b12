/**
 * The metrics the wiring reports (the services report their own through the injected registry):
 *
 * - process: `process_open_fds`, `process_max_fds`, `process_resident_memory_bytes`,
 *   `process_start_time_seconds`, `teleport_build_info{version,runtime}`;
 * - admission control (lib/net ConnectionGuard): `teleport_connection_guard_connections`,
 *   `…_pending_connections`, `…_held_descriptors`, `…_descriptor_reserve` and
 *   `teleport_connection_guard_refused_total{reason}`;
 * - auth: `teleport_registered_servers{type,version}` and `teleport_connected_resources{type}`
 *   from presence (read at most every 7 s, as Teleport refreshes them), and `user_login_total` /
 *   `failed_login_attempts_total` from the `user.login` audit events;
 * - node: `server_interactive_sessions_total` (interactive sessions open now, Teleport's name).
 *
 * @module
 */
import type { Clock } from "../clock/mod.ts";
import type { AuditEvent, AuditLog, SearchQuery, SearchResult } from "../events/mod.ts";
import type { MetricsRegistry } from "../metrics/mod.ts";
import { type ConnectionGuard, countOpenFiles, type RefusalReason } from "../net/mod.ts";
import type { ServerResource } from "../resource/mod.ts";

const REFUSAL_REASONS: readonly RefusalReason[] = [
  "descriptors",
  "total",
  "per-ip",
  "pending-per-ip",
  "closing",
];

/** Registers the process and connection-guard metrics; returns the collector's removal. */
export function reportProcessMetrics(
  metrics: MetricsRegistry,
  o: { guard: ConnectionGuard; version: string; clock: Clock },
): () => void {
  const started = o.clock.now().getTime() / 1000;
  const gauge = (name: string, help: string) => metrics.gauge({ name, help });
  const openFds = gauge("process_open_fds", "Open file descriptors");
  const maxFds = gauge("process_max_fds", "Open-files limit of the process");
  const rss = gauge("process_resident_memory_bytes", "Resident memory in bytes");
  gauge("process_start_time_seconds", "Start time of the process, seconds since the epoch")
    .set(started);
  metrics.gauge({
    name: "teleport_build_info",
    help: "Version of this teleport and of its runtime (always 1)",
    labelNames: ["version", "runtime"],
  }).set(1, { version: o.version, runtime: `deno ${Deno.version.deno}` });
  const conns = gauge(
    "teleport_connection_guard_connections",
    "Accepted connections open now, over every listener",
  );
  const pending = gauge(
    "teleport_connection_guard_pending_connections",
    "Accepted connections still in their handshake (not yet authenticated)",
  );
  const held = gauge(
    "teleport_connection_guard_held_descriptors",
    "Descriptors held by accepted connections and their upstreams",
  );
  const reserve = gauge(
    "teleport_connection_guard_descriptor_reserve",
    "Descriptors kept free for everything that is not an accepted connection",
  );
  const refused = metrics.counter({
    name: "teleport_connection_guard_refused_total",
    help: "Connections refused at accept, by reason",
    labelNames: ["reason"],
  });
  for (const reason of REFUSAL_REASONS) refused.inc({ reason }, 0);
  return metrics.addCollector(() => {
    const s = o.guard.stats;
    conns.set(s.connections);
    pending.set(s.pending);
    held.set(s.heldDescriptors);
    reserve.set(s.descriptorReserve);
    maxFds.set(s.openFilesLimit);
    openFds.set(countOpenFiles() ?? s.openFiles);
    rss.set(Deno.memoryUsage().rss);
    for (const reason of REFUSAL_REASONS) {
      const delta = s.refused[reason] - refused.get({ reason });
      if (delta > 0) refused.inc({ reason }, delta);
    }
  });
}

/** How often presence is read for the server gauges (Teleport: about every 7 s). */
export const PRESENCE_REFRESH_MS = 7_000;

/**
 * Registers `teleport_registered_servers{type,version}` (servers whose presence record is live)
 * and `teleport_connected_resources{type}` (nodes heard from within `onlineWithinMs`, as
 * `tsh ls` tells online nodes). Returns the collector's removal.
 */
export function reportPresenceMetrics(
  metrics: MetricsRegistry,
  o: {
    listNodes: () => Promise<ServerResource[]>;
    listProxies: () => Promise<Array<{ spec: { version?: string } }>>;
    clock: Clock;
    /** TTL the records are written with (their last heartbeat is expires - TTL). */
    announceTtlMs: number;
    onlineWithinMs: number;
  },
): () => void {
  const registered = metrics.gauge({
    name: "teleport_registered_servers",
    help: "Servers registered in the cluster whose presence has not expired, by type and version",
    labelNames: ["type", "version"],
  });
  const connected = metrics.gauge({
    name: "teleport_connected_resources",
    help: "Resources keeping their presence alive with heartbeats now, by type",
    labelNames: ["type"],
  });
  connected.set(0, { type: "node" });
  let readAt = -Infinity;
  return metrics.addCollector(async () => {
    const now = o.clock.now().getTime();
    if (now - readAt < PRESENCE_REFRESH_MS) return;
    readAt = now;
    const [nodes, proxies] = await Promise.all([o.listNodes(), o.listProxies()]);
    registered.reset();
    const count = (type: string, version: string | undefined) =>
      registered.inc({ type, version: version ?? "unknown" });
    for (const n of nodes) count("node", n.spec.version);
    for (const p of proxies) count("proxy", p.spec.version);
    const online = nodes.filter((n) => {
      const expires = Date.parse(n.metadata.expires ?? "");
      return Number.isNaN(expires) || now - (expires - o.announceTtlMs) <= o.onlineWithinMs;
    });
    connected.set(online.length, { type: "node" });
  });
}

/** An audit log that also counts `user.login` events as login metrics. */
export function countLogins(inner: AuditLog, metrics: MetricsRegistry): AuditLog {
  const logins = metrics.counter({
    name: "user_login_total",
    help: "User login attempts (password and second factor), successful or not",
  });
  const failed = metrics.counter({
    name: "failed_login_attempts_total",
    help: "User login attempts that failed",
  });
  logins.inc(undefined, 0);
  failed.inc(undefined, 0);
  return {
    emit: (event: AuditEvent) => {
      if (event.event === "user.login") {
        logins.inc();
        if (event.success === false) failed.inc();
      }
      return inner.emit(event);
    },
    search: (q: SearchQuery): Promise<SearchResult> => inner.search(q),
    close: () => inner.close(),
  };
}
