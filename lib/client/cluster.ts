/**
 * The cluster's auth API as tsh reaches it: TLS to the proxy's web port with ALPN
 * `teleport-auth@<hex cluster>.teleport.cluster.local`, which the proxy passes through
 * unterminated to an auth server (teleport-protocol-notes §1). The client presents the user's
 * TLS certificate and verifies the server against the cluster's host CA certificates as
 * `teleport.cluster.local`. The web port is used whether or not `tls_routing_enabled` is set:
 * the proxy routes ALPN on its web port in every listener mode. Behind an HTTP-only load
 * balancer the TLS runs inside `/webapi/connectionupgrade` (conn_upgrade.ts).
 */
import { AuthClient } from "../authclient/mod.ts";
import { AccessDeniedError, messageOf } from "../errors/mod.ts";
import { authAlpn } from "../multiplex/mod.ts";
import type { ProxyResource, ServerResource, SessionTracker } from "../resource/mod.ts";
import type { Profile, ProfileKeys } from "./profile.ts";
import { dialTlsRoutingStream } from "./conn_upgrade.ts";
import type { WebTrust } from "./web.ts";

/** How fresh a list must be. */
export interface ListOptions {
  /**
   * Accept an answer fetched up to this many ms ago (see withListCache); 0 asks the cluster.
   * @default {0}
   */
  maxAgeMs?: number;
}

/** What tsh asks of the cluster. */
export interface ClusterApi {
  /** The nodes the user may see (`spec.host_cert` carries each one's SSH host certificate). */
  listNodes(options?: ListOptions): Promise<ServerResource[]>;
  /** The proxies' presence resources (with `spec.host_cert`). */
  listProxies(options?: ListOptions): Promise<ProxyResource[]>;
  /** The running interactive sessions the user may see (`tsh sessions ls`). */
  listSessionTrackers(): Promise<SessionTracker[]>;
  /** One running session (`tsh join`); NotFoundError when it is not running or hidden. */
  getSessionTracker(sid: string): Promise<SessionTracker>;
  /** A session recording (gzip bytes or stream, see lib/events). */
  downloadRecording(sid: string): Promise<Uint8Array | ReadableStream<Uint8Array>>;
  /** Releases pooled connections. */
  close(): void;
  /** Trusts these host CA certificates (PEM) from the next connection on (a CA rotation). */
  setHostCaCerts?(pems: string[]): void;
}

/**
 * Opens the auth API of the profile's cluster through its proxy (lazily connected). Every list
 * is asked live; see withListCache for cached answers. `trust` (the web port's) is needed only
 * when a load balancer in front calls for a connection upgrade.
 */
export function openClusterApi(
  profile: Profile,
  keys: ProfileKeys,
  trust: WebTrust = {},
): ClusterApi {
  const client = new AuthClient({
    host: profile.webProxyAddr.host,
    port: profile.webProxyAddr.port,
    caCertPems: keys.hostCaTlsCerts,
    identity: { certPem: keys.tlsCertPem, keyPem: keys.tlsKeyPem },
    alpnProtocols: [authAlpn(profile.cluster)],
    via: "proxy",
    dial: () => dialTlsRoutingStream({ addr: profile.webProxyAddr, trust }),
  });
  return {
    listNodes: async () =>
      (await client.listResources("node")).filter((r): r is ServerResource => r.kind === "node"),
    listProxies: async () =>
      (await client.listProxies()).filter((r): r is ProxyResource => r.kind === "proxy"),
    listSessionTrackers: () => client.listSessionTrackers(),
    getSessionTracker: (sid) => client.getSessionTracker(sid),
    downloadRecording: (sid) => client.downloadRecording(sid),
    close: () => client.close(),
    setHostCaCerts: (pems) => client.setCredentials({ caCertPems: pems }),
  };
}

/** TLS verification failures that a CA the client does not know yet explains. */
const UNKNOWN_ISSUER =
  /UnknownIssuer|unknown ca|unable to (?:get (?:local )?issuer|verify the first)|UNABLE_TO_(?:GET_ISSUER|VERIFY_LEAF)|certificate signature failure|CERT_SIGNATURE_FAILURE|BadSignature|self[- ]signed certificate/i;

/** True when `err` (or a cause) says the server's certificate chains to no trusted CA. */
export function isUnknownIssuerError(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (UNKNOWN_ISSUER.test(e.message) || (typeof code === "string" && UNKNOWN_ISSUER.test(code))) {
      return true;
    }
    e = e.cause;
  }
  return false;
}

/**
 * `api` whose calls, when the auth server's certificate is signed by a CA this profile does not
 * know (a host CA rotation reached update_servers), refresh the trusted host CAs once
 * (`refresh` resolves true when they changed and `api` was told) and try again.
 */
export function withHostCaRefresh(api: ClusterApi, refresh: () => Promise<boolean>): ClusterApi {
  const retrying = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      if (!isUnknownIssuerError(err)) throw err;
      let changed: boolean;
      try {
        changed = await refresh();
      } catch (refreshErr) {
        throw new AccessDeniedError(
          `${messageOf(err)}; and the cluster's host CAs cannot be refreshed: ${
            messageOf(refreshErr)
          }`,
          { cause: err },
        );
      }
      if (!changed) throw err;
      return await call();
    }
  };
  return {
    listNodes: (options) => retrying(() => api.listNodes(options)),
    listProxies: (options) => retrying(() => api.listProxies(options)),
    listSessionTrackers: () => retrying(() => api.listSessionTrackers()),
    getSessionTracker: (sid) => retrying(() => api.getSessionTracker(sid)),
    downloadRecording: (sid) => retrying(() => api.downloadRecording(sid)),
    close: () => api.close(),
    ...(api.setHostCaCerts === undefined
      ? {}
      : { setHostCaCerts: (pems: string[]) => api.setHostCaCerts!(pems) }),
  };
}
