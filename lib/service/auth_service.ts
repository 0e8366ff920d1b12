/**
 * Wiring of the auth role. Start-up, in order:
 *  1. backend opened: Deno KV at `<data_dir>/backend/kv.db`, single writer, or PostgreSQL
 *     with `teleport.storage.type: postgresql` (lib/backend);
 *  2. AuthServer.init(): cluster name checked, CAs and built-in roles created (lib/auth);
 *  3. auth's TLS identity issued from the host CA, HTTPS API bound (lib/auth/listener.ts);
 *  4. admin identity written to `<data_dir>/admin.identity` (0600) for tctl;
 *  5. `auth.ready` broadcast with the bound address.
 */
import { AuthServer, CLUSTER_LOCAL_DNS, startAuthApiServer } from "../auth/mod.ts";
import { type Backend, openBackend, ReportingBackend } from "../backend/mod.ts";
import { generateTlsKeyPair } from "../ca/mod.ts";
import { RealClock } from "../clock/mod.ts";
import {
  type Addr,
  defaultClusterName,
  HEARTBEAT_CHECK_PERIOD_MS,
  isUnspecifiedHost,
  NODE_OFFLINE_AFTER_MS,
  SERVER_ANNOUNCE_TTL_MS,
  USER_INVITE_TTL_MS,
  VERSION,
} from "../config/mod.ts";
import {
  type AuditLog,
  FileAuditLog,
  openPostgresAuditLog,
  openPostgresRecordingStore,
  type RecordingStorage,
  RecordingStore,
} from "../events/mod.ts";
import { writeIdentityFile } from "../identity/mod.ts";
import { isKind, messageOf, NotFoundError } from "../errors/mod.ts";
import { runPeriodic } from "../node/mod.ts";
import { countLogins, reportPresenceMetrics } from "./process_metrics.ts";
import { getComponentLogger } from "../log/mod.ts";
import { loadHostUuid } from "./data_dir.ts";
import type { ServiceHost, TeleportProcessOptions } from "./service_host.ts";

/** What `auth.ready` carries. */
export interface AuthReady {
  host: string;
  port: number;
  clusterName: string;
  adminIdentityPath: string;
}

/** How long a drained auth API waits for its answers in flight before closing. */
const AUTH_CLOSE_GRACE_MS = 5000;

/** File name of the admin identity inside the data dir. */
export const ADMIN_IDENTITY_FILE = "admin.identity";

/** Starts the auth role on `host`; broadcasts `auth.ready`. */
export async function startAuthService(
  host: ServiceHost,
  opts: TeleportProcessOptions,
): Promise<void> {
  const cfg = host.config;
  const clock = opts.clock ?? new RealClock();
  const log = getComponentLogger("auth");
  let backendUri = opts.backendUri;
  let passwordFile: string | undefined;
  if (backendUri === undefined && cfg.storage?.type === "postgresql") {
    backendUri = cfg.storage.connString;
    passwordFile = cfg.storage.passwordFile;
  } else if (backendUri === undefined) {
    const dir = cfg.storage?.type === "dir" && cfg.storage.path !== undefined
      ? cfg.storage.path
      : `${cfg.dataDir}/backend`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    backendUri = `kv:${dir}/kv.db`;
  }
  const opened = await openBackend(backendUri, {
    clock,
    successor: opts.successor ?? false,
    ...(passwordFile === undefined ? {} : { passwordFile }),
  });
  const backend: Backend = new ReportingBackend(opened, {
    metrics: host.metrics,
  });
  host.backend = backend;
  host.addCleanup(() => backend.close());
  const clusterName = cfg.auth.clusterName ?? defaultClusterName(opts.hostname);
  // Audit events: files under <data_dir>/log, or PostgreSQL (audit_events_uri) for several
  // auth servers. Never in the backend.
  const auditLogger = getComponentLogger("auth:audit");
  const auditUri = cfg.auth.auditEventsUri;
  let auditLog: AuditLog;
  if (auditUri !== undefined && /^postgres(ql)?:\/\//.test(auditUri)) {
    // Without a password in the URI, the storage's password_file serves the audit log too.
    const passwordFile = cfg.storage?.type === "postgresql" ? cfg.storage.passwordFile : undefined;
    auditLog = await openPostgresAuditLog({
      uri: auditUri,
      logger: auditLogger,
      ...(passwordFile === undefined ? {} : { passwordFile }),
    });
  } else {
    const dir = auditUri === undefined
      ? `${cfg.dataDir}/log/events`
      : decodeURIComponent(new URL(auditUri).pathname);
    auditLog = new FileAuditLog({ dir, clock, logger: auditLogger });
  }
  host.addCleanup(() => auditLog.close());
  // Recordings: files under <data_dir>/log/records, a shared directory, or PostgreSQL
  // (audit_sessions_uri), so that every auth server serves every recording.
  const recordingsLogger = getComponentLogger("auth:recordings");
  const sessionsUri = cfg.auth.auditSessionsUri;
  let recordings: RecordingStorage;
  if (sessionsUri !== undefined && /^postgres(ql)?:\/\//.test(sessionsUri)) {
    const passwordFile = cfg.storage?.type === "postgresql" ? cfg.storage.passwordFile : undefined;
    const store = await openPostgresRecordingStore({
      uri: sessionsUri,
      logger: recordingsLogger,
      ...(passwordFile === undefined ? {} : { passwordFile }),
    });
    host.addCleanup(() => store.close());
    recordings = store;
  } else {
    const dir = sessionsUri === undefined
      ? `${cfg.dataDir}/log/records`
      : decodeURIComponent(new URL(sessionsUri).pathname);
    recordings = new RecordingStore({ dir, logger: recordingsLogger });
  }
  const auth = new AuthServer({
    backend,
    clock,
    logger: log,
    clusterName,
    version: VERSION,
    staticTokens: cfg.auth.staticTokens,
    secondFactor: cfg.auth.secondFactor,
    proxyListenerMode: cfg.auth.proxyListenerMode,
    userTokenTtlMs: USER_INVITE_TTL_MS,
    auditLog: countLogins(auditLog, host.metrics),
    recordings,
    metrics: host.metrics,
  });
  await auth.init();
  host.auth = auth;
  const hostUuid = await loadHostUuid(cfg.dataDir);

  // The auth API's own certificate: clients verify `teleport.cluster.local`;
  // the other names let tools that verify the dialled name work too.
  const hosts = [cfg.auth.listenAddr, ...cfg.auth.publicAddrs]
    .map((a: Addr) => a.host)
    .filter((h) => h !== "" && !isUnspecifiedHost(h));
  const apiKey = await generateTlsKeyPair();
  const issueApiCert = () =>
    auth.generateHostTlsCert({
      hostId: hostUuid,
      role: "Auth",
      tlsPublicKeyPem: apiKey.publicKeyPem,
      names: [...CLUSTER_LOCAL_DNS, cfg.nodeName, "localhost", "127.0.0.1", "::1", ...hosts],
    });
  const apiCert = await issueApiCert();
  const api = await startAuthApiServer({
    server: auth,
    logger: getComponentLogger("auth:api"),
    host: cfg.auth.listenAddr.host,
    port: cfg.auth.listenAddr.port,
    certPem: apiCert,
    keyPem: apiKey.privateKeyPem,
    guard: host.guard,
    handshakeTimeoutMs: cfg.connectionLimits.handshakeTimeoutMs,
    publicAddrs: cfg.auth.publicAddrs,
    metrics: host.metrics,
    ...(cfg.connectionLimits.unauthenticatedRate === undefined
      ? {}
      : { unauthenticatedRateLimit: cfg.connectionLimits.unauthenticatedRate }),
  });
  host.addCleanup(() => api.close());
  log.info("Auth service {version} is listening on {host}:{port}, cluster {cluster}", {
    version: VERSION,
    host: api.host,
    port: api.port,
    cluster: clusterName,
  });

  const adminKey = await generateTlsKeyPair();
  const adminIdentityPath = `${cfg.dataDir}/${ADMIN_IDENTITY_FILE}`;
  /** tctl's identity on this host: a certificate of the signing key, trusting every host CA. */
  const writeAdminIdentity = async () => {
    const adminCert = await auth.generateHostTlsCert({
      hostId: hostUuid,
      role: "Admin",
      tlsPublicKeyPem: adminKey.publicKeyPem,
    });
    await writeIdentityFile(adminIdentityPath, {
      keyPem: adminKey.privateKeyPem,
      tlsCertPem: adminCert,
      tlsCaCertPems: auth.hostCaCertPems(),
      sshCaKeys: [],
    });
  };
  await writeAdminIdentity();
  // A host CA rotation: from update_servers on (and on rollback) the API serves a certificate
  // of the signing key; clients trust both generations by then (they did since init).
  let hostCaChange = Promise.resolve();
  const unwatch = auth.watchAuthorities((type) => {
    if (type !== "host") return;
    hostCaChange = hostCaChange.then(async () => {
      await writeAdminIdentity();
      const phase = auth.rotationPhase("host");
      if (phase === "update_servers" || phase === "rollback" || phase === "standby") {
        api.setCertificate({ certPem: await issueApiCert(), keyPem: apiKey.privateKeyPem });
        log.info("The auth API certificate was re-issued (host CA rotation phase {phase})", {
          phase,
        });
      }
    }).catch((err) => {
      log.error("Cannot follow the host CA rotation: {error}", { error: err });
    });
  });
  host.addCleanup(() => {
    unwatch();
    return Promise.resolve();
  });

  host.supervisor.onReport("auth", async () => ({
    listener: `${api.host}:${api.port}`,
    backend: await probeBackend(backend),
  }));
  // Handing over (SIGHUP): the successor's auth serves the same backend, so this listener
  // stops accepting at once; clients that connect now reach the successor rather than a
  // process about to close their connection.
  host.supervisor.onDrain("auth-listener", () => {
    if (host.supervisor.handedOver) api.stopAccepting();
    return Promise.resolve();
  });
  // Last: the sessions the other services drain still send their events to auth. Open
  // connections are served until the process stops (its own services keep theirs).
  host.supervisor.onDrain("auth", () => Promise.resolve(api.stopAccepting()), { last: true });
  host.supervisor.run("auth.api", async (signal) => {
    await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    // After a drain (QUIT, or handing over on HUP), requests in flight are answered first:
    // clients of other processes (the successor's) share this listener's port.
    await api.close(host.supervisor.draining ? { graceMs: AUTH_CLOSE_GRACE_MS } : {});
  });
  // Moves semi-automatic rotations on, and picks up rotations made by another auth server.
  host.supervisor.run("auth.rotation", (signal) =>
    runPeriodic({
      name: "CA rotation check",
      task: () => auth.advanceRotations(),
      intervalMs: cfg.caRefreshIntervalMs,
      clock,
      logger: log,
      signal,
    }));
  const unreport = reportPresenceMetrics(host.metrics, {
    listNodes: () => auth.presence.listNodes(),
    listProxies: () => auth.presence.listProxies(),
    clock,
    announceTtlMs: SERVER_ANNOUNCE_TTL_MS,
    onlineWithinMs: NODE_OFFLINE_AFTER_MS,
  });
  host.addCleanup(() => Promise.resolve(unreport()));
  // Readiness of auth: its backend answers. Teleport's auth heartbeats itself into the
  // backend; a read of one key costs less and fails the same way.
  host.supervisor.run("auth.health", (signal) =>
    runPeriodic({
      name: "Auth backend check",
      task: async () => {
        try {
          await backend.get(["diag", "health"]).catch((err) => {
            if (!isKind(err, "NotFound")) throw err;
          });
        } catch (err) {
          host.health.degraded("auth", `the backend fails: ${messageOf(err)}`);
          throw err;
        }
        host.health.ok("auth");
      },
      intervalMs: opts.healthCheckIntervalMs ?? HEARTBEAT_CHECK_PERIOD_MS,
      backoffMaxMs: opts.healthCheckIntervalMs ?? HEARTBEAT_CHECK_PERIOD_MS,
      clock,
      logger: log,
      signal,
    }));
  const ready: AuthReady = { host: api.host, port: api.port, clusterName, adminIdentityPath };
  host.supervisor.broadcast("auth.ready", ready);
}

/** Backend health for the diagnostic report: one read, its latency or its error. */
async function probeBackend(backend: Backend): Promise<string> {
  const t0 = performance.now();
  try {
    await backend.get(["diagnostics", "probe"]);
  } catch (err) {
    if (!(err instanceof NotFoundError)) return `failing (${messageOf(err)})`;
  }
  return `ok (read in ${(performance.now() - t0).toFixed(1)} ms)`;
}
