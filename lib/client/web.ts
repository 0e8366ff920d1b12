/**
 * TLS and HTTPS to the proxy's web port with tsh's trust rules (node:tls, because Deno's own
 * TLS cannot skip verification):
 *
 * - By default the proxy's certificate must verify against the default roots (or the
 *   `caCertPems` given instead) and match the host name.
 * - `insecure` skips verification and reports the certificate's SHA-256 so the caller can pin it
 *   (trust on first use); the CLI warns every time.
 * - `pinnedSha256` accepts exactly that certificate, whatever its issuer, and refuses any other
 *   with a clear error: that is how later commands trust a proxy first met with `--insecure`.
 *
 * The same rules cover HTTPS calls and TLS routing (ALPN `teleport-proxy-ssh`). TCP comes from
 * lib/net `dialTcp`, so `HTTPS_PROXY` / `NO_PROXY` from the environment apply (an HTTP CONNECT
 * proxy sees only the TLS bytes); every socket sets no-delay. The web API types (`/webapi/ping`, `/webapi/ssh/certs`) are Teleport's JSON
 * (teleport-protocol-notes §3 and §6).
 */
import { createHash } from "node:crypto";
import https from "node:https";
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import {
  AccessDeniedError,
  ConnectionProblemError,
  errorFromStatus,
  kindOf,
  messageOf,
  newError,
} from "../errors/mod.ts";
import { dialTcp, type HttpProxySettings } from "../net/mod.ts";
import { formatHostPort, type HostPort } from "./addr.ts";

/** How to trust the proxy's web certificate. */
export interface WebTrust {
  /** Skip verification (tsh `--insecure`); the certificate seen is reported for pinning. */
  insecure?: boolean;
  /** Hex SHA-256 of the only certificate to accept (pinned by an earlier `--insecure` login). */
  pinnedSha256?: string;
  /** CA certificates (PEM) to trust instead of the default roots. */
  caCertPems?: string[];
}

/** Options for {@link dialWebTls}. */
export interface DialWebTlsOptions {
  /** The proxy's web address. */
  addr: HostPort;
  /** SNI and the name to verify. @default {addr.host} (no SNI for an IP address) */
  servername?: string;
  /** ALPN protocols to offer, in order of preference. */
  alpnProtocols?: string[];
  trust: WebTrust;
  /** Time allowed for connect and handshake, in ms. @default {30000} */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** HTTP CONNECT proxy settings for the TCP dial. @default {from the environment} */
  proxy?: HttpProxySettings;
}

/** A verified TLS connection to the proxy's web port. */
export interface WebTlsConnection {
  socket: tls.TLSSocket;
  /** Lowercase hex SHA-256 of the DER certificate the proxy presented. */
  certSha256: string;
  /** The protocol the server selected, or false. */
  alpnProtocol: string | false;
}

/** The hint appended when the proxy's certificate does not verify. */
const INSECURE_HINT =
  "if the proxy uses a self-signed certificate and you trust this network, log in with --insecure";

/**
 * Connects with TCP (lib/net `dialTcp`: no-delay, through `HTTPS_PROXY` unless `NO_PROXY` or a
 * loopback target says otherwise) then TLS under `trust`; see the module doc.
 */
export function dialWebTls(o: DialWebTlsOptions): Promise<WebTlsConnection> {
  const where = formatHostPort(o.addr);
  const verify = !(o.trust.insecure === true || o.trust.pinnedSha256 !== undefined);
  const servername = o.servername ?? (isIP(o.addr.host) === 0 ? o.addr.host : undefined);
  return new Promise<WebTlsConnection>((resolve, reject) => {
    let settled = false;
    let socket: tls.TLSSocket | undefined;
    let raw: Duplex | undefined;
    const timeoutMs = o.timeoutMs ?? 30_000;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      socket?.destroy();
      raw?.destroy();
      reject(err);
    };
    const onAbort = () =>
      fail(
        o.signal?.reason instanceof Error
          ? o.signal.reason
          : new ConnectionProblemError(`Cannot connect to proxy ${where}: aborted`),
      );
    const timer = setTimeout(
      () => fail(new ConnectionProblemError(`Cannot connect to proxy ${where}: timed out`)),
      timeoutMs,
    );
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    dialTcp(o.addr.host, o.addr.port, {
      timeoutMs,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      ...(o.proxy === undefined ? {} : { proxy: o.proxy }),
    }).then((stream) => {
      if (settled) return void stream.destroy();
      raw = stream;
      // Stays after success too: later errors surface through the TLS socket's consumers.
      raw.on("error", (err) => fail(connectError(where, err)));
      socket = tls.connect({
        socket: raw,
        // The name (or IP address) the certificate must match; without it node:tls checks
        // "localhost".
        host: o.addr.host,
        ...(servername === undefined ? {} : { servername }),
        ...(o.alpnProtocols === undefined ? {} : { ALPNProtocols: o.alpnProtocols }),
        rejectUnauthorized: verify,
        ...(verify && o.trust.caCertPems !== undefined ? { ca: o.trust.caCertPems } : {}),
      });
      socket.once("error", (err) => fail(connectError(where, err)));
      socket.once("secureConnect", () => {
        if (settled) return;
        const peer = socket!.getPeerCertificate(true) as { raw?: Uint8Array } | undefined;
        if (peer?.raw === undefined || peer.raw.length === 0) {
          return fail(
            new AccessDeniedError(`Cannot trust proxy ${where}: it presented no certificate`),
          );
        }
        const certSha256 = createHash("sha256").update(peer.raw).digest("hex");
        const pinned = o.trust.pinnedSha256;
        if (pinned !== undefined && pinned !== certSha256) {
          return fail(
            new AccessDeniedError(
              `Cannot trust proxy ${where}: its certificate changed since you logged in with ` +
                `--insecure (pinned SHA-256 ${pinned}, now ${certSha256}); if you trust the new ` +
                `certificate, run "tsh logout" and then "tsh login --insecure" again`,
            ),
          );
        }
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener("abort", onAbort);
        socket!.removeAllListeners("error");
        socket!.on("error", () => {}); // later errors surface through the consumer's streams
        resolve({ socket: socket!, certSha256, alpnProtocol: socket!.alpnProtocol ?? false });
      });
    }, (err) => fail(connectError(where, err)));
  });
}

function connectError(where: string, err: unknown): Error {
  const msg = messageOf(err);
  const kind = kindOf(err);
  if (kind !== undefined) {
    // A dial failure (lib/net) names the target, any HTTP proxy and the fix: keep its kind and
    // detail ("Cannot connect to H:P[ through HTTP proxy U]: why").
    const prefix = `Cannot connect to ${where}`;
    const direct = !msg.startsWith(`${prefix} through `);
    const detail = msg.startsWith(prefix) ? msg.slice(prefix.length) : `: ${msg}`;
    const hint = direct && /ECONNREFUSED|refused/i.test(msg)
      ? " (is the proxy running there?)"
      : "";
    return newError(kind, `Cannot connect to proxy ${where}${detail}${hint}`, { cause: err });
  }
  if (/certificate|verify|self.signed|UNKNOWN_ISSUER|CERT_|issuer/i.test(msg)) {
    return new ConnectionProblemError(
      `Cannot connect to proxy ${where}: its certificate is not trusted (${msg}); ${INSECURE_HINT}`,
      { cause: err },
    );
  }
  const hint = /ECONNREFUSED|refused/i.test(msg) ? " (is the proxy running there?)" : "";
  return new ConnectionProblemError(`Cannot connect to proxy ${where}: ${msg}${hint}`, {
    cause: err,
  });
}

/** `GET /webapi/ping` (Teleport's JSON; only the fields tsh reads are typed). */
export interface WebPingResponse {
  auth: { type?: string; second_factor?: string; [field: string]: unknown };
  proxy: {
    ssh?: {
      listen_addr?: string;
      tunnel_listen_addr?: string;
      web_listen_addr?: string;
      public_addr?: string;
      ssh_public_addr?: string;
      ssh_tunnel_public_addr?: string;
      dial_timeout?: number;
    };
    tls_routing_enabled?: boolean;
    [field: string]: unknown;
  };
  cluster_name: string;
  server_version: string;
  min_client_version?: string;
  [field: string]: unknown;
}

/** `POST /webapi/ssh/certs` request (Teleport's CreateSSHCertReq). */
export interface CreateSshCertsRequest {
  user: string;
  password: string;
  otp_token?: string;
  /** base64 of the authorized_keys line of the SSH public key. */
  ssh_pub_key: string;
  /** base64 of the SPKI PEM of the TLS public key. */
  tls_pub_key: string;
  /** Requested validity in integer nanoseconds. */
  ttl: number;
}

/** `POST /webapi/ssh/certs` response (Teleport's SSHLoginResponse). */
export interface SshLoginResponse {
  username: string;
  /** base64 of the SSH certificate's authorized_keys line. */
  cert: string;
  /** base64 of the TLS certificate PEM. */
  tls_cert: string;
  host_signers: Array<{
    domain_name: string;
    /** base64 of authorized_keys lines of host CA keys. */
    checking_keys: string[];
    /** base64 of host CA certificate PEMs. */
    tls_certs: string[];
  }>;
}

/** Options for {@link WebClient}. */
export interface WebClientOptions {
  /** The proxy's web address. */
  addr: HostPort;
  trust: WebTrust;
  /** Per-request time limit in ms. @default {30000} */
  timeoutMs?: number;
}

/** A JSON client of the proxy's web API, one TLS connection per call. */
export class WebClient {
  readonly #o: WebClientOptions;
  #trust: WebTrust;
  #certSha256: string | undefined;

  constructor(o: WebClientOptions) {
    this.#o = o;
    this.#trust = { ...o.trust };
  }

  /** Hex SHA-256 of the certificate the proxy presented, once a call was made. */
  get certSha256(): string | undefined {
    return this.#certSha256;
  }

  /** `GET /webapi/ping`. */
  ping(signal?: AbortSignal): Promise<WebPingResponse> {
    return this.request("GET", "/webapi/ping", undefined, signal);
  }

  /** `POST /webapi/ssh/certs`: the password and OTP code go to the proxy only. */
  createSshCerts(req: CreateSshCertsRequest, signal?: AbortSignal): Promise<SshLoginResponse> {
    return this.request("POST", "/webapi/ssh/certs", req, signal);
  }

  /**
   * Sends one JSON request. Errors come back as their kinds (`{"error":{"message"}}` with the
   * HTTP status). Under `insecure`, the first certificate seen is pinned for the client's
   * later calls, so one login cannot talk to two different servers.
   */
  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const where = formatHostPort(this.#o.addr);
    const conn = await dialWebTls({
      addr: this.#o.addr,
      alpnProtocols: ["http/1.1"],
      trust: this.#trust,
      timeoutMs: this.#o.timeoutMs,
      signal,
    });
    this.#certSha256 = conn.certSha256;
    if (this.#trust.insecure === true && this.#trust.pinnedSha256 === undefined) {
      this.#trust = { ...this.#trust, pinnedSha256: conn.certSha256 };
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return await new Promise<T>((resolve, reject) => {
      const req = https.request({
        host: this.#o.addr.host,
        port: this.#o.addr.port,
        method,
        path,
        createConnection: () => conn.socket,
        headers: {
          accept: "application/json",
          connection: "close",
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": payload.length }),
        },
        timeout: this.#o.timeoutMs ?? 30_000,
      } as https.RequestOptions, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(connectError(where, err)));
        res.on("end", () => {
          conn.socket.destroy();
          const status = res.statusCode ?? 500;
          const text = Buffer.concat(chunks).toString("utf8");
          let value: unknown;
          try {
            value = text === "" ? undefined : JSON.parse(text);
          } catch {
            return reject(
              new ConnectionProblemError(
                `Cannot read the answer of proxy ${where} to ${method} ${path}: HTTP ${status}, ` +
                  "not JSON (is this the proxy's web address?)",
              ),
            );
          }
          if (status >= 200 && status < 300) return resolve(value as T);
          const msg = (value as { error?: { message?: unknown } } | undefined)?.error?.message;
          reject(errorFromStatus(status, typeof msg === "string" ? msg : `HTTP ${status}`));
        });
      });
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", (err) => {
        conn.socket.destroy();
        reject(connectError(where, err));
      });
      req.end(payload);
    });
  }
}
