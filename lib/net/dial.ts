/**
 * The one outbound TCP dialer: direct, or through an HTTP CONNECT proxy (RFC 9110 §9.3.6) chosen
 * by the proxy settings (see proxy_env.ts).
 *
 * Through a proxy:
 *
 * 1. TCP to the proxy (no-delay); for an `https://` proxy, TLS to the proxy first (SNI = the
 *    proxy's host name, verified against the default roots or `proxyCaCertPems`).
 * 2. `CONNECT host:port HTTP/1.1` with `Host: host:port` (IPv6 as `[::1]:22`) and, when the proxy
 *    URL has userinfo, `Proxy-Authorization: Basic base64(user:password)`.
 * 3. The answer is read up to the end of its headers; only 200 is success. Bytes the proxy sent
 *    after the headers are put back (`unshift`) so the caller reads them first.
 *
 * Every failure names the target and the proxy (without credentials) and says what to check.
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import {
  AccessDeniedError,
  BadParameterError,
  ConnectionProblemError,
  messageOf,
} from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import {
  type HttpProxySettings,
  proxySettingsFromEnv,
  type ProxyUrl,
  resolveRoute,
} from "./proxy_env.ts";

/** Options of {@linkcode dialTcp}. */
export interface DialOptions {
  /** Proxy settings. @default {proxySettingsFromEnv()} read at call time */
  proxy?: HttpProxySettings;
  /** Time allowed for TCP, TLS to an https proxy and CONNECT together, in ms. @default {30000} */
  timeoutMs?: number;
  /** Aborts the dial (the stream is destroyed). */
  signal?: AbortSignal;
  /** CA certificates (PEM) to trust for an `https://` proxy instead of the default roots. */
  proxyCaCertPems?: string[];
  /** @default {getComponentLogger("net:dial")} */
  logger?: Logger;
}

/** Largest CONNECT answer header block accepted. */
const MAX_ANSWER_BYTES = 16 * 1024;

/** `host:port`, IPv6 in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Connects to `host:port` directly or through the HTTP CONNECT proxy the settings choose, and
 * resolves with a connected stream (a no-delay `net.Socket` when direct) to hand to
 * `tls.connect({ socket })`, ssh2 or a pipe. Failures reject with ConnectionProblemError (or
 * AccessDeniedError when the proxy refuses) naming the target and the proxy; bad input with
 * BadParameterError.
 */
export async function dialTcp(
  host: string,
  port: number,
  options: DialOptions = {},
): Promise<Duplex> {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  // deno-lint-ignore no-control-regex
  if (h === "" || /[\s\x00-\x1f\x7f/\\@?#[\]]/.test(h) || (h.includes(":") && isIP(h) !== 6)) {
    throw new BadParameterError(
      `Cannot connect to ${JSON.stringify(host)}: not a host name or IP address`,
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BadParameterError(
      `Cannot connect to ${joinHostPort(h, port)}: the port must be 1-65535`,
    );
  }
  const target = joinHostPort(h, port);
  const logger = options.logger ?? getComponentLogger("net:dial");
  const route = resolveRoute(options.proxy ?? proxySettingsFromEnv(), h, port);
  if (route.proxy === undefined) {
    logger.debug("Dialling {target} directly ({reason})", { target, reason: route.direct });
  } else {
    logger.debug(`Dialling {target} through ${proxyKind(route.proxy)} proxy {proxy}`, {
      target,
      proxy: route.proxy.display,
    });
  }
  return await new Promise<Duplex>((resolve, reject) => {
    new DialAttempt(h, port, target, route.proxy, route.proxy ? route.variable : "", options, {
      resolve,
      reject,
    }).start();
  });
}

function proxyKind(proxy: ProxyUrl): string {
  return proxy.scheme === "https" ? "HTTPS" : "HTTP";
}

type Stage = "tcp" | "tls" | "connect";

/** One dial: owns its sockets, timer and abort listener until it settles. */
class DialAttempt {
  readonly #host: string;
  readonly #port: number;
  readonly #target: string;
  readonly #proxy: ProxyUrl | undefined;
  readonly #variable: string;
  readonly #o: DialOptions;
  readonly #timeoutMs: number;
  readonly #settle: { resolve(s: Duplex): void; reject(e: Error): void };
  #stage: Stage = "tcp";
  #settled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #raw: Socket | undefined;
  #secure: tls.TLSSocket | undefined;
  #cleanups: Array<() => void> = [];

  constructor(
    host: string,
    port: number,
    target: string,
    proxy: ProxyUrl | undefined,
    variable: string,
    o: DialOptions,
    settle: { resolve(s: Duplex): void; reject(e: Error): void },
  ) {
    this.#host = host;
    this.#port = port;
    this.#target = target;
    this.#proxy = proxy;
    this.#variable = variable;
    this.#o = o;
    this.#timeoutMs = o.timeoutMs ?? 30_000;
    this.#settle = settle;
  }

  /** `Cannot connect to T` or `Cannot connect to T through HTTP proxy P`. */
  get #head(): string {
    return this.#proxy === undefined
      ? `Cannot connect to ${this.#target}`
      : `Cannot connect to ${this.#target} through ${
        proxyKind(this.#proxy)
      } proxy ${this.#proxy.display}`;
  }

  start(): void {
    const signal = this.#o.signal;
    if (signal?.aborted) return this.#onAbort();
    const onAbort = () => this.#onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#cleanups.push(() => signal?.removeEventListener("abort", onAbort));
    this.#timer = setTimeout(() => this.#onTimeout(), this.#timeoutMs);
    const proxy = this.#proxy;
    const raw = netConnect({
      host: proxy?.host ?? this.#host,
      port: proxy?.port ?? this.#port,
    });
    this.#raw = raw;
    raw.setNoDelay(true);
    this.#listen(raw, "error", (err: Error) => this.#onSocketError(err));
    this.#listen(raw, "close", () => this.#onClose());
    raw.once("connect", () => {
      if (this.#settled) return;
      if (proxy === undefined) return this.#succeed(raw);
      if (proxy.scheme === "http") return this.#sendConnect(raw);
      this.#stage = "tls";
      const secure = tls.connect({
        socket: raw,
        ...(isIP(proxy.host) === 0 ? { servername: proxy.host } : {}),
        ...(this.#o.proxyCaCertPems === undefined ? {} : { ca: this.#o.proxyCaCertPems }),
        rejectUnauthorized: true,
        ALPNProtocols: ["http/1.1"],
      });
      this.#secure = secure;
      this.#listen(secure, "error", (err: Error) => this.#onSocketError(err));
      this.#listen(secure, "close", () => this.#onClose());
      secure.once("secureConnect", () => {
        if (!this.#settled) this.#sendConnect(secure);
      });
    });
  }

  // deno-lint-ignore no-explicit-any
  #listen(s: Duplex, event: string, fn: (...args: any[]) => void): void {
    s.on(event, fn);
    this.#cleanups.push(() => s.off(event, fn));
  }

  #sendConnect(s: Duplex): void {
    this.#stage = "connect";
    const proxy = this.#proxy!;
    const lines = [`CONNECT ${this.#target} HTTP/1.1`, `Host: ${this.#target}`];
    if (proxy.username !== undefined || proxy.password !== undefined) {
      const credentials = Buffer.from(`${proxy.username ?? ""}:${proxy.password ?? ""}`, "utf8");
      lines.push(`Proxy-Authorization: Basic ${credentials.toString("base64")}`);
    }
    s.write(lines.join("\r\n") + "\r\n\r\n");
    // Paused mode ('readable' + read()): once the listener is gone the stream is neither
    // flowing nor paused, so the caller's 'data' listener or pipe starts it as usual.
    let buffered: Buffer = Buffer.alloc(0);
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!this.#settled && (chunk = s.read() as Buffer | null) !== null) {
        buffered = Buffer.concat([buffered, chunk]);
        if (!"HTTP/".startsWith(buffered.subarray(0, 5).toString("latin1"))) {
          return this.#fail(this.#malformed(buffered));
        }
        const crlf = buffered.indexOf("\r\n\r\n");
        const lf = buffered.indexOf("\n\n");
        const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
        if (end < 0) {
          if (buffered.length > MAX_ANSWER_BYTES) return this.#fail(this.#malformed(buffered));
          continue;
        }
        s.off("readable", onReadable);
        const head = buffered.subarray(0, end).toString("latin1");
        const status = /^HTTP\/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?\r?\n/.exec(head);
        if (status === null) return this.#fail(this.#malformed(buffered));
        const code = Number(status[1]);
        if (code !== 200) return this.#fail(this.#refused(code, printable(status[2] ?? "")));
        const rest = buffered.subarray(end);
        if (rest.length > 0) s.unshift(rest);
        return this.#succeed(s);
      }
    };
    s.on("readable", onReadable);
    this.#cleanups.push(() => s.off("readable", onReadable));
  }

  #succeed(s: Duplex): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cleanup();
    this.#settle.resolve(s);
  }

  #fail(err: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cleanup();
    this.#secure?.destroy();
    this.#raw?.destroy();
    this.#settle.reject(err);
  }

  #cleanup(): void {
    clearTimeout(this.#timer);
    for (const fn of this.#cleanups.splice(0)) fn();
  }

  #onAbort(): void {
    const reason = this.#o.signal?.reason;
    this.#fail(
      reason instanceof Error ? reason : new ConnectionProblemError(`${this.#head}: aborted`),
    );
  }

  #onTimeout(): void {
    const ms = this.#timeoutMs;
    if (this.#proxy === undefined) {
      return this.#fail(new ConnectionProblemError(`${this.#head}: timed out after ${ms} ms`));
    }
    const why = this.#stage === "tcp"
      ? `the proxy is unreachable (timed out after ${ms} ms); check ${this.#variable}`
      : this.#stage === "tls"
      ? `the TLS handshake with the proxy did not finish within ${ms} ms; check ${this.#variable}`
      : `the proxy did not answer CONNECT within ${ms} ms`;
    this.#fail(new ConnectionProblemError(`${this.#head}: ${why}`));
  }

  #onSocketError(err: Error): void {
    const msg = messageOf(err);
    if (this.#proxy === undefined) {
      return this.#fail(new ConnectionProblemError(`${this.#head}: ${msg}`, { cause: err }));
    }
    const why = this.#stage === "tcp"
      ? `the proxy is unreachable (${msg}); check ${this.#variable}`
      : this.#stage === "tls"
      ? `TLS with the proxy failed (${msg}); check that ${this.#variable} names a proxy that ` +
        "speaks TLS (else write http://) and that its certificate is trusted"
      : `the connection to the proxy failed before it answered CONNECT (${msg})`;
    this.#fail(new ConnectionProblemError(`${this.#head}: ${why}`, { cause: err }));
  }

  #onClose(): void {
    if (this.#settled) return;
    const why = this.#proxy === undefined
      ? "the connection closed while connecting"
      : this.#stage === "connect"
      ? `the proxy closed the connection before answering CONNECT; check that ${this.#variable} ` +
        "points at an HTTP proxy"
      : `the proxy closed the connection; check ${this.#variable}`;
    this.#fail(new ConnectionProblemError(`${this.#head}: ${why}`));
  }

  #malformed(answer: Buffer): Error {
    const first = answer.toString("latin1").split(/\r?\n/)[0] ?? "";
    return new ConnectionProblemError(
      `${this.#head}: the proxy sent a malformed answer to CONNECT ` +
        `(${JSON.stringify(printable(first))}); check that ${this.#variable} ` +
        `points at an HTTP proxy` +
        (this.#proxy?.scheme === "http" ? " (write https:// for a proxy that speaks TLS)" : ""),
    );
  }

  #refused(code: number, reason: string): Error {
    const answer = `HTTP ${code}${reason === "" ? "" : ` ${reason}`}`;
    const hasCredentials = this.#proxy?.username !== undefined ||
      this.#proxy?.password !== undefined;
    if (code === 407 || code === 401) {
      return new AccessDeniedError(
        hasCredentials
          ? `${this.#head}: the proxy refused the credentials (${answer}); check the user and ` +
            `password in ${this.#variable}`
          : `${this.#head}: the proxy asks for credentials (${answer}); put them in ` +
            `${this.#variable} as http://user:password@host:port`,
      );
    }
    if (code === 403 || code === 405) {
      return new AccessDeniedError(
        `${this.#head}: the proxy answered ${answer} to CONNECT; check that the proxy allows ` +
          `CONNECT to ${this.#target} (many allow port 443 only: tinyproxy ConnectPort, squid ` +
          "SSL_ports), or add the target to NO_PROXY",
      );
    }
    if (code === 502 || code === 503 || code === 504) {
      return new ConnectionProblemError(
        `${this.#head}: the proxy answered ${answer} to CONNECT: it could not reach ` +
          `${this.#target}; check that the target is up and reachable from the proxy`,
      );
    }
    return new ConnectionProblemError(
      `${this.#head}: the proxy answered ${answer} to CONNECT; only 200 means connected`,
    );
  }
}

/** Printable ASCII only, at most 80 characters (proxy answers go into messages). */
function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?").trim();
  return clean.length > 80 ? `${clean.slice(0, 80)}…` : clean;
}
