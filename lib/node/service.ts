/**
 * The SSH node service: an SSH server that presents the node's host
 * certificate and admits users by certificate and role (authorize.ts), runs
 * their sessions (session.ts, agent forwarding in agent.ts) and port forwards (forward.ts,
 * remote_forward.ts), and keeps in
 * touch with auth: heartbeats (presence with a TTL), audit events (buffered,
 * retried), recordings (uploaded after each session, retried), and the user CA
 * keys (refreshed; the cached ones keep logins working while auth is down).
 */
import { UserCaKeys } from "../authclient/mod.ts";
import { importSshPrivateKey, parseAuthorizedKey, parseSshCertificate } from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import {
  type AuditEvent,
  BufferedEmitter,
  gzipRecordingFile,
  listPendingRecordings,
  newAuditEvent,
} from "../events/mod.ts";
import { ClientAddrVerifier } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import type {
  Resource,
  ResourceEventSource,
  Role,
  ServerResource,
  SessionTracker,
} from "../resource/mod.ts";
import { type SocketAddresses, type SshServer, startSshServer } from "../ssh/mod.ts";
import { ConnectionGuard, type ProxyProtocolMode } from "../net/mod.ts";
import type { Duplex } from "node:stream";
import { authorizeUserCertificate, type UserAccess } from "./authorize.ts";
import { type ClientAddrListener, listenWithClientAddr } from "./client_addr.ts";
import { handleDirectTcpip } from "./forward.ts";
import { handleGlobalRequest } from "./remote_forward.ts";
import { runPeriodic } from "./periodic.ts";
import { RoleCache } from "../rbac/mod.ts";
import { handleSessionOpen, type NodeIdentityInfo, type SessionDeps } from "./session.ts";
import { SessionRegistry } from "./shared_session.ts";

/** The slice of the auth API client the node uses (lib/authclient AuthClient fits). */
export interface NodeAuthApi {
  getResource(kind: "role" | "cert_authority", name: string): Promise<Resource>;
  heartbeatNode(node: Resource): Promise<void>;
  emitEvents(events: AuditEvent[]): Promise<void>;
  uploadRecording(sid: string, body: ReadableStream<Uint8Array>): Promise<{ size: number }>;
  /** Session trackers of the node's interactive sessions (`tsh sessions ls`, `tsh join`). */
  upsertSessionTracker(tracker: SessionTracker): Promise<void>;
  deleteSessionTracker(sid: string): Promise<void>;
  /** Every role (the role cache reloads with it when a resource watch (re)starts). */
  listRoles?(): Promise<Role[]>;
}

/** Inputs of {@link NodeService.start}. */
export interface NodeServiceOptions {
  /** The host's private key (PKCS#8 PEM) and its SSH host certificate (authorized_keys form). */
  keyPem: string;
  sshCert: string;
  /** User CA public keys (authorized_keys lines) known so far. */
  userCaKeys: string[];
  /**
   * Host CA public keys (authorized_keys lines) known so far: a proxy's signed client address
   * (PROXY v2 header) is believed only with a host certificate they signed.
   */
  hostCaKeys: string[];
  hostId: string;
  nodeName: string;
  auth: NodeAuthApi;
  /**
   * Where to listen. Without it the node opens no port and serves only the connections handed
   * to {@link NodeService.handleSocket} (reverse tunnel mode, announced with `use_tunnel`).
   */
  listen?: { hostname: string; port: number };
  /** Address announced in heartbeats (`host:port`); default: derived from the listener. */
  advertiseAddr?: string;
  /**
   * PROXY headers from a load balancer in front of the listener (`ssh_service.proxy_protocol`,
   * see client_addr.ts); proxy-signed headers are checked in every mode.
   * @default {"off"}
   */
  proxyProtocol?: ProxyProtocolMode;
  labels: Record<string, string>;
  /** Where recordings wait for upload (`<data_dir>/log/upload`). */
  recordingsDir: string;
  version: string;
  clock: Clock;
  logger: Logger;
  /**
   * Role events from auth (see lib/authclient ResourceFeed): the role cache follows them
   * instead of re-reading roles every 30 s.
   * @default {none: roles are re-read by age}
   */
  watch?: ResourceEventSource;
  /** Told the names of roles the role cache changed by a watch event or reload. */
  onRolesChange?: (names: string[]) => void;
  /** Called when auth hands out a different set of user CA keys (to persist them). */
  onUserCaKeys?: (keys: string[]) => Promise<void>;
  /** @default {60000} */
  heartbeatIntervalMs?: number;
  /** How long a heartbeat keeps the node listed. @default {600000} */
  heartbeatTtlMs?: number;
  /** @default {60000} */
  caRefreshIntervalMs?: number;
  /**
   * How long the listener waits for a client's first bytes (a proxy's PROXY header comes first)
   * before serving it as a direct client that waits for the server's banner.
   * @default {3000}
   */
  firstBytesTimeoutMs?: number;
  /**
   * Admission control of the listener, shared with the process's other listeners.
   * @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /** Time a client has from connecting until authenticated. @default {30000} */
  loginTimeoutMs?: number;
  /** Retry period of recording uploads. @default {30000} */
  uploadRetryMs?: number;
  /**
   * How long one write of a session tracker keeps an interactive session listed in auth; the
   * node rewrites running sessions' trackers every third of it.
   * @default {120000}
   */
  sessionTrackerTtlMs?: number;
}

/** A running node service. */
export class NodeService implements AsyncDisposable {
  readonly #o: NodeServiceOptions;
  readonly #ac = new AbortController();
  readonly #tasks: Promise<void>[] = [];
  readonly #emitter: BufferedEmitter;
  readonly #info: NodeIdentityInfo;
  #server?: SshServer<UserAccess>;
  #listener?: ClientAddrListener;
  readonly #userCa: UserCaKeys;
  readonly #hostCa: UserCaKeys;
  #uploading: Promise<void> = Promise.resolve();
  readonly #activeRecordings = new Set<string>();
  readonly #openSessions = new Set<string>();
  #advertiseAddr = "";
  #closed?: Promise<void>;
  #sshCert: string;

  private constructor(o: NodeServiceOptions, clusterName: string) {
    this.#o = o;
    this.#sshCert = o.sshCert;
    this.#info = { hostId: o.hostId, nodeName: o.nodeName, clusterName };
    this.#userCa = new UserCaKeys({
      initial: o.userCaKeys,
      read: () => o.auth.getResource("cert_authority", "user"),
      onChange: async (lines) => {
        o.logger.info("User CA keys updated from auth ({count} keys)", { count: lines.length });
        await o.onUserCaKeys?.(lines);
      },
    });
    this.#hostCa = new UserCaKeys({
      initial: o.hostCaKeys,
      read: () => o.auth.getResource("cert_authority", "host"),
    });
    this.#emitter = new BufferedEmitter({
      send: (events) => o.auth.emitEvents(events),
      clock: o.clock,
      logger: o.logger,
    });
  }

  /** Starts the SSH listener and the background loops; resolves once listening. */
  static async start(o: NodeServiceOptions): Promise<NodeService> {
    const cert = parseSshCertificate(o.sshCert);
    const clusterName = cert.extensions["x-teleport-authority"];
    if (cert.certType !== "host" || clusterName === undefined || clusterName === "") {
      throw new BadParameterError(
        "Cannot start the node: its SSH certificate is not a cluster host certificate",
      );
    }
    const svc = new NodeService(o, clusterName);
    await svc.#start(await importSshPrivateKey(o.keyPem), parseAuthorizedKey(o.sshCert).blob);
    return svc;
  }

  /** The bound SSH address (port 0 in reverse tunnel mode). */
  get addr(): { hostname: string; port: number } {
    if (this.#listener === undefined) return { hostname: "", port: 0 };
    return { ...this.#listener.addr };
  }

  /**
   * Serves an SSH connection accepted elsewhere (a reverse tunnel channel). `addrs.remoteAddr` is
   * believed as the client's address: give only what an authenticated proxy said.
   */
  handleSocket(socket: Duplex, addrs?: SocketAddresses): void {
    if (this.#server === undefined || this.#ac.signal.aborted) {
      socket.destroy();
      return;
    }
    this.#server.handleSocket(socket, addrs);
  }

  /** Interactive sessions running now (diagnostics). */
  get activeSessions(): number {
    return this.#activeRecordings.size;
  }

  /**
   * Presents a re-issued certificate of the same host key (CA rotation) to new connections and
   * in heartbeats; open sessions are not touched.
   */
  setHostCertificate(sshCert: string): void {
    if (this.#server === undefined) {
      throw new BadParameterError("Cannot update the host certificate: the node is not started");
    }
    this.#server.setHostCertificate(parseAuthorizedKey(sshCert).blob);
    this.#sshCert = sshCert;
  }

  /** Reads the user and host CA keys from auth now (a CA event says they changed). */
  async refreshAuthorities(): Promise<void> {
    await this.#userCa.refresh();
    await this.#hostCa.refresh();
  }

  /** Cluster this node belongs to. */
  get clusterName(): string {
    return this.#info.clusterName;
  }

  async #start(
    hostKey: { privateKey: CryptoKey; publicKeyBlob: Uint8Array },
    certBlob: Uint8Array,
  ) {
    const o = this.#o;
    const roles = new RoleCache({
      fetch: async (name) => await o.auth.getResource("role", name) as Role,
      clock: o.clock,
      logger: o.logger,
      ...(o.watch === undefined ? {} : { watch: o.watch }),
      ...(o.auth.listRoles === undefined ? {} : { list: () => o.auth.listRoles!() }),
      ...(o.onRolesChange === undefined ? {} : { onChange: o.onRolesChange }),
    });
    const sessions = new SessionRegistry({
      auth: o.auth,
      node: this.#info,
      clock: o.clock,
      logger: o.logger,
      ...(o.sessionTrackerTtlMs === undefined ? {} : { trackerTtlMs: o.sessionTrackerTtlMs }),
    });
    const deps: SessionDeps = {
      sessions,
      node: this.#info,
      emitter: this.#emitter,
      recordingsDir: o.recordingsDir,
      activeRecordings: this.#activeRecordings,
      openSessions: this.#openSessions,
      onRecordingDone: () => this.#kickUploads(),
      clock: o.clock,
      logger: o.logger,
      guard: o.guard ?? new ConnectionGuard({ logger: o.logger }),
    };
    this.#server = await startSshServer<UserAccess>({
      hostKey,
      hostCertificate: certBlob,
      logger: o.logger,
      authenticate: async (req) => {
        try {
          const access = await authorizeUserCertificate({
            certificate: req.certificate,
            login: req.username,
            remoteAddr: req.remoteAddr,
            userCaKeys: this.#userCa.blobs,
            now: o.clock.now(),
            roles: (names) => roles.get(names),
            node: { name: o.nodeName, labels: o.labels },
          });
          return { ok: true, context: access };
        } catch (err) {
          return { ok: false, reason: messageOf(err) };
        }
      },
      onAuthFailure: (f) => {
        o.logger.info("Refused login {login} from {addr}: {reason}", {
          login: f.username,
          addr: f.remoteAddr,
          reason: f.reason,
        });
        void this.#emitter.emit(newAuditEvent("auth", {
          user: f.certificateKeyId ?? "",
          login: f.username,
          method: f.method,
          success: false,
          error: f.reason,
          server_id: o.hostId,
          server_hostname: o.nodeName,
          "addr.remote": `${f.remoteAddr}:${f.remotePort}`,
          ...(f.keyFingerprint ? { key_fingerprint: f.keyFingerprint } : {}),
        }, { clock: o.clock, clusterName: this.#info.clusterName, failure: true }));
      },
      handlers: {
        session: (open) => handleSessionOpen(open, deps),
        directTcpip: (open) => handleDirectTcpip(open, deps),
        globalRequest: (req) => handleGlobalRequest(req, deps),
      },
    });
    if (o.listen !== undefined) {
      const server = this.#server;
      this.#listener = await listenWithClientAddr({
        listen: o.listen,
        verifier: new ClientAddrVerifier({
          hostCaKeys: () => this.#hostCa.blobs,
          clusterName: this.#info.clusterName,
          clock: o.clock,
        }),
        serve: (socket, addrs) => server.handleSocket(socket, addrs),
        logger: o.logger,
        ...(o.firstBytesTimeoutMs === undefined
          ? {}
          : { firstBytesTimeoutMs: o.firstBytesTimeoutMs }),
        ...(o.guard === undefined ? {} : { guard: o.guard }),
        ...(o.loginTimeoutMs === undefined ? {} : { loginTimeoutMs: o.loginTimeoutMs }),
        ...(o.proxyProtocol === undefined ? {} : { proxyProtocol: o.proxyProtocol }),
      });
    }
    this.#advertiseAddr = o.listen === undefined
      ? ""
      : o.advertiseAddr ?? advertiseAddrOf(this.addr);
    const signal = this.#ac.signal;
    this.#tasks.push(runPeriodic({
      name: "Node heartbeat",
      task: () => o.auth.heartbeatNode(this.#announcement()),
      intervalMs: o.heartbeatIntervalMs ?? 60_000,
      clock: o.clock,
      logger: o.logger,
      signal,
    }));
    this.#tasks.push(runPeriodic({
      name: "Session tracker keepalive",
      task: () => sessions.keepAlive(),
      intervalMs: Math.max(1000, Math.floor(sessions.trackerTtlMs / 3)),
      clock: o.clock,
      logger: o.logger,
      signal,
    }));
    this.#tasks.push(runPeriodic({
      name: "User CA refresh",
      task: async () => {
        await this.#userCa.refresh();
        await this.#hostCa.refresh();
      },
      intervalMs: o.caRefreshIntervalMs ?? 60_000,
      clock: o.clock,
      logger: o.logger,
      signal,
    }));
    this.#tasks.push(runPeriodic({
      name: "Recording upload",
      task: () => this.#uploadPending(),
      intervalMs: o.uploadRetryMs ?? 30_000,
      clock: o.clock,
      logger: o.logger,
      signal,
    }));
  }

  /** This node as a presence resource. */
  #announcement(): ServerResource {
    const o = this.#o;
    return {
      kind: "node",
      version: "v2",
      metadata: {
        name: o.hostId,
        labels: { ...o.labels },
        expires: new Date(o.clock.now().getTime() + (o.heartbeatTtlMs ?? 600_000)).toISOString(),
      },
      spec: {
        addr: this.#advertiseAddr,
        hostname: o.nodeName,
        ...(o.listen === undefined ? { use_tunnel: true } : {}),
        version: o.version,
        // Clients (tsh) check the node's host key against this CA-signed certificate.
        host_cert: this.#sshCert,
      },
    };
  }

  #kickUploads(): void {
    void this.#uploadPending().catch((err) =>
      this.#o.logger.warn("Recording upload failed, will retry: {reason}", {
        reason: messageOf(err),
      })
    );
  }

  /** Uploads every finished recording, one at a time; the file goes once auth has it. */
  #uploadPending(): Promise<void> {
    const run = async () => {
      const pending = await listPendingRecordings(this.#o.recordingsDir, {
        clock: this.#o.clock,
        logger: this.#o.logger,
        activeSids: this.#activeRecordings,
      });
      for (const rec of pending) {
        // One uploader per file, also across processes (the two of a graceful restart share
        // the directory); a file another one uploaded meanwhile is gone.
        let lock: Deno.FsFile;
        try {
          lock = await Deno.open(rec.path, { read: true });
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) continue;
          throw err;
        }
        try {
          if (!(await lock.tryLock(true))) continue;
          try {
            await this.#o.auth.uploadRecording(rec.sid, await gzipRecordingFile(rec.path));
          } catch (err) {
            if (!/already exists/i.test(messageOf(err))) throw err;
          }
          await Deno.remove(rec.path).catch((err) => {
            if (!(err instanceof Deno.errors.NotFound)) throw err;
          });
        } finally {
          lock.close();
        }
        this.#o.logger.debug("Uploaded recording of session {sid}", { sid: rec.sid });
      }
    };
    this.#uploading = this.#uploading.catch(() => {}).then(run);
    return this.#uploading;
  }

  /**
   * Graceful stop: stops accepting at the listener and resolves once the SSH connections in
   * flight (those still in their handshake included) have ended by themselves, or when
   * `deadline` aborts. Heartbeats go on; {@link close} ends the rest.
   */
  async drain(deadline: AbortSignal): Promise<void> {
    await this.#listener?.stopAccepting();
    await this.#server?.drain(deadline);
  }

  /** Live counters for diagnostics: SSH connections, session channels, recorded (PTY) ones. */
  get stats(): { connections: number; sessions: number; recorded: number } {
    return {
      connections: this.#server?.connectionCount ?? 0,
      sessions: this.#openSessions.size,
      recorded: this.#activeRecordings.size,
    };
  }

  /** Stops listening, closes connections, flushes events. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#ac.abort();
      await this.#listener?.close();
      await this.#server?.close("node is shutting down");
      await Promise.allSettled(this.#tasks);
      await this.#uploading.catch(() => {});
      await this.#emitter.close();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** `host:port` to announce for a listener: an unspecified host becomes a real interface IP. */
export function advertiseAddrOf(addr: { hostname: string; port: number }): string {
  let host = addr.hostname;
  if (host === "0.0.0.0" || host === "::" || host === "") {
    const candidates = Deno.networkInterfaces().filter((i) =>
      i.family === "IPv4" && !i.address.startsWith("127.")
    );
    host = candidates[0]?.address ?? "127.0.0.1";
  }
  return host.includes(":") ? `[${host}]:${addr.port}` : `${host}:${addr.port}`;
}
