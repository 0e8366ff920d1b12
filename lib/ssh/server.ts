/**
 * SSH server on npm:ssh2 with OpenSSH certificate authentication (PROTOCOL.certkeys) and a
 * default-deny dispatch of channels and requests (RFC 4254).
 *
 * Connection lifecycle:
 *
 * 1. A socket arrives (own node:net listener or {@link SshServer.handleSocket}); no-delay is
 *    set, writes are coalesced per event-loop turn (coalesce.ts: one SSH packet, one write;
 *    our identification waits for the client's and leaves with our KEXINIT) and the
 *    handshake/auth timer starts.
 * 2. Version exchange (`SSH-2.0-Teleport`) and KEX; the host certificate is offered first,
 *    then the plain host key (adaptations A1/A2 in _ssh2.ts).
 * 3. userauth: only "publickey" with a user certificate (Ed25519, ECDSA, or RSA as
 *    rsa-sha2-256/512-cert-v01; server-sig-algs is advertised, adaptation A10). The
 *    signature-less query is answered for certificate types only; a signed request is verified
 *    over ssh2's signed blob with the certificate's key, then `authenticate` decides. Failures are reported to `onAuthFailure`
 *    and counted; after `maxAuthTries` the connection is closed.
 * 4. Authenticated: `onConnection`, then channels. Every channel type, session request and
 *    global request without a handler is refused. Custom channel types (`handlers.channels`)
 *    and channels and global requests the server sends to the client use adaptation A9.
 */
import type { Duplex } from "node:stream";
import {
  bytesEqual,
  formatOpenSshPrivateKey,
  isSshCertificateType,
  parseSshCertificate,
  parseSshSignature,
  type SshCertificate,
  sshFingerprint,
  verifySshSignature,
} from "../ca/mod.ts";
import { BadParameterError, ConnectionProblemError } from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import { ConnectionGuard, type GuardedListener, guardOf, listenGuarded } from "../net/mod.ts";
import {
  ALGORITHMS,
  certificateKey,
  CHANNEL_OPEN_FAILURE_CODES,
  closeBareSession,
  currentPtyRequest,
  deliverEarlyInput,
  holdEarlyInput,
  installChannelOpenFailures,
  installChannelOpens,
  installCustomChannels,
  installEarlyInput,
  installGlobalReplies,
  installHostCertificateKex,
  installServerSigAlgs,
  parseSsh2PrivateKey,
  releaseBareSession,
  sendDisconnect,
  SERVER_SIG_ALGS,
  type Ssh2AuthContext,
  type Ssh2Channel,
  type Ssh2IncomingClient,
  type Ssh2Key,
  type Ssh2Server,
  Ssh2ServerClass,
  type Ssh2Session,
  withNodeSigner,
  writeSessionStderr,
} from "./_ssh2.ts";
import type {
  ChannelOpenFailureReason,
  ChannelRejection,
  IncomingChannelOpen,
  ServerChannel,
  SshChannel,
  WindowSize,
} from "./channel.ts";
import {
  checkSshName,
  globalRequestOn,
  offerChannelOpen,
  openChannelOn,
  runHandler,
} from "./_custom.ts";
import { parseTerminalModes } from "./terminal_modes.ts";
import { coalesceWrites } from "./coalesce.ts";

/** The identification string's software part: `SSH-2.0-Teleport` (teleport-protocol-notes §7). */
export const SSH_SERVER_IDENT = "Teleport";

/**
 * Public key algorithm names accepted in a certificate login, with the certificate type each
 * names and the signature format that must sign the request (PROTOCOL.certkeys; RFC 8332 §3:
 * an RSA certificate is used as rsa-sha2-256/512-cert-v01). ssh-rsa-cert-v01 (SHA-1) is
 * refused, as by OpenSSH ≥ 8.8. Every format here is in SERVER_SIG_ALGS.
 */
const USERAUTH_CERT_ALGORITHMS: Readonly<
  Record<string, { certType: string; signature: string }>
> = {
  "ssh-ed25519-cert-v01@openssh.com": {
    certType: "ssh-ed25519-cert-v01@openssh.com",
    signature: "ssh-ed25519",
  },
  "ecdsa-sha2-nistp256-cert-v01@openssh.com": {
    certType: "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    signature: "ecdsa-sha2-nistp256",
  },
  "ecdsa-sha2-nistp384-cert-v01@openssh.com": {
    certType: "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    signature: "ecdsa-sha2-nistp384",
  },
  "ecdsa-sha2-nistp521-cert-v01@openssh.com": {
    certType: "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    signature: "ecdsa-sha2-nistp521",
  },
  "rsa-sha2-512-cert-v01@openssh.com": {
    certType: "ssh-rsa-cert-v01@openssh.com",
    signature: "rsa-sha2-512",
  },
  "rsa-sha2-256-cert-v01@openssh.com": {
    certType: "ssh-rsa-cert-v01@openssh.com",
    signature: "rsa-sha2-256",
  },
};

/** What `authenticate` gets for a signed, verified certificate login. */
export interface SshAuthRequest {
  /** The login (SSH user name) requested. */
  username: string;
  /** The parsed certificate; the signature over the session was verified with its key. */
  certificate: SshCertificate;
  /** The certificate blob as sent. */
  keyBlob: Uint8Array;
  remoteAddr: string;
  remotePort: number;
}

/** The decision of `authenticate`. */
export type SshAuthResult<T> =
  | { ok: true; context: T }
  | { ok: false; reason: string };

/** A refused authentication attempt, for audit. Never carries secrets. */
export interface SshAuthFailure {
  username: string;
  /** "publickey", "password", … */
  method: string;
  reason: string;
  remoteAddr: string;
  remotePort: number;
  /** Key or certificate algorithm, when the attempt carried a key. */
  keyAlgorithm?: string;
  /** SHA256 fingerprint of the key or certificate blob, when the attempt carried one. */
  keyFingerprint?: string;
  /** The certificate's key id, when a certificate parsed. */
  certificateKeyId?: string;
}

/** An authenticated connection. */
export interface SshConnection<T> {
  /** Random id for logs. */
  readonly id: string;
  /** What `authenticate` returned. */
  readonly context: T;
  readonly username: string;
  readonly certificate: SshCertificate;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly localAddr: string;
  readonly localPort: number;
  /** The client's identification string, e.g. "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10". */
  readonly clientVersion: string;
  /** Resolves when the connection is gone. */
  readonly closed: Promise<void>;
  /** Sends disconnect and closes the socket. */
  close(): void;
  /** Opens a forwarded-tcpip channel to the client (RFC 4254 §7.2), for remote forwarding. */
  openForwardedTcpip(options: {
    boundAddr: string;
    boundPort: number;
    originAddr: string;
    originPort: number;
  }): Promise<ServerChannel>;
  /**
   * Opens a channel of a custom type to the client (e.g. "teleport-transport"). Rejects with
   * AccessDeniedError when the client refuses it as administratively prohibited, else
   * ConnectionProblemError, both carrying the client's description.
   */
  openChannel(type: string): Promise<SshChannel>;
  /**
   * Sends a global request to the client (RFC 4254 §4). With wantReply (default true) resolves
   * on REQUEST_SUCCESS (`ok` true, the reply data) or REQUEST_FAILURE (`ok` false); without,
   * once queued. Rejects with ConnectionProblemError when the connection closes first. Replies
   * are matched in request order, also alongside the server's keepalive probes.
   */
  globalRequest(
    name: string,
    data?: Uint8Array,
    options?: { wantReply?: boolean },
  ): Promise<{ ok: boolean; data: Uint8Array }>;
}

interface RequestCommon {
  /** Whether the client asked for a reply. */
  readonly wantReply: boolean;
  /** Refuses the request, first writing `stderr` (if given) to the session's stderr. */
  reject(options?: { stderr?: string }): void;
}

/** pty-req (RFC 4254 §6.2). */
export interface PtyRequest extends RequestCommon, Required<WindowSize> {
  readonly type: "pty-req";
  readonly term: string;
  /** Terminal modes by RFC 4254 §8 name. */
  readonly modes: Readonly<Record<string, number>>;
  accept(): void;
}
/** What shell, exec and subsystem requests share: accepting them opens the channel. */
interface ChannelRequestCommon extends RequestCommon {
  accept(): ServerChannel;
  /**
   * Accepts, writes `message` to stderr, sends exit-status `exitCode` (default 1) and closes.
   * Use it to explain a refusal to stock OpenSSH clients, which drop stderr that arrives with
   * a refused request and print only "exec request failed".
   */
  fail(message: string, options?: { exitCode?: number }): void;
}
/** shell (RFC 4254 §6.5). */
export interface ShellRequest extends ChannelRequestCommon {
  readonly type: "shell";
}
/** exec (RFC 4254 §6.5). */
export interface ExecRequest extends ChannelRequestCommon {
  readonly type: "exec";
  readonly command: string;
}
/** subsystem (RFC 4254 §6.5). */
export interface SubsystemRequest extends ChannelRequestCommon {
  readonly type: "subsystem";
  readonly name: string;
}
/** env (RFC 4254 §6.4). */
export interface EnvRequest extends RequestCommon {
  readonly type: "env";
  readonly name: string;
  readonly value: string;
  accept(): void;
}
/** window-change (RFC 4254 §6.7). */
export interface WindowChangeRequest extends RequestCommon, Required<WindowSize> {
  readonly type: "window-change";
  accept(): void;
}
/** signal (RFC 4254 §6.9); `name` without "SIG". */
export interface SignalRequest extends RequestCommon {
  readonly type: "signal";
  readonly name: string;
  accept(): void;
}
/** x11-req (RFC 4254 §6.3.1). */
export interface X11Request extends RequestCommon {
  readonly type: "x11-req";
  readonly singleConnection: boolean;
  readonly authProtocol: string;
  readonly authCookie: Uint8Array;
  readonly screen: number;
  accept(): void;
}
/** auth-agent-req@openssh.com (OpenSSH PROTOCOL §2.1 agent forwarding). */
export interface AgentForwardRequest extends RequestCommon {
  readonly type: "auth-agent-req@openssh.com";
  accept(): void;
}

/** A request on a session channel, tagged by `type`. */
export type SessionRequest =
  | PtyRequest
  | ShellRequest
  | ExecRequest
  | SubsystemRequest
  | EnvRequest
  | WindowChangeRequest
  | SignalRequest
  | X11Request
  | AgentForwardRequest;

/**
 * Handles one session request. It must call `accept()` or `reject()` before it returns (or,
 * when it returns a promise, before that settles); otherwise the request is refused.
 *
 * Requests of one session are handed over one at a time, in arrival order, so replies keep
 * the order RFC 4254 §5.4 requires: the next request is handed over as soon as the current one
 * is answered (or its handler returned). A shell, exec or subsystem handler may therefore keep
 * running (its promise pending) for the whole life of the program it started, while the
 * `window-change` and `signal` requests that arrive meanwhile are served.
 */
export type SessionRequestHandler = (request: SessionRequest) => unknown;

/** An accepted session channel. */
export interface ServerSession {
  readonly conn: SshConnection<unknown>;
  /** The channel once shell, exec or subsystem was accepted. */
  readonly channel: ServerChannel | undefined;
  /** Resolves when the session channel is closed (by either side) or the connection ends. */
  readonly closed: Promise<void>;
  /** Closes the session channel. */
  close(): void;
}

/** A client asks to open a session channel (RFC 4254 §6.1). */
export interface SessionOpen<T> {
  readonly conn: SshConnection<T>;
  /** Opens the channel; `onRequest` receives its requests. */
  accept(onRequest: SessionRequestHandler): ServerSession;
  reject(rejection?: ChannelRejection): void;
}

/** A client asks to open a direct-tcpip channel (RFC 4254 §7.2, local port forwarding). */
export interface DirectTcpipOpen<T> {
  readonly conn: SshConnection<T>;
  readonly destHost: string;
  readonly destPort: number;
  readonly originHost: string;
  readonly originPort: number;
  /** Opens the channel; `exit`/`exitSignal` do nothing on it. */
  accept(): ServerChannel;
  reject(rejection?: ChannelRejection): void;
}

/** A global request ssh2 passes on (RFC 4254 §7.1 and OpenSSH PROTOCOL §2.4). */
export interface GlobalRequest<T> {
  readonly conn: SshConnection<T>;
  readonly name:
    | "tcpip-forward"
    | "cancel-tcpip-forward"
    | "streamlocal-forward@openssh.com"
    | "cancel-streamlocal-forward@openssh.com";
  readonly wantReply: boolean;
  readonly bindAddr?: string;
  readonly bindPort?: number;
  readonly socketPath?: string;
  /** Replies success; `boundPort` answers a tcpip-forward for port 0. */
  accept(boundPort?: number): void;
  reject(): void;
}

/**
 * Channel and request handlers. Each must reply (accept or reject) before it returns or its
 * promise settles, else the open or request is refused. A missing handler refuses everything
 * of its kind.
 */
export interface SshServerHandlers<T> {
  session?(open: SessionOpen<T>): unknown;
  directTcpip?(open: DirectTcpipOpen<T>): unknown;
  globalRequest?(request: GlobalRequest<T>): unknown;
  /**
   * Handlers of client-opened channels of custom types, by type (e.g. "teleport-heartbeat").
   * "session" and "direct-tcpip" have their own handlers and are not allowed here. An open
   * the handler does not answer before it returns (or its promise settles) is refused.
   */
  channels?: Record<
    string,
    (open: IncomingChannelOpen & { readonly conn: SshConnection<T> }) => unknown
  >;
}

/** Parses a host certificate for `hostKeyBlob`; BadParameterError naming `action` otherwise. */
function checkHostCertificate(
  action: string,
  certificate: Uint8Array,
  hostKeyBlob: Uint8Array,
): SshCertificate {
  let cert: SshCertificate;
  try {
    cert = parseSshCertificate(certificate);
  } catch (err) {
    throw new BadParameterError(`Cannot ${action}: host certificate does not parse`, {
      cause: err,
    });
  }
  if (cert.certType !== "host") {
    throw new BadParameterError(
      `Cannot ${action}: certificate ${JSON.stringify(cert.keyId)} is not a host certificate`,
    );
  }
  if (!bytesEqual(cert.publicKeyBlob, hostKeyBlob)) {
    throw new BadParameterError(`Cannot ${action}: host certificate is not for the host key`);
  }
  return cert;
}

/** Options for {@link startSshServer}. */
export interface SshServerOptions<T> {
  /** Host key pair (lib/ca `generateSshKeyPair`, Ed25519 or ECDSA P-256). */
  hostKey: { privateKey: CryptoKey; publicKeyBlob: Uint8Array };
  /** OpenSSH host certificate blob for `hostKey`, presented to clients that accept it. */
  hostCertificate?: Uint8Array;
  /** Decides a verified certificate login (CA, principals, validity, RBAC). */
  authenticate(request: SshAuthRequest): SshAuthResult<T> | Promise<SshAuthResult<T>>;
  /** Told about every refused attempt (also plain keys and other methods), for audit. */
  onAuthFailure?(failure: SshAuthFailure): void;
  /** Called once a connection is authenticated. */
  onConnection?(conn: SshConnection<T>): void;
  /** Channel and request handlers; anything without one is refused. */
  handlers?: SshServerHandlers<T>;
  /**
   * Where to listen (hostname default "127.0.0.1"); without it the server only takes sockets
   * from `handleSocket`.
   */
  listen?: { hostname?: string; port: number };
  /** Failed authentication attempts allowed per connection. @default {6} */
  maxAuthTries?: number;
  /** Time allowed from accept to authenticated, in ms. @default {30000} */
  handshakeTimeoutMs?: number;
  /**
   * Admission control of the listener (shared with the process's other listeners): caps per
   * client IP, the descriptor reserve, and the deadline until authenticated.
   * @default {a guard of its own with default limits}
   */
  guard?: ConnectionGuard;
  /** Names the listener in logs. @default {"SSH"} */
  name?: string;
  /** Interval of keepalive@openssh.com probes to the client, in ms; 0 disables. @default {15000} */
  keepaliveIntervalMs?: number;
  /** Unanswered probes before disconnecting. @default {3} */
  keepaliveCountMax?: number;
  /** @default {getComponentLogger("ssh:server")} */
  logger?: Logger;
  /** Log every SSH message ssh2 handles at debug level (noisy). @default {false} */
  traceProtocol?: boolean;
}

/** Addresses for a socket handed over by a router (e.g. after PROXY protocol). */
export interface SocketAddresses {
  remoteAddr?: string;
  remotePort?: number;
  localAddr?: string;
  localPort?: number;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

/** Starts an SSH server; see {@link SshServer}. */
export function startSshServer<T>(options: SshServerOptions<T>): Promise<SshServer<T>> {
  return SshServer.start(options);
}

type SocketLike = Duplex & {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
  setNoDelay?: (noDelay?: boolean) => unknown;
};

interface ConnState<T> {
  id: string;
  socket: SocketLike;
  remoteAddr: string;
  remotePort: number;
  localAddr: string;
  localPort: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  failures: number;
  client?: Ssh2IncomingClient;
  conn?: ConnectionImpl<T>;
  closed: PromiseWithResolvers<void>;
  /** Set when the socket closed. */
  gone: boolean;
  rejectOpen?: (reject: () => void, code: number, description: string) => void;
}

/**
 * An SSH server. Create with {@link startSshServer}; `close()` (or `await using`) stops the
 * listener and closes every connection.
 */
export class SshServer<T> implements AsyncDisposable {
  #options: SshServerOptions<T>;
  #log: Logger;
  #ssh2: Ssh2Server;
  #certKeys: Map<string, { key: Ssh2Key; baseType: string }>;
  #plainKey: Ssh2Key | undefined;
  #net: GuardedListener | undefined;
  #pending = new Map<unknown, ConnState<T>>();
  #conns = new Set<ConnState<T>>();
  #closing = false;
  #addr: { hostname: string; port: number } | undefined;

  private constructor(
    options: SshServerOptions<T>,
    hostKeys: Ssh2Key[],
    certKeys: Map<string, { key: Ssh2Key; baseType: string }>,
  ) {
    this.#options = options;
    this.#log = options.logger ?? getComponentLogger("ssh:server");
    this.#certKeys = certKeys;
    const keepalive = options.keepaliveIntervalMs ?? 15_000;
    this.#ssh2 = new Ssh2ServerClass({
      hostKeys: hostKeys.map((key) => ({ key })),
      ident: SSH_SERVER_IDENT,
      algorithms: {
        kex: [...ALGORITHMS.kex],
        cipher: [...ALGORITHMS.cipher],
        hmac: [...ALGORITHMS.hmac],
        compress: [...ALGORITHMS.compress],
      },
      // ssh2 treats a non-positive interval as "use the default"; a huge one disables probes.
      keepaliveInterval: keepalive > 0 ? keepalive : 2 ** 31 - 1,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      debug: options.traceProtocol ? (m: string) => this.#log.debug("ssh2: {m}", { m }) : undefined,
    });
    this.#ssh2.on("connection", (client: Ssh2IncomingClient, info: SshHeaderInfo) => {
      this.#onClient(client, info);
    });
    this.#ssh2.on("error", (err: unknown) => {
      this.#log.debug("ssh2 server error: {error}", { error: errText(err) });
    });
  }

  /** Validates options, loads the host key (and certificate) and starts listening if asked. */
  static async start<T>(options: SshServerOptions<T>): Promise<SshServer<T>> {
    if (typeof options.authenticate !== "function") {
      throw new BadParameterError("Cannot start SSH server: authenticate is required");
    }
    const channels = options.handlers?.channels ?? {};
    for (const [type, handler] of Object.entries(channels)) {
      if (type === "session" || type === "direct-tcpip") {
        throw new BadParameterError(
          `Cannot start SSH server: handlers.channels must not name ${JSON.stringify(type)}; ` +
            `use handlers.${type === "session" ? "session" : "directTcpip"}`,
        );
      }
      checkSshName("start SSH server: bad channel type in handlers.channels", type);
      if (typeof handler !== "function") {
        throw new BadParameterError(
          `Cannot start SSH server: the handler of ${JSON.stringify(type)} channels is not a ` +
            "function",
        );
      }
    }
    const maxAuthTries = options.maxAuthTries ?? 6;
    if (!Number.isInteger(maxAuthTries) || maxAuthTries < 1) {
      throw new BadParameterError("Cannot start SSH server: maxAuthTries must be at least 1");
    }
    const parsed = parseSsh2PrivateKey(await formatOpenSshPrivateKey(options.hostKey));
    const pkcs8 = new Uint8Array(
      await crypto.subtle.exportKey("pkcs8", options.hostKey.privateKey),
    );
    const plain = withNodeSigner(parsed, pkcs8Pem(pkcs8));
    const hostKeys: Ssh2Key[] = [];
    const certKeys = new Map<string, { key: Ssh2Key; baseType: string }>();
    if (options.hostCertificate !== undefined) {
      const cert = checkHostCertificate(
        "start SSH server",
        options.hostCertificate,
        options.hostKey.publicKeyBlob,
      );
      const key = certificateKey(plain, cert.type, cert.blob);
      certKeys.set(cert.type, { key, baseType: plain.type });
      hostKeys.push(key);
    }
    hostKeys.push(plain);
    const server = new SshServer(options, hostKeys, certKeys);
    server.#plainKey = plain;
    if (options.listen !== undefined) await server.#listen(options.listen);
    return server;
  }

  /**
   * Presents another certificate of the same host key (a CA rotation re-issued it) to new
   * connections; open connections keep the one they were shown.
   */
  setHostCertificate(certificate: Uint8Array): void {
    const cert = checkHostCertificate(
      "update the host certificate",
      certificate,
      this.#options.hostKey.publicKeyBlob,
    );
    if (this.#plainKey === undefined || !this.#certKeys.has(cert.type)) {
      throw new BadParameterError(
        "Cannot update the host certificate: the server was started without one of this type",
      );
    }
    const key = certificateKey(this.#plainKey, cert.type, cert.blob);
    this.#certKeys.set(cert.type, { key, baseType: this.#plainKey.type });
  }

  /** The bound address when listening. */
  get addr(): { hostname: string; port: number } {
    if (this.#addr === undefined) {
      throw new BadParameterError("Cannot get SSH server address: the server is not listening");
    }
    return this.#addr;
  }

  /** Number of connections (authenticated or not). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  async #listen(listen: { hostname?: string; port: number }): Promise<void> {
    this.#net = await listenGuarded({
      host: listen.hostname ?? "127.0.0.1",
      port: listen.port,
      name: this.#options.name ?? "SSH",
      guard: this.#options.guard ?? new ConnectionGuard({ logger: this.#log }),
      logger: this.#log,
      handshakeTimeoutMs: this.#options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      onConnection: (socket) => this.handleSocket(socket),
    });
    this.#addr = { hostname: this.#net.addr.host, port: this.#net.addr.port };
  }

  /**
   * Serves an already accepted socket (node:net Socket, TLS socket or another Duplex).
   * `addrs` overrides the addresses read from the socket.
   */
  handleSocket(socket: Duplex, addrs: SocketAddresses = {}): void {
    const sock = socket as SocketLike;
    if (this.#closing) {
      sock.destroy();
      return;
    }
    sock.setNoDelay?.(true);
    // The identification leaves with the KEXINIT, once the client's arrived (coalesce.ts).
    coalesceWrites(socket, { holdUntilFirstRead: true });
    const state: ConnState<T> = {
      id: crypto.randomUUID(),
      socket: sock,
      remoteAddr: addrs.remoteAddr ?? sock.remoteAddress ?? "",
      remotePort: addrs.remotePort ?? sock.remotePort ?? 0,
      localAddr: addrs.localAddr ?? sock.localAddress ?? "",
      localPort: addrs.localPort ?? sock.localPort ?? 0,
      timer: undefined,
      failures: 0,
      closed: Promise.withResolvers<void>(),
      gone: false,
    };
    const timeout = this.#options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    // A guarded socket (from our listener or a router) is timed by its guard.
    if (guardOf(sock) === undefined) {
      state.timer = setTimeout(() => {
        state.timer = undefined;
        if (state.conn !== undefined) return;
        this.#log.info("SSH connection from {addr} did not authenticate in {ms} ms", {
          addr: state.remoteAddr,
          ms: timeout,
        });
        sock.destroy();
      }, timeout);
    }
    this.#conns.add(state);
    this.#pending.set(sock, state);
    const done = () => {
      state.gone = true;
      if (state.timer !== undefined) clearTimeout(state.timer);
      state.timer = undefined;
      this.#pending.delete(sock);
      this.#conns.delete(state);
      state.closed.resolve();
    };
    sock.once("close", done);
    sock.on("error", (err: unknown) => {
      this.#log.debug("SSH socket error from {addr}: {error}", {
        addr: state.remoteAddr,
        error: errText(err),
      });
    });
    this.#ssh2.injectSocket(sock);
  }

  /**
   * Stops listening and closes every connection. With `reason`, authenticated clients are told
   * why (SSH_MSG_DISCONNECT with that description, which the stock `ssh` prints).
   */
  async close(reason?: string): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      await this.#net?.close();
    }
    await Promise.all([...this.#conns].map((s) => closeState(s, reason)));
  }

  /**
   * Graceful stop: stops accepting at the listener, and resolves once every connection has
   * ended by itself, or when `deadline` aborts; {@link close} closes whatever is left.
   * Connections accepted already, and sockets still handed over by a router that was accepting
   * them, are served to their end: a client in its handshake when a restart begins (SIGHUP)
   * logs in and works as if nothing happened. Each one is bounded by its login deadline.
   */
  async drain(deadline?: AbortSignal): Promise<void> {
    await this.#net?.stopAccepting();
    while (this.#conns.size > 0 && deadline?.aborted !== true) {
      const oneEnded = Promise.race([...this.#conns].map((s) => s.closed.promise));
      if (deadline === undefined) {
        await oneEnded;
        continue;
      }
      const aborted = Promise.withResolvers<void>();
      const onAbort = () => aborted.resolve();
      deadline.addEventListener("abort", onAbort, { once: true });
      await Promise.race([oneEnded, aborted.promise]);
      deadline.removeEventListener("abort", onAbort);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onClient(client: Ssh2IncomingClient, info: SshHeaderInfo): void {
    // server.js Client keeps the socket it was created for in `_sock` (internal).
    const state = this.#pending.get((client as unknown as { _sock: unknown })._sock);
    if (state === undefined) {
      this.#log.warn("SSH connection without a known socket; closing it");
      client.end();
      return;
    }
    this.#pending.delete(state.socket);
    state.client = client;
    const log = this.#log;
    client.on("error", (err: unknown) => {
      log.debug("SSH connection {id} from {addr}: {error}", {
        id: state.id,
        addr: state.remoteAddr,
        error: errText(err),
      });
    });
    try {
      installHostCertificateKex(client._protocol, this.#certKeys);
      installServerSigAlgs(client._protocol, SERVER_SIG_ALGS);
      installEarlyInput(client);
      state.rejectOpen = installChannelOpenFailures(client._protocol);
      installCustomChannels(client, "server");
      installGlobalReplies(client);
      const channels = this.#options.handlers?.channels ?? {};
      installChannelOpens(client, {
        ready: () => client.authenticated && state.conn !== undefined,
        claims: (type) => Object.hasOwn(channels, type),
        onOpen: (open) =>
          offerChannelOpen(open, channels[open.type]!, { conn: state.conn! }, this.#log),
      });
    } catch (err) {
      log.error("Cannot serve SSH connection: {error}", { error: errText(err) });
      client.end();
      return;
    }
    const clientVersion = info?.header?.identRaw ?? "";
    client.on("authentication", (ctx: Ssh2AuthContext) => {
      this.#authenticate(state, ctx).catch((err) => {
        log.error("SSH authentication of {user} failed unexpectedly: {error}", {
          user: ctx.username,
          error: errText(err),
        });
        try {
          ctx.reject(["publickey"]);
        } catch {
          // the connection is gone
        }
      });
    });
    client.on("ready", () => {
      if (state.timer !== undefined) clearTimeout(state.timer);
      state.timer = undefined;
      guardOf(state.socket)?.established();
      const conn = state.conn;
      if (conn === undefined) {
        client.end(); // cannot happen: ready follows our accept
        return;
      }
      conn.clientVersion = clientVersion;
      log.debug("SSH connection {id}: {user} authenticated from {addr}", {
        id: state.id,
        user: conn.username,
        addr: state.remoteAddr,
      });
      try {
        this.#options.onConnection?.(conn);
      } catch (err) {
        log.error("SSH onConnection failed: {error}", { error: errText(err) });
      }
    });
    client.on(
      "session",
      (accept: () => Ssh2Session, reject: () => void) => this.#onSession(state, accept, reject),
    );
    client.on(
      "tcpip",
      (accept: () => Ssh2Channel, reject: () => void, data: Ssh2TcpipInfo) =>
        this.#onDirectTcpip(state, accept, reject, data),
    );
    client.on(
      "request",
      (
        accept: ((port?: number) => void) | undefined,
        reject: (() => void) | undefined,
        name: GlobalRequest<T>["name"],
        data: Ssh2GlobalRequestInfo | undefined,
      ) => this.#onGlobalRequest(state, accept, reject, name, data),
    );
  }

  async #authenticate(state: ConnState<T>, ctx: Ssh2AuthContext): Promise<void> {
    const maxTries = this.#options.maxAuthTries ?? 6;
    const base = {
      username: ctx.username,
      method: ctx.method,
      remoteAddr: state.remoteAddr,
      remotePort: state.remotePort,
    };
    const refuse = (failure: SshAuthFailure) => {
      state.failures++;
      try {
        this.#options.onAuthFailure?.(failure);
      } catch (err) {
        this.#log.error("SSH onAuthFailure failed: {error}", { error: errText(err) });
      }
      ctx.reject(["publickey"]);
      if (state.failures >= maxTries) {
        this.#log.info("SSH connection from {addr}: too many authentication failures", {
          addr: state.remoteAddr,
        });
        state.client?.end();
      }
    };
    if (ctx.method === "none") {
      // RFC 4252 §5.2: the "none" probe learns the methods; it is not a failed attempt.
      ctx.reject(["publickey"]);
      return;
    }
    if (ctx.method !== "publickey" || ctx.key === undefined) {
      refuse({ ...base, reason: `authentication method ${ctx.method} is not allowed` });
      return;
    }
    const keyInfo = {
      keyAlgorithm: ctx.key.algo,
      keyFingerprint: sshFingerprint(ctx.key.data),
    };
    const algorithm = Object.hasOwn(USERAUTH_CERT_ALGORITHMS, ctx.key.algo)
      ? USERAUTH_CERT_ALGORITHMS[ctx.key.algo]
      : undefined;
    if (algorithm === undefined) {
      const reason = ctx.key.algo === "ssh-rsa-cert-v01@openssh.com"
        ? "RSA signatures with SHA-1 (ssh-rsa-cert-v01@openssh.com) are not accepted; " +
          "use rsa-sha2-512 or rsa-sha2-256 (OpenSSH 7.2 or later does by default)"
        : isSshCertificateType(ctx.key.algo) || ctx.key.algo.includes("-cert-")
        ? `the certificate algorithm ${ctx.key.algo} is not supported`
        : "a certificate is required; plain public keys are not accepted";
      refuse({ ...base, ...keyInfo, reason });
      return;
    }
    let cert: SshCertificate;
    try {
      cert = parseSshCertificate(ctx.key.data);
    } catch {
      refuse({ ...base, ...keyInfo, reason: "the certificate does not parse" });
      return;
    }
    const certInfo = { ...keyInfo, certificateKeyId: cert.keyId };
    if (cert.type !== algorithm.certType) {
      refuse({ ...base, ...certInfo, reason: "the key algorithm does not match the certificate" });
      return;
    }
    if (ctx.signature === undefined || ctx.blob === undefined) {
      // RFC 4252 §7: a query without a signature; answer PK_OK so the client signs.
      ctx.accept();
      return;
    }
    // ssh2 (protocol/handlers.misc.js USERAUTH_REQUEST) leaves the whole signature blob in
    // ctx.signature for certificate algorithms: its header names the signature format, which
    // does not match the certificate algorithm it would strip. ctx.blob is the signed data.
    // The format must be the one the algorithm names (OpenSSH: "signature algorithm does not
    // match"), so an rsa-sha2-512 login cannot be signed with another hash.
    let format = "";
    try {
      format = parseSshSignature(ctx.signature).format;
    } catch {
      // handled below
    }
    let valid = false;
    if (format === algorithm.signature) {
      try {
        valid = await verifySshSignature(cert.publicKeyBlob, ctx.signature, ctx.blob);
      } catch {
        valid = false;
      }
    }
    if (!valid) {
      refuse({
        ...base,
        ...certInfo,
        reason: "the signature does not verify with the certified key",
      });
      return;
    }
    let result: SshAuthResult<T>;
    try {
      result = await this.#options.authenticate({
        username: ctx.username,
        certificate: cert,
        keyBlob: new Uint8Array(ctx.key.data),
        remoteAddr: state.remoteAddr,
        remotePort: state.remotePort,
      });
    } catch (err) {
      this.#log.error("SSH authenticate callback failed: {error}", { error: errText(err) });
      result = { ok: false, reason: "internal error while checking the certificate" };
    }
    if (!result.ok) {
      refuse({ ...base, ...certInfo, reason: result.reason });
      return;
    }
    if (state.client === undefined || this.#closing || state.socket.destroyed) {
      if (!state.socket.destroyed) ctx.reject(["publickey"]);
      return;
    }
    state.conn = new ConnectionImpl(state, result.context, ctx.username, cert, this.#log);
    ctx.accept();
  }

  #rejectOpen(
    state: ConnState<T>,
    reject: () => void,
    rejection: ChannelRejection | undefined,
    fallback: string,
  ): void {
    const reason: ChannelOpenFailureReason = rejection?.reason ?? "administratively-prohibited";
    const code = CHANNEL_OPEN_FAILURE_CODES[reason] ?? 1;
    const text = rejection?.message ?? fallback;
    if (state.rejectOpen !== undefined) state.rejectOpen(reject, code, text);
    else reject();
  }

  /**
   * Offers a channel open to its handler: `claim()` guards the single accept, `reject` answers
   * once with the handler's reason (or `fallback`), and an open left unanswered is refused.
   */
  #offerOpen<O extends { reject(rejection?: ChannelRejection): void }>(
    state: ConnState<T>,
    reject: () => void,
    o: {
      what: string;
      fallback: string;
      handler: (open: O) => unknown;
      make: (claim: () => void) => Omit<O, "reject">;
    },
  ): void {
    let replied = false;
    const claim = () => {
      if (replied) throw new BadParameterError(`Cannot accept ${o.what}: already answered`);
      replied = true;
    };
    const open = {
      ...o.make(claim),
      reject: (rejection?: ChannelRejection) => {
        if (replied) return;
        replied = true;
        this.#rejectOpen(state, reject, rejection, o.fallback);
      },
    } as unknown as O;
    runHandler(
      () => o.handler(open),
      () => {
        if (!replied) open.reject();
      },
      this.#log,
      o.what,
    );
  }

  #onSession(state: ConnState<T>, accept: () => Ssh2Session, reject: () => void): void {
    const conn = state.conn;
    const handler = this.#options.handlers?.session;
    const fallback = "session channels are not permitted";
    if (conn === undefined || handler === undefined) {
      this.#rejectOpen(state, reject, undefined, fallback);
      return;
    }
    this.#offerOpen<SessionOpen<T>>(state, reject, {
      what: "session",
      fallback,
      handler,
      make: (claim) => ({
        conn,
        accept: (onRequest) => {
          claim();
          return new SessionImpl(conn, state.client!, accept(), onRequest, this.#log);
        },
      }),
    });
  }

  #onDirectTcpip(
    state: ConnState<T>,
    accept: () => Ssh2Channel,
    reject: () => void,
    data: Ssh2TcpipInfo,
  ): void {
    const conn = state.conn;
    const handler = this.#options.handlers?.directTcpip;
    const fallback = "port forwarding is not permitted";
    if (conn === undefined || handler === undefined || data === undefined) {
      this.#rejectOpen(state, reject, undefined, fallback);
      return;
    }
    this.#offerOpen<DirectTcpipOpen<T>>(state, reject, {
      what: "direct-tcpip",
      fallback,
      handler,
      make: (claim) => ({
        conn,
        destHost: data.destIP,
        destPort: data.destPort,
        originHost: data.srcIP,
        originPort: data.srcPort,
        accept: () => {
          claim();
          return asServerChannel(accept());
        },
      }),
    });
  }

  #onGlobalRequest(
    state: ConnState<T>,
    accept: ((port?: number) => void) | undefined,
    reject: (() => void) | undefined,
    name: GlobalRequest<T>["name"],
    data: Ssh2GlobalRequestInfo | undefined,
  ): void {
    const conn = state.conn;
    const handler = this.#options.handlers?.globalRequest;
    if (conn === undefined || handler === undefined) {
      reject?.();
      return;
    }
    let replied = false;
    const request: GlobalRequest<T> = {
      conn,
      name,
      wantReply: accept !== undefined,
      ...(data?.bindAddr !== undefined ? { bindAddr: data.bindAddr } : {}),
      ...(data?.bindPort !== undefined ? { bindPort: data.bindPort } : {}),
      ...(data?.socketPath !== undefined ? { socketPath: data.socketPath } : {}),
      accept: (port) => {
        if (replied) return;
        replied = true;
        accept?.(port);
      },
      reject: () => {
        if (replied) return;
        replied = true;
        reject?.();
      },
    };
    runHandler(() => handler(request), () => request.reject(), this.#log, name);
  }
}

/** Adds `exitSignal` to an ssh2 server Channel and types it as ours. */
function asServerChannel(channel: Ssh2Channel): ServerChannel {
  Object.defineProperty(channel, "exitSignal", {
    value: (name: string, options: { coreDumped?: boolean; message?: string } = {}) => {
      channel.exit(name.replace(/^SIG/, ""), options.coreDumped ?? false, options.message ?? "");
    },
  });
  return channel as unknown as ServerChannel;
}

class ConnectionImpl<T> implements SshConnection<T> {
  readonly id: string;
  readonly context: T;
  readonly username: string;
  readonly certificate: SshCertificate;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly localAddr: string;
  readonly localPort: number;
  clientVersion = "";
  readonly closed: Promise<void>;
  #state: ConnState<T>;
  #log: Logger;

  constructor(
    state: ConnState<T>,
    context: T,
    username: string,
    certificate: SshCertificate,
    log: Logger,
  ) {
    this.#state = state;
    this.#log = log;
    this.id = state.id;
    this.context = context;
    this.username = username;
    this.certificate = certificate;
    this.remoteAddr = state.remoteAddr;
    this.remotePort = state.remotePort;
    this.localAddr = state.localAddr;
    this.localPort = state.localPort;
    this.closed = state.closed.promise;
  }

  close(): void {
    void closeState(this.#state);
  }

  openForwardedTcpip(options: {
    boundAddr: string;
    boundPort: number;
    originAddr: string;
    originPort: number;
  }): Promise<ServerChannel> {
    const client = this.#state.client;
    if (client === undefined) {
      return Promise.reject(new ConnectionProblemError("Cannot open channel: not connected"));
    }
    return new Promise((resolve, reject) => {
      client.forwardOut(
        options.boundAddr,
        options.boundPort,
        options.originAddr,
        options.originPort,
        (err, channel) => {
          if (err) {
            reject(
              new ConnectionProblemError(`Cannot open forwarded-tcpip channel: ${err.message}`),
            );
          } else {
            resolve(asServerChannel(channel));
          }
        },
      );
    });
  }

  openChannel(type: string): Promise<SshChannel> {
    return openChannelOn((what) => this.#live(what), type, this.#log);
  }

  globalRequest(
    name: string,
    data?: Uint8Array,
    options: { wantReply?: boolean } = {},
  ): Promise<{ ok: boolean; data: Uint8Array }> {
    return globalRequestOn((what) => this.#live(what), name, data, options);
  }

  /** The ssh2 connection, or a ConnectionProblemError when it is gone. */
  #live(what: string): Ssh2IncomingClient {
    const client = this.#state.client;
    if (client === undefined || this.#state.gone || this.#state.socket.destroyed) {
      throw new ConnectionProblemError(`${what}: the connection is closed`);
    }
    return client;
  }
}

/** Ends a connection: disconnect + end, then destroy if it has not closed within 2 s. */
async function closeState<T>(state: ConnState<T>, reason?: string): Promise<void> {
  try {
    if (state.client !== undefined && reason !== undefined) {
      sendDisconnect(state.client, reason);
      state.socket.end();
    } else if (state.client !== undefined) state.client.end();
    else state.socket.end();
  } catch {
    // already gone
  }
  const timer = setTimeout(() => state.socket.destroy(), 2_000);
  await state.closed.promise;
  clearTimeout(timer);
}

class SessionImpl implements ServerSession {
  readonly conn: SshConnection<unknown>;
  readonly closed: Promise<void>;
  #client: Ssh2IncomingClient;
  #raw: Ssh2Session;
  #onRequest: SessionRequestHandler;
  #log: Logger;
  #queue: Promise<void> = Promise.resolve();
  #channel: ServerChannel | undefined;

  constructor(
    conn: SshConnection<unknown>,
    client: Ssh2IncomingClient,
    raw: Ssh2Session,
    onRequest: SessionRequestHandler,
    log: Logger,
  ) {
    this.conn = conn;
    this.#client = client;
    this.#raw = raw;
    this.#onRequest = onRequest;
    this.#log = log;
    holdEarlyInput(raw);
    const closed = Promise.withResolvers<void>();
    this.closed = closed.promise;
    raw.once("close", () => {
      try {
        releaseBareSession(client, raw);
      } catch (err) {
        log.error("Cannot release SSH session: {error}", { error: errText(err) });
      }
      closed.resolve();
    });
    void conn.closed.then(() => closed.resolve());
    this.#listen();
  }

  get channel(): ServerChannel | undefined {
    return this.#channel;
  }

  close(): void {
    try {
      closeBareSession(this.#client, this.#raw);
    } catch (err) {
      this.#log.error("Cannot close SSH session: {error}", { error: errText(err) });
    }
  }

  #listen(): void {
    const raw = this.#raw;
    type Accept = (() => unknown) | undefined;
    type Reject = (() => void) | undefined;
    const on = (
      event: string,
      build: (info: Record<string, unknown>, accept: Accept) => Partial<SessionRequest>,
    ) => {
      raw.on(event, (accept: Accept, reject: Reject, info: Record<string, unknown> | undefined) => {
        if (event === "pty") info = this.#ptyInfo(info);
        this.#enqueue(event, accept, reject, info, build);
      });
    };
    const size = (i: Record<string, unknown>) => ({
      cols: num(i.cols),
      rows: num(i.rows),
      widthPx: num(i.width),
      heightPx: num(i.height),
    });
    const channel = (accept: Accept) => () => this.#acceptChannel(accept);
    on("pty", (i) => ({
      type: "pty-req",
      term: String(i.term ?? ""),
      ...size(i),
      modes: (i.modes ?? {}) as Record<string, number>,
    }));
    on("window-change", (i) => ({ type: "window-change", ...size(i) }));
    on("env", (i) => ({ type: "env", name: String(i.key ?? ""), value: String(i.val ?? "") }));
    on("signal", (i) => ({ type: "signal", name: String(i.name ?? "") }));
    on("x11", (i) => ({
      type: "x11-req",
      singleConnection: i.single === true,
      authProtocol: String(i.protocol ?? ""),
      authCookie: new Uint8Array((i.cookie as Uint8Array | undefined) ?? []),
      screen: num(i.screen),
    }));
    on("auth-agent", () => ({ type: "auth-agent-req@openssh.com" }));
    on("shell", (_i, accept) => ({ type: "shell", accept: channel(accept) }));
    on("exec", (i, accept) => ({
      type: "exec",
      command: String(i.command ?? ""),
      accept: channel(accept),
    }));
    on("subsystem", (i, accept) => ({
      type: "subsystem",
      name: String(i.name ?? ""),
      accept: channel(accept),
    }));
  }

  /** Replaces ssh2's pty-req data with our own parse (adaptation A8). */
  #ptyInfo(info: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
    const pty = currentPtyRequest(this.#client._protocol);
    if (pty === undefined) {
      this.#log.warn("SSH pty-req was not captured; refusing it (check lib/ssh/_ssh2.ts A8)");
      return undefined;
    }
    let modes: Record<string, number>;
    try {
      modes = parseTerminalModes(pty.modes);
    } catch {
      return info === undefined ? undefined : { ...info, modes: {} };
    }
    return {
      term: pty.term,
      cols: pty.cols,
      rows: pty.rows,
      width: pty.widthPx,
      height: pty.heightPx,
      modes,
    };
  }

  #acceptChannel(accept: (() => unknown) | undefined): ServerChannel {
    const raw = accept?.() as Ssh2Channel | undefined;
    if (raw === undefined) {
      throw new ConnectionProblemError("Cannot accept session request: the session is closing");
    }
    deliverEarlyInput(this.#raw, raw);
    this.#channel = asServerChannel(raw);
    return this.#channel;
  }

  #enqueue(
    event: string,
    accept: (() => unknown) | undefined,
    reject: (() => void) | undefined,
    info: Record<string, unknown> | undefined,
    build: (
      info: Record<string, unknown>,
      accept: (() => unknown) | undefined,
    ) => Partial<SessionRequest>,
  ): void {
    // The queue moves on when the request is answered, not when its handler settles: a
    // shell or exec handler runs as long as its program, and the requests behind it
    // (window-change, signal) must be served meanwhile.
    this.#queue = this.#queue.then(() =>
      new Promise<void>((done) => {
        let replied = false;
        const rejectNow = (options?: { stderr?: string }) => {
          if (replied) return;
          replied = true;
          if (options?.stderr) {
            try {
              writeSessionStderr(this.#client, this.#raw, options.stderr);
            } catch (err) {
              this.#log.error("Cannot write SSH stderr: {error}", { error: errText(err) });
            }
          }
          try {
            reject?.();
          } finally {
            done();
          }
        };
        if (info === undefined && event !== "shell" && event !== "auth-agent") {
          rejectNow(); // ssh2 could not parse the request data
          done();
          return;
        }
        const fields = build(info ?? {}, accept);
        const wrappedAccept = fields.accept ?? (() => {
          (accept as (() => void) | undefined)?.();
        });
        const isChannel = event === "shell" || event === "exec" || event === "subsystem";
        const request = {
          ...fields,
          ...(isChannel
            ? {
              fail: (message: string, options: { exitCode?: number } = {}) => {
                const ch = request.accept() as ServerChannel;
                ch.stderr.write(message);
                ch.exit(options.exitCode ?? 1);
                ch.end();
              },
            }
            : {}),
          // ssh2 passes no accept/reject when the client wants no reply; shell/exec/subsystem
          // always get an accept because it creates the channel.
          wantReply: reject !== undefined,
          accept: () => {
            if (replied) {
              throw new BadParameterError(`Cannot accept ${event} request: already answered`);
            }
            replied = true;
            try {
              return wrappedAccept();
            } finally {
              done();
            }
          },
          reject: rejectNow,
        } as SessionRequest;
        runHandler(
          () => this.#onRequest(request),
          () => {
            rejectNow();
            done();
          },
          this.#log,
          request.type,
        );
      })
    );
  }
}

interface SshHeaderInfo {
  header?: { identRaw?: string };
}

interface Ssh2TcpipInfo {
  destIP: string;
  destPort: number;
  srcIP: string;
  srcPort: number;
}

interface Ssh2GlobalRequestInfo {
  bindAddr?: string;
  bindPort?: number;
  socketPath?: string;
}

function pkcs8Pem(der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der)).replace(/.{64}/g, "$&\n").trimEnd();
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
