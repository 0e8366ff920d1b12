/**
 * Typed client of the auth API over HTTPS with mutual TLS. The server is
 * verified against the given CA certificates only (never the system roots) and
 * by the fixed name `teleport.cluster.local`, which every auth certificate
 * carries, so the address dialled may be anything (IP, load balancer name).
 */
import https from "node:https";
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import { ConnectionProblemError, errorFromStatus, messageOf } from "../errors/mod.ts";
import type { Resource, ResourceKind } from "../resource/mod.ts";
import type {
  PingResponse,
  RegisterRequest,
  RegisterResponse,
  StatusResponse,
  UserCerts,
  UserCertsRequest,
  UserTokenInfo,
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
}

/** A client of one auth server. */
export class AuthClient {
  readonly #o: AuthClientOptions;
  readonly #agent: https.Agent;

  constructor(o: AuthClientOptions) {
    if (!o.insecureSkipVerify && (o.caCertPems === undefined || o.caCertPems.length === 0)) {
      throw new Error("Cannot create auth client: give the cluster CA certificates to trust");
    }
    this.#o = o;
    this.#agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  }

  /** Address as `host:port`. */
  get address(): string {
    return this.#o.host.includes(":")
      ? `[${this.#o.host}]:${this.#o.port}`
      : `${this.#o.host}:${this.#o.port}`;
  }

  /** Sends one request; kinded errors come back as the same kinds. */
  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const o = this.#o;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = https.request({
        host: o.host,
        port: o.port,
        method,
        path,
        agent: this.#agent,
        servername: AUTH_SERVER_NAME,
        ...(o.insecureSkipVerify
          ? { rejectUnauthorized: false }
          : { ca: o.caCertPems, rejectUnauthorized: true }),
        ...(o.identity ? { cert: o.identity.certPem, key: o.identity.keyPem } : {}),
        headers: {
          accept: "application/json",
          ...(payload
            ? { "content-type": "application/json", "content-length": payload.length }
            : {}),
        },
        timeout: o.timeoutMs ?? 30_000,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(this.#connErr(err)));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
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
      req.on("socket", (s: Socket) => s.setNoDelay(true));
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", (err) => reject(this.#connErr(err)));
      req.end(payload);
    });
  }

  #connErr(err: unknown): Error {
    const msg = messageOf(err);
    let hint = "";
    if (/ECONNREFUSED|refused/i.test(msg)) hint = " (is the auth service running there?)";
    else if (/certificate|verify|UNKNOWN_ISSUER|CERT/i.test(msg)) {
      hint = " (the server's certificate is not signed by the trusted cluster CA)";
    }
    return new ConnectionProblemError(`Cannot reach auth server ${this.address}: ${msg}${hint}`, {
      cause: err,
    });
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
  async changePasswordWithToken(token: string, password: string): Promise<string> {
    return (await this.request<{ user: string }>("PUT", "/v1/users/password/token", {
      token,
      password,
    })).user;
  }
  /** Joins with a token (`POST /v1/register`); the token is the credential. */
  register(req: RegisterRequest): Promise<RegisterResponse> {
    return this.request("POST", "/v1/register", req);
  }
  generateUserCerts(req: UserCertsRequest): Promise<UserCerts> {
    return this.request("POST", "/v1/certs/user", req);
  }
}
