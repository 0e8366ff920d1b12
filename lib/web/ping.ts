/**
 * `/webapi/ping` and `/webapi/find` (teleport-protocol-notes §3): the proxy's settings plus what
 * auth's ping says about the cluster. Auth's answer is cached briefly ({@link AuthPingCache}) so
 * a ping storm does not reach auth, and a stale answer is served while auth is unreachable.
 */
import type { Clock } from "../clock/mod.ts";
import { BadParameterError, ConnectionProblemError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type {
  AuthPing,
  AutoUpdateSettings,
  ProxySettings,
  WebFindResponse,
  WebPingResponse,
} from "./types.ts";

/** Oldest client version the proxy serves (`min_client_version`). */
export const MIN_CLIENT_VERSION = "0.1.0";

/** Default certificate lifetime (Teleport's `defaults.CertDuration`, 12 h), in ms. */
export const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;

/** Milliseconds to a Go duration (integer nanoseconds). */
export function msToGoDuration(ms: number): number {
  return Math.round(ms * 1_000_000);
}

const AUTO_UPDATE: AutoUpdateSettings = {
  tools_version: "",
  tools_auto_update: false,
  agent_version: "",
  agent_auto_update: false,
  agent_update_jitter_seconds: 0,
};

/** Second factors under which local users enroll TOTP. */
const OTP_SECOND_FACTORS = new Set(["otp", "on", "optional"]);

/** Facts about the proxy itself that ping and find report. */
export interface ProxyFacts {
  proxySettings: ProxySettings;
  serverVersion: string;
}

/** The body of `GET /webapi/ping`. */
export function buildPingResponse(ping: AuthPing, proxy: ProxyFacts): WebPingResponse {
  const secondFactor = ping.auth_preference.second_factor;
  return {
    auth: {
      type: ping.auth_preference.type || "local",
      second_factor: secondFactor,
      preferred_local_mfa: OTP_SECOND_FACTORS.has(secondFactor) ? "otp" : "",
      allow_passwordless: false,
      allow_headless: false,
      local: { name: "" },
      has_motd: false,
      load_all_cas: false,
      default_session_ttl: msToGoDuration(DEFAULT_SESSION_TTL_MS),
      signature_algorithm_suite: "",
      private_key_policy: "none",
    },
    proxy: proxy.proxySettings,
    server_version: proxy.serverVersion,
    min_client_version: MIN_CLIENT_VERSION,
    cluster_name: ping.cluster_name,
    automatic_upgrades: false,
    edition: "community",
    fips: false,
    auto_update: { ...AUTO_UPDATE },
  };
}

/** The body of `GET /webapi/find`. */
export function buildFindResponse(ping: AuthPing, proxy: ProxyFacts): WebFindResponse {
  return {
    auth: { signature_algorithm_suite: "" },
    proxy: proxy.proxySettings,
    server_version: proxy.serverVersion,
    min_client_version: MIN_CLIENT_VERSION,
    cluster_name: ping.cluster_name,
    edition: "community",
    fips: false,
    auto_update: { ...AUTO_UPDATE },
  };
}

/** The parts of {@link ProxySettings} a caller may give; the rest default to empty/false/0. */
export interface ProxySettingsInput {
  kube?: Partial<ProxySettings["kube"]>;
  ssh?: Partial<ProxySettings["ssh"]>;
  db?: Partial<ProxySettings["db"]>;
  tls_routing_enabled?: boolean;
}

/**
 * Fills in a complete {@link ProxySettings} (empty strings, `false`, a zero dial timeout) and
 * checks its types, so ping never reports a missing field or a string where Go wants a number.
 */
export function makeProxySettings(input: ProxySettingsInput = {}): ProxySettings {
  const s: ProxySettings = {
    kube: { enabled: false, public_addr: "", listen_addr: "", ...input.kube },
    ssh: {
      listen_addr: "",
      tunnel_listen_addr: "",
      web_listen_addr: "",
      public_addr: "",
      ssh_public_addr: "",
      ssh_tunnel_public_addr: "",
      dial_timeout: 0,
      ...input.ssh,
    },
    db: {
      postgres_listen_addr: "",
      postgres_public_addr: "",
      mysql_listen_addr: "",
      mysql_public_addr: "",
      mongo_listen_addr: "",
      mongo_public_addr: "",
      ...input.db,
    },
    tls_routing_enabled: input.tls_routing_enabled ?? false,
  };
  checkProxySettings(s);
  return s;
}

/** Throws BadParameterError when a field of `s` has the wrong type. */
export function checkProxySettings(s: ProxySettings): void {
  const fail = (field: string, want: string) => {
    throw new BadParameterError(`Cannot use proxy settings: ${field} must be ${want}`);
  };
  if (typeof s !== "object" || s === null) fail("the settings", "an object");
  for (const section of ["kube", "ssh", "db"] as const) {
    if (typeof s[section] !== "object" || s[section] === null) fail(section, "an object");
    for (const [key, value] of Object.entries(s[section])) {
      const name = `${section}.${key}`;
      if (name === "kube.enabled") {
        if (typeof value !== "boolean") fail(name, "a boolean");
      } else if (name === "ssh.dial_timeout") {
        if (!Number.isSafeInteger(value) || (value as number) < 0) {
          fail(name, "a non-negative integer (nanoseconds)");
        }
      } else if (typeof value !== "string") {
        fail(name, "a string");
      }
    }
  }
  if (typeof s.tls_routing_enabled !== "boolean") fail("tls_routing_enabled", "a boolean");
}

/** Options of {@link AuthPingCache}. */
export interface AuthPingCacheOptions {
  ping: () => Promise<AuthPing>;
  clock: Clock;
  logger: Logger;
  /** How long an answer is fresh. @default {10000} */
  ttlMs?: number;
}

/**
 * Auth's ping, cached for `ttlMs`. Concurrent callers share one request to auth. When auth
 * fails, the last answer (however old) is returned and auth is asked again only after another
 * `ttlMs`; with no answer yet, ConnectionProblemError.
 */
export class AuthPingCache {
  readonly #opts: AuthPingCacheOptions;
  readonly #ttlMs: number;
  #last: { value: AuthPing; at: number } | undefined;
  #inflight: Promise<AuthPing> | undefined;
  #failing = false;
  /** After a failure, the stale answer is served without asking auth until then. */
  #retryAt = 0;

  constructor(opts: AuthPingCacheOptions) {
    this.#opts = opts;
    this.#ttlMs = opts.ttlMs ?? 10_000;
  }

  /** The last answer, whatever its age, without asking auth. */
  get cached(): AuthPing | undefined {
    return this.#last?.value;
  }

  /** A fresh or cached answer; see the class doc. */
  async get(): Promise<AuthPing> {
    const now = this.#opts.clock.now().getTime();
    if (this.#last !== undefined && (now - this.#last.at < this.#ttlMs || now < this.#retryAt)) {
      return this.#last.value;
    }
    this.#inflight ??= this.#fetch().finally(() => this.#inflight = undefined);
    return await this.#inflight;
  }

  async #fetch(): Promise<AuthPing> {
    try {
      const value = await this.#opts.ping();
      this.#last = { value, at: this.#opts.clock.now().getTime() };
      if (this.#failing) this.#opts.logger.info("The auth service answers ping again");
      this.#failing = false;
      return value;
    } catch (err) {
      if (!this.#failing) {
        this.#opts.logger.warn("Cannot ping the auth service: {message}", {
          message: messageOf(err),
        });
      }
      this.#failing = true;
      if (this.#last !== undefined) {
        this.#retryAt = this.#opts.clock.now().getTime() + this.#ttlMs;
        return this.#last.value;
      }
      throw new ConnectionProblemError(
        "Cannot answer ping: auth unreachable from the proxy; check that the auth service is " +
          "running and reachable",
        { cause: err },
      );
    }
  }
}
