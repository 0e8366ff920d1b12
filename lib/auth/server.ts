/**
 * AuthServer: the cluster's authority, a thin front over its concerns. It owns the shared
 * state (backend services, clock, logger, the loaded CAs and their rotation, the password
 * hasher, the access decision) and hands it to each concern as one {@link AuthContext}:
 * join.ts (join tokens, host join and identity), login.ts (password/TOTP login, lockout,
 * password change, MFA devices), user_tokens.ts (invite/reset tokens), certs.ts (certificate
 * issuance and its metrics), presence.ts (heartbeats, session trackers, visibility), audit.ts
 * (events and recordings) and resources.ts (tctl get/create/rm). Transport-free: the HTTP API
 * (api.ts) and tests call it directly.
 */
import type {
  AuthorityInfo,
  RegisterRequest,
  RegisterResponse,
  UserCerts,
  UserTokenDetails,
} from "../authclient/mod.ts";
import type { Backend } from "../backend/mod.ts";
import { caPin, parseAuthorizedKey, parseX509Certificate, sshFingerprint } from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { AccessDeniedError, isKind } from "../errors/mod.ts";
import type { Identity } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { MetricsRegistry } from "../metrics/mod.ts";
import { AccessChecker, BUILTIN_ROLES } from "../rbac/mod.ts";
import {
  type CaRotation,
  type CertAuthority,
  type ProvisionToken,
  type ProxyResource,
  type Resource,
  type ResourceEvent,
  type ResourceKind,
  type Role,
  rotationOf,
  type ServerResource,
  type SessionTracker,
  type SystemRole,
  trustedKeys,
  type User,
  type WatchKind,
} from "../resource/mod.ts";
import {
  CertAuthoritiesService,
  PresenceService,
  ProvisionTokensService,
  RolesService,
  UsersService,
  type UserToken,
  UserTokensService,
  watchResources,
} from "../services/mod.ts";
import {
  type AuditLog,
  MemoryAuditLog,
  type RecordingStorage,
  type SearchQuery,
  type SearchResult,
} from "../events/mod.ts";
import type { AuthContext } from "./_shared.ts";
import { AuthAudit } from "./audit.ts";
import {
  type CaSigner,
  ensureCertAuthorities,
  loadSigner,
  newCaKeySet,
  publicAuthority,
} from "./authority.ts";
import { AuthCerts, type HostTlsCertRequest, type UserCertsRequest } from "./certs.ts";
import { AuthJoin, type CreateTokenRequest, type StaticToken } from "./join.ts";
import {
  type AuthenticateSshUserOptions,
  AuthLogin,
  type BeginTotpReplaceRequest,
  type ChangePasswordRequest,
  type TotpEnrollment,
} from "./login.ts";
import { type PasswordHasher, scryptHasher } from "./password.ts";
import { AuthPresence } from "./presence.ts";
import { AuthResources } from "./resources.ts";
import { dueAutoPhase, rotateAuthority } from "./rotation.ts";
import { SessionTrackerStore } from "./session_trackers.ts";
import { SYSTEM_ROLE_POLICIES } from "./system_roles.ts";
import { AuthUserTokens } from "./user_tokens.ts";
import { WebSessionStore } from "./web_sessions.ts";

export { randomHex } from "./_shared.ts";
export { MAX_CERT_TTL_MS, MIN_CERT_TTL_MS } from "./certs.ts";
export type { StaticToken } from "./join.ts";
export {
  type AuthenticateSshUserOptions,
  LOGIN_FAILED_MESSAGE,
  MFA_ENROLL_TTL_MS,
} from "./login.ts";

/** Everything the auth server needs, injected. */
/** Everything the auth server needs, injected. */
export interface AuthServerOptions {
  backend: Backend;
  clock: Clock;
  logger: Logger;
  clusterName: string;
  /** Version reported by ping. */
  version: string;
  staticTokens?: StaticToken[];
  /** `auth_service.authentication.second_factor`. */
  secondFactor?: string;
  /**
   * `auth_service.proxy_listener_mode` (cluster networking): proxies without their own auth
   * service learn it from ping. @default {"separate"}
   */
  proxyListenerMode?: "separate" | "multiplex";
  /** How long invite and reset tokens live. */
  userTokenTtlMs: number;
  /** Where audit events go. @default {a MemoryAuditLog (tests)} */
  auditLog?: AuditLog;
  /** Where uploaded session recordings are kept; without it uploads are refused. */
  recordings?: RecordingStorage;
  /** Largest recording accepted. @default {1 GiB} */
  maxRecordingBytes?: number;
  /** How passwords are hashed and checked. @default {scrypt, N=2^15, r=8, p=1} */
  passwordHasher?: PasswordHasher;
  /**
   * Where certificate issuance is reported (`auth_generate_requests_total`,
   * `auth_generate_seconds`, by `kind` user or host). @default {not reported}
   */
  metrics?: MetricsRegistry;
}

/** DNS names every auth/proxy TLS certificate carries (clients dial with this SNI). */
export const CLUSTER_LOCAL_DNS = ["teleport.cluster.local", "*.teleport.cluster.local"];

/** The authority of one cluster. */
export class AuthServer {
  readonly clusterName: string;
  readonly users: UsersService;
  readonly roles: RolesService;
  readonly tokens: ProvisionTokensService;
  readonly userTokens: UserTokensService;
  readonly cas: CertAuthoritiesService;
  readonly presence: PresenceService;
  readonly sessionTrackers: SessionTrackerStore;
  readonly webSessions: WebSessionStore;
  readonly audit: AuditLog;
  readonly #opts: AuthServerOptions;
  readonly #log: Logger;
  #signers = new Map<"host" | "user", CaSigner>();
  /** Revisions the signers were loaded at, to tell when a CA changed. */
  #signerRevisions = new Map<"host" | "user", string>();
  readonly #authorityListeners = new Set<(type: "host" | "user") => void>();
  readonly #certs: AuthCerts;
  readonly #join: AuthJoin;
  readonly #login: AuthLogin;
  readonly #userTokens: AuthUserTokens;
  readonly #presence: AuthPresence;
  readonly #audit: AuthAudit;
  readonly #resources: AuthResources;

  constructor(opts: AuthServerOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.clusterName = opts.clusterName;
    this.users = new UsersService(opts.backend);
    this.roles = new RolesService(opts.backend);
    this.tokens = new ProvisionTokensService(opts.backend);
    this.userTokens = new UserTokensService(opts.backend);
    this.cas = new CertAuthoritiesService(opts.backend);
    this.presence = new PresenceService(opts.backend);
    this.sessionTrackers = new SessionTrackerStore(opts.backend);
    this.webSessions = new WebSessionStore(opts.backend);
    this.audit = opts.auditLog ?? new MemoryAuditLog({ clock: opts.clock });
    const ctx: AuthContext = {
      clusterName: opts.clusterName,
      clock: opts.clock,
      log: opts.logger,
      backend: opts.backend,
      users: this.users,
      roles: this.roles,
      tokens: this.tokens,
      userTokens: this.userTokens,
      cas: this.cas,
      presence: this.presence,
      sessionTrackers: this.sessionTrackers,
      passwords: opts.passwordHasher ?? scryptHasher(),
      secondFactor: opts.secondFactor ?? "off",
      signer: (type) => this.#signer(type),
      checkerFor: (id) => this.checkerFor(id),
      emitAudit: (type, fields, o) => this.emitAudit(type, fields, o),
    };
    this.#audit = new AuthAudit(ctx, {
      auditLog: this.audit,
      recordings: opts.recordings,
      maxRecordingBytes: opts.maxRecordingBytes,
    });
    this.#certs = new AuthCerts(ctx, { metrics: opts.metrics });
    this.#join = new AuthJoin(ctx, { certs: this.#certs, staticTokens: opts.staticTokens });
    this.#login = new AuthLogin(ctx, {
      generateUserCerts: (req) => this.#certs.generateUserCerts(req),
    });
    this.#userTokens = new AuthUserTokens(ctx, { userTokenTtlMs: opts.userTokenTtlMs });
    this.#presence = new AuthPresence(ctx);
    this.#resources = new AuthResources(ctx, { join: this.#join, userTokens: this.#userTokens });
  }

  get clock(): Clock {
    return this.#opts.clock;
  }
  get version(): string {
    return this.#opts.version;
  }
  get secondFactor(): string {
    return this.#opts.secondFactor ?? "off";
  }
  get proxyListenerMode(): "separate" | "multiplex" {
    return this.#opts.proxyListenerMode ?? "separate";
  }

  /** First-start setup: CAs and built-in roles. Idempotent. */
  async init(): Promise<void> {
    const { created } = await ensureCertAuthorities(this.cas, this.clusterName, this.clock);
    for (const type of created) {
      this.#log.info("Created {type} certificate authority for cluster {cluster}", {
        type,
        cluster: this.clusterName,
      });
    }
    for (const role of BUILTIN_ROLES) {
      try {
        await this.roles.create(role);
      } catch (err) {
        if (!isKind(err, "AlreadyExists")) throw err;
      }
    }
    await this.reloadAuthorities();
  }

  /**
   * Reads both CAs from the backend and, for each that changed (a rotation, here or by another
   * auth server on the same backend), loads its keys and tells the listeners. Returns the
   * types that changed.
   */
  async reloadAuthorities(): Promise<Array<"host" | "user">> {
    const changed: Array<"host" | "user"> = [];
    for (const type of ["host", "user"] as const) {
      const ca = await this.cas.get(type, this.clusterName);
      const revision = ca.metadata.revision ?? "";
      if (this.#signers.has(type) && this.#signerRevisions.get(type) === revision) continue;
      this.#signers.set(type, await loadSigner(ca));
      this.#signerRevisions.set(type, revision);
      changed.push(type);
    }
    if (this.#authorityListeners.size > 0) {
      for (const type of changed) {
        for (const listener of this.#authorityListeners) {
          try {
            listener(type);
          } catch (err) {
            this.#log.error("A CA change listener failed: {error}", { error: err });
          }
        }
      }
    }
    return changed;
  }

  /**
   * Calls `listener` after a CA's keys or rotation phase changed (see
   * {@link reloadAuthorities}); returns the function that stops it.
   */
  watchAuthorities(listener: (type: "host" | "user") => void): () => void {
    this.#authorityListeners.add(listener);
    return () => this.#authorityListeners.delete(listener);
  }

  /** Where a CA's rotation stands (as loaded). */
  rotationPhase(type: "host" | "user"): CaRotation["phase"] {
    return this.#signer(type).rotation.phase;
  }

  /**
   * Moves a CA's rotation (`tctl auth rotate`): to `phase` (manual mode), or, without one,
   * starts a semi-automatic rotation whose phases follow by the grace period. Returns the CA
   * without private keys.
   */
  async rotateCertAuthority(
    type: "host" | "user",
    req: { phase?: CaRotation["phase"]; mode?: "auto" | "manual"; gracePeriodMs?: number },
  ): Promise<CertAuthority> {
    const ca = await this.cas.get(type, this.clusterName);
    const from = ca.spec.rotation?.phase ?? "standby";
    const next = await rotateAuthority(ca, {
      ...req,
      now: this.clock.now(),
      generateKeys: () => newCaKeySet(type, this.clusterName, this.clock),
    });
    await this.cas.compareAndSwap(next);
    const to = next.spec.rotation?.phase ?? "standby";
    this.#log.info("Rotation of the {type} CA moved from phase {from} to {to} ({mode})", {
      type,
      from,
      to,
      mode: next.spec.rotation?.mode ?? req.mode ?? "manual",
    });
    await this.reloadAuthorities();
    return publicAuthority(await this.cas.get(type, this.clusterName));
  }

  /**
   * Moves semi-automatic rotations on whose scheduled time has come, then reloads the CAs.
   * Run periodically by the auth service; a lost race with another auth server is harmless.
   */
  async advanceRotations(): Promise<void> {
    for (const type of ["host", "user"] as const) {
      const ca = await this.cas.get(type, this.clusterName);
      const due = dueAutoPhase(ca, this.clock.now());
      if (due === undefined) continue;
      try {
        await this.rotateCertAuthority(type, { phase: due, mode: "auto" });
      } catch (err) {
        if (!isKind(err, "CompareFailed") && !isKind(err, "BadParameter")) throw err;
      }
    }
    await this.reloadAuthorities();
  }

  #signer(type: "host" | "user"): CaSigner {
    const s = this.#signers.get(type);
    if (s === undefined) throw new Error("Cannot sign: the auth server is not initialised");
    return s;
  }

  /** TLS CA certificates clients use to trust auth (the host CA). */
  hostCaCertPems(): string[] {
    return this.#signer("host").tlsCertPems;
  }

  /** SSH public keys (authorized_keys lines) of the host CA, e.g. to check proxies' signatures. */
  hostCaSshKeys(): string[] {
    return this.#signer("host").sshPublicKeys;
  }

  /** TLS CA certificates that sign client identities (host and user CAs). */
  clientCaCertPems(): { host: string[]; user: string[] } {
    return { host: this.#signer("host").tlsCertPems, user: this.#signer("user").tlsCertPems };
  }

  /** Public facts about both CAs: keys, fingerprints and pins. */
  async authorities(): Promise<AuthorityInfo[]> {
    const out: AuthorityInfo[] = [];
    for (const type of ["host", "user"] as const) {
      const ca = await this.cas.get(type, this.clusterName);
      const { ssh: sshKeys, tls: tlsCerts } = trustedKeys(ca);
      out.push({
        type,
        clusterName: this.clusterName,
        sshPublicKeys: sshKeys,
        sshFingerprints: sshKeys.map((k) => sshFingerprint(parseAuthorizedKey(k).blob)),
        tlsCertPems: tlsCerts,
        tlsFingerprints: tlsCerts.map((c) => parseX509Certificate(c).sha256Fingerprint),
        pins: tlsCerts.map((c) => caPin(c)),
        rotation: rotationOf(ca),
      });
    }
    return out;
  }

  // ---- access decisions -------------------------------------------------

  /** The checker for a caller: system-role policy for hosts, stored roles for users. */
  async checkerFor(id: Identity): Promise<AccessChecker> {
    if (id.clusterName !== this.clusterName) {
      throw new AccessDeniedError(`identity belongs to cluster "${id.clusterName}", not this one`);
    }
    if (id.kind === "host") {
      const roles = id.roles.map((r) => SYSTEM_ROLE_POLICIES[r as SystemRole]).filter((r) =>
        r !== undefined
      );
      return new AccessChecker(roles);
    }
    const roles: Role[] = [];
    for (const name of id.roles) {
      try {
        roles.push(await this.roles.get(name));
      } catch (err) {
        if (!isKind(err, "NotFound")) throw err;
        this.#log.warn("Identity {user} names role {role}, which no longer exists", {
          user: id.username,
          role: name,
        });
      }
    }
    return new AccessChecker(roles, id.traits);
  }

  /** Throws AccessDeniedError unless `id` may `verb` the `resource` kind. */
  async authorize(id: Identity, resource: string, verb: string): Promise<void> {
    (await this.checkerFor(id)).checkRule(resource, verb);
  }

  // ---- join tokens and host identities (join.ts) ----------------------------

  /** Creates a join token: 32 hex characters unless `token` is given. */
  createToken(req: CreateTokenRequest, by?: string): Promise<ProvisionToken> {
    return this.#join.createToken(req, by);
  }

  /** Dynamic tokens plus static ones from the config (which never expire). */
  listTokens(): Promise<ProvisionToken[]> {
    return this.#join.listTokens();
  }

  /** Deletes a dynamic token. Static tokens live in the config file. */
  deleteToken(token: string): Promise<void> {
    return this.#join.deleteToken(token);
  }

  /** Joins a host with a (single-use, for dynamic tokens) join token. */
  registerUsingToken(req: RegisterRequest, remoteAddr?: string): Promise<RegisterResponse> {
    return this.#join.registerUsingToken(req, remoteAddr);
  }

  /** Issues a host identity without a token, for services inside the auth process. */
  issueLocalHostIdentity(req: Omit<RegisterRequest, "token">): Promise<RegisterResponse> {
    return this.#join.issueLocalHostIdentity(req);
  }

  /** Re-issues a joined host's credentials for the names its config asks for now. */
  reRegisterHost(
    caller: Identity,
    req: Omit<RegisterRequest, "token" | "hostID" | "role">,
  ): Promise<RegisterResponse> {
    return this.#join.reRegisterHost(caller, req);
  }

  // ---- users' invite/reset tokens (user_tokens.ts) ----------------------------

  /** Creates a user and an invite token to set the first password. */
  createUser(user: User, createdBy?: string): Promise<{ user: User; token: UserToken }> {
    return this.#userTokens.createUser(user, createdBy);
  }

  /** Resets a local user's credentials and issues a reset token (`tctl users reset`). */
  resetUser(name: string): Promise<UserToken> {
    return this.#userTokens.resetUser(name);
  }

  /** What the web UI shows for an invite/reset link. */
  getUserTokenDetails(token: string): Promise<UserTokenDetails> {
    return this.#userTokens.getUserTokenDetails(token);
  }

  /** Sets the user's password (and TOTP device) with an invite/reset token. */
  changePasswordWithToken(
    token: string,
    password: string,
    secondFactorToken?: string,
  ): Promise<string> {
    return this.#userTokens.changePasswordWithToken(token, password, secondFactorToken);
  }

  /** Deletes a user with its password and tokens. */
  deleteUser(name: string): Promise<void> {
    return this.#userTokens.deleteUser(name);
  }

  // ---- login (login.ts) -------------------------------------------------------

  /** Local login (`tsh login`): password and TOTP, lockout, audit; issues user certificates. */
  authenticateSshUser(req: AuthenticateSshUserOptions): Promise<UserCerts> {
    return this.#login.authenticateSshUser(req);
  }

  /** A user changes their own password, checked as at login. */
  changePassword(req: ChangePasswordRequest): Promise<void> {
    return this.#login.changePassword(req);
  }

  /** The user's second-factor devices, without secrets. */
  listMfaDevices(user: string): Promise<Array<{ type: "totp"; added: string }>> {
    return this.#login.listMfaDevices(user);
  }

  /** Starts replacing (or adding) the user's TOTP device, checked as at login. */
  beginTotpReplace(req: BeginTotpReplaceRequest): Promise<TotpEnrollment> {
    return this.#login.beginTotpReplace(req);
  }

  /** Finishes {@link beginTotpReplace} with a code of the new device. */
  finishTotpReplace(user: string, code: string): Promise<void> {
    return this.#login.finishTotpReplace(user, code);
  }

  // ---- resources, tctl get/create/rm (resources.ts) ---------------------------

  /** Lists resources of a kind; CA private keys are never included. */
  listResources(kind: ResourceKind): Promise<Resource[]> {
    return this.#resources.listResources(kind);
  }

  /** Reads one resource. */
  getResource(kind: ResourceKind, name: string): Promise<Resource> {
    return this.#resources.getResource(kind, name);
  }

  /** Creates (or with `upsert`, replaces) a user, role or token. */
  putResource(resource: Resource, upsert: boolean, by?: string): Promise<void> {
    return this.#resources.putResource(resource, upsert, by);
  }

  /** Deletes a user, role or token. */
  deleteResource(kind: ResourceKind, name: string): Promise<void> {
    return this.#resources.deleteResource(kind, name);
  }

  // ---- certificates (certs.ts) ------------------------------------------------

  /** Issues a user's SSH and/or TLS certificates, TTL capped by the roles. */
  generateUserCerts(req: UserCertsRequest): Promise<UserCerts> {
    return this.#certs.generateUserCerts(req);
  }

  /** Issues a TLS certificate for a cluster member, signed by the host CA. */
  generateHostTlsCert(req: HostTlsCertRequest): Promise<string> {
    return this.#certs.generateHostTlsCert(req);
  }

  // ---- presence and session trackers (presence.ts) ----------------------------

  /** A node's heartbeat (only for itself, expiring within the hour). */
  upsertNodeHeartbeat(caller: Identity, node: ServerResource): Promise<void> {
    return this.#presence.upsertNodeHeartbeat(caller, node);
  }

  /** A proxy's heartbeat (only a Proxy host for itself, or Admin). */
  upsertProxyHeartbeat(caller: Identity, proxy: ProxyResource): Promise<void> {
    return this.#presence.upsertProxyHeartbeat(caller, proxy);
  }

  /** A proxy that shuts down withdraws its presence. */
  deleteProxyHeartbeat(caller: Identity, name: string): Promise<void> {
    return this.#presence.deleteProxyHeartbeat(caller, name);
  }

  /**
   * Puts and deletes of `kinds` as the backend commits them, each run of its change feed
   * starting with `init` (again after a resync); CAs are this cluster's, public parts only.
   * Ends when `signal` aborts or the backend closes.
   */
  async *watchResources(
    kinds: readonly WatchKind[],
    signal: AbortSignal,
  ): AsyncGenerator<ResourceEvent> {
    for await (const ev of watchResources(this.#opts.backend, { kinds, signal })) {
      if (ev.type !== "put" || ev.kind !== "cert_authority") {
        yield ev.type === "put" ? { type: "put", resource: ev.resource } : ev;
        continue;
      }
      const ca = ev.resource as CertAuthority;
      if (ca.spec.cluster_name === this.clusterName) {
        yield { type: "put", resource: publicAuthority(ca) };
      }
    }
  }

  /** The nodes a user's roles let them see (node_labels; deny wins). Hosts see all. */
  listVisibleNodes(caller: Identity): Promise<ServerResource[]> {
    return this.#presence.listVisibleNodes(caller);
  }

  /** One node, if the caller may see it (NotFoundError otherwise, hiding its existence). */
  getVisibleNode(caller: Identity, name: string): Promise<ServerResource> {
    return this.#presence.getVisibleNode(caller, name);
  }

  /** A node's tracker of a session it runs (only its own sessions). */
  upsertSessionTracker(caller: Identity, tracker: SessionTracker): Promise<void> {
    return this.#presence.upsertSessionTracker(caller, tracker);
  }

  /** A node withdraws the tracker of a session that ended (only its own sessions). */
  deleteSessionTracker(caller: Identity, sid: string): Promise<void> {
    return this.#presence.deleteSessionTracker(caller, sid);
  }

  /** The running sessions `caller` may see. */
  listVisibleSessionTrackers(caller: Identity): Promise<SessionTracker[]> {
    return this.#presence.listVisibleSessionTrackers(caller);
  }

  /** One running session, if `caller` may see it (NotFoundError otherwise, hiding it). */
  getVisibleSessionTracker(caller: Identity, sid: string): Promise<SessionTracker> {
    return this.#presence.getVisibleSessionTracker(caller, sid);
  }

  // ---- audit (audit.ts) -------------------------------------------------------

  /** Records an event of this auth server; never throws (failures are logged). */
  emitAudit(
    type: string,
    fields: Record<string, unknown>,
    opts: { failure?: boolean } = {},
  ): Promise<void> {
    return this.#audit.emitAudit(type, fields, opts);
  }

  /** Stores validated events sent by a cluster member. */
  ingestEvents(caller: Identity, events: unknown[]): Promise<number> {
    return this.#audit.ingestEvents(caller, events);
  }

  /** Stores a finished session recording uploaded by the node that recorded it. */
  saveRecording(
    caller: Identity,
    sid: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ size: number }> {
    return this.#audit.saveRecording(caller, sid, body);
  }

  /** A stored recording's gzip bytes. */
  openRecording(sid: string): Promise<ReadableStream<Uint8Array>> {
    return this.#audit.openRecording(sid);
  }

  /** Session IDs with a stored recording. */
  listRecordings(): Promise<string[]> {
    return this.#audit.listRecordings();
  }

  /** Searches the audit log. */
  searchEvents(q: SearchQuery): Promise<SearchResult> {
    return this.#audit.searchEvents(q);
  }

  /** The stored CA (with keys) — for the process that owns this server only. */
  getAuthority(type: "host" | "user"): Promise<CertAuthority> {
    return this.cas.get(type, this.clusterName);
  }
}
