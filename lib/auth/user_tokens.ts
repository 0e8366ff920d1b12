/**
 * Users' invite and reset tokens: creating a user (with an invite), resetting one, what an
 * invite/reset link shows (including the TOTP device it enrolls), setting the password with a
 * token, and deleting a user with its tokens.
 */
import type { UserTokenDetails } from "../authclient/mod.ts";
import { AccessDeniedError, isKind } from "../errors/mod.ts";
import { type User, validateName } from "../resource/mod.ts";
import type { TotpDevice, UserToken } from "../services/mod.ts";
import { type AuthContext, randomHex, withCreatedBy } from "./_shared.ts";
import { matchTotpStep, newTotpSecret, totpUri } from "./totp.ts";

/** Options of {@link AuthUserTokens}. */
export interface AuthUserTokensOptions {
  /** How long invite and reset tokens live. */
  userTokenTtlMs: number;
}

/** Users' invite/reset tokens and setting a password with one. */
export class AuthUserTokens {
  readonly #ctx: AuthContext;
  readonly #userTokenTtlMs: number;

  constructor(ctx: AuthContext, opts: AuthUserTokensOptions) {
    this.#ctx = ctx;
    this.#userTokenTtlMs = opts.userTokenTtlMs;
  }

  /** Creates a user and an invite token to set the first password. */
  async createUser(user: User, createdBy?: string): Promise<{ user: User; token: UserToken }> {
    validateName(user.metadata.name, "user");
    for (const r of user.spec.roles) await this.#ctx.roles.get(r);
    const stored = withCreatedBy(user, createdBy, this.#ctx.clock);
    await this.#ctx.users.create(stored);
    const token = await this.#newUserToken(user.metadata.name, "invite");
    this.#ctx.log.info("Created user {user} with roles {roles}", {
      user: user.metadata.name,
      roles: user.spec.roles.join(","),
    });
    return { user: stored, token };
  }

  /**
   * Resets a local user (`tctl users reset`): the password and TOTP device are removed, a
   * lock is lifted, old tokens are replaced by a new reset token (which enrolls a new TOTP
   * device when the cluster uses one).
   */
  async resetUser(name: string): Promise<UserToken> {
    await this.#ctx.users.get(name);
    await this.#ctx.userTokens.deleteForUser(name);
    await this.#ctx.users.deleteCredentials(name);
    await this.#ctx.users.clearLoginAttempts(name);
    this.#ctx.log.info("Reset user {user}: password and second factor removed", { user: name });
    return await this.#newUserToken(name, "reset");
  }

  /** TOTP enrollment that comes with a new invite/reset token, from second_factor. */
  #totpOffer(): { required: boolean } | undefined {
    switch (this.#ctx.secondFactor) {
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
      expires: new Date(this.#ctx.clock.now().getTime() + this.#userTokenTtlMs).toISOString(),
      ...(offer === undefined ? {} : { totp: { secret: newTotpSecret(), ...offer } }),
    };
    await this.#ctx.userTokens.create(token);
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
      t = await this.#ctx.userTokens.get(token);
    } catch (err) {
      if (isKind(err, "NotFound")) throw invalid();
      throw err;
    }
    if (!(Date.parse(t.expires) > this.#ctx.clock.now().getTime())) throw invalid();
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
          uri: totpUri(this.#ctx.clusterName, t.user, t.totp.secret),
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
        now: this.#ctx.clock.now(),
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
        added: this.#ctx.clock.now().toISOString(),
        last_used_step: step,
      };
    }
    const hash = await this.#ctx.passwords.hash(password);
    try {
      await this.#ctx.userTokens.delete(token); // only one concurrent use can delete it
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new AccessDeniedError("the invite or reset token is invalid or has expired");
      }
      throw err;
    }
    await this.#ctx.users.setPasswordHash(t.user, hash);
    if (enroll !== undefined) await this.#ctx.users.setTotpDevice(t.user, enroll);
    await this.#ctx.users.clearLoginAttempts(t.user);
    this.#ctx.log.info("Password set for user {user}{totp}", {
      user: t.user,
      totp: enroll === undefined ? "" : " with a new TOTP device",
    });
    return t.user;
  }

  /** Deletes a user with its password and tokens. */
  async deleteUser(name: string): Promise<void> {
    await this.#ctx.users.delete(name);
    await this.#ctx.userTokens.deleteForUser(name);
  }
}
