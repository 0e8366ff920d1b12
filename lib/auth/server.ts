/**
 * AuthServer: the cluster's authority. Owns the CAs, users, roles and tokens,
 * issues certificates and decides what each caller may do. Transport-free: the
 * HTTP API (api.ts) and tests call it directly.
 */
import type {
  AuthorityInfo,
  RegisterRequest,
  RegisterResponse,
  UserCerts,
  UserTokenDetails,
} from "../authclient/mod.ts";
import type { Backend } from "../backend/mod.ts";
import {
  caPin,
  issueX509Certificate,
  parseAuthorizedKey,
  parseSshCertificate,
  parseX509Certificate,
  signSshCertificate,
  sshFingerprint,
} from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  isKind,
  messageOf,
  NotFoundError,
  NotImplementedError,
} from "../errors/mod.ts";
import { hostIdOf, type Identity, identityToSubject } from "../identity/mod.ts";
import { type Logger, maskSecret } from "../log/mod.ts";
import type { Counter, Histogram, MetricsRegistry } from "../metrics/mod.ts";
import { AccessChecker, BUILTIN_ROLES } from "../rbac/mod.ts";
import {
  type CaRotation,
  type CertAuthority,
  parseSystemRole,
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
  validateName,
  type WatchKind,
} from "../resource/mod.ts";
import {
  CertAuthoritiesService,
  PresenceService,
  ProvisionTokensService,
  RolesService,
  type TotpDevice,
  UsersService,
  type UserToken,
  UserTokensService,
  watchResources,
} from "../services/mod.ts";
import {
  type CaSigner,
  ensureCertAuthorities,
  loadSigner,
  newCaKeySet,
  publicAuthority,
} from "./authority.ts";
import { dueAutoPhase, rotateAuthority } from "./rotation.ts";
import {
  assertNoNameConflict,
  type HostClaim,
  HostRegistry,
  validateHostNames,
} from "./host_names.ts";
import {
  type ActiveLock,
  activeLock,
  type FailureOutcome,
  LOGIN_ATTEMPT_WINDOW_MS,
  loginSource,
  MAX_LOGIN_ATTEMPTS,
  MAX_USER_LOGIN_FAILURES,
  recordLoginFailure,
  recordLoginSuccess,
} from "./lockout.ts";
import { type PasswordHasher, scryptHasher } from "./password.ts";
import { matchTotpStep, newTotpSecret, totpUri } from "./totp.ts";
import {
  type AuditEvent,
  type AuditLog,
  MemoryAuditLog,
  newAuditEvent,
  type RecordingStorage,
  type SearchQuery,
  type SearchResult,
  validateAuditEvent,
} from "../events/mod.ts";
import { SYSTEM_ROLE_POLICIES } from "./system_roles.ts";
import { SessionTrackerStore } from "./session_trackers.ts";
import { WebSessionStore } from "./web_sessions.ts";

/** A static join token from teleport.yaml (`"node:secret"`). Never expires. */
export interface StaticToken {
  roles: string[];
  token: string;
}

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

/** Shortest and longest user certificate the server issues (Teleport: 1 min, 30 h). */
export const MIN_CERT_TTL_MS = 60_000;
export const MAX_CERT_TTL_MS = 30 * 3_600_000;
/** Host certificates for cluster members (auth itself, admin identity) live this long. */
const HOST_CERT_TTL_MS = 365 * 24 * 3_600_000;
/** Backdating, so a freshly issued cert is valid on peers with a slightly slow clock. */
const BACKDATE_MS = 60_000;
/** Most events one API call may carry. */
const MAX_EVENTS_PER_CALL = 1000;
/** Longest expiry a node heartbeat may ask for. */
const MAX_HEARTBEAT_TTL_MS = 3_600_000;

/** The one answer to every failed login: it never says which part was wrong. */
export const LOGIN_FAILED_MESSAGE = "Cannot log in: invalid user name, password or second factor";
/** Longest password verified; longer ones cannot be stored, so they are wrong. */
const MAX_PASSWORD_LENGTH = 1024;
/** Time a started TOTP device replacement waits for the new device's first code. */
export const MFA_ENROLL_TTL_MS = 5 * 60_000;

/** Inputs of {@link AuthServer.authenticateSshUser}. */
export interface AuthenticateSshUserOptions {
  user: string;
  password: string;
  /** Current TOTP code, when a second factor is required. */
  otpToken?: string;
  /** authorized_keys form. */
  sshPublicKey?: string;
  /** SPKI PEM. */
  tlsPublicKeyPem?: string;
  /** Requested certificate lifetime (capped by roles and {@link MAX_CERT_TTL_MS}). */
  ttlMs: number;
  /** Client address for the audit log (`host:port`). */
  remoteAddr?: string;
  /** How the user logs in (`user.login` `method`). @default {"local"} */
  method?: "local" | "web";
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
  /** A hash of a random password, verified against when a user has none (equal cost). */
  #dummyHash: Promise<string> | undefined;
  readonly #passwords: PasswordHasher;
  readonly #hostRegistry: HostRegistry;
  readonly #generated?: { requests: Counter; seconds: Histogram };

  constructor(opts: AuthServerOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#passwords = opts.passwordHasher ?? scryptHasher();
    this.clusterName = opts.clusterName;
    this.users = new UsersService(opts.backend);
    this.roles = new RolesService(opts.backend);
    this.tokens = new ProvisionTokensService(opts.backend);
    this.userTokens = new UserTokensService(opts.backend);
    this.cas = new CertAuthoritiesService(opts.backend);
    this.presence = new PresenceService(opts.backend);
    this.sessionTrackers = new SessionTrackerStore(opts.backend);
    this.webSessions = new WebSessionStore(opts.backend);
    this.#hostRegistry = new HostRegistry(opts.backend);
    this.audit = opts.auditLog ?? new MemoryAuditLog({ clock: opts.clock });
    if (opts.metrics !== undefined) {
      this.#generated = {
        requests: opts.metrics.counter({
          name: "auth_generate_requests_total",
          help: "Certificate issuance requests (user: login, host: join and renewal)",
          labelNames: ["kind"],
        }),
        seconds: opts.metrics.histogram({
          name: "auth_generate_seconds",
          help: "Latency of certificate issuance in seconds",
          labelNames: ["kind"],
        }),
      };
    }
    for (const t of opts.staticTokens ?? []) {
      for (const r of t.roles) parseSystemRole(r, "static token role");
    }
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

  // ---- tokens ------------------------------------------------------------

  /** Creates a join token: 32 hex characters unless `token` is given. */
  async createToken(
    req: { roles: string[]; ttlMs: number; token?: string },
    by?: string,
  ): Promise<ProvisionToken> {
    if (req.roles.length === 0) {
      throw new BadParameterError("Cannot create token: give at least one role (node, proxy)");
    }
    const roles = [...new Set(req.roles.map((r) => parseSystemRole(r, "token role")))];
    if (roles.includes("Admin")) {
      throw new BadParameterError("Cannot create token: role Admin cannot join");
    }
    if (!(req.ttlMs > 0)) {
      throw new BadParameterError("Cannot create token: the TTL must be positive");
    }
    // A TTL so long that the expiry is no longer a time (past year 275760) is a bad parameter,
    // not an internal error from toISOString().
    const expiresMs = this.clock.now().getTime() + req.ttlMs;
    if (Number.isNaN(new Date(expiresMs).getTime())) {
      throw new BadParameterError(
        `Cannot create token: a TTL of ${req.ttlMs} ms ends past the last representable time`,
      );
    }
    const name = req.token ?? randomHex(16);
    if (!/^[A-Za-z0-9_-]{8,128}$/.test(name)) {
      throw new BadParameterError(
        "Cannot create token: a token must be 8-128 letters, digits, - or _",
      );
    }
    const token: ProvisionToken = {
      kind: "token",
      version: "v2",
      metadata: {
        name,
        expires: new Date(expiresMs).toISOString(),
      },
      spec: { roles, join_method: "token" },
    };
    await this.tokens.create(token);
    this.#log.info("Created join token {token} for roles {roles}", {
      token: maskSecret(name),
      roles: roles.join(","),
    });
    await this.emitAudit("join_token.create", {
      user: by ?? "",
      token_name: maskSecret(name),
      roles,
      join_method: "token",
      expires: token.metadata.expires,
    });
    return token;
  }

  /** Dynamic tokens plus static ones from the config (which never expire). */
  async listTokens(): Promise<ProvisionToken[]> {
    const dynamic = await this.tokens.list();
    const statics: ProvisionToken[] = (this.#opts.staticTokens ?? []).map((t) => ({
      kind: "token",
      version: "v2",
      metadata: { name: t.token, description: "static token from the config file" },
      spec: { roles: t.roles.map((r) => parseSystemRole(r)), join_method: "token" },
    }));
    return [...dynamic, ...statics];
  }

  /** Deletes a dynamic token. Static tokens live in the config file. */
  async deleteToken(token: string): Promise<void> {
    if ((this.#opts.staticTokens ?? []).some((t) => t.token === token)) {
      throw new BadParameterError(
        `Cannot delete token ${
          maskSecret(token)
        }: it is a static token; remove it from auth_service.tokens in the config file`,
      );
    }
    try {
      await this.tokens.delete(token);
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new NotFoundError(`token ${maskSecret(token)} is not found`);
      }
      throw err;
    }
  }

  // ---- users -------------------------------------------------------------

  /** Creates a user and an invite token to set the first password. */
  async createUser(user: User, createdBy?: string): Promise<{ user: User; token: UserToken }> {
    validateName(user.metadata.name, "user");
    for (const r of user.spec.roles) await this.roles.get(r);
    const stored = this.#withCreatedBy(user, createdBy);
    await this.users.create(stored);
    const token = await this.#newUserToken(user.metadata.name, "invite");
    this.#log.info("Created user {user} with roles {roles}", {
      user: user.metadata.name,
      roles: user.spec.roles.join(","),
    });
    return { user: stored, token };
  }

  #withCreatedBy(user: User, createdBy: string | undefined): User {
    return {
      ...user,
      spec: {
        ...user.spec,
        created_by: {
          time: this.clock.now().toISOString(),
          ...(createdBy === undefined ? {} : { user: createdBy }),
        },
      },
    };
  }

  /**
   * Resets a local user (`tctl users reset`): the password and TOTP device are removed, a
   * lock is lifted, old tokens are replaced by a new reset token (which enrolls a new TOTP
   * device when the cluster uses one).
   */
  async resetUser(name: string): Promise<UserToken> {
    await this.users.get(name);
    await this.userTokens.deleteForUser(name);
    await this.users.deleteCredentials(name);
    await this.users.clearLoginAttempts(name);
    this.#log.info("Reset user {user}: password and second factor removed", { user: name });
    return await this.#newUserToken(name, "reset");
  }

  /** TOTP enrollment that comes with a new invite/reset token, from second_factor. */
  #totpOffer(): { required: boolean } | undefined {
    switch (this.secondFactor) {
      case "otp":
      case "on":
        return { required: true };
      case "optional":
        return { required: false };
      default:
        return undefined;
    }
  }

  async #newUserToken(user: string, kind: "invite" | "reset"): Promise<UserToken> {
    const offer = this.#totpOffer();
    const token: UserToken = {
      token: randomHex(16),
      user,
      kind,
      expires: new Date(this.clock.now().getTime() + this.#opts.userTokenTtlMs).toISOString(),
      ...(offer === undefined ? {} : { totp: { secret: newTotpSecret(), ...offer } }),
    };
    await this.userTokens.create(token);
    // The caller (tctl) gets the token, never the TOTP secret: the user reads it through
    // the token (getUserTokenDetails) when setting the password.
    const { totp: _secret, ...shown } = token;
    return shown;
  }

  /** A live invite/reset token; AccessDeniedError for unknown or expired ones. */
  async #liveUserToken(token: string): Promise<UserToken> {
    const invalid = () =>
      new AccessDeniedError("the invite or reset token is invalid or has expired");
    if (typeof token !== "string" || !/^[A-Za-z0-9_-]{1,256}$/.test(token)) throw invalid();
    let t: UserToken;
    try {
      t = await this.userTokens.get(token);
    } catch (err) {
      if (isKind(err, "NotFound")) throw invalid();
      throw err;
    }
    if (!(Date.parse(t.expires) > this.clock.now().getTime())) throw invalid();
    return t;
  }

  /**
   * What the web UI shows for an invite/reset link: the user, the token kind and expiry, and
   * the TOTP device to enroll (secret, `otpauth://` URI for a QR code, whether required).
   */
  async getUserTokenDetails(token: string): Promise<UserTokenDetails> {
    const t = await this.#liveUserToken(token);
    return {
      user: t.user,
      kind: t.kind,
      expires: t.expires,
      ...(t.totp === undefined ? {} : {
        totp: {
          secret: t.totp.secret,
          uri: totpUri(this.clusterName, t.user, t.totp.secret),
          required: t.totp.required,
        },
      }),
    };
  }

  /**
   * Sets the user's password with an invite/reset token. When the token enrolls a TOTP
   * device, `secondFactorToken` must be a current code of it (required), or may be (optional,
   * then the device is enrolled). A wrong or missing code leaves the token usable for
   * another try; success consumes it (single use) and stores the password hash and device.
   */
  async changePasswordWithToken(
    token: string,
    password: string,
    secondFactorToken?: string,
  ): Promise<string> {
    const t = await this.#liveUserToken(token);
    // An empty field (a web form left blank) means no code.
    if (secondFactorToken !== undefined && secondFactorToken.trim() === "") {
      secondFactorToken = undefined;
    }
    let enroll: TotpDevice | undefined;
    if (t.totp !== undefined && (t.totp.required || secondFactorToken !== undefined)) {
      const step = secondFactorToken === undefined ? undefined : matchTotpStep({
        secret: t.totp.secret,
        code: secondFactorToken,
        now: this.clock.now(),
      });
      if (step === undefined) {
        throw new AccessDeniedError(
          secondFactorToken === undefined
            ? "Cannot set password: a second factor is required; enter the code your authenticator app shows for the key of this invite"
            : "Cannot set password: the second factor code is invalid; enter the current code from your authenticator app",
        );
      }
      enroll = {
        secret: t.totp.secret,
        added: this.clock.now().toISOString(),
        last_used_step: step,
      };
    }
    const hash = await this.#passwords.hash(password);
    try {
      await this.userTokens.delete(token); // only one concurrent use can delete it
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new AccessDeniedError("the invite or reset token is invalid or has expired");
      }
      throw err;
    }
    await this.users.setPasswordHash(t.user, hash);
    if (enroll !== undefined) await this.users.setTotpDevice(t.user, enroll);
    await this.users.clearLoginAttempts(t.user);
    this.#log.info("Password set for user {user}{totp}", {
      user: t.user,
      totp: enroll === undefined ? "" : " with a new TOTP device",
    });
    return t.user;
  }

  // ---- login -------------------------------------------------------------

  /**
   * Local login (`tsh login` through the proxy): checks the password and, when the cluster
   * (or, with second_factor optional, the user's enrolled device) asks for it, a TOTP code
   * (each code works once), then issues user certificates like {@link generateUserCerts}.
   *
   * Every failure — unknown user, wrong password or code, locked out — gets the same
   * {@link LOGIN_FAILED_MESSAGE} after the same work (a password hash is always verified, a
   * dummy one of equal cost when there is no real one to check), so answers tell an attacker
   * neither which users exist nor which are locked. Failures are counted per user and source
   * address (lockout.ts): {@link MAX_LOGIN_ATTEMPTS} lock that source out of the user for
   * {@link ACCOUNT_LOCK_INTERVAL_MS}, while the user keeps logging in from elsewhere;
   * {@link MAX_USER_LOGIN_FAILURES} from all sources lock the user everywhere (logged as a
   * warning). Every attempt is audited (`user.login`, with its source and any lock), never
   * with the password or code.
   */
  async authenticateSshUser(req: AuthenticateSshUserOptions): Promise<UserCerts> {
    if (req.sshPublicKey === undefined && req.tlsPublicKeyPem === undefined) {
      throw new BadParameterError("Cannot log in: give an SSH or TLS public key to certify");
    }
    if (req.sshPublicKey !== undefined) parseAuthorizedKey(req.sshPublicKey);
    const source = loginSource(req.remoteAddr);
    const fields: Record<string, unknown> = {
      user: req.user,
      method: req.method ?? "local",
      source,
      ...(req.remoteAddr === undefined ? {} : { "addr.remote": req.remoteAddr }),
    };
    const outcome: { lock?: ActiveLock & { started: boolean } } = {};
    let certs: UserCerts;
    try {
      await this.#checkLogin(req, source, outcome);
      certs = await this.generateUserCerts({
        user: req.user,
        ttlMs: req.ttlMs,
        ...(req.sshPublicKey === undefined ? {} : { sshPublicKey: req.sshPublicKey }),
        ...(req.tlsPublicKeyPem === undefined ? {} : { tlsPublicKeyPem: req.tlsPublicKeyPem }),
      });
    } catch (err) {
      const lock = outcome.lock;
      await this.emitAudit("user.login", {
        ...fields,
        success: false,
        error: messageOf(err),
        ...(lock === undefined ? {} : {
          lock_scope: lock.scope,
          // true: this failure set the lock; false: the attempt was refused by an earlier one.
          lock_started: lock.started,
          locked_until: lock.until.toISOString(),
        }),
      }, { failure: true });
      throw err;
    }
    await this.emitAudit("user.login", { ...fields, success: true });
    return certs;
  }

  /**
   * A user changes their own password (the web UI's account page): the current password and,
   * when logins need one, a TOTP code are checked exactly as at login (same message and
   * lockout; a failure is audited as a failed `user.login` with method `password_change`), then
   * the new password is stored. Audited as `user.password_change`, never with the passwords or
   * the code.
   */
  async changePassword(req: {
    user: string;
    oldPassword: string;
    newPassword: string;
    otpToken?: string;
    remoteAddr?: string;
  }): Promise<void> {
    const source = loginSource(req.remoteAddr);
    const fields: Record<string, unknown> = {
      user: req.user,
      ...(req.remoteAddr === undefined ? {} : { "addr.remote": req.remoteAddr }),
    };
    const outcome: { lock?: ActiveLock & { started: boolean } } = {};
    try {
      // The new password's rules first: a too-short one costs no login attempt.
      const hash = await this.#passwords.hash(req.newPassword);
      await this.#checkLogin(
        {
          user: req.user,
          password: req.oldPassword,
          ttlMs: 0,
          ...(req.otpToken === undefined ? {} : { otpToken: req.otpToken }),
          ...(req.remoteAddr === undefined ? {} : { remoteAddr: req.remoteAddr }),
        },
        source,
        outcome,
      );
      await this.users.setPasswordHash(req.user, hash);
    } catch (err) {
      // A wrong current password is a failed credential check, audited like a failed login.
      if (!isKind(err, "BadParameter")) {
        await this.emitAudit("user.login", {
          ...fields,
          method: "password_change",
          source,
          success: false,
          error: messageOf(err),
          ...(outcome.lock === undefined ? {} : { lock_scope: outcome.lock.scope }),
        }, { failure: true });
      }
      throw err;
    }
    await this.emitAudit("user.password_change", { ...fields, success: true });
    this.#log.info("User {user} changed their password", { user: req.user });
  }

  /** The user's second-factor devices, without secrets. */
  async listMfaDevices(user: string): Promise<Array<{ type: "totp"; added: string }>> {
    const device = await this.users.getTotpDevice(user);
    return device === undefined ? [] : [{ type: "totp", added: device.added }];
  }

  /**
   * Starts replacing (or adding) the user's TOTP device: the password and, when one is
   * enrolled or required, a current code are checked as at login (same message and lockout).
   * A new secret waits {@link MFA_ENROLL_TTL_MS} for a code from the new device
   * ({@link finishTotpReplace}); the old device keeps working until then.
   */
  async beginTotpReplace(req: {
    user: string;
    password: string;
    otpToken?: string;
    remoteAddr?: string;
  }): Promise<{ secret: string; uri: string; expires: string }> {
    const source = loginSource(req.remoteAddr);
    const outcome: { lock?: ActiveLock & { started: boolean } } = {};
    try {
      await this.#checkLogin(
        {
          user: req.user,
          password: req.password,
          ttlMs: 0,
          ...(req.otpToken === undefined ? {} : { otpToken: req.otpToken }),
          ...(req.remoteAddr === undefined ? {} : { remoteAddr: req.remoteAddr }),
        },
        source,
        outcome,
      );
    } catch (err) {
      await this.emitAudit("user.login", {
        user: req.user,
        method: "mfa_replace",
        source,
        success: false,
        error: messageOf(err),
        ...(req.remoteAddr === undefined ? {} : { "addr.remote": req.remoteAddr }),
      }, { failure: true });
      throw err;
    }
    const secret = newTotpSecret();
    const expires = new Date(this.clock.now().getTime() + MFA_ENROLL_TTL_MS);
    await this.#opts.backend.put({
      key: ["mfa_pending", req.user],
      value: new TextEncoder().encode(JSON.stringify({ secret })),
      expires,
    });
    return {
      secret,
      uri: totpUri(this.clusterName, req.user, secret),
      expires: expires.toISOString(),
    };
  }

  /** Finishes {@link beginTotpReplace} with a code of the new device; audited as `mfa.add`. */
  async finishTotpReplace(user: string, code: string): Promise<void> {
    let secret: string;
    try {
      const item = await this.#opts.backend.get(["mfa_pending", user]);
      if (item.expires !== undefined && item.expires.getTime() <= this.clock.now().getTime()) {
        throw new NotFoundError("expired");
      }
      secret = JSON.parse(new TextDecoder().decode(item.value)).secret;
    } catch (err) {
      if (!isKind(err, "NotFound")) throw err;
      throw new AccessDeniedError(
        "Cannot add the device: no replacement was started in the last 5 minutes; start again",
      );
    }
    const step = matchTotpStep({ secret, code: code.trim(), now: this.clock.now() });
    if (step === undefined) {
      throw new AccessDeniedError(
        "Cannot add the device: the code is not the new device's current code; scan the new " +
          "key and enter the code the app shows",
      );
    }
    await this.#opts.backend.delete(["mfa_pending", user]).catch(() => {});
    await this.users.setTotpDevice(user, {
      secret,
      added: this.clock.now().toISOString(),
      last_used_step: step,
    });
    await this.emitAudit("mfa.add", { user, mfa_device_type: "TOTP" });
    this.#log.info("User {user} replaced their TOTP device", { user });
  }

  /**
   * Throws {@link LOGIN_FAILED_MESSAGE} unless the credentials are right and neither the user
   * nor this source is locked; tells `outcome` about a lock that refused or was set.
   */
  async #checkLogin(
    req: AuthenticateSshUserOptions,
    source: string,
    outcome: { lock?: ActiveLock & { started: boolean } },
  ): Promise<void> {
    const now = this.clock.now();
    let name: string | undefined;
    try {
      name = validateName(req.user, "user");
    } catch {
      name = undefined; // no such user can exist; costs the same as a wrong password below
    }
    const lock = name === undefined
      ? undefined
      : activeLock(await this.users.getLoginAttempts(name), source, now);
    let hash: string | undefined;
    let exists = false;
    if (name !== undefined) {
      try {
        await this.users.get(name);
        exists = true;
        hash = await this.users.getPasswordHash(name);
      } catch (err) {
        if (!isKind(err, "NotFound")) throw err;
      }
    }
    const password = typeof req.password === "string" ? req.password : "";
    // A locked login is checked against the dummy hash: same cost, and it reveals nothing
    // about the real password while locked.
    const matches = await this.#passwords.verify(
      password.slice(0, MAX_PASSWORD_LENGTH + 1),
      (lock === undefined ? hash : undefined) ?? await this.#dummyPasswordHash(),
    );
    let why: string | undefined;
    if (lock !== undefined) {
      why = `locked ${
        lock.scope === "user" ? "for every address" : `for ${source}`
      } until ${lock.until.toISOString()}`;
    }
    if (!exists) why ??= "no such user";
    else if (hash === undefined) why ??= "the user has no password yet (invite not used)";
    else if (!matches || password.length > MAX_PASSWORD_LENGTH) why ??= "wrong password";

    const device = exists && name !== undefined ? await this.users.getTotpDevice(name) : undefined;
    const sf = this.secondFactor;
    let step: number | undefined;
    if (sf === "webauthn") {
      why ??= "second_factor webauthn is not supported; use otp";
    } else if (sf === "otp" || sf === "on" || (sf === "optional" && device !== undefined)) {
      if (device === undefined) {
        why ??=
          `no TOTP device is enrolled while second_factor is ${sf} (tctl users reset enrolls one)`;
      } else {
        step = req.otpToken === undefined ? undefined : matchTotpStep({
          secret: device.secret,
          code: String(req.otpToken),
          now,
          ...(device.last_used_step === undefined ? {} : { afterStep: device.last_used_step }),
        });
        if (step === undefined) {
          why ??= req.otpToken === undefined
            ? "no second factor code given"
            : "wrong, expired or already used second factor code";
        }
      }
    }
    if (why === undefined && device !== undefined && step !== undefined) {
      try {
        await this.users.markTotpUsed(name!, device, step, device.revision);
      } catch (err) {
        if (!isKind(err, "CompareFailed")) throw err;
        why = "the second factor code was used by a concurrent login";
      }
    }
    if (why !== undefined) {
      this.#log.info("Login of {user} from {addr} failed: {why}", {
        user: req.user,
        addr: req.remoteAddr ?? "unknown",
        why,
      });
      if (lock !== undefined) {
        outcome.lock = { ...lock, started: false };
      } else if (exists && name !== undefined) {
        const set = await this.#recordLoginFailure(name, source, now);
        if (set !== undefined) outcome.lock = { ...set, started: true };
      }
      throw new AccessDeniedError(LOGIN_FAILED_MESSAGE);
    }
    await this.users.updateLoginAttempts(name!, (cur) => recordLoginSuccess(cur, source, now));
  }

  /** Counts a failed login of `name` from `source`; returns the lock it set, if any. */
  async #recordLoginFailure(
    name: string,
    source: string,
    now: Date,
  ): Promise<ActiveLock | undefined> {
    let outcome: FailureOutcome | undefined;
    await this.users.updateLoginAttempts(name, (cur) => {
      outcome = recordLoginFailure(cur, source, now);
      return { attempts: outcome.attempts, expires: outcome.expires };
    });
    const locked = outcome?.locked;
    if (locked?.scope === "source") {
      this.#log.warn(
        "User {user} is locked out from {source} until {until} after {count} failed logins from there",
        { user: name, source, until: locked.until.toISOString(), count: MAX_LOGIN_ATTEMPTS },
      );
    } else if (locked?.scope === "user") {
      this.#log.warn(
        "User {user} is locked from every address until {until}: {count} failed logins from {sources} addresses within {minutes} minutes",
        {
          user: name,
          until: locked.until.toISOString(),
          count: MAX_USER_LOGIN_FAILURES,
          sources: Object.keys(outcome?.attempts.sources ?? {}).length,
          minutes: LOGIN_ATTEMPT_WINDOW_MS / 60_000,
        },
      );
    }
    return locked;
  }

  #dummyPasswordHash(): Promise<string> {
    this.#dummyHash ??= this.#passwords.hash(randomHex(16));
    return this.#dummyHash;
  }

  /** Deletes a user with its password and tokens. */
  async deleteUser(name: string): Promise<void> {
    await this.users.delete(name);
    await this.userTokens.deleteForUser(name);
  }

  // ---- resources (tctl get/create/rm) --------------------------------------

  /** Lists resources of a kind; CA private keys are never included. */
  async listResources(kind: ResourceKind): Promise<Resource[]> {
    switch (kind) {
      case "user":
        return await this.users.list();
      case "role":
        return await this.roles.list();
      case "token":
        return await this.listTokens();
      case "cert_authority":
        return (await this.cas.list()).map(publicAuthority);
      case "node":
        return await this.presence.listNodes();
      case "proxy":
        return await this.presence.listProxies();
      case "session_tracker":
        return await this.sessionTrackers.list();
    }
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
  async listVisibleNodes(caller: Identity): Promise<ServerResource[]> {
    const nodes = await this.presence.listNodes();
    if (caller.kind !== "user") return nodes;
    const checker = await this.checkerFor(caller);
    return nodes.filter((n) =>
      checker.canSeeNode({ name: n.metadata.name, labels: n.metadata.labels ?? {} })
    );
  }

  /** One node, if the caller may see it (NotFoundError otherwise, hiding its existence). */
  async getVisibleNode(caller: Identity, name: string): Promise<ServerResource> {
    const node = await this.presence.getNode(name);
    if (caller.kind === "user") {
      const checker = await this.checkerFor(caller);
      if (!checker.canSeeNode({ name: node.metadata.name, labels: node.metadata.labels ?? {} })) {
        throw new NotFoundError(`node "${name}" is not found`);
      }
    }
    return node;
  }

  /** Reads one resource. */
  async getResource(kind: ResourceKind, name: string): Promise<Resource> {
    switch (kind) {
      case "user":
        return await this.users.get(name);
      case "role":
        return await this.roles.get(name);
      case "token": {
        const found = (await this.listTokens()).find((t) => t.metadata.name === name);
        if (found === undefined) throw new NotFoundError(`token ${maskSecret(name)} is not found`);
        return found;
      }
      case "cert_authority": {
        if (name !== "host" && name !== "user") {
          throw new BadParameterError(`Cannot get cert_authority "${name}": use host or user`);
        }
        return publicAuthority(await this.cas.get(name, this.clusterName));
      }
      case "node":
        return await this.presence.getNode(name);
      case "proxy":
        return await this.presence.getProxy(name);
      case "session_tracker":
        return await this.sessionTrackers.get(name);
    }
  }

  /** Creates (or with `upsert`, replaces) a user, role or token. */
  async putResource(resource: Resource, upsert: boolean, by?: string): Promise<void> {
    switch (resource.kind) {
      case "role":
        return upsert ? await this.roles.upsert(resource) : await this.roles.create(resource);
      case "user": {
        // Like Teleport's tctl create: no invite token here; `tctl users reset` issues one.
        for (const r of resource.spec.roles) await this.roles.get(r);
        if (upsert) return await this.users.upsert(resource);
        return await this.users.create(this.#withCreatedBy(resource, by));
      }
      case "token":
        return upsert ? await this.tokens.upsert(resource) : await this.tokens.create(resource);
      case "cert_authority":
      case "node":
      case "proxy":
      case "session_tracker":
        throw new BadParameterError(
          `Cannot create ${resource.kind} resources: they are managed by the cluster itself`,
        );
    }
  }

  /** Deletes a user, role or token. */
  async deleteResource(kind: ResourceKind, name: string): Promise<void> {
    switch (kind) {
      case "user":
        return await this.deleteUser(name);
      case "role":
        return await this.roles.delete(name);
      case "token":
        return await this.deleteToken(name);
      case "node":
        return await this.presence.deleteNode(name);
      case "proxy":
        return await this.presence.deleteProxy(name);
      case "session_tracker":
        return await this.sessionTrackers.delete(name);
      case "cert_authority":
        throw new BadParameterError(
          "Cannot delete cert_authority resources: the cluster cannot work without its CAs",
        );
    }
  }

  // ---- certificates ----------------------------------------------------------

  /**
   * Issues certificates for a user: SSH (principals = allowed logins, key id =
   * user) and/or TLS (identity in the subject), with a TTL capped by the roles.
   */
  generateUserCerts(req: {
    user: string;
    sshPublicKey?: string;
    tlsPublicKeyPem?: string;
    ttlMs: number;
  }): Promise<UserCerts> {
    return this.#timeGenerate("user", () => this.#generateUserCerts(req));
  }

  /** Runs one certificate issuance and reports it (when metrics are given). */
  async #timeGenerate<T>(kind: "user" | "host", issue: () => Promise<T>): Promise<T> {
    const m = this.#generated;
    if (m === undefined) return await issue();
    m.requests.inc({ kind });
    const start = performance.now();
    try {
      return await issue();
    } finally {
      m.seconds.observe((performance.now() - start) / 1000, { kind });
    }
  }

  async #generateUserCerts(req: {
    user: string;
    sshPublicKey?: string;
    tlsPublicKeyPem?: string;
    ttlMs: number;
  }): Promise<UserCerts> {
    if (req.sshPublicKey === undefined && req.tlsPublicKeyPem === undefined) {
      throw new BadParameterError("Cannot sign user certificates: give an SSH or TLS public key");
    }
    const user = await this.users.get(req.user);
    const checker = await this.checkerFor({
      kind: "user",
      username: user.metadata.name,
      clusterName: this.clusterName,
      roles: user.spec.roles,
      logins: [],
      traits: user.spec.traits,
    });
    const ttl = Math.max(
      MIN_CERT_TTL_MS,
      Math.min(req.ttlMs, checker.maxSessionTtlMs(), MAX_CERT_TTL_MS),
    );
    const now = this.clock.now().getTime();
    const validAfter = new Date(now - BACKDATE_MS);
    const expires = new Date(now + ttl);
    let logins = checker.logins();
    if (logins.length === 0) logins = [`-teleport-nologin-${crypto.randomUUID()}`];
    const out: UserCerts = {
      tlsCaCerts: this.#signer("host").tlsCertPems,
      hostCaKeys: this.#signer("host").sshPublicKeys,
      userCaKeys: this.#signer("user").sshPublicKeys,
      expires: expires.toISOString(),
    };
    if (req.sshPublicKey !== undefined) {
      const extensions: Record<string, string> = {
        "permit-pty": "",
        "teleport-roles": JSON.stringify({ roles: user.spec.roles }),
        "teleport-traits": JSON.stringify(user.spec.traits),
      };
      if (checker.canPortForward()) extensions["permit-port-forwarding"] = "";
      if (checker.canForwardAgent()) extensions["permit-agent-forwarding"] = "";
      const signer = this.#signer("user");
      const cert = await signSshCertificate({
        signer: { privateKey: signer.ssh.privateKey, publicKeyBlob: signer.ssh.publicKeyBlob },
        publicKeyBlob: parseAuthorizedKey(req.sshPublicKey).blob,
        certType: "user",
        keyId: user.metadata.name,
        principals: logins,
        validAfter,
        validBefore: expires,
        extensions,
      });
      out.sshCert = cert.authorizedKey;
    }
    if (req.tlsPublicKeyPem !== undefined) {
      const id: Identity = {
        kind: "user",
        username: user.metadata.name,
        clusterName: this.clusterName,
        roles: user.spec.roles,
        logins,
        traits: user.spec.traits,
      };
      out.tlsCert = await this.#issueTls("user", id, req.tlsPublicKeyPem, {
        notBefore: validAfter,
        notAfter: expires,
        extKeyUsage: ["clientAuth"],
      });
    }
    this.#log.info("Issued user certificates for {user}, valid until {expires}", {
      user: user.metadata.name,
      expires: out.expires,
    });
    return out;
  }

  /**
   * Issues a TLS certificate for a cluster member (auth server, admin tool, and
   * later nodes and proxies) signed by the host CA.
   */
  async generateHostTlsCert(req: {
    hostId: string;
    role: SystemRole;
    tlsPublicKeyPem: string;
    /** Host names and IP addresses for the SANs (split into DNS and IP here). */
    names?: string[];
    ttlMs?: number;
  }): Promise<string> {
    const names = [...new Set(req.names ?? [])];
    const now = this.clock.now().getTime();
    const id: Identity = {
      kind: "host",
      username: `${req.hostId}.${this.clusterName}`,
      clusterName: this.clusterName,
      roles: [req.role],
      logins: [],
      traits: {},
    };
    return await this.#issueTls("host", id, req.tlsPublicKeyPem, {
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + (req.ttlMs ?? HOST_CERT_TTL_MS)),
      extKeyUsage: ["serverAuth", "clientAuth"],
      dnsNames: names.filter((n) => !isIpAddress(n)),
      ipAddresses: names.filter(isIpAddress),
    });
  }

  async #issueTls(
    caType: "host" | "user",
    id: Identity,
    publicKeyPem: string,
    o: {
      notBefore: Date;
      notAfter: Date;
      extKeyUsage: ("serverAuth" | "clientAuth")[];
      dnsNames?: string[];
      ipAddresses?: string[];
    },
  ): Promise<string> {
    const signer = this.#signer(caType);
    return await issueX509Certificate({
      ca: { certPem: signer.tls.certPem, privateKey: signer.tls.privateKey },
      publicKeyPem,
      subject: identityToSubject(id),
      extKeyUsage: o.extKeyUsage,
      notBefore: o.notBefore,
      notAfter: o.notAfter,
      ...(o.dnsNames && o.dnsNames.length > 0 ? { dnsNames: o.dnsNames } : {}),
      ...(o.ipAddresses && o.ipAddresses.length > 0 ? { ipAddresses: o.ipAddresses } : {}),
    });
  }

  /**
   * Joins a host with a token: the token must exist, be unexpired and allow the
   * role; dynamic tokens are consumed (single use, even under concurrent joins).
   * Returns an SSH host certificate (no expiry, like Teleport's join path), a TLS
   * certificate and the CA material. Every refusal says the same thing, so a
   * caller cannot probe which tokens exist; the token never appears in logs.
   */
  async registerUsingToken(req: RegisterRequest, remoteAddr?: string): Promise<RegisterResponse> {
    const role = parseSystemRole(req.role, "role");
    const joinFields = {
      token_name: maskSecret(req.token),
      method: "token",
      role: role.toLowerCase(),
      host_id: req.hostID,
      node_name: req.node_name,
      "addr.remote": remoteAddr ?? "",
    };
    let stage: "request" | "token" | "names" | "issue" = "request";
    try {
      const claim = this.#validateJoin(req, role);
      stage = "token";
      const consumeToken = await this.#checkToken(req.token, role, req.node_name, remoteAddr);
      // Names are compared with other hosts' only for a valid token (no probing without one),
      // and before the token is used up (a host refused for its names can fix them and retry).
      stage = "names";
      await this.#checkHostNames(claim);
      stage = "token";
      await consumeToken();
      stage = "issue";
      const res = await this.#issueHostCredentials(req, remoteAddr);
      await this.emitAudit("instance.join", { ...joinFields, success: true });
      return res;
    } catch (err) {
      // Token refusals are logged where they are decided (with the token masked).
      if (stage !== "token") {
        this.#log.warn("Refused join of {node} ({host}) as {role} from {addr}: {reason}", {
          node: req.node_name,
          host: req.hostID,
          role,
          addr: remoteAddr ?? "unknown",
          reason: messageOf(err),
        });
      }
      await this.emitAudit("instance.join", {
        ...joinFields,
        success: false,
        error: messageOf(err),
      }, { failure: true });
      throw err;
    }
  }

  /** Checks a join request's fields and the form of its names; returns the host's claim. */
  #validateJoin(req: Omit<RegisterRequest, "token">, role: SystemRole): HostClaim {
    if (role !== "Node" && role !== "Proxy") {
      throw new BadParameterError(
        `Cannot join as ${role}: only node and proxy hosts join with a token`,
      );
    }
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(req.hostID)) {
      throw new BadParameterError("Cannot join: hostID must be a UUID");
    }
    validateName(req.node_name, "node");
    const claim: HostClaim = {
      hostId: req.hostID,
      role,
      nodeName: req.node_name,
      names: [...(req.additional_principals ?? []), ...(req.dns_names ?? [])],
    };
    validateHostNames(claim);
    return claim;
  }

  /**
   * Refuses names that belong to another host: one recorded at its join (even if offline now)
   * or one heartbeating now (hosts that joined before the registry existed).
   */
  async #checkHostNames(claim: HostClaim): Promise<void> {
    const others: HostClaim[] = await this.#hostRegistry.list();
    for (const n of await this.presence.listNodes()) {
      others.push({ hostId: n.metadata.name, role: "Node", nodeName: n.spec.hostname, names: [] });
    }
    for (const p of await this.presence.listProxies()) {
      others.push({ hostId: p.metadata.name, role: "Proxy", nodeName: p.spec.hostname, names: [] });
    }
    assertNoNameConflict(claim, others, this.clusterName);
  }

  #issueHostCredentials(
    req: Omit<RegisterRequest, "token">,
    remoteAddr: string | undefined,
  ): Promise<RegisterResponse> {
    return this.#timeGenerate("host", () => this.#issueHostCredentialsNow(req, remoteAddr));
  }

  async #issueHostCredentialsNow(
    req: Omit<RegisterRequest, "token">,
    remoteAddr: string | undefined,
  ): Promise<RegisterResponse> {
    const role = parseSystemRole(req.role, "role");
    const claim = this.#validateJoin(req, role);
    const principals = req.additional_principals ?? [];
    const now = this.clock.now().getTime();
    const host = this.#signer("host");
    const sshPrincipals = [
      ...new Set([
        `${req.hostID}.${this.clusterName}`,
        req.hostID,
        req.node_name,
        `${req.node_name}.${this.clusterName}`,
        "localhost",
        "127.0.0.1",
        "::1",
        ...principals,
      ]),
    ];
    const sshCert = await signSshCertificate({
      signer: { privateKey: host.ssh.privateKey, publicKeyBlob: host.ssh.publicKeyBlob },
      publicKeyBlob: parseAuthorizedKey(req.public_ssh_key).blob,
      certType: "host",
      keyId: `${req.hostID}.${this.clusterName}`,
      principals: sshPrincipals,
      validAfter: new Date(now - BACKDATE_MS),
      validBefore: "forever",
      extensions: { "x-teleport-role": role, "x-teleport-authority": this.clusterName },
    });
    const tlsCert = await this.generateHostTlsCert({
      hostId: req.hostID,
      role,
      tlsPublicKeyPem: req.public_tls_key,
      names: [req.node_name, ...principals, ...(req.dns_names ?? [])],
    });
    await this.#hostRegistry.put(claim);
    this.#log.info("Host {node} ({host}) joined as {role} from {addr}", {
      node: req.node_name,
      host: req.hostID,
      role,
      addr: remoteAddr ?? "unknown",
    });
    return {
      ssh_cert: sshCert.authorizedKey,
      tls_cert: tlsCert,
      tls_ca_certs: host.tlsCertPems,
      ssh_ca_keys: { host: host.sshPublicKeys, user: this.#signer("user").sshPublicKeys },
    };
  }

  /**
   * Checks that `token` exists, is unexpired and allows `role`; returns the step that uses it
   * up (dynamic tokens are single use: only one concurrent join can delete one).
   */
  async #checkToken(
    token: string,
    role: SystemRole,
    nodeName: string,
    remoteAddr: string | undefined,
  ): Promise<() => Promise<void>> {
    const refuse = (why: string) => {
      this.#log.warn("Refused join of {node} as {role} from {addr} with token {token}: {why}", {
        node: nodeName,
        role,
        addr: remoteAddr ?? "unknown",
        token: maskSecret(token),
        why,
      });
      return new AccessDeniedError(
        `the join token is invalid, expired, already used, or does not allow role ${role.toLowerCase()}; create a new one with "tctl tokens add --type=${role.toLowerCase()}"`,
      );
    };
    const statics = (this.#opts.staticTokens ?? []).filter((t) => t.token === token);
    if (statics.length > 0) {
      if (!statics.some((t) => t.roles.some((r) => parseSystemRole(r) === role))) {
        throw refuse("static token does not allow the role");
      }
      return () => Promise.resolve();
    }
    let stored: ProvisionToken;
    try {
      stored = await this.tokens.get(token);
    } catch (err) {
      if (isKind(err, "NotFound")) throw refuse("no such token (or expired)");
      throw err;
    }
    if (!stored.spec.roles.includes(role)) throw refuse("token does not allow the role");
    return async () => {
      try {
        await this.tokens.delete(token);
      } catch (err) {
        if (isKind(err, "NotFound")) throw refuse("token already used");
        throw err;
      }
    };
  }

  /**
   * A node's heartbeat: stores its own server resource until `metadata.expires`.
   * A host may only announce itself (name = its host UUID); the expiry must lie
   * in the next hour, so a node cannot leave a permanent entry behind.
   */
  async upsertNodeHeartbeat(caller: Identity, node: ServerResource): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    if (!isAdmin && node.metadata.name !== hostIdOf(caller)) {
      throw new AccessDeniedError(
        `host ${
          hostIdOf(caller)
        } cannot announce node "${node.metadata.name}": a node announces only itself`,
      );
    }
    this.#checkHeartbeat(node);
    await this.presence.upsertNode(node);
  }

  /**
   * A proxy's heartbeat, like {@link upsertNodeHeartbeat}: only a Proxy host (or Admin), only
   * for itself (name = its host UUID), expiring within the hour.
   */
  async upsertProxyHeartbeat(caller: Identity, proxy: ProxyResource): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    const isProxy = caller.kind === "host" && caller.roles.includes("Proxy");
    if (!isAdmin && !(isProxy && proxy.metadata.name === hostIdOf(caller))) {
      throw new AccessDeniedError(
        `${caller.username} cannot announce proxy "${proxy.metadata.name}": a proxy announces only itself`,
      );
    }
    this.#checkHeartbeat(proxy);
    await this.presence.upsertProxy(proxy);
  }

  /** A proxy that shuts down withdraws its presence (so agents stop looking for it). */
  async deleteProxyHeartbeat(caller: Identity, name: string): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    const isProxy = caller.kind === "host" && caller.roles.includes("Proxy");
    if (!isAdmin && !(isProxy && name === hostIdOf(caller))) {
      throw new AccessDeniedError(
        `${caller.username} cannot withdraw proxy "${name}": a proxy withdraws only itself`,
      );
    }
    await this.presence.deleteProxy(name);
  }

  // ---- session trackers ------------------------------------------------------

  /**
   * A node's tracker of a session it runs: only a Node host (or Admin), only for itself
   * (`spec.node_id` = its host UUID), never over another node's session, expiring within the
   * hour (the node keeps it alive).
   */
  async upsertSessionTracker(caller: Identity, tracker: SessionTracker): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    const isNode = caller.kind === "host" && caller.roles.includes("Node");
    const hostId = hostIdOf(caller);
    if (!isAdmin && !(isNode && tracker.spec.node_id === hostId)) {
      throw new AccessDeniedError(
        `${caller.username} cannot track session "${tracker.metadata.name}": a node tracks ` +
          "only its own sessions",
      );
    }
    const sid = tracker.metadata.name;
    const existing = await this.sessionTrackers.get(sid).catch((err) => {
      if (isKind(err, "NotFound")) return undefined;
      throw err;
    });
    if (existing !== undefined && existing.spec.node_id !== tracker.spec.node_id) {
      throw new AccessDeniedError(
        `Cannot track session "${sid}": it runs on node ${existing.spec.node_id}`,
      );
    }
    const expires = Date.parse(tracker.metadata.expires ?? "");
    const now = this.clock.now().getTime();
    if (Number.isNaN(expires) || expires <= now || expires > now + 3_600_000) {
      throw new BadParameterError(
        `Cannot track session "${sid}": metadata.expires must lie within the next hour`,
      );
    }
    await this.sessionTrackers.upsert({
      ...tracker,
      spec: { ...tracker.spec, cluster_name: this.clusterName },
    });
  }

  /** A node withdraws the tracker of a session that ended (only its own sessions). */
  async deleteSessionTracker(caller: Identity, sid: string): Promise<void> {
    const tracker = await this.sessionTrackers.get(sid);
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    if (!isAdmin && !(caller.kind === "host" && tracker.spec.node_id === hostIdOf(caller))) {
      throw new AccessDeniedError(
        `${caller.username} cannot end the tracker of session "${sid}": it runs on node ` +
          tracker.spec.node_id,
      );
    }
    await this.sessionTrackers.delete(sid);
  }

  /**
   * The running sessions `caller` may see: all of them for hosts and for users whose roles
   * allow `list` on `session_tracker` or `session` (recordings); otherwise the user's own
   * sessions and those their `join_sessions` policies let them join.
   */
  async listVisibleSessionTrackers(caller: Identity): Promise<SessionTracker[]> {
    const all = await this.sessionTrackers.list();
    const sees = await this.#sessionVisibility(caller);
    const out: SessionTracker[] = [];
    for (const t of all) if (await sees(t)) out.push(t);
    return out;
  }

  /** One running session, if `caller` may see it (NotFoundError otherwise, hiding it). */
  async getVisibleSessionTracker(caller: Identity, sid: string): Promise<SessionTracker> {
    const tracker = await this.sessionTrackers.get(sid);
    if (!await (await this.#sessionVisibility(caller))(tracker)) {
      throw new NotFoundError(`session "${sid}" is not running (no session tracker)`);
    }
    return tracker;
  }

  async #sessionVisibility(caller: Identity): Promise<(t: SessionTracker) => Promise<boolean>> {
    if (caller.kind === "host") return () => Promise.resolve(true);
    const checker = await this.checkerFor(caller);
    const allows = (resource: string) => {
      try {
        checker.checkRule(resource, "list");
        return true;
      } catch {
        return false;
      }
    };
    if (allows("session_tracker") || allows("session")) return () => Promise.resolve(true);
    const ownerRoles = new Map<string, Promise<string[]>>();
    return async (t) => {
      if (t.spec.user === caller.username) return true;
      let roles = ownerRoles.get(t.spec.user);
      if (roles === undefined) {
        roles = this.users.get(t.spec.user).then((u) => u.spec.roles, () => []);
        ownerRoles.set(t.spec.user, roles);
      }
      const session = { owner: t.spec.user, ownerRoles: await roles, kind: t.spec.kind };
      return checker.canJoinSession(caller.username, session, "observer") ||
        checker.canJoinSession(caller.username, session, "peer");
    };
  }

  /** Expiry within the next hour; a host certificate, when given, must parse as one. */
  #checkHeartbeat(r: ServerResource | ProxyResource): void {
    const now = this.clock.now().getTime();
    const expires = r.metadata.expires === undefined ? NaN : Date.parse(r.metadata.expires);
    if (!(expires > now && expires <= now + MAX_HEARTBEAT_TTL_MS)) {
      throw new BadParameterError(
        "Cannot store heartbeat: metadata.expires must be a time within the next hour",
      );
    }
    if (r.spec.host_cert !== undefined) {
      let certType: string;
      try {
        certType = parseSshCertificate(r.spec.host_cert).certType;
      } catch (err) {
        throw new BadParameterError(
          `Cannot store heartbeat: spec.host_cert is not an SSH certificate (${messageOf(err)})`,
          { cause: err },
        );
      }
      if (certType !== "host") {
        throw new BadParameterError(
          "Cannot store heartbeat: spec.host_cert must be a host certificate, not a user one",
        );
      }
    }
  }

  /**
   * Issues a host identity without a token, for a service running inside the
   * auth process itself (`--roles=auth,node`): Teleport does the same for
   * local services. Never reachable over the API.
   */
  async issueLocalHostIdentity(req: Omit<RegisterRequest, "token">): Promise<RegisterResponse> {
    await this.#checkHostNames(this.#validateJoin(req, parseSystemRole(req.role, "role")));
    return await this.#issueHostCredentials(req, "local");
  }

  /**
   * Re-issues a joined host's credentials for the names its config asks for now (its
   * public_addr or listen hosts changed since it joined), authenticated by its current host
   * certificate: the host id and role are the certificate's, never the request's; the names
   * pass the same checks as a join. Teleport re-registers the same way.
   */
  async reRegisterHost(
    caller: Identity,
    req: Omit<RegisterRequest, "token" | "hostID" | "role">,
  ): Promise<RegisterResponse> {
    const role = caller.kind === "host"
      ? caller.roles.find((r) => r === "Node" || r === "Proxy")
      : undefined;
    if (role === undefined) {
      throw new AccessDeniedError(
        `Cannot re-register ${caller.username}: only node and proxy hosts renew their certificates`,
      );
    }
    const full = { ...req, hostID: hostIdOf(caller), role };
    await this.#checkHostNames(this.#validateJoin(full, role));
    const res = await this.#issueHostCredentials(full, "re-register");
    await this.emitAudit("instance.join", {
      method: "reregister",
      role: role.toLowerCase(),
      host_id: full.hostID,
      node_name: full.node_name,
      success: true,
    });
    return res;
  }

  // ---- audit -------------------------------------------------------------

  /**
   * Records an event of this auth server. Never throws: a failing audit log is
   * logged as an error (the request it describes has already happened).
   */
  async emitAudit(
    type: string,
    fields: Record<string, unknown>,
    opts: { failure?: boolean } = {},
  ): Promise<void> {
    try {
      await this.audit.emit(newAuditEvent(type, fields, {
        clock: this.clock,
        clusterName: this.clusterName,
        ...(opts.failure ? { failure: true } : {}),
      }));
    } catch (err) {
      this.#log.error("Cannot write audit event {type}: {error}", { type, error: err });
    }
  }

  /**
   * Stores events sent by a cluster member. Each is validated; `cluster_name`
   * is this cluster's and, for a host, `server_id` is the caller's own host
   * UUID, whatever the sender claimed.
   */
  async ingestEvents(caller: Identity, events: unknown[]): Promise<number> {
    if (events.length > MAX_EVENTS_PER_CALL) {
      throw new BadParameterError(
        `Cannot store ${events.length} events in one call: send at most ${MAX_EVENTS_PER_CALL}`,
      );
    }
    const checked: AuditEvent[] = events.map((e) => {
      const ev = validateAuditEvent(e);
      ev.cluster_name = this.clusterName;
      if (caller.kind === "host" && !caller.roles.includes("Admin")) {
        ev.server_id = hostIdOf(caller);
      }
      return ev;
    });
    for (const ev of checked) await this.audit.emit(ev);
    return checked.length;
  }

  /**
   * Stores a finished session recording (gzip body, see lib/events) uploaded
   * by the node that recorded it, and audits the upload.
   */
  async saveRecording(
    caller: Identity,
    sid: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ size: number }> {
    const store = this.#recordingStore();
    const { size } = await store.save(sid, body, {
      maxBytes: this.#opts.maxRecordingBytes ?? 1024 ** 3,
    });
    await this.emitAudit("session.upload", {
      sid,
      server_id: caller.kind === "host" ? hostIdOf(caller) : "",
      user: caller.username,
      size,
      url: `file://records/${sid}.rec.gz`,
    });
    return { size };
  }

  /** A stored recording's gzip bytes. */
  openRecording(sid: string): Promise<ReadableStream<Uint8Array>> {
    return this.#recordingStore().open(sid);
  }

  /** Session IDs with a stored recording. */
  listRecordings(): Promise<string[]> {
    return this.#recordingStore().list();
  }

  #recordingStore(): RecordingStorage {
    if (this.#opts.recordings === undefined) {
      throw new NotImplementedError("this auth server keeps no session recordings");
    }
    return this.#opts.recordings;
  }

  /** Searches the audit log. */
  searchEvents(q: SearchQuery): Promise<SearchResult> {
    return this.audit.search(q);
  }

  /** The stored CA (with keys) — for the process that owns this server only. */
  getAuthority(type: "host" | "user"): Promise<CertAuthority> {
    return this.cas.get(type, this.clusterName);
  }
}

/** True for an IPv4 or IPv6 literal (SAN type IP rather than DNS). */
function isIpAddress(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}

/** `n` random bytes as lowercase hex. */
export function randomHex(n: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(n)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
