/**
 * TLS routing through an L7 load balancer (one that terminates TLS and speaks only HTTP to the
 * proxy): the connection to the web port is upgraded at `GET /webapi/connectionupgrade`
 * (`alpn-ping`) and the TLS connection with the routing ALPN runs inside it (lib/multiplex
 * connection_upgrade.ts).
 *
 * Whether that is needed is found out once per proxy address and process
 * ({@linkcode connectionUpgradeRequired}): a TLS handshake offering only `teleport-proxy-ssh`
 * that fails for want of a common protocol, or in which the server picks no ALPN (or another
 * one), means something other than a Teleport proxy answered TLS. `TELEPORT_TLS_ROUTING_CONN_UPGRADE`
 * (`true`/`false`) overrides the test.
 *
 * Trust: the outer TLS (to the load balancer) follows the web trust rules of web.ts. The inner
 * TLS of `teleport-proxy-ssh` and `teleport-reversetunnel` is not checked against web PKI: the
 * SSH inside authenticates the proxy by its host certificate. The inner TLS of
 * `teleport-auth@…` is the auth client's own, checked against the cluster's host CA.
 */
import type { Duplex } from "node:stream";
import { isIP } from "node:net";
import tls from "node:tls";
import { BadParameterError, ConnectionProblemError, messageOf } from "../errors/mod.ts";
import { ALPN_PROXY_SSH, requestConnectionUpgrade } from "../multiplex/mod.ts";
import { dialTcp, type HttpProxySettings } from "../net/mod.ts";
import { formatHostPort, type HostPort } from "./addr.ts";
import { dialWebTls, type WebTlsConnection, type WebTrust } from "./web.ts";

/** Forces (`true`) or forbids (`false`) the connection upgrade, skipping the test. */
export const CONN_UPGRADE_ENV = "TELEPORT_TLS_ROUTING_CONN_UPGRADE";

/** Options of the functions of this file. */
export interface ConnUpgradeOptions {
  /** The proxy's web address (the load balancer's, when there is one). */
  addr: HostPort;
  /** Trust for the web port's certificate (the load balancer's). */
  trust: WebTrust;
  /** Time allowed for each step, in ms. @default {30000} */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** HTTP CONNECT proxy settings for the TCP dial. @default {from the environment} */
  proxy?: HttpProxySettings;
  /** Reads the environment. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
}

/** Decisions per `host:port`, for the life of the process. */
const decisions = new Map<string, Promise<boolean>>();

/** Forgets the cached decisions (tests). */
export function forgetConnUpgradeDecisions(): void {
  decisions.clear();
}

/** The override from {@link CONN_UPGRADE_ENV}, if set. */
function fromEnv(env: (name: string) => string | undefined): boolean | undefined {
  const raw = env(CONN_UPGRADE_ENV)?.trim().toLowerCase();
  if (raw === undefined || raw === "") return undefined;
  if (["true", "yes", "1", "on"].includes(raw)) return true;
  if (["false", "no", "0", "off"].includes(raw)) return false;
  throw new BadParameterError(
    `Cannot read ${CONN_UPGRADE_ENV}: ${JSON.stringify(raw)} is not true or false; unset it to ` +
      "let tsh find out whether the proxy is behind an HTTP-only load balancer",
  );
}

/**
 * True when TLS routing to `o.addr` must use the connection upgrade; see the module doc. A
 * failed test (the address cannot be reached) throws and is not cached.
 */
export function connectionUpgradeRequired(o: ConnUpgradeOptions): Promise<boolean> {
  let forced: boolean | undefined;
  try {
    forced = fromEnv(o.env ?? ((n) => Deno.env.get(n)));
  } catch (err) {
    return Promise.reject(err);
  }
  if (forced !== undefined) return Promise.resolve(forced);
  const key = formatHostPort(o.addr);
  let decision = decisions.get(key);
  if (decision === undefined) {
    decision = probe(o);
    decisions.set(key, decision);
    decision.catch(() => decisions.delete(key));
  }
  return decision;
}

async function probe(o: ConnUpgradeOptions): Promise<boolean> {
  let conn: WebTlsConnection;
  try {
    conn = await dialWebTls({
      addr: o.addr,
      alpnProtocols: [ALPN_PROXY_SSH],
      trust: o.trust,
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      ...(o.proxy === undefined ? {} : { proxy: o.proxy }),
    });
  } catch (err) {
    if (sharesNoProtocol(err)) return true;
    throw err;
  }
  conn.socket.destroy();
  return conn.alpnProtocol !== ALPN_PROXY_SSH;
}

/** TLS alert 120: the server knows ALPN and shares no protocol with us. */
function sharesNoProtocol(err: unknown): boolean {
  return /no.application.protocol|alert number 120|NO_APPLICATION_PROTOCOL/i.test(messageOf(err));
}

/**
 * A stream to the proxy's web port for a TLS-routing connection: the upgraded connection when
 * {@linkcode connectionUpgradeRequired}, else plain TCP. AuthClient's `dial` fits.
 */
export async function dialTlsRoutingStream(o: ConnUpgradeOptions): Promise<Duplex> {
  if (await connectionUpgradeRequired(o)) return await dialUpgraded(o);
  return await dialTcp(o.addr.host, o.addr.port, {
    timeoutMs: o.timeoutMs ?? 30_000,
    ...(o.signal === undefined ? {} : { signal: o.signal }),
    ...(o.proxy === undefined ? {} : { proxy: o.proxy }),
  });
}

/** TLS to the web port (under `o.trust`), then `/webapi/connectionupgrade` with `alpn-ping`. */
export async function dialUpgraded(o: ConnUpgradeOptions): Promise<Duplex> {
  const outer = await dialWebTls({
    addr: o.addr,
    alpnProtocols: ["http/1.1"],
    trust: o.trust,
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
    ...(o.proxy === undefined ? {} : { proxy: o.proxy }),
  });
  return await requestConnectionUpgrade(outer.socket, {
    host: formatHostPort(o.addr),
    type: "alpn-ping",
    where: formatHostPort(o.addr),
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
  });
}

/**
 * TLS with `alpn` to the web port for an SSH-carrying route (`teleport-proxy-ssh`,
 * `teleport-reversetunnel`): as dialWebTls does it when no upgrade is needed; else inside the
 * upgraded connection, where the SSH layer authenticates the proxy (module doc).
 */
export async function dialSshRoutingTls(
  o: ConnUpgradeOptions & { alpnProtocols: string[] },
): Promise<WebTlsConnection & { upgraded: boolean }> {
  const direct = () =>
    dialWebTls({
      addr: o.addr,
      alpnProtocols: o.alpnProtocols,
      trust: o.trust,
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      ...(o.proxy === undefined ? {} : { proxy: o.proxy }),
    });
  const forced = fromEnv(o.env ?? ((n) => Deno.env.get(n)));
  const key = formatHostPort(o.addr);
  const known = forced === undefined ? decisions.get(key) : Promise.resolve(forced);
  if (known === undefined) {
    // Nothing known yet: the direct attempt is the test, so a proxy that answers TLS itself
    // costs no extra handshake.
    const decided = Promise.withResolvers<boolean>();
    decisions.set(key, decided.promise);
    decided.promise.catch(() => decisions.delete(key));
    let conn: WebTlsConnection;
    try {
      conn = await direct();
    } catch (err) {
      if (!sharesNoProtocol(err)) {
        decided.reject(err);
        throw err;
      }
      decided.resolve(true);
      return await insideUpgrade(o);
    }
    if (conn.alpnProtocol !== false && o.alpnProtocols.includes(conn.alpnProtocol)) {
      decided.resolve(false);
      return { ...conn, upgraded: false };
    }
    conn.socket.destroy();
    decided.resolve(true);
    return await insideUpgrade(o);
  }
  if (!(await known)) return { ...(await direct()), upgraded: false };
  return await insideUpgrade(o);
}

/** TLS with `o.alpnProtocols` inside an upgraded connection, not checked (module doc). */
async function insideUpgrade(
  o: ConnUpgradeOptions & { alpnProtocols: string[] },
): Promise<WebTlsConnection & { upgraded: boolean }> {
  const stream = await dialUpgraded(o);
  const where = formatHostPort(o.addr);
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({
      socket: stream,
      ...(isIP(o.addr.host) === 0 ? { servername: o.addr.host } : {}),
      ALPNProtocols: o.alpnProtocols,
      rejectUnauthorized: false,
    });
    const timeoutMs = o.timeoutMs ?? 30_000;
    const fail = (why: string) => {
      clearTimeout(timer);
      socket.destroy();
      stream.destroy();
      reject(
        new ConnectionProblemError(
          `Cannot connect to proxy ${where} through its connection upgrade: ${why}`,
        ),
      );
    };
    const timer = setTimeout(() => fail(`no TLS handshake in ${timeoutMs} ms`), timeoutMs);
    socket.once("error", (err) => fail(err.message));
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.on("error", () => {}); // later errors surface through the consumer's streams
      const cert = socket.getPeerCertificate(true) as { fingerprint256?: string } | undefined;
      resolve({
        socket,
        certSha256: (cert?.fingerprint256 ?? "").replaceAll(":", "").toLowerCase(),
        alpnProtocol: socket.alpnProtocol ?? false,
        upgraded: true,
      });
    });
  });
}
