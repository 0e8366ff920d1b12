/**
 * TeleportProcess: turns a ProcessConfig into running services: auth
 * (auth_service.ts), proxy (proxy_service.ts) and node (node_service.ts), in that
 * order, each announcing readiness (`auth.ready`, `proxy.ready`, `node.ready`).
 * Before any of them: listen addresses checked, data dir checked/created 0700
 * (data_dir.ts), pid file written (pid_file.ts).
 *
 * With `diag_addr` the diagnostics endpoint (diag.ts) listens first, so a load balancer sees
 * 400 while the services start; readiness (health.ts) follows the auth service's backend checks
 * and the proxy's and node's heartbeats (and, in tunnel mode, whether any tunnel is up).
 */
import type { AuthServer } from "../auth/mod.ts";
import { type Clock, RealClock } from "../clock/mod.ts";
import type { Backend } from "../backend/mod.ts";
import { MetricsRegistry } from "../metrics/mod.ts";
import { ConnectionGuard, readOpenFilesLimit } from "../net/mod.ts";
import {
  type Addr,
  formatAddr,
  HEARTBEAT_CHECK_PERIOD_MS,
  isUnspecifiedHost,
  type ProcessConfig,
  VERSION,
} from "../config/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import type { NodeService } from "../node/mod.ts";
import { type AuthReady, startAuthService } from "./auth_service.ts";
import { startNodeService } from "./node_service.ts";
import { type ProxyReady, startProxyService } from "./proxy_service.ts";
import type { ServiceHost, TeleportProcessOptions } from "./service_host.ts";
import { getComponentLogger } from "../log/mod.ts";
import { ensureDataDir, loadHostUuid } from "./data_dir.ts";
import { type PidFile, replacePidFile, writePidFile } from "./pid_file.ts";
import { formatFields, Supervisor } from "./supervisor.ts";
import { type DiagServer, startDiagServer } from "./diag.ts";
import { ProcessHealth } from "./health.ts";
import { reportProcessMetrics } from "./process_metrics.ts";

export { ADMIN_IDENTITY_FILE, type AuthReady } from "./auth_service.ts";
export type { NodeReady } from "./node_service.ts";
export type { TeleportProcessOptions } from "./service_host.ts";

/** Below this open-files limit the process warns at start. */
const LOW_OPEN_FILES_LIMIT = 8192;

/** The fixed-port listen addresses the config asks for, each with the key that sets it. */
export function listenAddrsOf(cfg: ProcessConfig): Array<{ key: string; addr: Addr }> {
  const out: Array<{ key: string; addr: Addr }> = [];
  if (cfg.roles.auth) out.push({ key: "auth_service.listen_addr", addr: cfg.auth.listenAddr });
  if (cfg.roles.proxy) {
    const p = cfg.proxy;
    out.push({ key: "proxy_service.web_listen_addr", addr: p.webListenAddr });
    // SSH and tunnel ports of their own only in separate mode (known here with auth in-process;
    // a remote auth decides later, and a bind failure then still names the address).
    if (cfg.roles.auth && cfg.auth.proxyListenerMode === "separate") {
      out.push({ key: "proxy_service.listen_addr", addr: p.sshListenAddr });
      out.push({ key: "proxy_service.tunnel_listen_addr", addr: p.tunnelListenAddr });
    }
  }
  const tunnelNode = !cfg.roles.auth && cfg.authServers.length === 0 &&
    cfg.proxyServer !== undefined;
  if (cfg.roles.node && !tunnelNode) {
    out.push({ key: "ssh_service.listen_addr", addr: cfg.ssh.listenAddr });
  }
  if (cfg.diagAddr !== undefined) out.push({ key: "teleport.diag_addr", addr: cfg.diagAddr });
  // Port 0 picks a free port; an address shared by two keys (TLS routing) is checked once.
  const seen = new Set<string>();
  return out.filter(({ addr }) => {
    const id = formatAddr(addr);
    if (addr.port === 0 || seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * Binds and releases each address, so that one that cannot be bound fails the start with its
 * config key and the fix, before anything is created.
 */
export function checkListenAddrs(addrs: Array<{ key: string; addr: Addr }>): void {
  for (const { key, addr } of addrs) {
    let listener: Deno.Listener | undefined;
    try {
      listener = Deno.listen({ hostname: addr.host, port: addr.port });
    } catch (err) {
      const where = `${key} ${formatAddr(addr)}`;
      let why = messageOf(err);
      if (err instanceof Deno.errors.AddrInUse) {
        why = `the port is in use (another teleport or service holds it); stop it or change ${key}`;
      } else if (err instanceof Deno.errors.AddrNotAvailable) {
        why = `no network interface of this machine has address ${addr.host}; change ${key}`;
      } else if (err instanceof Deno.errors.PermissionDenied) {
        why = `ports below 1024 need root (or CAP_NET_BIND_SERVICE); change ${key} or run as root`;
      } else if (err instanceof Deno.errors.NotFound || /lookup|resolve/i.test(why)) {
        why = `host ${addr.host} does not resolve; change ${key}`;
      }
      throw new BadParameterError(`Cannot listen on ${where}: ${why}`, { cause: err });
    } finally {
      listener?.close();
    }
  }
}

/** One teleport process and its services. */
export class TeleportProcess implements ServiceHost, AsyncDisposable {
  readonly supervisor: Supervisor;
  readonly config: ProcessConfig;
  auth?: AuthServer;
  node?: NodeService;
  proxy?: ProxyReady;
  /** Admission control shared by every listener of the process. */
  readonly guard: ConnectionGuard;
  /** The pid file this process holds locked, if one is configured. */
  pidFile?: PidFile;
  /** The process's metrics (served at `/metrics` of the diagnostics endpoint). */
  readonly metrics: MetricsRegistry;
  /** Readiness of each service (`/readyz`, `process_state`). */
  readonly health: ProcessHealth;
  /** The auth service's backend (reporting its calls as metrics). */
  backend?: Backend;
  /** The diagnostics endpoint, with `diag_addr`. */
  diag?: DiagServer;
  #cleanups: Array<() => Promise<void>> = [];

  private constructor(config: ProcessConfig, guard: ConnectionGuard, clock: Clock) {
    this.config = config;
    this.guard = guard;
    this.supervisor = new Supervisor({ logger: getComponentLogger("service") });
    const log = getComponentLogger("diag");
    this.metrics = new MetricsRegistry({
      onCollectorError: (err) =>
        log.warn("Cannot collect metrics: {error}", { error: messageOf(err) }),
    });
    this.health = new ProcessHealth({
      clock,
      logger: log,
      recoveryMs: 2 * HEARTBEAT_CHECK_PERIOD_MS,
      metrics: this.metrics,
    });
    reportProcessMetrics(this.metrics, { guard, version: VERSION, clock });
  }

  /** Starts every configured service; resolves once all are ready. */
  static async start(opts: TeleportProcessOptions): Promise<TeleportProcess> {
    const cfg = opts.config;
    if (!cfg.roles.auth && !cfg.roles.node && !cfg.roles.proxy) {
      throw new BadParameterError("Cannot start: no role to run; use --roles=auth,proxy,node");
    }
    const limits = cfg.connectionLimits;
    const log = getComponentLogger("service");
    // Deno raises the soft open-files limit to the hard limit when it starts (checked by
    // lib/net/guard_test.ts); the hard limit is the operator's (LimitNOFILE= in the unit).
    const nofile = readOpenFilesLimit();
    if (nofile !== undefined && nofile < LOW_OPEN_FILES_LIMIT) {
      log.warn(
        "The open-files limit is {limit}: few connections fit; raise the hard limit " +
          "(LimitNOFILE=524288 in the systemd unit, or ulimit -Hn)",
        { limit: nofile },
      );
    }
    const guard = new ConnectionGuard({
      logger: getComponentLogger("limits"),
      maxConnectionsPerIp: limits.maxConnectionsPerIp,
      maxPendingPerIp: limits.maxPendingPerIp,
      ...(limits.maxTotalConnections === undefined
        ? {}
        : { maxConnections: limits.maxTotalConnections }),
      ...(limits.descriptorReserve === undefined
        ? {}
        : { descriptorReserve: limits.descriptorReserve }),
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    });
    const proc = new TeleportProcess(cfg, guard, opts.clock ?? new RealClock());
    for (const role of ["auth", "proxy", "node"] as const) {
      if (cfg.roles[role]) proc.health.register(role);
    }
    try {
      // Before anything is created (data dir contents, CAs): a port that cannot be bound is a
      // config error naming its key.
      // A successor shares the addresses with the process it takes over from.
      if (!opts.successor) checkListenAddrs(listenAddrsOf(cfg));
      if (cfg.diagAddr !== undefined) await proc.#startDiag(opts, cfg.diagAddr);
      await ensureDataDir(cfg.dataDir);
      if (cfg.pidFile !== undefined && !opts.successor) await proc.#holdPidFile(writePidFile);
      if (cfg.roles.auth) await startAuthService(proc, opts);
      if (cfg.roles.proxy) await proc.#startProxy(opts);
      if (cfg.roles.node) await startNodeService(proc, opts);
      // The pid file follows the live process: a successor takes it once it can serve.
      if (cfg.pidFile !== undefined && opts.successor) await proc.#holdPidFile(replacePidFile);
    } catch (err) {
      await proc.close();
      throw err;
    }
    return proc;
  }

  async #holdPidFile(write: (path: string) => Promise<PidFile>): Promise<void> {
    const pid = await write(this.config.pidFile!);
    this.pidFile = pid;
    this.addCleanup(() => pid.release());
  }

  /** The diagnostics endpoint, up before the services so that it reports them starting. */
  async #startDiag(opts: TeleportProcessOptions, addr: Addr): Promise<void> {
    const diag = await startDiagServer({
      host: addr.host,
      port: addr.port,
      guard: this.guard,
      health: this.health,
      metrics: this.metrics,
      clock: opts.clock ?? new RealClock(),
      logger: getComponentLogger("diag"),
      handshakeTimeoutMs: this.config.connectionLimits.handshakeTimeoutMs,
    });
    this.diag = diag;
    this.#cleanups.push(() => diag.close());
    getComponentLogger("diag").info(
      "Diagnostics on http://{addr} (/healthz, /readyz, /metrics)",
      { addr: formatAddr({ host: diag.addr.host, port: diag.addr.port }) },
    );
  }

  /** Registers a release step; they run in reverse order on {@link close}. */
  addCleanup(fn: () => Promise<void>): void {
    this.#cleanups.push(fn);
  }

  /** The auth API address services of this process talk to. */
  async authAddr(service: string): Promise<Addr> {
    const local = this.auth !== undefined
      ? (await this.supervisor.waitFor("auth.ready")) as AuthReady
      : undefined;
    const authAddr = local !== undefined
      ? { host: isUnspecifiedHost(local.host) ? "127.0.0.1" : local.host, port: local.port }
      : this.config.authServers[0];
    if (authAddr === undefined) {
      throw new BadParameterError(
        `Cannot start the ${service} service: no auth server is configured; pass --auth-server=HOST:3025`,
      );
    }
    return authAddr;
  }

  async #startProxy(opts: TeleportProcessOptions): Promise<void> {
    const cfg = this.config;
    const stop = new AbortController();
    const proxy = await startProxyService({
      config: cfg,
      hostId: await loadHostUuid(cfg.dataDir),
      clock: opts.clock ?? new RealClock(),
      ...(this.auth !== undefined ? { localAuth: this.auth } : {}),
      authAddr: await this.authAddr("proxy"),
      signal: stop.signal,
      guard: this.guard,
      metrics: this.metrics,
      handedOver: () => this.supervisor.handedOver,
      onHeartbeat: (err) =>
        err === undefined
          ? this.health.ok("proxy")
          : this.health.degraded("proxy", `heartbeat to auth failed: ${messageOf(err)}`),
    });
    this.#cleanups.push(async () => {
      stop.abort();
      await proxy.close();
    });
    this.supervisor.onDrain("proxy", (deadline) => proxy.drain(deadline));
    this.supervisor.onReport("proxy", () => proxy.stats());
    this.supervisor.run("proxy", async (signal) => {
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      stop.abort();
    });
    this.proxy = proxy.ready;
    this.supervisor.broadcast("proxy.ready", proxy.ready);
  }

  /**
   * The diagnostic report (SIGUSR1): the process (memory, event-loop lag, state), its
   * connections by listener (the shared guard), then one line per service (listeners, SSH
   * connections and sessions, tunnels, backend health).
   */
  async diagnosticReport(): Promise<string> {
    const lagStart = performance.now();
    await new Promise((r) => setTimeout(r, 0));
    const lagMs = performance.now() - lagStart;
    const mem = Deno.memoryUsage();
    const mb = (n: number) => Math.round(n / 1024 / 1024 * 10) / 10;
    const g = this.guard.stats;
    const state = this.supervisor.signal.aborted
      ? "stopping"
      : this.supervisor.draining
      ? "draining"
      : "running";
    const lines = [
      `process: pid=${Deno.pid} state=${state} uptime_s=${
        Math.round(performance.now() / 1000)
      } rss_mb=${mb(mem.rss)} heap_used_mb=${mb(mem.heapUsed)} heap_total_mb=${
        mb(mem.heapTotal)
      } external_mb=${mb(mem.external)} event_loop_lag_ms=${lagMs.toFixed(1)}`,
      `connections: ${
        formatFields({
          open: g.connections,
          in_handshake: g.pending,
          by_listener: g.byListener,
          refused: g.refused,
          open_files: g.openFiles,
          open_files_limit: g.openFilesLimit,
        })
      }`,
      ...await this.supervisor.report(),
    ];
    return lines.join("\n");
  }

  /** Stops every service and releases the backend and pid file. Idempotent. */
  async close(): Promise<void> {
    this.supervisor.stop();
    await this.supervisor.wait();
    const cleanups = this.#cleanups.reverse();
    this.#cleanups = [];
    for (const c of cleanups) {
      try {
        await c();
      } catch {
        // best effort during shutdown
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
