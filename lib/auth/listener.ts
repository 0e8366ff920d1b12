/**
 * The auth API over HTTPS with mutual TLS (node:https, since Deno.listenTls
 * cannot ask for client certificates). A caller is whoever its verified client
 * certificate says: the TLS layer checks the chain against the host and user
 * CAs, then we re-check it against the CA that matches the identity kind, and
 * reject anything that is not X.509 v3 (see the platform notes on v1 certs).
 */
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Buffer } from "node:buffer";
import { parseAuthorizedKey, parseX509Certificate, verifyX509Certificate } from "../ca/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  httpStatusOf,
  kindOf,
  messageOf,
} from "../errors/mod.ts";
import { ClientAddrVerifier, type Identity, identityFromSubject } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import { ConnectionGuard, guardOf, guardServer } from "../net/mod.ts";
import { handleApiRequest } from "./api.ts";
import { readSignedClientAddr } from "./client_addr.ts";
import type { AuthServer } from "./server.ts";

/** PEM text of a DER certificate. */
function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").trimEnd();
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * ALPN ids the listener accepts: `http/1.1`, and `teleport-auth@<hex cluster>.teleport.cluster.local`
 * from clients that reach auth through a proxy's web port (the proxy routes on that id and
 * passes the TLS session through). Offering an ALPN id the server does not list is a fatal
 * handshake error in Deno's node:tls, so the id must be listed here.
 */
export function authListenerAlpn(clusterName: string): string[] {
  const hex = Array.from(
    new TextEncoder().encode(clusterName),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  return ["http/1.1", `teleport-auth@${hex}.teleport.cluster.local`];
}

/** Session recordings move as raw gzip streams, not JSON. */
const RECORDING_PATH = /^\/v1\/recordings\/([^/]+)$/;

/** Largest request body accepted. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Where and how the API listens. */
export interface AuthApiServerOptions {
  server: AuthServer;
  logger: Logger;
  /** Host to bind ("0.0.0.0", "127.0.0.1", "::"). */
  host: string;
  /** Port (0 picks a free one). */
  port: number;
  /** The auth service's own TLS certificate (host CA signed) and key. */
  certPem: string;
  keyPem: string;
  /**
   * Admission control shared with the process's other listeners.
   * @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /**
   * Time from accept until the TLS handshake is done and the first request is in.
   * @default {5000}
   */
  handshakeTimeoutMs?: number;
}

/** A running API listener. */
export interface AuthApiServer extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the HTTPS listener; resolves once it is bound. */
export async function startAuthApiServer(opts: AuthApiServerOptions): Promise<AuthApiServer> {
  const { server, logger } = opts;
  const cas = server.clientCaCertPems();
  const identities = new WeakMap<Socket, Identity | Error>();

  const callerOf = async (sock: TLSSocket): Promise<Identity | undefined> => {
    const cached = identities.get(sock);
    if (cached instanceof Error) return undefined;
    if (cached !== undefined) return cached;
    if (!sock.authorized) return undefined;
    const raw = sock.getPeerCertificate(false)?.raw;
    if (raw === undefined || raw.length === 0) return undefined;
    try {
      const pem = derToPem(raw);
      const cert = parseX509Certificate(pem);
      if (cert.version !== 3) throw new BadParameterError("client certificate is not X.509 v3");
      const id = identityFromSubject(cert.subject);
      await verifyX509Certificate(pem, {
        trustedCaPems: id.kind === "host" ? cas.host : cas.user,
        now: server.clock.now(),
      });
      identities.set(sock, id);
      return id;
    } catch (err) {
      logger.warn("Rejected client certificate from {addr}: {reason}", {
        addr: sock.remoteAddress,
        reason: messageOf(err),
      });
      identities.set(sock, err instanceof Error ? err : new Error(String(err)));
      return undefined;
    }
  };

  /** `PUT` (upload, streamed to disk) and `GET` (download) of one session recording. */
  const onRecording = async (
    req: IncomingMessage,
    res: ServerResponse,
    sid: string,
    send: (status: number, value: unknown) => void,
  ) => {
    const fail = (err: unknown) => {
      const status = httpStatusOf(err);
      if (status === 500) {
        logger.error("Recording {sid} request failed: {error}", { sid, error: err });
      }
      send(status, {
        error: {
          kind: kindOf(err) ?? "Internal",
          message: status === 500 ? "internal error, see the auth server log" : messageOf(err),
        },
      });
    };
    try {
      const caller = await callerOf(req.socket as TLSSocket);
      if (caller === undefined) {
        throw new AccessDeniedError(
          "this API call needs a client certificate signed by the cluster",
        );
      }
      if (req.method === "PUT") {
        await server.authorize(caller, "session", "create");
        const body = ReadableStream.from((async function* () {
          for await (const chunk of req) yield new Uint8Array(chunk as Buffer);
        })());
        send(200, await server.saveRecording(caller, sid, body));
      } else if (req.method === "GET") {
        await server.authorize(caller, "session", "read");
        const stream = await server.openRecording(sid);
        res.writeHead(200, { "content-type": "application/gzip" });
        for await (const chunk of stream) {
          if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
        }
        res.end();
      } else {
        throw new BadParameterError(`method ${req.method} is not allowed on recordings`);
      }
    } catch (err) {
      req.resume(); // discard an unread upload body
      if (res.headersSent) res.destroy();
      else fail(err);
    }
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    guardOf(req.socket)?.established();
    const send = (status: number, value: unknown) => {
      const text = JSON.stringify(value);
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
    };
    try {
      const recording = RECORDING_PATH.exec(new URL(req.url ?? "/", "https://auth").pathname);
      if (recording !== null) {
        await onRecording(req, res, decodeURIComponent(recording[1]!), send);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > MAX_BODY_BYTES) {
          send(413, { error: { kind: "LimitExceeded", message: "request body is too large" } });
          return;
        }
        chunks.push(chunk as Buffer);
      }
      let bodyValue: unknown = undefined;
      if (size > 0) {
        try {
          bodyValue = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          send(400, { error: { kind: "BadParameter", message: "request body is not valid JSON" } });
          return;
        }
      }
      const sock = req.socket as TLSSocket;
      const caller = await callerOf(sock);
      const url = new URL(req.url ?? "/", "https://auth");
      const out = await handleApiRequest(server, {
        method: req.method ?? "GET",
        path: url.pathname,
        query: url.searchParams,
        body: bodyValue,
        ...(caller === undefined ? {} : { caller }),
        ...(clientAddrOf(sock) === undefined ? {} : { remoteAddr: clientAddrOf(sock) }),
      }, logger);
      send(out.status, out.body);
    } catch (err) {
      logger.error("Auth API request failed: {error}", { error: err });
      if (!res.headersSent) send(500, { error: { kind: "Internal", message: "internal error" } });
    }
  };

  const httpsServer = https.createServer({
    cert: opts.certPem,
    key: opts.keyPem,
    ca: [...cas.host, ...cas.user],
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: "TLSv1.2",
    ALPNProtocols: authListenerAlpn(server.clusterName),
  }, (req, res) => void onRequest(req, res));
  httpsServer.headersTimeout = 10_000;
  httpsServer.requestTimeout = 60_000;
  // Before TLS: a proxy's signed PROXY header says who the client is (readSignedClientAddr).
  const clientAddrs = new WeakMap<Socket, string>();
  const clientAddrOf = (tls: TLSSocket): string | undefined => {
    // node:tls keeps the accepted socket as `_parent` of the TLSSocket it wraps it in.
    const raw = (tls as TLSSocket & { _parent?: Socket })._parent;
    return (raw === undefined ? undefined : clientAddrs.get(raw)) ?? tls.remoteAddress;
  };
  const verifier = new ClientAddrVerifier({
    hostCaKeys: () => server.hostCaSshKeys().map((k) => parseAuthorizedKey(k).blob),
    clusterName: server.clusterName,
    clock: server.clock,
  });
  const startTls = httpsServer.listeners("connection");
  httpsServer.removeAllListeners("connection");
  httpsServer.on("connection", (s: Socket) => {
    if (s.destroyed) return; // refused by the guard
    readSignedClientAddr(s, verifier).then(({ socket, addr }) => {
      // Through a proxy, the client's own address is what the per-address caps count.
      if (guardOf(socket)?.rekey(addr) === false) return socket.destroy();
      clientAddrs.set(socket, addr);
      for (const l of startTls) (l as (s: Socket) => void).call(httpsServer, socket);
    }, (err) => {
      logger.warn("Refused auth API connection from {addr}: {reason}", {
        addr: s.remoteAddress,
        reason: messageOf(err),
      });
      s.destroy();
    });
  });
  // Runs before the listeners above: refused connections never reach them.
  const guarded = guardServer(httpsServer, {
    guard: opts.guard ?? new ConnectionGuard({ logger }),
    name: "auth API",
    logger,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
  });
  httpsServer.on("tlsClientError", (err: Error) => {
    logger.debug("TLS handshake with an auth API client failed: {message}", {
      message: err.message,
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpsServer.once("error", reject);
    httpsServer.listen(opts.port, opts.host, () => {
      httpsServer.off("error", reject);
      resolve();
    });
  });
  const addr = httpsServer.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= new Promise<void>((resolve) => {
      httpsServer.close(() => resolve());
      httpsServer.closeAllConnections?.();
      guarded.destroyPending();
    });
    return closed;
  };
  return {
    host: addr.address,
    port: addr.port,
    close,
    [Symbol.asyncDispose]: close,
  };
}
