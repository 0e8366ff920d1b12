/**
 * SSH client on npm:ssh2 that logs in with a private key plus an OpenSSH certificate
 * (PROTOCOL.certkeys), adaptation A5 in _ssh2.ts. Works against stock OpenSSH sshd
 * (TrustedUserCAKeys) and against {@link SshServer}.
 *
 * Host keys: ssh2's client cannot negotiate `*-cert-v01@openssh.com` host key algorithms (its
 * algorithm lists reject them, kex.js insists that the KEX signature type equal the negotiated
 * name and parses K_S as a plain key with a destructured keyParser import), so it offers plain
 * algorithms only and `verifyHostKey` receives the server's plain host key blob. Callers pin
 * that key (e.g. from a host certificate they obtained another way).
 *
 * Custom channel types and global requests in both directions (reverse tunnels) use
 * adaptation A9: `channels`, `refuseChannel` and `onGlobalRequest` are installed before the
 * handshake finishes, so nothing the server sends right after login is missed.
 */
import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import {
  bytesEqual,
  concatBytes,
  formatOpenSshPrivateKey,
  parseSshCertificate,
  signSsh,
  sshBlobType,
  type SshCertificate,
} from "../ca/mod.ts";
import { AccessDeniedError, BadParameterError, ConnectionProblemError } from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import {
  ALGORITHMS,
  certificateKey,
  CLIENT_HOST_KEY_ALGORITHMS,
  installCertificateAuth,
  installChannelOpens,
  installCustomChannels,
  installGlobalRequests,
  openRawSession,
  parseSsh2PrivateKey,
  pingServer,
  sessionRequest,
  type Ssh2Channel,
  type Ssh2Client,
  Ssh2ClientClass,
  type Ssh2Protocol,
} from "./_ssh2.ts";
import type {
  ChannelRejection,
  ClientChannel,
  ExitStatus,
  IncomingChannelOpen,
  IncomingGlobalRequest,
  PtyOptions,
  SshChannel,
  WindowSize,
} from "./channel.ts";
import {
  checkSshName,
  globalRequest,
  globalRequestOn,
  offerChannelOpen,
  openChannelOn,
  openError,
  rejectionCode,
  RequestQueue,
} from "./_custom.ts";
import { encodeTerminalModes } from "./terminal_modes.ts";
import { coalesceWrites } from "./coalesce.ts";
import { Buffer } from "node:buffer";

/** What `verifyHostKey` is shown. */
export interface HostKeyInfo {
  /** The server's plain host key blob (RFC 4253 §6.6). */
  keyBlob: Uint8Array;
  /** Its algorithm, e.g. "ssh-ed25519". */
  algorithm: string;
  /** The host and port dialled ("" and 0 when a socket was given). */
  host: string;
  port: number;
}

/** Options for {@link connectSsh}. */
export interface ConnectSshOptions {
  /** Host to dial. Ignored when `socket` is given. @default {"127.0.0.1"} */
  host?: string;
  /** Port to dial. @default {22} */
  port?: number;
  /** An already connected stream to run SSH over (a proxy or tunnel channel, a TLS socket). */
  socket?: Duplex;
  /** The login. */
  username: string;
  /** The private key the certificate certifies (Ed25519 or ECDSA P-256, lib/ca). */
  key: { privateKey: CryptoKey; publicKeyBlob: Uint8Array };
  /** The OpenSSH user (or host) certificate blob for `key`. */
  certificate: Uint8Array;
  /** Accepts or refuses the server's host key. */
  verifyHostKey(info: HostKeyInfo): boolean | Promise<boolean>;
  /** Time allowed for dial, handshake and login, in ms. @default {30000} */
  timeoutMs?: number;
  /** Interval of keepalive@openssh.com probes, in ms; 0 disables. @default {0} */
  keepaliveIntervalMs?: number;
  /** Unanswered probes before disconnecting. @default {3} */
  keepaliveCountMax?: number;
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
  /**
   * Handlers of server-opened channels of custom types, by type (e.g. "teleport-transport").
   * An open the handler does not answer before it returns (or its promise settles) is refused.
   */
  channels?: Record<string, (open: IncomingChannelOpen) => unknown>;
  /**
   * How to refuse server-opened channel types that have no handler in `channels` and that
   * ssh2 refuses anyway (e.g. "session"): the reason code and description sent in
   * CHANNEL_OPEN_FAILURE. @default {ssh2's refusal: unknown channel type, no description}
   */
  refuseChannel?: (type: string) => ChannelRejection;
  /**
   * Handles the server's global requests other than hostkeys-00@openssh.com (which ssh2
   * answers), one at a time in arrival order; replies leave in request order. A request the
   * handler does not answer before it returns (or its promise settles) is refused, as is every
   * request when there is no handler. At most 64 wait; more are refused.
   */
  onGlobalRequest?: (request: IncomingGlobalRequest) => unknown;
  /** @default {getComponentLogger("ssh:client")} */
  logger?: Logger;
}

/** Output and status of a finished command. */
export interface ExecResult {
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Exit status, or null when the command died of a signal or sent none. */
  exitCode: number | null;
  /** Signal name without "SIG" when the command died of one. */
  exitSignal: string | null;
}

/** Options for commands and shells. */
export interface SessionOptions {
  /** Environment sent as env requests (the server may ignore them). */
  env?: Record<string, string>;
  /** Request a pseudo-terminal first. */
  pty?: PtyOptions;
}

/** A session channel the caller drives request by request (RFC 4254 §6). */
export interface ClientSession {
  readonly channel: ClientChannel;
  /** Each resolves true when the server accepted the request, false when it refused. */
  requestPty(options: PtyOptions): Promise<boolean>;
  setEnv(name: string, value: string): Promise<boolean>;
  shell(): Promise<boolean>;
  exec(command: string): Promise<boolean>;
  subsystem(name: string): Promise<boolean>;
  /** window-change (no reply). */
  windowChange(size: WindowSize): void;
  /** signal, name without "SIG" (no reply). */
  signal(name: string): void;
  /**
   * auth-agent-req@openssh.com (OpenSSH PROTOCOL §2.1): asks the server to forward agent
   * connections of this session as `auth-agent@openssh.com` channels, which the connection's
   * `channels` handler of that type serves. Resolves whether the server agreed.
   */
  requestAgentForwarding(): Promise<boolean>;
  close(): void;
}

/** A connection to a remote forward's port, offered to the caller (RFC 4254 §7.2). */
export interface ForwardedConnection {
  /** Address and port of the peer that connected on the server's side. */
  readonly originAddr: string;
  readonly originPort: number;
  /** Opens the forwarded-tcpip channel. */
  accept(): ClientChannel;
  /** Refuses the channel (connect failed). */
  reject(): void;
}

/** A remote forward the server listens for (see {@link SshClient.forwardIn}). */
export interface RemoteForwardHandle {
  /** The port the server bound (the one asked for, or the one it picked for 0). */
  readonly port: number;
  /** Sends cancel-tcpip-forward; resolves once the server answered. */
  cancel(): Promise<void>;
}

/** Dials (or takes `socket`), verifies the host key and logs in with the certificate. */
export function connectSsh(options: ConnectSshOptions): Promise<SshClient> {
  return SshClient.connect(options);
}

/** A logged-in SSH connection. */
export class SshClient implements AsyncDisposable {
  #client: Ssh2Client;
  #socket: Duplex;
  #hostKey: Uint8Array;
  #closed: Promise<void>;
  #gone = false;
  #log: Logger;
  #forwardListening = false;
  #remoteForwards = new Map<string, (conn: ForwardedConnection) => void>();

  private constructor(
    client: Ssh2Client,
    socket: Duplex,
    hostKey: Uint8Array,
    closed: Promise<void>,
    log: Logger,
  ) {
    this.#client = client;
    this.#socket = socket;
    this.#hostKey = hostKey;
    this.#closed = closed;
    this.#log = log;
    client.on("close", () => this.#gone = true);
  }

  /** See {@link connectSsh}. */
  static async connect(options: ConnectSshOptions): Promise<SshClient> {
    const log = options.logger ?? getComponentLogger("ssh:client");
    // A given stream may close while we prepare the key below; ssh2 attached later would never
    // see it (Deno's node:net reads EOF with no reader), so watch it from the start.
    const given = options.socket;
    let givenClosed = given !== undefined && (given.destroyed || given.readableEnded);
    const onGivenClose = () => givenClosed = true;
    given?.once("close", onGivenClose);
    given?.once("end", onGivenClose);
    let cert: SshCertificate;
    try {
      cert = parseSshCertificate(options.certificate);
    } catch (err) {
      throw new BadParameterError("Cannot connect over SSH: the certificate does not parse", {
        cause: err,
      });
    }
    if (!bytesEqual(cert.publicKeyBlob, options.key.publicKeyBlob)) {
      throw new BadParameterError(
        "Cannot connect over SSH: the certificate is not for the given key",
      );
    }
    for (const [type, handler] of Object.entries(options.channels ?? {})) {
      checkSshName("connect over SSH: bad channel type in channels", type);
      if (typeof handler !== "function") {
        throw new BadParameterError(
          `Cannot connect over SSH: the handler of ${JSON.stringify(type)} channels is not a ` +
            "function",
        );
      }
    }
    const plain = parseSsh2PrivateKey(await formatOpenSshPrivateKey(options.key));
    const certKey = certificateKey(plain, cert.type, cert.blob);
    const host = options.socket === undefined ? options.host ?? "127.0.0.1" : "";
    const port = options.socket === undefined ? options.port ?? 22 : 0;
    const where = options.socket === undefined ? `${host}:${port}` : "the given stream";
    const timeoutMs = options.timeoutMs ?? 30_000;

    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new ConnectionProblemError(`Cannot connect to ${where}: timed out`)),
      timeoutMs,
    );
    const onOuterAbort = () => abort.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onOuterAbort, { once: true });
    let socket: Duplex | undefined;
    try {
      given?.off("close", onGivenClose);
      given?.off("end", onGivenClose);
      if (givenClosed) {
        throw new ConnectionProblemError(`Cannot connect to ${where}: connection closed`);
      }
      socket = options.socket ?? await dial(host, port, abort.signal);
      (socket as Partial<Socket>).setNoDelay?.(true);
      // One write per SSH packet (and per turn), not one per piece ssh2 writes (coalesce.ts).
      coalesceWrites(socket);
      return await SshClient.#handshake(options, socket, certKey, {
        host,
        port,
        where,
        signal: abort.signal,
        log,
      });
    } catch (err) {
      socket?.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onOuterAbort);
    }
  }

  static #handshake(
    options: ConnectSshOptions,
    socket: Duplex,
    certKey: ReturnType<typeof certificateKey>,
    ctx: { host: string; port: number; where: string; signal: AbortSignal; log: Logger },
  ): Promise<SshClient> {
    const { promise, resolve, reject } = Promise.withResolvers<SshClient>();
    const client = new Ssh2ClientClass();
    const closed = Promise.withResolvers<void>();
    let hostKey: Uint8Array | undefined;
    let hostRefused = false;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      client.destroy();
      reject(err);
    };
    const onAbort = () => {
      const reason = ctx.signal.reason;
      fail(
        reason instanceof Error
          ? reason
          : new ConnectionProblemError(`Cannot connect to ${ctx.where}: aborted`),
      );
    };
    if (ctx.signal.aborted) {
      onAbort();
      return promise;
    }
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    client.on("close", () => {
      closed.resolve();
      fail(new ConnectionProblemError(`Cannot connect to ${ctx.where}: connection closed`));
    });
    client.on("error", (err: Error & { level?: string }) => {
      if (settled) {
        ctx.log.debug("SSH connection to {where}: {error}", {
          where: ctx.where,
          error: err.message,
        });
        return;
      }
      if (hostRefused) {
        fail(new AccessDeniedError(`Cannot connect to ${ctx.where}: host key is not trusted`));
      } else if (err.level === "client-authentication") {
        fail(
          new AccessDeniedError(
            `Cannot log in to ${ctx.where} as ${JSON.stringify(options.username)}: ` +
              "the server refused the certificate",
          ),
        );
      } else {
        fail(new ConnectionProblemError(`Cannot connect to ${ctx.where}: ${err.message}`));
      }
    });
    client.on("ready", () => {
      ctx.signal.removeEventListener("abort", onAbort);
      if (settled) return;
      settled = true;
      resolve(new SshClient(client, socket, hostKey!, closed.promise, ctx.log));
    });
    let offered = false;
    let loggedIn = false;
    client.once("ready", () => loggedIn = true);
    const keepalive = options.keepaliveIntervalMs ?? 0;
    client.connect({
      sock: socket,
      username: options.username,
      readyTimeout: 0, // our own timer covers dial, handshake and login
      keepaliveInterval: keepalive,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      algorithms: {
        kex: [...ALGORITHMS.kex],
        serverHostKey: [...CLIENT_HOST_KEY_ALGORITHMS],
        cipher: [...ALGORITHMS.cipher],
        hmac: [...ALGORITHMS.hmac],
        compress: [...ALGORITHMS.compress],
      },
      hostVerifier: (key: Uint8Array, verify: (ok: boolean) => void) => {
        const blob = new Uint8Array(key);
        let algorithm = "";
        try {
          algorithm = sshBlobType(blob);
        } catch {
          // refused below
        }
        // ssh2's kex.js finish() is not re-entrant, and Deno may run pending microtasks inside
        // the first createHash() of a process (which finish() calls): a verdict delivered from
        // a microtask can land in the middle of it and the client never sends NEWKEYS. So a
        // plain verdict is returned synchronously, and an asynchronous one from a macrotask.
        const settle = (ok: boolean) => {
          if (ok) hostKey = blob;
          else hostRefused = true;
          return ok;
        };
        const fail = (err: unknown) => {
          ctx.log.error("verifyHostKey failed: {error}", { error: String(err) });
          return settle(false);
        };
        let verdict: boolean | Promise<boolean>;
        try {
          verdict = algorithm === ""
            ? false
            : options.verifyHostKey({ keyBlob: blob, algorithm, host: ctx.host, port: ctx.port });
        } catch (err) {
          return fail(err);
        }
        if (!(verdict instanceof Promise)) return settle(verdict === true);
        verdict.then((ok) => settle(ok === true), fail).then((ok) =>
          setTimeout(() => verify(ok), 0)
        );
        return undefined;
      },
      authHandler: () => {
        if (offered) return false;
        offered = true;
        return { type: "publickey", username: options.username, key: certKey };
      },
    });
    try {
      installCertificateAuth(
        client._protocol,
        certKey,
        (data) => signSsh(options.key.privateKey, data),
        (err) => fail(new ConnectionProblemError(`Cannot sign the login: ${String(err)}`)),
      );
      SshClient.#installCustom(client, options, () => loggedIn, ctx.log);
    } catch (err) {
      fail(err instanceof Error ? err : new Error(String(err)));
    }
    return promise;
  }

  /** A9: custom channels, refusals and global requests, installed before login. */
  static #installCustom(
    client: Ssh2Client,
    options: ConnectSshOptions,
    loggedIn: () => boolean,
    log: Logger,
  ): void {
    const channels = options.channels ?? {};
    const refuseChannel = options.refuseChannel;
    installCustomChannels(client, "client");
    installChannelOpens(client, {
      ready: loggedIn,
      claims: (type) => Object.hasOwn(channels, type),
      onOpen: (open) => offerChannelOpen(open, channels[open.type]!, {}, log),
      ...(refuseChannel === undefined ? {} : {
        refuse: (type: string) => {
          try {
            return rejectionCode(refuseChannel(type), "");
          } catch (err) {
            log.error("SSH refuseChannel failed: {error}", { error: String(err) });
            return undefined;
          }
        },
      }),
    });
    const queue = new RequestQueue<IncomingGlobalRequest>(
      log,
      "global request",
      options.onGlobalRequest ?? ((request) => request.reject()),
    );
    installGlobalRequests(client, {
      ready: loggedIn,
      onRequest: (raw) => queue.push((answered) => globalRequest(raw, answered)),
    });
  }

  /** The server's host key blob, as verified. */
  get hostKey(): Uint8Array {
    return this.#hostKey;
  }

  /** Resolves when the connection is gone. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** Runs `command` and collects its output; `stdin` is sent then closed (EOF). */
  async exec(
    command: string,
    options: SessionOptions & { stdin?: Uint8Array | string } = {},
  ): Promise<ExecResult> {
    const channel = await this.execStream(command, options);
    const stdout: Uint8Array[] = [];
    const stderr: Uint8Array[] = [];
    channel.on("data", (d: Uint8Array) => stdout.push(d));
    channel.stderr.on("data", (d: Uint8Array) => stderr.push(d));
    channel.end(options.stdin);
    const status = await channel.exitStatus;
    return {
      stdout: concatBytes(...stdout),
      stderr: concatBytes(...stderr),
      exitCode: status.kind === "code" ? status.code : null,
      exitSignal: status.kind === "signal" ? status.signal : null,
    };
  }

  /** Starts `command` and returns its channel (stdin/stdout, `stderr`, `exitStatus`). */
  execStream(command: string, options: SessionOptions = {}): Promise<ClientChannel> {
    return this.#open(`Cannot run command`, (cb) =>
      this.#client.exec(command, {
        ...(options.env ? { env: options.env } : {}),
        ...(options.pty ? { pty: ssh2Pty(options.pty) } : {}),
      }, cb));
  }

  /** Starts a login shell; a pty is requested unless `pty` is false. */
  shell(options: { env?: Record<string, string>; pty?: PtyOptions | false } = {}): Promise<
    ClientChannel
  > {
    const pty = options.pty === false ? false : ssh2Pty(options.pty ?? { cols: 80, rows: 24 });
    return this.#open(
      "Cannot start shell",
      (cb) => this.#client.shell(pty, options.env ? { env: options.env } : {}, cb),
    );
  }

  /** Opens a direct-tcpip channel (RFC 4254 §7.2) to `destHost:destPort` from the server. */
  forwardOut(options: {
    destHost: string;
    destPort: number;
    originHost?: string;
    originPort?: number;
  }): Promise<ClientChannel> {
    return this.#open(
      `Cannot open a channel to ${options.destHost}:${options.destPort}`,
      (cb) =>
        this.#client.forwardOut(
          options.originHost ?? "127.0.0.1",
          options.originPort ?? 0,
          options.destHost,
          options.destPort,
          cb,
        ),
    );
  }

  /**
   * Asks the server to listen on `bindAddr:bindPort` (0: a port of its choice) with a
   * tcpip-forward global request (RFC 4254 §7.1), and hands each connection it forwards
   * (forwarded-tcpip channel) to `onConnection`. Rejects with AccessDeniedError when the server
   * refuses (the reply carries no reason).
   */
  forwardIn(
    options: { bindAddr: string; bindPort: number },
    onConnection: (conn: ForwardedConnection) => void,
  ): Promise<RemoteForwardHandle> {
    const { bindAddr, bindPort } = options;
    const where = `${bindAddr}:${bindPort}`;
    if (!(Number.isInteger(bindPort) && bindPort >= 0 && bindPort <= 65535)) {
      return Promise.reject(
        new BadParameterError(`Cannot forward remote port ${where}: bad port number`),
      );
    }
    let client: Ssh2Client;
    try {
      client = this.#live(`Cannot forward remote port ${where}`);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.#forwardListening) {
      this.#forwardListening = true;
      // client.js emits 'tcp connection' only for forwards made with forwardIn, keyed as here.
      client.on(
        "tcp connection",
        (
          info: { destIP: string; destPort: number; srcIP: string; srcPort: number },
          accept: () => Ssh2Channel,
          reject: () => void,
        ) => {
          const handler = this.#remoteForwards.get(`${info.destIP}:${info.destPort}`);
          if (handler === undefined) return reject();
          handler({
            originAddr: info.srcIP,
            originPort: info.srcPort,
            accept: () => asClientChannel(accept()),
            reject,
          });
        },
      );
    }
    return new Promise((resolve, reject) => {
      client.forwardIn(bindAddr, bindPort, (err, port) => {
        if (err !== undefined) {
          reject(
            new AccessDeniedError(`Cannot forward remote port ${where}: the server refused`),
          );
          return;
        }
        const bound = port ?? bindPort;
        const key = `${bindAddr}:${bound}`;
        this.#remoteForwards.set(key, onConnection);
        resolve({
          port: bound,
          cancel: () =>
            new Promise<void>((done) => {
              this.#remoteForwards.delete(key);
              if (this.#gone) return done();
              try {
                client.unforwardIn(bindAddr, bound, () => done());
              } catch {
                done(); // the connection is gone
              }
            }),
        });
      });
    });
  }

  /** Opens a session channel without requests (adaptation A6). */
  async openSession(): Promise<ClientSession> {
    let raw: Ssh2Channel;
    try {
      raw = await openRawSession(this.#client);
    } catch (err) {
      throw openError("Cannot open session", err);
    }
    return new ClientSessionImpl(asClientChannel(raw), raw, this.#client._protocol);
  }

  /**
   * Opens a channel of a custom type (e.g. "teleport-heartbeat"). Rejects with
   * AccessDeniedError when the server refuses it as administratively prohibited, else
   * ConnectionProblemError, both carrying the server's description.
   */
  openChannel(type: string): Promise<SshChannel> {
    return openChannelOn((what) => this.#live(what), type, this.#log);
  }

  /**
   * Sends a global request to the server (RFC 4254 §4). With wantReply (default true)
   * resolves on REQUEST_SUCCESS (`ok` true, the reply data) or REQUEST_FAILURE (`ok` false);
   * without, once queued. Rejects with ConnectionProblemError when the connection closes
   * first. Replies are matched in request order, also alongside keepalive probes.
   */
  globalRequest(
    name: string,
    data?: Uint8Array,
    options: { wantReply?: boolean } = {},
  ): Promise<{ ok: boolean; data: Uint8Array }> {
    return globalRequestOn((what) => this.#live(what), name, data, options);
  }

  /** The ssh2 connection, or a ConnectionProblemError when it is gone. */
  #live(what: string): Ssh2Client {
    if (this.#gone) throw new ConnectionProblemError(`${what}: the connection is closed`);
    return this.#client;
  }

  /**
   * Sends keepalive@openssh.com and resolves when the server answers (success or failure),
   * or rejects after `timeoutMs`.
   */
  async ping(timeoutMs = 10_000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        pingServer(this.#client),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new ConnectionProblemError("Cannot ping SSH server: no reply")),
            timeoutMs,
          );
        }),
        this.#closed.then(() => {
          throw new ConnectionProblemError("Cannot ping SSH server: connection closed");
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends disconnect and waits for the connection to close. */
  async close(): Promise<void> {
    try {
      this.#client.end();
    } catch (err) {
      this.#log.debug("SSH close: {error}", { error: String(err) });
    }
    const timer = setTimeout(() => this.#socket.destroy(), 2_000);
    await this.#closed;
    clearTimeout(timer);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(
    what: string,
    start: (cb: (err: Error | undefined, channel: Ssh2Channel) => void) => void,
  ): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      try {
        start((err, channel) => {
          if (err) reject(openError(what, err));
          else resolve(asClientChannel(channel));
        });
      } catch (err) {
        reject(openError(what, err));
      }
    });
  }
}

class ClientSessionImpl implements ClientSession {
  readonly channel: ClientChannel;
  #raw: Ssh2Channel;
  #proto: Ssh2Protocol;

  constructor(channel: ClientChannel, raw: Ssh2Channel, proto: Ssh2Protocol) {
    this.channel = channel;
    this.#raw = raw;
    this.#proto = proto;
  }

  requestPty(o: PtyOptions): Promise<boolean> {
    return sessionRequest(
      this.#raw,
      (p, id) =>
        p.pty(
          id,
          o.rows,
          o.cols,
          o.heightPx ?? 0,
          o.widthPx ?? 0,
          o.term ?? "xterm",
          Buffer.from(encodeTerminalModes(o.modes ?? {})),
          true,
        ),
      this.#proto,
    );
  }
  setEnv(name: string, value: string): Promise<boolean> {
    return sessionRequest(this.#raw, (p, id) => p.env(id, name, value, true), this.#proto);
  }
  shell(): Promise<boolean> {
    return sessionRequest(this.#raw, (p, id) => p.shell(id, true), this.#proto);
  }
  exec(command: string): Promise<boolean> {
    return sessionRequest(this.#raw, (p, id) => p.exec(id, command, true), this.#proto);
  }
  subsystem(name: string): Promise<boolean> {
    return sessionRequest(this.#raw, (p, id) => p.subsystem(id, name, true), this.#proto);
  }
  windowChange(s: WindowSize): void {
    if (!requestable(this.#raw)) return;
    this.#proto.windowChange(
      this.#raw.outgoing.id,
      s.rows,
      s.cols,
      s.heightPx ?? 0,
      s.widthPx ?? 0,
    );
  }
  signal(name: string): void {
    if (!requestable(this.#raw)) return;
    this.#proto.signal(this.#raw.outgoing.id, name);
  }
  requestAgentForwarding(): Promise<boolean> {
    return sessionRequest(
      this.#raw,
      (p, id) => p.openssh_agentForward(id, true),
      this.#proto,
    );
  }
  close(): void {
    this.#raw.close();
  }
}

/** Adds `exitStatus` to an ssh2 client Channel and types it as ours. */
function asClientChannel(channel: Ssh2Channel): ClientChannel {
  let status: ExitStatus = { kind: "unknown" };
  channel.on(
    "exit",
    (code: number | null, signal?: string, coreDumped?: boolean, message?: string) => {
      status = typeof code === "number" ? { kind: "code", code } : {
        kind: "signal",
        signal: String(signal ?? "").replace(/^SIG/, ""),
        coreDumped: coreDumped === true,
        message: message ?? "",
      };
    },
  );
  const exitStatus = new Promise<ExitStatus>((resolve) => {
    channel.once("close", () => resolve(status));
  });
  Object.defineProperty(channel, "exitStatus", { value: exitStatus });
  return channel as unknown as ClientChannel;
}

/** RFC 4254 §5.3: requests may follow our EOF until the channel closes. */
function requestable(channel: Ssh2Channel): boolean {
  return channel.outgoing.state === "open" || channel.outgoing.state === "eof";
}

function ssh2Pty(o: PtyOptions): Record<string, unknown> {
  return {
    term: o.term ?? "xterm",
    cols: o.cols,
    rows: o.rows,
    width: o.widthPx ?? 0,
    height: o.heightPx ?? 0,
    // ssh2 sends a Buffer as is (Protocol.js pty); its own name table lacks IUTF8.
    modes: Buffer.from(encodeTerminalModes(o.modes ?? {})),
  };
}

function dial(host: string, port: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason);
    };
    const onError = (err: Error) => {
      signal.removeEventListener("abort", onAbort);
      reject(new ConnectionProblemError(`Cannot connect to ${host}:${port}: ${err.message}`));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", onError);
    socket.once("connect", () => {
      signal.removeEventListener("abort", onAbort);
      socket.off("error", onError);
      resolve(socket);
    });
  });
}
