/**
 * Typed client of the auth API over HTTPS with mutual TLS. The server is
 * verified against the given CA certificates only (never the system roots) and
 * by the fixed name `teleport.cluster.local`, which every auth certificate
 * carries, so the address dialled may be anything (IP, load balancer name).
 *
 * The TLS sessions run over streams from `dial` (by default lib/net `dialTcp`, which honours
 * `HTTPS_PROXY` / `NO_PROXY`), pooled by a keep-alive agent.
 */
import https from "node:https";
import type { Duplex } from "node:stream";
import tls, { checkServerIdentity, type PeerCertificate } from "node:tls";
import { Buffer } from "node:buffer";
import {
  ConnectionProblemError,
  errorFromStatus,
  kindOf,
  messageOf,
  newError,
} from "../errors/mod.ts";
import { deferredDuplex, dialTcp } from "../net/mod.ts";
import type { AuditEvent, SearchQuery, SearchResult } from "../events/mod.ts";
import type {
  Resource,
  ResourceEvent,
  ResourceKind,
  RotationPhase,
  SessionTracker,
  WatchKind,
} from "../resource/mod.ts";
import type {
  AuthenticateSshUserRequest,
  ChangePasswordWithTokenRequest,
  PingResponse,
  RegisterRequest,
  RegisterResponse,
  StatusResponse,
  UserCerts,
  UserCertsRequest,
  UserTokenDetails,
  UserTokenInfo,
  WebSessionRecord,
} from "./types.ts";

/** The server name every auth API certificate carries. */
export const AUTH_SERVER_NAME = "teleport.cluster.local";

/** How to reach and trust the auth API. */
export interface AuthClientOptions {
  /** Auth address. */
  host: string;
  port: number;
  /** Trusted CA certificates (the cluster's host CA). Required unless insecureSkipVerify. */
  caCertPems?: string[];
  /** Client identity; without one only ping and cacerts work. */
  identity?: { certPem: string; keyPem: string };
  /**
   * Do not verify the server. Only for fetching CA certificates that are then
   * checked against pins.
   */
  insecureSkipVerify?: boolean;
  /** Per-request timeout. @default {30000} */
  timeoutMs?: number;
  /**
   * ALPN protocols to offer, e.g. `teleport-auth@<hex cluster>.teleport.cluster.local` to
   * reach auth through a proxy's web port (the proxy passes the TLS session through).
   * @default {none}
   */
  alpnProtocols?: string[];
  /**
   * SNI to send. The server certificate is still checked for `teleport.cluster.local`.
   * @default {"teleport.cluster.local"}
   */
  servername?: string;
  /**
   * Connects the TCP (or tunnel) stream the TLS session runs over.
   * @default {lib/net dialTcp with the proxy settings from the environment and `timeoutMs`}
   */
  dial?: (host: string, port: number) => Promise<Duplex>;
  /**
   * What `host:port` is, for errors: an auth server, or a proxy's web port that passes the
   * session through to auth (tsh), so a failure names the proxy the user gave.
   * @default {"auth"}
   */
  via?: "auth" | "proxy";
}

/** A keep-alive agent whose connections are TLS over streams from `dial`. */
class DialingAgent extends https.Agent {
  readonly #dial: () => Promise<Duplex>;

  constructor(dial: () => Promise<Duplex>, options: https.AgentOptions) {
    super(options);
    this.#dial = dial;
  }

  override createConnection(options: tls.ConnectionOptions): Duplex {
    // node:https needs the socket now; the dial (maybe through a proxy) finishes later.
    return tls.connect({ ...options, socket: deferredDuplex(this.#dial) });
  }
}

/** A client of one auth server. */
export class AuthClient {
  #o: AuthClientOptions;
  #agent: https.Agent;
  readonly #newAgent: () => https.Agent;

  constructor(o: AuthClientOptions) {
    if (!o.insecureSkipVerify && (o.caCertPems === undefined || o.caCertPems.length === 0)) {
      throw new Error("Cannot create auth client: give the cluster CA certificates to trust");
    }
    this.#o = o;
    const dial = o.dial ??
      ((host: string, port: number) => dialTcp(host, port, { timeoutMs: o.timeoutMs ?? 30_000 }));
    this.#newAgent = () =>
      new DialingAgent(() => dial(o.host, o.port), { keepAlive: true, maxSockets: 8 });
    this.#agent = this.#newAgent();
  }

  /**
   * Trusts other CA certificates and/or authenticates with another identity from the next
   * request on (a CA rotation re-issued them). Requests under way finish on their connections,
   * which then close; idle kept-alive ones close now.
   */
  setCredentials(
    c: { caCertPems?: string[]; identity?: { certPem: string; keyPem: string } },
  ): void {
    if (c.caCertPems !== undefined && c.caCertPems.length === 0) {
      throw new Error("Cannot update auth client credentials: give the CA certificates to trust");
    }
    this.#o = {
      ...this.#o,
      ...(c.caCertPems === undefined ? {} : { caCertPems: c.caCertPems }),
      ...(c.identity === undefined ? {} : { identity: c.identity }),
    };
    const old = this.#agent as https.Agent & {
      keepAlive: boolean;
      freeSockets: Record<string, Duplex[]>;
    };
    this.#agent = this.#newAgent();
    // Sockets in use go away when their request ends instead of returning to the pool.
    old.keepAlive = false;
    for (const list of Object.values(old.freeSockets)) for (const sock of list) sock.destroy();
  }

  /** Address as `host:port`. */
  get address(): string {
    return this.#o.host.includes(":")
      ? `[${this.#o.host}]:${this.#o.port}`
      : `${this.#o.host}:${this.#o.port}`;
  }

  /** The https.request options shared by every call. */
  #requestOptions(method: string, path: string, headers: Record<string, string | number>) {
    const o = this.#o;
    return {
      host: o.host,
      port: o.port,
      method,
      path,
      agent: this.#agent,
      servername: o.servername ?? AUTH_SERVER_NAME,
      // Whatever SNI is sent, the certificate must be valid for the fixed API name.
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        checkServerIdentity(AUTH_SERVER_NAME, cert),
      ...(o.alpnProtocols && o.alpnProtocols.length > 0 ? { ALPNProtocols: o.alpnProtocols } : {}),
      ...(o.insecureSkipVerify
        ? { rejectUnauthorized: false }
        : { ca: o.caCertPems, rejectUnauthorized: true }),
      ...(o.identity ? { cert: o.identity.certPem, key: o.identity.keyPem } : {}),
      headers,
      timeout: o.timeoutMs ?? 30_000,
    };
  }

  /** Sends one request; kinded errors come back as the same kinds. */
  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return this.#send<T>(
      method,
      path,
      {
        accept: "application/json",
        ...(payload
          ? { "content-type": "application/json", "content-length": payload.length }
          : {}),
      },
      (req) => req.end(payload),
      false,
      true,
    );
  }

  #send<T>(
    method: string,
    path: string,
    headers: Record<string, string | number>,
    write: (req: ReturnType<typeof https.request>) => void,
    rawBody = false,
    /** The body can be written again (not a stream). */
    replayable = false,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const req = https.request(this.#requestOptions(method, path, headers), (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(this.#connErr(err)));
        res.on("end", () => {
          const data = Buffer.concat(chunks);
          const ok = (res.statusCode ?? 500) >= 200 && (res.statusCode ?? 500) < 300;
          if (rawBody && ok) return resolve(new Uint8Array(data) as T);
          const text = data.toString("utf8");
          let value: unknown;
          try {
            value = text === "" ? undefined : JSON.parse(text);
          } catch {
            return reject(
              new ConnectionProblemError(
                `Cannot read auth server ${this.address} answer: not JSON (is this an auth server?)`,
              ),
            );
          }
          const status = res.statusCode ?? 500;
          if (status >= 200 && status < 300) return resolve(value as T);
          const msg = (value as { error?: { message?: string } })?.error?.message ??
            `HTTP ${status}`;
          reject(errorFromStatus(status, msg));
        });
      });
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", (err) => {
        // The server closed a kept-alive connection as the request went out (an auth process
        // that drains or stops after a graceful restart closes its idle connections): nothing
        // was answered, so a read, or a request on a reused connection, goes again once.
        const retry = replayable && !answered && isStaleConnection(err) &&
          (method === "GET" || method === "HEAD" || req.reusedSocket === true);
        if (retry) {
          this.#send<T>(method, path, headers, write, rawBody, false).then(resolve, reject);
          return;
        }
        reject(this.#connErr(err));
      });
      write(req);
    });
  }

  /**
   * One watch stream (`GET /v1/watch`): its events from `init` on, ending when the stream
   * ends; throws when it cannot be opened or breaks (no line within `idleTimeoutMs`: the server
   * sends keep-alives). {@link watch} reconnects; this is one attempt.
   */
  async *watchOnce(
    kinds: readonly WatchKind[],
    o: { signal?: AbortSignal; idleTimeoutMs?: number } = {},
  ): AsyncGenerator<ResourceEvent> {
    const path = `/v1/watch?kinds=${kinds.join(",")}`;
    const res = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const req = https.request(
        {
          ...this.#requestOptions("GET", path, { accept: "application/x-ndjson" }),
          timeout: o.idleTimeoutMs ?? 35_000,
          ...(o.signal === undefined ? {} : { signal: o.signal }),
        },
        resolve,
      );
      req.on("timeout", () => req.destroy(new Error("no keep-alive from auth in time")));
      req.on("error", (err) => reject(this.#connErr(err)));
      req.end();
    });
    const status = res.statusCode ?? 500;
    if (status < 200 || status >= 300) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      let msg = `HTTP ${status}`;
      try {
        msg = JSON.parse(Buffer.concat(chunks).toString("utf8"))?.error?.message ?? msg;
      } catch {
        // Not JSON: the status says enough.
      }
      throw errorFromStatus(status, msg);
    }
    let rest = "";
    const dec = new TextDecoder();
    try {
      for await (const chunk of res) {
        rest += dec.decode(chunk as Buffer, { stream: true });
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (line === "") continue;
          const ev = JSON.parse(line) as ResourceEvent | { type: "keepalive" };
          if (ev.type !== "keepalive") yield ev;
        }
      }
    } catch (err) {
      if (o.signal?.aborted) return;
      throw this.#connErr(err);
    } finally {
      res.destroy();
    }
    if (!o.signal?.aborted) {
      throw new ConnectionProblemError(
        `Cannot watch resources: auth server ${this.address} ended the stream`,
      );
    }
  }

  /**
   * Resource events of `kinds` until `signal` aborts, across reconnects: each (re)connection
   * starts with `init`, and a broken stream yields `lost` before the next attempt. The first
   * attempt is at once; later ones wait a full-jitter backoff (a random time up to 4 s, doubling
   * to 30 s), so a fleet of nodes does not reconnect to a restarted auth server in the same
   * second (with 1 s, half of 1000 nodes came back in the first second: 260–562 requests, more
   * than polling's busiest second). Caches serve their last data meanwhile.
   */
  async *watch(
    kinds: readonly WatchKind[],
    o: {
      signal: AbortSignal;
      idleTimeoutMs?: number;
      backoffMinMs?: number;
      backoffMaxMs?: number;
      random?: () => number;
      /** Waits between attempts. @default {setTimeout} */
      sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
    },
  ): AsyncGenerator<ResourceEvent> {
    let failures = 0;
    const sleep = o.sleep ?? ((ms: number, signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      }));
    while (!o.signal.aborted) {
      let healthy = false;
      try {
        for await (
          const ev of this.watchOnce(kinds, {
            signal: o.signal,
            ...(o.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: o.idleTimeoutMs }),
          })
        ) {
          if (ev.type === "init") {
            healthy = true;
            failures = 0;
          }
          yield ev;
        }
      } catch (err) {
        if (o.signal.aborted) return;
        yield { type: "lost", reason: messageOf(err) };
      }
      if (o.signal.aborted) return;
      if (!healthy) failures++;
      const d = Math.min(o.backoffMaxMs ?? 30_000, (o.backoffMinMs ?? 4000) * 2 ** failures);
      await sleep(Math.round((o.random ?? Math.random)() * d), o.signal);
    }
  }

  /** Uploads a finished session recording (gzip stream, see lib/events). */
  uploadRecording(sid: string, body: ReadableStream<Uint8Array>): Promise<{ size: number }> {
    return this.#send("PUT", `/v1/recordings/${encodeURIComponent(sid)}`, {
      accept: "application/json",
      "content-type": "application/gzip",
      "transfer-encoding": "chunked",
    }, (req) => {
      void (async () => {
        try {
          for await (const chunk of body) {
            if (!req.write(chunk)) await new Promise((r) => req.once("drain", r));
          }
          req.end();
        } catch (err) {
          req.destroy(err instanceof Error ? err : new Error(String(err)));
        }
      })();
    });
  }

  /** Downloads a stored session recording (gzip bytes). */
  downloadRecording(sid: string): Promise<Uint8Array> {
    return this.#send<Uint8Array>(
      "GET",
      `/v1/recordings/${encodeURIComponent(sid)}`,
      {},
      (req) => req.end(),
      true,
    );
  }

  /** Session IDs with a stored recording. */
  async listRecordings(): Promise<string[]> {
    return (await this.request<{ sessions: string[] }>("GET", "/v1/recordings")).sessions;
  }

  #connErr(err: unknown): Error {
    const msg = messageOf(err);
    const kind = kindOf(err);
    const viaProxy = this.#o.via === "proxy";
    const what = viaProxy
      ? `the auth service through proxy ${this.address}`
      : `auth server ${this.address}`;
    const refusedHint = viaProxy
      ? " (is the proxy running there, and is that its web port?)"
      : " (is the auth service running there?)";
    if (kind !== undefined) {
      // A dial failure (lib/net) names the target, the proxy and the fix: keep its kind and
      // detail ("Cannot connect to H:P[ through HTTP proxy U]: why").
      const prefix = `Cannot connect to ${this.address}`;
      const direct = !msg.startsWith(`${prefix} through `);
      const detail = msg.startsWith(prefix) ? msg.slice(prefix.length) : `: ${msg}`;
      const hint = direct && /ECONNREFUSED|refused/i.test(msg) ? refusedHint : "";
      return newError(kind, `Cannot reach ${what}${detail}${hint}`, { cause: err });
    }
    let hint = "";
    if (/ECONNREFUSED|refused/i.test(msg)) hint = refusedHint;
    else if (/certificate|verify|UNKNOWN_ISSUER|CERT/i.test(msg)) {
      hint = " (the server's certificate is not signed by the trusted cluster CA)";
    }
    return new ConnectionProblemError(`Cannot reach ${what}: ${msg}${hint}`, { cause: err });
  }

  /** Releases pooled connections. */
  close(): void {
    this.#agent.destroy();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  ping(): Promise<PingResponse> {
    return this.request("GET", "/v1/ping");
  }
  async caCerts(): Promise<string[]> {
    return (await this.request<{ tls_ca_certs: string[] }>("GET", "/v1/cacerts")).tls_ca_certs;
  }
  status(): Promise<StatusResponse> {
    return this.request("GET", "/v1/status");
  }
  async listResources(kind: ResourceKind): Promise<Resource[]> {
    return (await this.request<{ items: Resource[] }>("GET", `/v1/resources/${kind}`)).items;
  }
  async getResource(kind: ResourceKind, name: string): Promise<Resource> {
    return (await this.request<{ item: Resource }>(
      "GET",
      `/v1/resources/${kind}/${encodeURIComponent(name)}`,
    )).item;
  }
  async putResource(resource: Resource, upsert: boolean): Promise<void> {
    await this.request("POST", "/v1/resources", { resource, upsert });
  }
  async deleteResource(kind: ResourceKind, name: string): Promise<void> {
    await this.request("DELETE", `/v1/resources/${kind}/${encodeURIComponent(name)}`);
  }
  async createToken(req: { roles: string[]; ttlMs: number; token?: string }): Promise<Resource> {
    return (await this.request<{ token: Resource }>("POST", "/v1/tokens", {
      roles: req.roles,
      ttl_ms: req.ttlMs,
      ...(req.token === undefined ? {} : { token: req.token }),
    })).token;
  }
  createUser(user: Resource): Promise<{ user: Resource; token: UserTokenInfo }> {
    return this.request("POST", "/v1/users", { user });
  }
  async resetUser(name: string): Promise<UserTokenInfo> {
    return (await this.request<{ token: UserTokenInfo }>(
      "POST",
      `/v1/users/${encodeURIComponent(name)}/reset`,
    )).token;
  }
  /**
   * Sets a password with an invite/reset token (and enrolls its TOTP device with
   * `second_factor_token`); returns the user name. Proxy identity only.
   */
  async changePasswordWithToken(req: ChangePasswordWithTokenRequest): Promise<string> {
    return (await this.request<{ user: string }>("PUT", "/v1/users/password/token", {
      token: req.token,
      password: req.password,
      ...(req.second_factor_token === undefined
        ? {}
        : { second_factor_token: req.second_factor_token }),
    })).user;
  }
  /** What an invite/reset token is for, with its TOTP enrollment. Proxy identity only. */
  getUserTokenDetails(token: string): Promise<UserTokenDetails> {
    return this.request("GET", `/v1/users/password/token/${encodeURIComponent(token)}`);
  }
  /** Local login: password (+ TOTP) for certificates. Proxy identity only. */
  authenticateSshUser(req: AuthenticateSshUserRequest): Promise<UserCerts> {
    const { user, ...body } = req;
    return this.request("POST", `/v1/users/${encodeURIComponent(user)}/ssh/authenticate`, body);
  }
  /** Changes the caller's own password (a user identity; the current password is checked). */
  async changePassword(
    user: string,
    req: { old_password: string; new_password: string; second_factor_token?: string },
  ): Promise<void> {
    await this.request("PUT", `/v1/users/${encodeURIComponent(user)}/password`, req);
  }
  /** The caller's own second-factor devices (no secrets). */
  async listMfaDevices(user: string): Promise<Array<{ type: string; added: string }>> {
    return (await this.request<{ devices: Array<{ type: string; added: string }> }>(
      "GET",
      `/v1/users/${encodeURIComponent(user)}/mfa/devices`,
    )).devices;
  }
  /** Starts replacing the caller's TOTP device (password and current code checked). */
  beginTotpReplace(
    user: string,
    req: { password: string; second_factor_token?: string },
  ): Promise<{ secret: string; uri: string; expires: string }> {
    return this.request("POST", `/v1/users/${encodeURIComponent(user)}/mfa/totp/replace`, req);
  }
  /** Finishes the replacement with a code of the new device. */
  async finishTotpReplace(user: string, code: string): Promise<void> {
    await this.request("PUT", `/v1/users/${encodeURIComponent(user)}/mfa/totp`, { code });
  }
  /** Stores a web session (proxy only; see WebSessionRecord). */
  async upsertWebSession(session: WebSessionRecord): Promise<void> {
    await this.request("PUT", `/v1/web/sessions/${encodeURIComponent(session.id)}`, { session });
  }
  /** A stored web session (proxy only); NotFoundError when it is gone. */
  async getWebSession(id: string): Promise<WebSessionRecord> {
    return (await this.request<{ session: WebSessionRecord }>(
      "GET",
      `/v1/web/sessions/${encodeURIComponent(id)}`,
    )).session;
  }
  /** Removes a web session (proxy only). */
  async deleteWebSession(id: string): Promise<void> {
    await this.request("DELETE", `/v1/web/sessions/${encodeURIComponent(id)}`);
  }
  /** Announces this proxy until `proxy.metadata.expires` (heartbeat). */
  async heartbeatProxy(proxy: Resource): Promise<void> {
    await this.request("PUT", `/v1/proxies/${encodeURIComponent(proxy.metadata.name)}`, {
      proxy,
    });
  }
  /** The proxies that heartbeated recently (any cluster identity may ask). */
  async listProxies(): Promise<Resource[]> {
    return (await this.request<{ items: Resource[] }>("GET", "/v1/proxies")).items;
  }
  /** Announces this node until `node.metadata.expires` (heartbeat). */
  async heartbeatNode(node: Resource): Promise<void> {
    await this.request("PUT", `/v1/nodes/${encodeURIComponent(node.metadata.name)}`, { node });
  }
  /** Writes the tracker of a session this node runs, until `tracker.metadata.expires`. */
  async upsertSessionTracker(tracker: SessionTracker): Promise<void> {
    await this.request("PUT", `/v1/sessions/${encodeURIComponent(tracker.metadata.name)}`, {
      tracker,
    });
  }
  /** Withdraws the tracker of a session this node ran. */
  async deleteSessionTracker(sid: string): Promise<void> {
    await this.request("DELETE", `/v1/sessions/${encodeURIComponent(sid)}`);
  }
  /** The running interactive sessions the caller may see. */
  async listSessionTrackers(): Promise<SessionTracker[]> {
    return (await this.request<{ items: SessionTracker[] }>("GET", "/v1/sessions")).items;
  }
  /** One running session (NotFoundError when it is not running or not visible). */
  async getSessionTracker(sid: string): Promise<SessionTracker> {
    return (await this.request<{ item: SessionTracker }>(
      "GET",
      `/v1/sessions/${encodeURIComponent(sid)}`,
    )).item;
  }
  /** Sends audit events (a node's or proxy's) to the auth service. */
  async emitEvents(events: AuditEvent[]): Promise<void> {
    await this.request("POST", "/v1/events", { events });
  }
  /** Searches the audit log. */
  searchEvents(q: SearchQuery): Promise<SearchResult> {
    const p = new URLSearchParams({ from: q.from.toISOString(), to: q.to.toISOString() });
    if (q.types && q.types.length > 0) p.set("type", q.types.join(","));
    if (q.sid !== undefined) p.set("sid", q.sid);
    if (q.limit !== undefined) p.set("limit", String(q.limit));
    if (q.order !== undefined) p.set("order", q.order);
    if (q.startKey !== undefined) p.set("start_key", q.startKey);
    return this.request("GET", `/v1/events?${p}`);
  }
  /**
   * Moves a CA's rotation (`POST /v1/authorities/:type/rotate`): to `phase` (manual), or
   * without one starts a semi-automatic rotation. Returns the CA without private keys.
   */
  async rotateCertAuthority(
    type: "host" | "user",
    req: { phase?: RotationPhase; mode?: "auto" | "manual"; gracePeriodMs?: number },
  ): Promise<Resource> {
    const out = await this.request<{ authority: Resource }>(
      "POST",
      `/v1/authorities/${type}/rotate`,
      {
        ...(req.phase === undefined ? {} : { phase: req.phase }),
        ...(req.mode === undefined ? {} : { mode: req.mode }),
        ...(req.gracePeriodMs === undefined ? {} : { grace_period_ms: req.gracePeriodMs }),
      },
    );
    return out.authority;
  }
  /** Joins with a token (`POST /v1/register`); the token is the credential. */
  register(req: RegisterRequest): Promise<RegisterResponse> {
    return this.request("POST", "/v1/register", req);
  }
  /**
   * Renews this host's certificates for new names (`POST /v1/hosts/reregister`); the client's
   * host identity is the credential and fixes the host id and role.
   */
  reRegister(req: Omit<RegisterRequest, "token" | "hostID" | "role">): Promise<RegisterResponse> {
    return this.request("POST", "/v1/hosts/reregister", req);
  }
  generateUserCerts(req: UserCertsRequest): Promise<UserCerts> {
    return this.request("POST", "/v1/certs/user", req);
  }
}

/** A write to, or read from, a kept-alive connection the other end had already closed. */
function isStaleConnection(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === "ECONNRESET" || code === "EPIPE" || /socket hang up/i.test(messageOf(err));
}
