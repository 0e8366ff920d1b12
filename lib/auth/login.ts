/**
 * Local login of the auth server: password and TOTP checks with the lockout policy
 * (lockout.ts), `tsh login` (authenticateSshUser), a user changing their own password, and the
 * user's MFA devices (list, replace the TOTP device). Every failure looks the same to the
 * caller ({@link LOGIN_FAILED_MESSAGE}) and is audited.
 */
import type { UserCerts } from "../authclient/mod.ts";
import { parseAuthorizedKey } from "../ca/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  isKind,
  messageOf,
  NotFoundError,
} from "../errors/mod.ts";
import { validateName } from "../resource/mod.ts";
import { type AuthContext, randomHex } from "./_shared.ts";
import type { UserCertsRequest } from "./certs.ts";
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
import { matchTotpStep, newTotpSecret, totpUri } from "./totp.ts";

/** The one answer to every failed login: it never says which part was wrong. */
export const LOGIN_FAILED_MESSAGE = "Cannot log in: invalid user name, password or second factor";
/** Longest password verified; longer ones cannot be stored, so they are wrong. */
const MAX_PASSWORD_LENGTH = 1024;
/** Time a started TOTP device replacement waits for the new device's first code. */
export const MFA_ENROLL_TTL_MS = 5 * 60_000;

/** Inputs of {@link AuthLogin.authenticateSshUser}. */
export interface AuthenticateSshUserOptions {
  user: string;
  password: string;
  /** Current TOTP code, when a second factor is required. */
  otpToken?: string;
  /** authorized_keys form. */
  sshPublicKey?: string;
  /** SPKI PEM. */
  tlsPublicKeyPem?: string;
  /** Requested certificate lifetime (capped by roles and MAX_CERT_TTL_MS, certs.ts). */
  ttlMs: number;
  /** Client address for the audit log (`host:port`). */
  remoteAddr?: string;
  /** How the user logs in (`user.login` `method`). @default {"local"} */
  method?: "local" | "web";
}

/** Inputs of {@link AuthLogin.changePassword}. */
export interface ChangePasswordRequest {
  user: string;
  oldPassword: string;
  newPassword: string;
  otpToken?: string;
  remoteAddr?: string;
}

/** Inputs of {@link AuthLogin.beginTotpReplace}. */
export interface BeginTotpReplaceRequest {
  user: string;
  password: string;
  otpToken?: string;
  remoteAddr?: string;
}

/** A started TOTP device replacement: the new key (and its `otpauth://` URI) and its expiry. */
export interface TotpEnrollment {
  secret: string;
  uri: string;
  expires: string;
}

/** Options of {@link AuthLogin}. */
export interface AuthLoginOptions {
  /** Issues the certificates of a successful login (certs.ts). */
  generateUserCerts(req: UserCertsRequest): Promise<UserCerts>;
}

/** Password/TOTP login and the credential changes that check the same way. */
export class AuthLogin {
  readonly #ctx: AuthContext;
  readonly #generateUserCerts: AuthLoginOptions["generateUserCerts"];
  /** A hash of a random password, verified against when a user has none (equal cost). */
  #dummyHash: Promise<string> | undefined;

  constructor(ctx: AuthContext, opts: AuthLoginOptions) {
    this.#ctx = ctx;
    this.#generateUserCerts = opts.generateUserCerts;
  }

  /**
   * Local login (`tsh login` through the proxy): checks the password and, when the cluster
   * (or, with second_factor optional, the user's enrolled device) asks for it, a TOTP code
   * (each code works once), then issues user certificates (certs.ts).
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
      certs = await this.#generateUserCerts({
        user: req.user,
        ttlMs: req.ttlMs,
        ...(req.sshPublicKey === undefined ? {} : { sshPublicKey: req.sshPublicKey }),
        ...(req.tlsPublicKeyPem === undefined ? {} : { tlsPublicKeyPem: req.tlsPublicKeyPem }),
      });
    } catch (err) {
      const lock = outcome.lock;
      await this.#ctx.emitAudit("user.login", {
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
    await this.#ctx.emitAudit("user.login", { ...fields, success: true });
    return certs;
  }

  /**
   * A user changes their own password (the web UI's account page): the current password and,
   * when logins need one, a TOTP code are checked exactly as at login (same message and
   * lockout; a failure is audited as a failed `user.login` with method `password_change`), then
   * the new password is stored. Audited as `user.password_change`, never with the passwords or
   * the code.
   */
  async changePassword(req: ChangePasswordRequest): Promise<void> {
    const source = loginSource(req.remoteAddr);
    const fields: Record<string, unknown> = {
      user: req.user,
      ...(req.remoteAddr === undefined ? {} : { "addr.remote": req.remoteAddr }),
    };
    const outcome: { lock?: ActiveLock & { started: boolean } } = {};
    try {
      // The new password's rules first: a too-short one costs no login attempt.
      const hash = await this.#ctx.passwords.hash(req.newPassword);
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
      await this.#ctx.users.setPasswordHash(req.user, hash);
    } catch (err) {
      // A wrong current password is a failed credential check, audited like a failed login.
      if (!isKind(err, "BadParameter")) {
        await this.#ctx.emitAudit("user.login", {
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
    await this.#ctx.emitAudit("user.password_change", { ...fields, success: true });
    this.#ctx.log.info("User {user} changed their password", { user: req.user });
  }

  /** The user's second-factor devices, without secrets. */
  async listMfaDevices(user: string): Promise<Array<{ type: "totp"; added: string }>> {
    const device = await this.#ctx.users.getTotpDevice(user);
    return device === undefined ? [] : [{ type: "totp", added: device.added }];
  }

  /**
   * Starts replacing (or adding) the user's TOTP device: the password and, when one is
   * enrolled or required, a current code are checked as at login (same message and lockout).
   * A new secret waits {@link MFA_ENROLL_TTL_MS} for a code from the new device
   * ({@link finishTotpReplace}); the old device keeps working until then.
   */
  async beginTotpReplace(req: BeginTotpReplaceRequest): Promise<TotpEnrollment> {
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
      await this.#ctx.emitAudit("user.login", {
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
    const expires = new Date(this.#ctx.clock.now().getTime() + MFA_ENROLL_TTL_MS);
    await this.#ctx.backend.put({
      key: ["mfa_pending", req.user],
      value: new TextEncoder().encode(JSON.stringify({ secret })),
      expires,
    });
    return {
      secret,
      uri: totpUri(this.#ctx.clusterName, req.user, secret),
      expires: expires.toISOString(),
    };
  }

  /** Finishes {@link beginTotpReplace} with a code of the new device; audited as `mfa.add`. */
  async finishTotpReplace(user: string, code: string): Promise<void> {
    let secret: string;
    try {
      const item = await this.#ctx.backend.get(["mfa_pending", user]);
      if (item.expires !== undefined && item.expires.getTime() <= this.#ctx.clock.now().getTime()) {
        throw new NotFoundError("expired");
      }
      secret = JSON.parse(new TextDecoder().decode(item.value)).secret;
    } catch (err) {
      if (!isKind(err, "NotFound")) throw err;
      throw new AccessDeniedError(
        "Cannot add the device: no replacement was started in the last 5 minutes; start again",
      );
    }
    const step = matchTotpStep({ secret, code: code.trim(), now: this.#ctx.clock.now() });
    if (step === undefined) {
      throw new AccessDeniedError(
        "Cannot add the device: the code is not the new device's current code; scan the new " +
          "key and enter the code the app shows",
      );
    }
    await this.#ctx.backend.delete(["mfa_pending", user]).catch(() => {});
    await this.#ctx.users.setTotpDevice(user, {
      secret,
      added: this.#ctx.clock.now().toISOString(),
      last_used_step: step,
    });
    await this.#ctx.emitAudit("mfa.add", { user, mfa_device_type: "TOTP" });
    this.#ctx.log.info("User {user} replaced their TOTP device", { user });
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
    const now = this.#ctx.clock.now();
    let name: string | undefined;
    try {
      name = validateName(req.user, "user");
    } catch {
      name = undefined; // no such user can exist; costs the same as a wrong password below
    }
    const lock = name === undefined
      ? undefined
      : activeLock(await this.#ctx.users.getLoginAttempts(name), source, now);
    let hash: string | undefined;
    let exists = false;
    if (name !== undefined) {
      try {
        await this.#ctx.users.get(name);
        exists = true;
        hash = await this.#ctx.users.getPasswordHash(name);
      } catch (err) {
        if (!isKind(err, "NotFound")) throw err;
      }
    }
    const password = typeof req.password === "string" ? req.password : "";
    // A locked login is checked against the dummy hash: same cost, and it reveals nothing
    // about the real password while locked.
    const matches = await this.#ctx.passwords.verify(
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

    const device = exists && name !== undefined
      ? await this.#ctx.users.getTotpDevice(name)
      : undefined;
    const sf = this.#ctx.secondFactor;
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
        await this.#ctx.users.markTotpUsed(name!, device, step, device.revision);
      } catch (err) {
        if (!isKind(err, "CompareFailed")) throw err;
        why = "the second factor code was used by a concurrent login";
      }
    }
    if (why !== undefined) {
      this.#ctx.log.info("Login of {user} from {addr} failed: {why}", {
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
    await this.#ctx.users.updateLoginAttempts(name!, (cur) => recordLoginSuccess(cur, source, now));
  }

  /** Counts a failed login of `name` from `source`; returns the lock it set, if any. */
  async #recordLoginFailure(
    name: string,
    source: string,
    now: Date,
  ): Promise<ActiveLock | undefined> {
    let outcome: FailureOutcome | undefined;
    await this.#ctx.users.updateLoginAttempts(name, (cur) => {
      outcome = recordLoginFailure(cur, source, now);
      return { attempts: outcome.attempts, expires: outcome.expires };
    });
    const locked = outcome?.locked;
    if (locked?.scope === "source") {
      this.#ctx.log.warn(
        "User {user} is locked out from {source} until {until} after {count} failed logins from there",
        { user: name, source, until: locked.until.toISOString(), count: MAX_LOGIN_ATTEMPTS },
      );
    } else if (locked?.scope === "user") {
      this.#ctx.log.warn(
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
    this.#dummyHash ??= this.#ctx.passwords.hash(randomHex(16));
    return this.#dummyHash;
  }
}
