/**
 * Auth clients that act as a web session's user (their TLS certificate and key, held by the
 * proxy): the web UI's session list, audit search and recordings then get the user's RBAC from
 * auth itself. One client per live session, the least recently used closed beyond
 * {@link MAX_CLIENTS}.
 */
import type { Addr } from "../config/mod.ts";
import { AuthClient, type WebSessionRecord } from "../authclient/mod.ts";
import type { WebUserApi } from "../web/mod.ts";

/** Clients kept open at most. */
const MAX_CLIENTS = 256;

/** Options of {@link WebUserApis}. */
export interface WebUserApisOptions {
  authAddr: Addr;
  /** The cluster's CA certificates to trust (they change on rotation). */
  caCertPems: () => string[];
}

/** Per-session auth clients; see the module doc. */
export class WebUserApis {
  readonly #o: WebUserApisOptions;
  readonly #clients = new Map<string, { cert: string; client: AuthClient }>();

  constructor(o: WebUserApisOptions) {
    this.#o = o;
  }

  /** The auth API as the session's user. */
  for(session: WebSessionRecord): WebUserApi {
    let entry = this.#clients.get(session.id);
    if (entry !== undefined && entry.cert !== session.tls_cert) {
      entry.client.close();
      entry = undefined;
    }
    if (entry === undefined) {
      entry = {
        cert: session.tls_cert,
        client: new AuthClient({
          host: this.#o.authAddr.host,
          port: this.#o.authAddr.port,
          caCertPems: this.#o.caCertPems(),
          identity: { certPem: session.tls_cert, keyPem: session.tls_key_pem },
        }),
      };
    }
    // Most recently used last.
    this.#clients.delete(session.id);
    this.#clients.set(session.id, entry);
    for (const [id, old] of this.#clients) {
      if (this.#clients.size <= MAX_CLIENTS) break;
      old.client.close();
      this.#clients.delete(id);
    }
    const c = entry.client;
    return {
      listSessionTrackers: () => c.listSessionTrackers(),
      searchEvents: (q) => c.searchEvents(q),
      listRecordings: () => c.listRecordings(),
      downloadRecording: (sid) => c.downloadRecording(sid),
    };
  }

  /** Closes every client. */
  close(): void {
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
