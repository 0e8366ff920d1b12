/**
 * Web sessions on the proxy side: a browser login (`POST /webapi/sessions/web`) makes an SSH and
 * a TLS key pair here, has auth certify them with the same password/OTP check, lockout, audit
 * (`user.login`, method `web`) and certificate lifetime as `tsh login`, and stores the session in
 * auth's backend (so every proxy of the cluster can serve it). The browser gets two secrets that
 * must come together: the session id in an `__Host-session` cookie (HttpOnly, Secure,
 * SameSite=Lax) and a bearer token for the `Authorization` header (only its SHA-256 is stored).
 * Keys and certificates never leave the proxy.
 *
 * A session ends after `idleTimeoutMs` without a renewal (the UI renews while it is used) and
 * never later than its certificates. A proxy trusts a session it read for `cacheMs`, then reads
 * it again (so a logout at another proxy reaches this one within that time).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { WebSessionRecord } from "../authclient/mod.ts";
import {
  generateSshKeyPair,
  generateTlsKeyPair,
  importSshPrivateKey,
  parseAuthorizedKey,
} from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import { isKind } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { HttpError } from "./http.ts";
import type { WebAuthApi } from "./types.ts";

/** The session cookie's name (`__Host-`: Secure, Path=/, no Domain, so no subdomain sets it). */
export const SESSION_COOKIE = "__Host-session";

/** Options of {@link WebSessions}. */
export interface WebSessionsOptions {
  auth: WebAuthApi;
  clock: Clock;
  logger: Logger;
  /** Certificate lifetime asked of auth (capped by the user's roles), as for tsh. */
  certTtlMs: number;
  /** A session not renewed for this long ends. @default {1800000} (30 min) */
  idleTimeoutMs?: number;
  /** How long a session read from auth is trusted before it is read again. @default {10000} */
  cacheMs?: number;
}

/** A live web session, as handlers see it. */
export interface WebSession {
  readonly record: WebSessionRecord;
  /** The SSH key the session's certificate certifies (imported once). */
  sshKey(): Promise<{ privateKey: CryptoKey; publicKeyBlob: Uint8Array }>;
  /** The SSH certificate blob. */
  readonly sshCertBlob: Uint8Array;
}

/** What a login answers (Teleport's CreateSessionResponse shape). */
export interface WebLoginResponse {
  type: "Bearer";
  token: string;
  /** Seconds until the session ends unless renewed. */
  expires_in: number;
  /** Seconds until the session ends at the latest (its certificates' end). */
  max_expires_in: number;
  user: string;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The value of cookie `name` in a `Cookie` header. */
export function cookieValue(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerOf(header: string | null): string | undefined {
  const m = /^Bearer\s+([^\s]+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

/** `Set-Cookie` for a session id (empty id and `clear`: the cookie is removed). */
export function sessionCookie(id: string, clear = false): string {
  return `${SESSION_COOKIE}=${clear ? "" : id}; Path=/; HttpOnly; Secure; SameSite=Lax` +
    (clear ? "; Max-Age=0" : "");
}

const SESSION_ID = /^[0-9a-f]{64}$/;
const BEARER = /^[0-9a-f]{64}$/;

interface Cached {
  record: WebSessionRecord;
  readAt: number;
  key?: Promise<{ privateKey: CryptoKey; publicKeyBlob: Uint8Array }>;
  blob?: Uint8Array;
}

/** The proxy's web sessions; see the module doc. */
export class WebSessions {
  readonly #o: WebSessionsOptions;
  readonly #idleMs: number;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, Cached>();

  constructor(o: WebSessionsOptions) {
    this.#o = o;
    this.#idleMs = o.idleTimeoutMs ?? 30 * 60_000;
    this.#cacheMs = o.cacheMs ?? 10_000;
  }

  #now(): number {
    return this.#o.clock.now().getTime();
  }

  /** Logs in with password (+ OTP); returns the record and the bearer token. */
  async login(req: {
    user: string;
    password: string;
    otpToken?: string;
    remoteAddr?: string;
  }): Promise<{ record: WebSessionRecord; bearer: string }> {
    const [sshKey, tlsKey] = await Promise.all([
      generateSshKeyPair("ed25519"),
      generateTlsKeyPair(),
    ]);
    const certs = await this.#o.auth.authenticateSshUser({
      user: req.user,
      password: req.password,
      ...(req.otpToken === undefined ? {} : { otp_token: req.otpToken }),
      ssh_public_key: sshKey.authorizedKey,
      tls_public_key: tlsKey.publicKeyPem,
      ttl_ms: this.#o.certTtlMs,
      method: "web",
      ...(req.remoteAddr === undefined ? {} : { remote_addr: req.remoteAddr }),
    });
    if (certs.sshCert === undefined || certs.tlsCert === undefined) {
      throw new Error("auth issued no certificates for the web session");
    }
    const now = this.#now();
    const max = Math.min(Date.parse(certs.expires), now + this.#o.certTtlMs);
    const bearer = randomHex(32);
    const record: WebSessionRecord = {
      id: randomHex(32),
      user: req.user,
      bearer_sha256: sha256Hex(bearer),
      ssh_cert: certs.sshCert.trim(),
      tls_cert: certs.tlsCert,
      key_pem: sshKey.privateKeyPem,
      tls_key_pem: tlsKey.privateKeyPem,
      created: new Date(now).toISOString(),
      expires: new Date(Math.min(now + this.#idleMs, max)).toISOString(),
      max_expires: new Date(max).toISOString(),
    };
    await this.#o.auth.upsertWebSession(record);
    this.#remember(record);
    return { record, bearer };
  }

  /** The login answer for `record`. */
  response(record: WebSessionRecord, bearer: string): WebLoginResponse {
    const now = this.#now();
    return {
      type: "Bearer",
      token: bearer,
      expires_in: Math.max(0, Math.floor((Date.parse(record.expires) - now) / 1000)),
      max_expires_in: Math.max(0, Math.floor((Date.parse(record.max_expires) - now) / 1000)),
      user: record.user,
    };
  }

  #remember(record: WebSessionRecord, previous?: Cached): Cached {
    const entry: Cached = {
      record,
      readAt: this.#now(),
      ...(previous?.key === undefined || previous.record.key_pem !== record.key_pem
        ? {}
        : { key: previous.key }),
    };
    this.#cache.set(record.id, entry);
    // Expired entries go when the cache grows: it holds at most the live sessions.
    if (this.#cache.size > 1024) {
      const now = this.#now();
      for (const [id, c] of this.#cache) {
        if (Date.parse(c.record.expires) <= now) this.#cache.delete(id);
      }
    }
    return entry;
  }

  async #read(id: string): Promise<Cached | undefined> {
    const hit = this.#cache.get(id);
    if (hit !== undefined && this.#now() - hit.readAt < this.#cacheMs) return hit;
    try {
      return this.#remember(await this.#o.auth.getWebSession(id), hit);
    } catch (err) {
      if (isKind(err, "NotFound")) {
        this.#cache.delete(id);
        return undefined;
      }
      throw err;
    }
  }

  /**
   * The session of a request: cookie and bearer token must both be present and belong together;
   * HttpError 401 otherwise. `bearer` undefined: only the cookie is checked (WebSocket upgrades,
   * whose token comes in the first message).
   */
  async authenticate(
    req: Request,
    action: string,
    opts: { bearer?: string | null } = {},
  ): Promise<WebSession> {
    const id = cookieValue(req.headers.get("cookie"), SESSION_COOKIE);
    const bearer = opts.bearer === undefined
      ? bearerOf(req.headers.get("authorization"))
      : opts.bearer ?? undefined;
    const checkBearer = opts.bearer !== null;
    if (id === undefined || !SESSION_ID.test(id)) {
      throw new HttpError(401, `Cannot ${action}: log in first (no web session cookie)`);
    }
    if (checkBearer && (bearer === undefined || !BEARER.test(bearer))) {
      throw new HttpError(
        401,
        `Cannot ${action}: send the session's bearer token in the Authorization header`,
      );
    }
    const entry = await this.#read(id);
    if (entry === undefined || Date.parse(entry.record.expires) <= this.#now()) {
      throw new HttpError(401, `Cannot ${action}: the web session expired; log in again`);
    }
    if (checkBearer && !this.matchesBearer(entry.record, bearer!)) {
      throw new HttpError(401, `Cannot ${action}: the bearer token does not match the session`);
    }
    return this.#session(entry);
  }

  /** True when `bearer` is the token of `record` (constant-time comparison). */
  matchesBearer(record: WebSessionRecord, bearer: string): boolean {
    if (!BEARER.test(bearer)) return false;
    const a = new TextEncoder().encode(sha256Hex(bearer));
    const b = new TextEncoder().encode(record.bearer_sha256);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  #session(entry: Cached): WebSession {
    return {
      record: entry.record,
      get sshCertBlob() {
        entry.blob ??= parseAuthorizedKey(entry.record.ssh_cert).blob;
        return entry.blob;
      },
      sshKey: () => {
        entry.key ??= importSshPrivateKey(entry.record.key_pem);
        return entry.key;
      },
    };
  }

  /** Extends the session by the idle timeout, never past its certificates' end. */
  async renew(session: WebSession): Promise<WebSessionRecord> {
    const r = session.record;
    const expires = Math.min(this.#now() + this.#idleMs, Date.parse(r.max_expires));
    const record = { ...r, expires: new Date(expires).toISOString() };
    await this.#o.auth.upsertWebSession(record);
    this.#remember(record, this.#cache.get(r.id));
    return record;
  }

  /** Ends the session everywhere. */
  async logout(session: WebSession): Promise<void> {
    this.#cache.delete(session.record.id);
    await this.#o.auth.deleteWebSession(session.record.id);
  }
}
