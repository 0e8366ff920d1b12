/**
 * The only file that touches npm:ssh2 (pinned at 1.17.0 in deno.json). It declares the small
 * part of ssh2 this module uses, including some of its internals, and holds every adaptation
 * that makes ssh2 speak OpenSSH certificates (PROTOCOL.certkeys). No ssh2 source is copied:
 * each adaptation wraps an ssh2 object of the pinned version, names the ssh2 file and function
 * it depends on, and is covered by a test that fails (or times out with an error) when ssh2's
 * internals change: against stock OpenSSH in openssh_test.ts wherever OpenSSH shows the
 * behaviour, else in server_test.ts. {@link assertSsh2Internals} checks the shapes up front so a changed
 * ssh2 fails with a clear message instead of a confusing handshake error.
 *
 * Adaptations:
 *
 * - A1 host certificate key object, host keys signing with our PKCS#8 key, and A2 KEX reply
 *   signature type (server).
 * - A3 channel-open failure descriptions (server).
 * - A4 stderr text before rejecting a session request, closing a session that never got a
 *   shell, exec or subsystem, and keeping input a client sends before the channel exists
 *   (server).
 * - A5 user certificate authentication (client).
 * - A6 raw session channels with per-request replies (client).
 * - A7 keepalive probes with a reply (client).
 * - A8 pty-req parsed by us, terminal modes included (server).
 * - A9 custom channel types, channel requests on them and global requests in both directions,
 *   with ordered replies (both sides; reverse tunnels).
 * - A10 a correct server-sig-algs extension (server).
 */
import type { EventEmitter } from "node:events";
import { Buffer } from "node:buffer";
import { createPrivateKey, sign as nodeSign } from "node:crypto";
import ssh2 from "ssh2";
import ssh2Package from "ssh2/package.json" with { type: "json" };
import ssh2ProtocolUtils from "ssh2/lib/protocol/utils.js";
import ssh2ChannelModule from "ssh2/lib/Channel.js";
import ssh2MessageHandlers from "ssh2/lib/protocol/handlers.js";
import { SshReader, SshWriter } from "../ca/mod.ts";

/** The ssh2 version every adaptation below was written against. */
export const SSH2_VERSION = "1.17.0";

// ---------------------------------------------------------------------------------------------
// Declarations of the ssh2 surface we use (public API first, then internals marked "internal").
// ---------------------------------------------------------------------------------------------

/** A key object from ssh2's keyParser.js (`parseKey`), prototype BaseKey. */
export interface Ssh2Key {
  type: string;
  comment: string;
  sign(data: Uint8Array, algo?: string): Buffer | Error;
  getPublicSSH(): Buffer;
  getPrivatePEM(): string | null;
  isPrivateKey(): boolean;
}

/** The KEX state of a Protocol (kex.js `KeyExchange`; internal). */
export interface Ssh2Kex {
  negotiated: { serverHostKey: string };
  sessionID: Buffer | undefined;
  /** Whether the peer offered ext-info-c / ext-info-s (RFC 8308 §2.1). */
  remoteExtInfoEnabled?: boolean;
}

/** The outbound packet writer of a Protocol (zlib.js `PacketWriter`; internal). */
interface Ssh2PacketWriter {
  allocStart: number;
  alloc(payloadSize: number): Buffer;
  finalize(packet: Buffer): Buffer;
}

/** A channel's flow-control state (Channel.js / server.js `_chanInfo`; internal). */
export interface Ssh2ChannelState {
  id: number;
  window: number;
  packetSize: number;
  state: "open" | "eof" | "closing" | "closed";
}

/** ssh2's Protocol (protocol/Protocol.js); only what we call. */
export interface Ssh2Protocol {
  /** internal: the current key exchange. */
  _kex: Ssh2Kex | undefined;
  /** internal: host keys by algorithm name (server). */
  _hostKeys: Record<string, Ssh2Key>;
  /** internal: packet reader/writer pair. */
  _packetRW: { write: Ssh2PacketWriter };
  /** internal: the connection's message handlers (server.js / client.js `messageHandlers`). */
  _handlers: {
    CHANNEL_DATA?: (proto: unknown, recipient: number, data: Uint8Array) => unknown;
    [name: string]: unknown;
  };
  /** internal: auth methods awaiting a reply (client). */
  _authsQueue: string[];
  /** internal: true on the server side. */
  _server: boolean;
  /** internal: called by kex.js after each NEWKEYS exchange. */
  _onHandshakeComplete: (...args: unknown[]) => void;
  authPK(
    username: string,
    key: unknown,
    keyAlgo?: string,
    cbSign?: (data: Buffer, cb: (signature: Buffer) => void) => void,
  ): void;
  channelOpenFail(remote: number, reason: number, desc?: string): void;
  channelOpenConfirm(remote: number, local: number, initWindow: number, maxPacket: number): void;
  channelExtData(chan: number, data: Uint8Array, type: number): void;
  channelClose(chan: number): void;
  channelSuccess(chan: number): void;
  channelFailure(chan: number): void;
  requestSuccess(data?: Buffer): void;
  requestFailure(): void;
  session(chan: number, initWindow: number, maxPacket: number): void;
  pty(
    chan: number,
    rows: number,
    cols: number,
    height: number,
    width: number,
    term: string,
    modes: Uint8Array | null,
    wantReply: boolean,
  ): void;
  env(chan: number, key: string, value: string, wantReply: boolean): void;
  shell(chan: number, wantReply: boolean): void;
  exec(chan: number, command: string, wantReply: boolean): void;
  subsystem(chan: number, name: string, wantReply: boolean): void;
  windowChange(chan: number, rows: number, cols: number, height: number, width: number): void;
  signal(chan: number, name: string): void;
  /** auth-agent-req@openssh.com (OpenSSH PROTOCOL §2.1). */
  openssh_agentForward(chan: number, wantReply: boolean): void;
  ping(): void;
}

/** ssh2's channel manager (utils.js `ChannelManager`; internal). */
interface Ssh2ChannelManager {
  add(value?: unknown): number;
  get(id: number): unknown;
  update(id: number, value: unknown): void;
  remove(id: number): void;
}

/** ssh2's Channel (Channel.js), a node Duplex. */
export interface Ssh2Channel extends EventEmitter {
  readonly incoming: Ssh2ChannelState;
  readonly outgoing: Ssh2ChannelState;
  /** internal: reply callbacks of requests sent with want-reply, oldest first. */
  _callbacks: Array<(failed: boolean) => void>;
  subtype: string | undefined;
  exit(statusOrSignal: number | string, coreDumped?: boolean, message?: string): void;
  close(): void;
}

/** ssh2's server-side connection (server.js `Client`, exported as `IncomingClient`). */
export interface Ssh2IncomingClient extends EventEmitter {
  authenticated: boolean;
  /** internal */
  _protocol: Ssh2Protocol;
  /** internal */
  _chanMgr: Ssh2ChannelManager;
  end(): void;
  forwardOut(
    boundAddr: string,
    boundPort: number,
    remoteAddr: string,
    remotePort: number,
    cb: (err: Error | undefined, channel: Ssh2Channel) => void,
  ): void;
}

/** ssh2's server-side session (server.js `Session`). */
export interface Ssh2Session extends EventEmitter {
  /** internal: set by EOF or CLOSE; accept()/reject() do nothing once it is true. */
  _ending: boolean;
  /** internal: the session channel's flow-control state, shared with its later Channel. */
  _chanInfo: { incoming: Ssh2ChannelState; outgoing: Ssh2ChannelState };
  /** internal: the Channel created by accepting shell, exec or subsystem. */
  _channel: Ssh2Channel | undefined;
}

/** ssh2's AuthContext family (server.js). */
export interface Ssh2AuthContext {
  method: string;
  username: string;
  key?: { algo: string; data: Buffer };
  signature?: Buffer;
  blob?: Buffer;
  accept(): void;
  reject(methodsLeft?: string[], isPartial?: boolean): void;
}

/** Algorithm lists in ssh2's config shape. */
export interface Ssh2Algorithms {
  kex: string[];
  cipher: string[];
  hmac: string[];
  compress: string[];
  serverHostKey?: string[];
}

/** ssh2's Server (server.js). */
export interface Ssh2Server extends EventEmitter {
  injectSocket(socket: unknown): void;
}

/** ssh2's Client (client.js). */
export interface Ssh2Client extends EventEmitter {
  /** internal */
  _protocol: Ssh2Protocol;
  /** internal: reply callbacks of global requests, oldest first. */
  _callbacks: Array<(failed: boolean) => void>;
  /** internal */
  _chanMgr: Ssh2ChannelManager;
  connect(config: Record<string, unknown>): void;
  end(): void;
  destroy(): void;
  exec(
    command: string,
    options: Record<string, unknown>,
    cb: (err: Error | undefined, channel: Ssh2Channel) => void,
  ): void;
  shell(
    window: Record<string, unknown> | false,
    options: Record<string, unknown>,
    cb: (err: Error | undefined, channel: Ssh2Channel) => void,
  ): void;
  forwardOut(
    srcIp: string,
    srcPort: number,
    dstIp: string,
    dstPort: number,
    cb: (err: Error | undefined, channel: Ssh2Channel) => void,
  ): void;
  /** tcpip-forward (RFC 4254 §7.1); the callback gets the bound port. */
  forwardIn(bindAddr: string, bindPort: number, cb: (err?: Error, port?: number) => void): void;
  /** cancel-tcpip-forward (RFC 4254 §7.1). */
  unforwardIn(bindAddr: string, bindPort: number, cb: (err?: Error) => void): void;
}

interface Ssh2Module {
  Server: new (config: Record<string, unknown>) => Ssh2Server;
  Client: new () => Ssh2Client;
  utils: { parseKey(data: string | Buffer): Ssh2Key | Ssh2Key[] | Error };
}

interface Ssh2ProtocolUtils {
  sendPacket(proto: Ssh2Protocol, packet: Buffer): boolean;
  convertSignature(signature: Buffer, keyType: string): Buffer | false | undefined;
}

const mod = ssh2 as unknown as Ssh2Module;
const protocolUtils = ssh2ProtocolUtils as unknown as Ssh2ProtocolUtils;
const channelModule = ssh2ChannelModule as unknown as {
  Channel: new (
    client: unknown,
    info: { type: string; incoming: Ssh2ChannelState; outgoing: Ssh2ChannelState },
    opts: { server: boolean },
  ) => Ssh2Channel;
  MAX_WINDOW: number;
  PACKET_SIZE: number;
  WINDOW_THRESHOLD: number;
  windowAdjust(channel: Ssh2Channel): void;
};

/** ssh2's Server class. */
export const Ssh2ServerClass = mod.Server;
/** ssh2's Client class. */
export const Ssh2ClientClass = mod.Client;

/** RFC 4254 §5.2: SSH_EXTENDED_DATA_STDERR. */
export const SSH_EXTENDED_DATA_STDERR = 1;

/** RFC 4254 §5.1 channel open failure reason codes. */
export const CHANNEL_OPEN_FAILURE_CODES = {
  "administratively-prohibited": 1,
  "connect-failed": 2,
  "unknown-channel-type": 3,
  "resource-shortage": 4,
} as const;

/** Thrown when the pinned ssh2 does not look like the version the adaptations were written for. */
export class Ssh2AdaptationError extends Error {
  constructor(what: string) {
    super(
      `Cannot adapt npm:ssh2 ${ssh2Package.version}: ${what} (lib/ssh/_ssh2.ts was written ` +
        `against ssh2 ${SSH2_VERSION}; review every adaptation before changing the pin)`,
    );
    this.name = "Ssh2AdaptationError";
  }
}

/**
 * Checks the version and the prototype methods the adaptations wrap. The per-connection
 * internals (`_protocol`, `_kex`, `_hostKeys`, …) are checked where they are used.
 */
export function assertSsh2Internals(): void {
  if (ssh2Package.version !== SSH2_VERSION) {
    throw new Ssh2AdaptationError(`unexpected version ${ssh2Package.version}`);
  }
  if (typeof protocolUtils.sendPacket !== "function") {
    throw new Ssh2AdaptationError("protocol/utils.js sendPacket is missing");
  }
  if (typeof protocolUtils.convertSignature !== "function") {
    throw new Ssh2AdaptationError("protocol/utils.js convertSignature is missing");
  }
  if (
    typeof channelModule.MAX_WINDOW !== "number" ||
    typeof channelModule.PACKET_SIZE !== "number" ||
    channelModule.WINDOW_THRESHOLD !== channelModule.MAX_WINDOW / 2 ||
    typeof channelModule.windowAdjust !== "function"
  ) {
    throw new Ssh2AdaptationError("Channel.js MAX_WINDOW/PACKET_SIZE/windowAdjust changed");
  }
  if (typeof channelModule.Channel !== "function") {
    throw new Ssh2AdaptationError("Channel.js no longer exports Channel");
  }
}
assertSsh2Internals();

// ---------------------------------------------------------------------------------------------
// Algorithms
// ---------------------------------------------------------------------------------------------

/**
 * Algorithm preferences for both ends. Ciphers: chacha20-poly1305 and AES-CTR before AES-GCM,
 * whose ssh2 implementation is the slowest in Deno (deno-platform-notes.md). All of these are
 * in OpenSSH 9.x's defaults; SHA-1 MACs, CBC ciphers and group1/group14-sha1 are left out.
 */
export const ALGORITHMS: Readonly<Ssh2Algorithms> = Object.freeze({
  kex: [
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
  ],
  cipher: [
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
  ],
  hmac: [
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
  ],
  compress: ["none"],
});

/** Plain host key algorithms the ssh2 client accepts (it cannot verify certificate ones). */
export const CLIENT_HOST_KEY_ALGORITHMS: readonly string[] = Object.freeze([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
]);

/**
 * The signature formats a server accepts in publickey user authentication, advertised as
 * server-sig-algs (RFC 8308 §3.1). OpenSSH ≥ 8.8 signs with RSA keys only with an
 * rsa-sha2-* format it finds here; ssh-rsa (SHA-1) is left out, as in OpenSSH's defaults.
 */
export const SERVER_SIG_ALGS: readonly string[] = Object.freeze([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
]);

/** Channel window and packet size ssh2 uses for every channel (Channel.js). */
export const CHANNEL_WINDOW = channelModule.MAX_WINDOW;
export const CHANNEL_PACKET_SIZE = channelModule.PACKET_SIZE;

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/** Parses an OpenSSH private key PEM with ssh2's keyParser.js `parseKey`. */
export function parseSsh2PrivateKey(pem: string): Ssh2Key {
  let key = mod.utils.parseKey(pem);
  if (key instanceof Error) {
    throw new Ssh2AdaptationError(`keyParser.js parseKey rejected our key: ${key.message}`);
  }
  if (Array.isArray(key)) key = key[0]!;
  if (!key.isPrivateKey()) throw new Ssh2AdaptationError("keyParser.js parsed no private key");
  return key;
}

/**
 * A1 (signing): a copy of an ssh2 key object that signs with node:crypto from our PKCS#8 PEM.
 *
 * Depends on protocol/keyParser.js: `BaseKey.sign` signs with a PEM ssh2 builds itself, and for
 * ECDSA that is a SEC1 "EC PRIVATE KEY" PEM which Deno's node:crypto rejects ("invalid SEC1
 * private key"). kex.js `finish()` calls `hostKey.sign(exchangeHash, hashAlgo)` synchronously
 * and expects DER for ECDSA (raw 64 bytes for Ed25519), converting with utils.js
 * `convertSignature(sig, key.type)`; this returns the same. The copy inherits everything else
 * (including keyParser's private "parsed" marker) from `plain` via `Object.create`.
 */
export function withNodeSigner(plain: Ssh2Key, pkcs8Pem: string): Ssh2Key {
  const key = createPrivateKey(pkcs8Pem);
  const hash = key.asymmetricKeyType === "ed25519" ? null : "sha256";
  if (hash !== null && plain.type !== "ecdsa-sha2-nistp256") {
    throw new Ssh2AdaptationError(`unexpected host key type ${plain.type}`);
  }
  return Object.create(plain, {
    sign: {
      value: (data: Uint8Array): Buffer | Error => {
        try {
          return nodeSign(hash, data, key);
        } catch (err) {
          return err instanceof Error ? err : new Error(String(err));
        }
      },
    },
  }) as Ssh2Key;
}

/**
 * A1: a key object that presents an OpenSSH certificate instead of the plain public key.
 *
 * Depends on protocol/keyParser.js: `parseKey`/`isParsedKey` accept any object whose
 * `[SYM_DECRYPTED]` is a boolean, which this object inherits from the real parsed key it is
 * created from (`Object.create`), so ssh2 takes it as already parsed. Server side, server.js's
 * `Server` constructor files host keys under `key.type` and offers that name in KEXINIT without
 * checking it against its supported list, and kex.js `finish()` sends `getPublicSSH()` as K_S,
 * so the certificate blob goes out as the host key. It then converts the signature with
 * utils.js `convertSignature(sig, key.type)`, which passes unknown (certificate) types through
 * unchanged, so `sign` converts ECDSA DER signatures itself with the base key type. Client side
 * (A5) only `type`, `getPublicSSH` and `isPrivateKey` are used.
 */
export function certificateKey(plain: Ssh2Key, certType: string, certBlob: Uint8Array): Ssh2Key {
  const baseType = plain.type;
  const blob = Buffer.from(certBlob);
  return Object.create(plain, {
    type: { value: certType, enumerable: true },
    getPublicSSH: { value: () => blob },
    sign: {
      value: (data: Uint8Array, algo?: string): Buffer | Error => {
        const sig = plain.sign(data, algo);
        if (sig instanceof Error) return sig;
        const converted = protocolUtils.convertSignature(sig, baseType);
        return converted ? converted : new Error(`Cannot convert ${baseType} signature`);
      },
    },
  }) as Ssh2Key;
}

/**
 * A2: makes a server send the KEX reply signature with the base algorithm name when it
 * presents a host certificate (PROTOCOL.certkeys: the signature is made by the certified key,
 * so its format is e.g. "ssh-ed25519", not "ssh-ed25519-cert-v01@openssh.com"). OpenSSH
 * refuses the mismatch ("key type does not match").
 *
 * Depends on protocol/kex.js: the server's KEXDH_INIT step looks the host key up with
 * `this._protocol._hostKeys[this.negotiated.serverHostKey]`, then `finish()` writes
 * `this.negotiated.serverHostKey` as the signature type; `this` is `protocol._kex`. This
 * replaces the connection's `_hostKeys` with a copy whose certificate entries are getters that
 * switch `negotiated.serverHostKey` to the base name at that lookup (the name is not used
 * again in that exchange except for RSA hash selection, which certificates here never hit).
 */
export function installHostCertificateKex(
  proto: Ssh2Protocol,
  certKeys: ReadonlyMap<string, { key: Ssh2Key; baseType: string }>,
): void {
  if (proto === undefined || typeof proto._hostKeys !== "object" || proto._hostKeys === null) {
    throw new Ssh2AdaptationError("server connection has no _protocol._hostKeys");
  }
  const keys: Record<string, Ssh2Key> = Object.create(null);
  for (const [name, key] of Object.entries(proto._hostKeys)) keys[name] = key;
  for (const [certType, { key, baseType }] of certKeys) {
    Object.defineProperty(keys, certType, {
      enumerable: true,
      get: () => {
        const kex = proto._kex;
        if (kex === undefined || kex.negotiated?.serverHostKey !== certType) {
          throw new Ssh2AdaptationError(
            "kex.js did not look the host key up by the negotiated algorithm",
          );
        }
        kex.negotiated.serverHostKey = baseType;
        return key;
      },
    });
  }
  proto._hostKeys = keys;
}

/** RFC 8308 §2.3 message number of SSH_MSG_EXT_INFO. */
const SSH_MSG_EXT_INFO = 7;

/**
 * A10: makes a server send its own EXT_INFO with a correct server-sig-algs list (`algs`)
 * instead of ssh2's, whose list lacks a comma ("…ecdsa-sha2-nistp521rsa-sha2-512,…"), so that
 * OpenSSH ≥ 8.8 finds no rsa-sha2-* it may use ("no mutual signature algorithm") and never
 * offers RSA keys.
 *
 * Depends on protocol/Protocol.js: the connection's `_onHandshakeComplete` (looked up on the
 * Protocol by kex.js at each NEWKEYS) drains the queued packets, then sends ssh2's EXT_INFO
 * (module-level `sendExtInfo`) when `firstHandshake && this._server &&
 * this._kex.remoteExtInfoEnabled`, then calls the server's handler. The wrapper turns
 * `_kex.remoteExtInfoEnabled` into a getter for the first handshake's call: read at exactly
 * that place, it sends our EXT_INFO (built like Protocol.js's message methods) and answers
 * false, so the message keeps its position (the first after the server's NEWKEYS, RFC 8308
 * §2.4) and ssh2's is never sent.
 */
export function installServerSigAlgs(proto: Ssh2Protocol, algs: readonly string[]): void {
  const original = proto?._onHandshakeComplete;
  if (typeof original !== "function" || proto._server !== true) {
    throw new Ssh2AdaptationError("server Protocol has no _onHandshakeComplete");
  }
  const payload = new SshWriter().byte(SSH_MSG_EXT_INFO).uint32(1).string("server-sig-algs")
    .string(algs.join(",")).bytes();
  let first = true;
  proto._onHandshakeComplete = function (this: unknown, ...args: unknown[]) {
    const kex = proto._kex;
    if (!first || kex === undefined) return original.apply(this, args);
    first = false;
    const enabled = kex.remoteExtInfoEnabled === true;
    Object.defineProperty(kex, "remoteExtInfoEnabled", {
      configurable: true,
      enumerable: true,
      get: () => {
        if (enabled) sendPayload(proto, payload);
        return false;
      },
    });
    try {
      return original.apply(this, args);
    } finally {
      Object.defineProperty(kex, "remoteExtInfoEnabled", {
        configurable: true,
        enumerable: true,
        writable: true,
        value: enabled,
      });
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Server: channel-open failures and session requests
// ---------------------------------------------------------------------------------------------

/** Default descriptions for RFC 4254 §5.1 reason codes. */
const FAILURE_TEXT: Record<number, string> = {
  1: "administratively prohibited",
  2: "connect failed",
  3: "unknown channel type",
  4: "resource shortage",
};

/**
 * A3: lets a server reject a channel open with its own reason code and description.
 *
 * Depends on server.js: the `reject` closure handed to 'session' and 'tcpip' listeners (and
 * the automatic rejection of other channel types) calls
 * `proto.channelOpenFail(info.sender, reason, '')` synchronously, always with an empty
 * description. This wraps the connection's `channelOpenFail` so that the failure queued just
 * before calling `reject()` replaces code and text, and an empty text becomes the standard
 * phrase for the code. Returns the function that rejects with a reason.
 */
export function installChannelOpenFailures(
  proto: Ssh2Protocol,
): (reject: () => void, code: number, description: string) => void {
  const slot = channelOpenFailSlot(proto);
  return (reject, code, description) => slot(reject, () => ({ code, description }));
}

/** Replaces the code and text of a CHANNEL_OPEN_FAILURE sent while `call` runs. */
type OpenFailSlot = (
  call: () => void,
  override: (code: number) => { code: number; description: string } | undefined,
) => void;
const openFailSlots = new WeakMap<object, OpenFailSlot>();

/**
 * A3/A9: wraps the connection's Protocol.js `channelOpenFail` (once) so that a failure sent
 * synchronously inside `slot(call, override)` takes the code and text `override` returns for
 * ssh2's code; every empty text becomes the standard phrase for its code.
 */
function channelOpenFailSlot(proto: Ssh2Protocol): OpenFailSlot {
  const existing = openFailSlots.get(proto);
  if (existing !== undefined) return existing;
  const original = proto.channelOpenFail;
  if (typeof original !== "function") {
    throw new Ssh2AdaptationError("Protocol has no channelOpenFail");
  }
  let override: ((code: number) => { code: number; description: string } | undefined) | undefined;
  proto.channelOpenFail = function (remote: number, reason: number, desc?: string) {
    const o = override;
    override = undefined;
    let code = reason;
    let text = desc ?? "";
    const replaced = o?.(reason);
    if (replaced !== undefined) {
      code = replaced.code;
      text = replaced.description;
    }
    return original.call(this, remote, code, text || FAILURE_TEXT[code] || "");
  };
  const slot: OpenFailSlot = (call, o) => {
    override = o;
    try {
      call();
    } finally {
      override = undefined;
    }
  };
  openFailSlots.set(proto, slot);
  return slot;
}

/**
 * A4: writes `text` to a session's stderr before a shell, exec or subsystem exists (e.g. to
 * explain a rejected request). Sends at most one window's worth, in packet-size pieces.
 *
 * Depends on server.js `Session._chanInfo.outgoing` (the peer's channel id, window and packet
 * size, shared with the Channel later created from it) and Protocol.js `channelExtData`.
 */
export function writeSessionStderr(
  client: Ssh2IncomingClient,
  session: Ssh2Session,
  text: string,
): void {
  const out = session._chanInfo?.outgoing;
  if (out === undefined) throw new Ssh2AdaptationError("Session has no _chanInfo.outgoing");
  if (out.state !== "open") return;
  let data: Uint8Array = Buffer.from(text, "utf8");
  data = data.subarray(0, Math.min(data.length, out.window));
  for (let p = 0; p < data.length; p += out.packetSize) {
    const chunk = data.subarray(p, Math.min(data.length, p + out.packetSize));
    client._protocol.channelExtData(out.id, chunk, SSH_EXTENDED_DATA_STDERR);
    out.window -= chunk.length;
  }
}

/**
 * A4 (close): closes a session channel that has no shell/exec/subsystem Channel, and answers
 * the peer's CHANNEL_CLOSE for such a session (RFC 4254 §5.3 requires the reply; OpenSSH's
 * client waits for it before exiting).
 *
 * Depends on server.js: its CHANNEL_CLOSE handler emits 'close' on a `Session` and returns
 * without replying or freeing the channel id when `session._channel` is unset;
 * `Client._chanMgr.remove(id)` frees it; Protocol.js `channelClose` sends the message.
 */
export function closeBareSession(client: Ssh2IncomingClient, session: Ssh2Session): void {
  if (session._channel !== undefined) {
    session._channel.close();
    return;
  }
  const info = session._chanInfo;
  if (info === undefined) throw new Ssh2AdaptationError("Session has no _chanInfo");
  if (info.outgoing.state === "open" || info.outgoing.state === "eof") {
    info.outgoing.state = "closing";
    client._protocol.channelClose(info.outgoing.id);
  }
}

/** A4 (close): frees the channel id of a bare session the peer closed (see closeBareSession). */
export function releaseBareSession(client: Ssh2IncomingClient, session: Ssh2Session): void {
  if (session._channel !== undefined) return; // ssh2's onCHANNEL_CLOSE handles real channels
  closeBareSession(client, session);
  const info = session._chanInfo;
  info.outgoing.state = "closed";
  if (info.incoming.state !== "closed") {
    info.incoming.state = "closed";
    client._chanMgr.remove(info.incoming.id);
  }
}

/** Input a client sent on a session before its shell/exec/subsystem channel existed. */
interface EarlyInput {
  data: Uint8Array[];
  eof: boolean;
}
const earlyInputs = new WeakMap<object, EarlyInput>();

/**
 * A4 (early input), per connection: keeps data a client sends on a session before shell, exec
 * or subsystem is accepted. OpenSSH starts sending stdin right after the exec request, and
 * `ssh host cmd </dev/null` sends EOF at once; an asynchronous handler accepts later.
 *
 * Depends on server.js: its CHANNEL_DATA handler (the connection's `_protocol._handlers
 * .CHANNEL_DATA`, looked up per packet by protocol/handlers.misc.js) drops data for a `Session`
 * whose `_channel` is unset, and its CHANNEL_EOF handler sets `session._ending` (after which
 * the session's accept/reject closures do nothing) and emits 'eof'. The wrapper buffers data of
 * sessions registered with {@link holdEarlyInput}, charging their receive window
 * (`_chanInfo.incoming.window`) as ssh2 would; the 'eof' listener clears `_ending` again.
 */
export function installEarlyInput(client: Ssh2IncomingClient): void {
  const handlers = client._protocol?._handlers;
  const original = handlers?.CHANNEL_DATA;
  if (typeof original !== "function" || typeof client._chanMgr?.get !== "function") {
    throw new Ssh2AdaptationError("connection has no _handlers.CHANNEL_DATA or _chanMgr.get");
  }
  handlers!.CHANNEL_DATA = (p: unknown, recipient: number, data: Uint8Array) => {
    let target: unknown;
    try {
      target = client._chanMgr.get(recipient);
    } catch {
      return original(p, recipient, data); // let ssh2 report the bad id
    }
    const early = typeof target === "object" && target !== null
      ? earlyInputs.get(target)
      : undefined;
    const session = target as Ssh2Session;
    if (early === undefined || session._channel !== undefined) {
      return original(p, recipient, data);
    }
    const incoming = session._chanInfo.incoming;
    if (incoming.window === 0) return; // as ssh2 does: the peer overran the window
    incoming.window -= data.length;
    early.data.push(Uint8Array.from(data)); // the packet buffer is reused
  };
}

/** A4 (early input): starts keeping early data and EOF of `session`. */
export function holdEarlyInput(session: Ssh2Session): void {
  if (typeof session._ending !== "boolean" || session._chanInfo?.incoming === undefined) {
    throw new Ssh2AdaptationError("Session has no _ending flag or _chanInfo");
  }
  const early: EarlyInput = { data: [], eof: false };
  earlyInputs.set(session, early);
  session.on("eof", () => {
    if (session._channel !== undefined) return;
    const out = session._chanInfo.outgoing;
    if (out.state === "closing" || out.state === "closed") return;
    early.eof = true;
    session._ending = false;
  });
}

/**
 * A4 (early input): hands kept data, then EOF, to the channel just created for `session`,
 * doing what server.js's CHANNEL_DATA/CHANNEL_EOF handlers do for a channel (`push`,
 * `incoming.state = 'eof'`, `_waitChanDrain` or Channel.js `windowAdjust`).
 */
export function deliverEarlyInput(session: Ssh2Session, channel: Ssh2Channel): void {
  const early = earlyInputs.get(session);
  earlyInputs.delete(session);
  if (early === undefined) return;
  const ch = channel as Ssh2Channel & {
    push(chunk: Uint8Array | null): boolean;
    _waitChanDrain: boolean;
  };
  let full = false;
  for (const chunk of early.data) full = !ch.push(Buffer.from(chunk)) || full;
  if (early.eof && ch.incoming.state === "open") {
    ch.incoming.state = "eof";
    ch.push(null);
  }
  if (full) ch._waitChanDrain = true;
  else if (ch.incoming.window <= CHANNEL_WINDOW / 2) channelModule.windowAdjust(ch);
}

// ---------------------------------------------------------------------------------------------
// Client: certificate authentication and raw sessions
// ---------------------------------------------------------------------------------------------

/**
 * A5: makes an ssh2 client authenticate with an OpenSSH user (or host) certificate.
 *
 * Depends on Protocol.js `authPK(username, key, keyAlgo, cbSign)`: with `cbSign` it builds
 * `string session id || USERAUTH_REQUEST payload` (RFC 4252 §7, with the certificate type as
 * the algorithm name and the certificate as the key blob, both correct) and hands it to
 * `cbSign`; its own continuation would then write the signature with the *certificate*
 * algorithm name and convert ECDSA signatures by the certificate type, both wrong for
 * OpenSSH. This wraps the connection's `authPK`: for `certKey` it signs those bytes with
 * WebCrypto (`sign`, which writes the base algorithm name), appends `string signature` to the
 * payload and sends the packet the way Protocol.js methods do (`_packetRW.write.alloc` /
 * `allocStart` / `finalize`, utils.js `sendPacket`), queueing 'publickey' in `_authsQueue` so
 * client.js matches the reply. The unsigned query goes through the original unchanged.
 */
export function installCertificateAuth(
  proto: Ssh2Protocol,
  certKey: Ssh2Key,
  sign: (data: Uint8Array) => Promise<Uint8Array>,
  onError: (err: unknown) => void,
): void {
  const original = proto.authPK;
  if (typeof original !== "function" || !Array.isArray(proto._authsQueue)) {
    throw new Ssh2AdaptationError("Protocol has no authPK or _authsQueue");
  }
  proto.authPK = function (this: Ssh2Protocol, username, key, keyAlgo, cbSign) {
    if (key !== certKey || cbSign === undefined) {
      return original.call(this, username, key, keyAlgo, cbSign);
    }
    return original.call(this, username, key, keyAlgo, (data) => {
      const toSign = new Uint8Array(data);
      sign(toSign).then((signature) => {
        const sessionIdLength = new DataView(toSign.buffer).getUint32(0);
        const request = toSign.subarray(4 + sessionIdLength);
        // RFC 4252 §7: SSH_MSG_USERAUTH_REQUEST ... boolean TRUE ... string signature.
        const payload = new SshWriter().raw(request).string(signature).bytes();
        this._authsQueue.push("publickey");
        sendPayload(this, payload);
      }).catch(onError);
    });
  };
}

/**
 * A6: opens a session channel without sending any request, so the caller can send pty-req,
 * env, shell/exec/subsystem itself and see each reply.
 *
 * Depends on client.js: `Client._chanMgr.add(fn)` reserves a local id for a pending open whose
 * callback `fn(err, channel)` (with `fn.type = 'session'`) the CHANNEL_OPEN_CONFIRMATION and
 * CHANNEL_OPEN_FAILURE handlers call with a new Channel or an error; Protocol.js
 * `session(id, window, packetSize)` sends the open.
 */
export function openRawSession(client: Ssh2Client): Promise<Ssh2Channel> {
  return new Promise((resolve, reject) => {
    const pending = Object.assign((err: Error | undefined, channel: Ssh2Channel) => {
      if (err) reject(err);
      else resolve(channel);
    }, { type: "session" });
    const id = client._chanMgr.add(pending);
    if (id === -1) {
      reject(new Error("no free channel ids"));
      return;
    }
    client._protocol.session(id, CHANNEL_WINDOW, CHANNEL_PACKET_SIZE);
  });
}

/**
 * A6: sends a session request with want-reply and resolves true on CHANNEL_SUCCESS, false on
 * CHANNEL_FAILURE (or when the channel closes first).
 *
 * Depends on Channel.js `_callbacks` (client.js's CHANNEL_SUCCESS/FAILURE handlers call the
 * oldest with `failed`) and the Protocol.js request writers passed in `send`.
 */
export function sessionRequest(
  channel: Ssh2Channel,
  send: (proto: Ssh2Protocol, remoteId: number) => void,
  proto: Ssh2Protocol,
): Promise<boolean> {
  if (!Array.isArray(channel._callbacks)) {
    throw new Ssh2AdaptationError("Channel has no _callbacks");
  }
  // RFC 4254 §5.3: after our EOF the channel still takes requests, until CLOSE.
  const state = channel.outgoing.state;
  if (state !== "open" && state !== "eof") return Promise.resolve(false);
  return new Promise((resolve) => {
    channel._callbacks.push((failed) => resolve(!failed));
    send(proto, channel.outgoing.id);
  });
}

/**
 * A7: sends keepalive@openssh.com with want-reply (OpenSSH PROTOCOL §2.2 behaviour: any reply,
 * usually failure, proves the peer alive) and resolves on the reply.
 *
 * Depends on client.js: REQUEST_SUCCESS/REQUEST_FAILURE call the oldest of `Client._callbacks`
 * (the array its own keepalive timer and forwardIn use), and Protocol.js `ping()` sends the
 * request.
 */
export function pingServer(client: Ssh2Client): Promise<void> {
  if (!Array.isArray(client._callbacks) || typeof client._protocol?.ping !== "function") {
    throw new Ssh2AdaptationError("Client has no _callbacks or Protocol.ping");
  }
  return new Promise((resolve) => {
    client._callbacks.push(() => resolve());
    client._protocol.ping();
  });
}

/** A pty-req as sent (RFC 4254 §6.2). */
export interface RawPtyRequest {
  term: string;
  cols: number;
  rows: number;
  widthPx: number;
  heightPx: number;
  /** Encoded terminal modes (RFC 4254 §8). */
  modes: Uint8Array;
}

/** RFC 4254 §9 message numbers. */
const SSH_MSG_GLOBAL_REQUEST = 80;
const SSH_MSG_CHANNEL_OPEN = 90;
const SSH_MSG_CHANNEL_REQUEST = 98;
const ptyRequests = new WeakMap<object, RawPtyRequest>();
/** GLOBAL_REQUEST and CHANNEL_REQUEST payloads while they are dispatched, by Protocol (A9). */
const requestPayloads = new WeakMap<object, Uint8Array>();

/**
 * A8: reads pty-req ourselves. ssh2's parser (protocol/handlers.misc.js, CHANNEL_REQUEST
 * 'pty-req') starts reading the modes one byte late (`bufferParser.init(modesBinary, 1)`), so
 * real clients' modes come out empty, and it drops the whole request data when an opcode is
 * unknown to it (e.g. IUTF8, RFC 8160).
 *
 * A9 (request data): handlers.misc.js parses the data of request names it knows (e.g.
 * "signal", "tcpip-forward") into objects and hands only the raw rest for other names; custom
 * requests need the bytes as sent, so the raw payload is kept for the dispatch as well.
 *
 * Depends on protocol/handlers.js: the module-level `MESSAGE_HANDLERS` array, indexed by
 * message number at dispatch time (Protocol.js `onPayload`), whose CHANNEL_REQUEST and
 * GLOBAL_REQUEST entries parse the payload and synchronously call the connection's handler
 * (which emits 'pty' on a session). The wrappers keep the payload (and the parsed pty-req) for
 * that synchronous dispatch; {@link currentPtyRequest} reads the pty-req from the 'pty'
 * listener and A9's handlers read the payload.
 */
function installRequestCapture(): void {
  const handlers = ssh2MessageHandlers as unknown as Array<
    ((self: object, payload: Uint8Array) => unknown) | undefined
  >;
  const originalChannel = handlers[SSH_MSG_CHANNEL_REQUEST];
  const originalGlobal = handlers[SSH_MSG_GLOBAL_REQUEST];
  if (typeof originalChannel !== "function" || typeof originalGlobal !== "function") {
    throw new Ssh2AdaptationError("handlers.js has no CHANNEL_REQUEST or GLOBAL_REQUEST handler");
  }
  handlers[SSH_MSG_CHANNEL_REQUEST] = function (self: object, payload: Uint8Array) {
    let captured = false;
    try {
      const r = new SshReader(payload, "channel request");
      r.byte(); // SSH_MSG_CHANNEL_REQUEST
      r.uint32(); // recipient channel
      if (r.text() === "pty-req") {
        r.boolean(); // want reply
        ptyRequests.set(self, {
          term: r.text(),
          cols: r.uint32(),
          rows: r.uint32(),
          widthPx: r.uint32(),
          heightPx: r.uint32(),
          modes: r.string(),
        });
        captured = true;
      }
    } catch {
      // malformed: ssh2's own parser decides
    }
    requestPayloads.set(self, payload);
    try {
      return originalChannel(self, payload);
    } finally {
      requestPayloads.delete(self);
      if (captured) ptyRequests.delete(self);
    }
  };
  handlers[SSH_MSG_GLOBAL_REQUEST] = function (self: object, payload: Uint8Array) {
    requestPayloads.set(self, payload);
    try {
      return originalGlobal(self, payload);
    } finally {
      requestPayloads.delete(self);
    }
  };
}
installRequestCapture();

/** A8: the pty-req being dispatched on `proto`, when called from a 'pty' listener. */
export function currentPtyRequest(proto: Ssh2Protocol): RawPtyRequest | undefined {
  return ptyRequests.get(proto);
}

// ---------------------------------------------------------------------------------------------
// A9: custom channel types, channel requests and global requests (both sides)
// ---------------------------------------------------------------------------------------------

/** Either side's ssh2 connection object. */
export type Ssh2Connection = Ssh2Client | Ssh2IncomingClient;

/** The ssh2 Channel internals A9 uses (Channel.js; internal). */
interface Ssh2ChannelInternals extends Ssh2Channel {
  type: string;
  stderr: { push(chunk: Uint8Array | null): boolean; readable: boolean };
  push(chunk: Uint8Array | null): boolean;
  _waitChanDrain: boolean;
  _client: { _protocol: Ssh2Protocol };
}

/** A request on a custom channel, as received. */
export interface RawChannelRequest {
  name: string;
  wantReply: boolean;
  /** The request-specific bytes, as sent. */
  data: Uint8Array;
  /**
   * Queues CHANNEL_SUCCESS or CHANNEL_FAILURE when a reply is wanted (the first call counts);
   * replies leave in request order.
   */
  reply(ok: boolean): void;
}

/** A channel open of a claimed custom type, as received. */
export interface RawChannelOpen {
  type: string;
  /** Confirms the open and returns the channel (a client-mode ssh2 Channel). */
  accept(): Ssh2Channel;
  /** Sends CHANNEL_OPEN_FAILURE with `code` (RFC 4254 §5.1) and `description`. */
  reject(code: number, description: string): void;
}

/** A global request, as received (client side). */
export interface RawGlobalRequest {
  name: string;
  wantReply: boolean;
  data: Uint8Array;
  /** Queues REQUEST_SUCCESS (with `data`) or REQUEST_FAILURE; sent in request order. */
  reply(ok: boolean, data?: Uint8Array): void;
}

/** Reply callback of a global request: `true` failure, `false` success, an Error when gone. */
type GlobalReplyCallback = (failed: boolean | Error, data?: Uint8Array | null) => void;

interface CustomChannelState {
  /** Requests received before `sink` was set. */
  inbox: RawChannelRequest[];
  sink: ((request: RawChannelRequest) => void) | undefined;
  /** Places of the replies owed, oldest first (RFC 4254 §5.4: replies go in request order). */
  replies: Array<{ ok: boolean | undefined }>;
  /** Extended data waiting for window. */
  stderr: Uint8Array[];
  /** EOF (and then maybe CLOSE) held back until `stderr` is sent. */
  after: "eof" | "close" | undefined;
}
const customChannels = new WeakMap<object, CustomChannelState>();
/** Pending-open callbacks of {@link openCustomChannel}. */
const pendingOpens = new WeakSet<object>();
const customInstalled = new WeakSet<object>();
/** Server side: callbacks awaiting REQUEST_SUCCESS/REQUEST_FAILURE, oldest first. */
const serverReplyQueues = new WeakMap<object, GlobalReplyCallback[]>();

type Handler = (...args: never[]) => unknown;
type MessageHandlers = Record<string, Handler | undefined>;

/** Sends an SSH message payload the way Protocol.js's own message methods do. */
function sendPayload(proto: Ssh2Protocol, payload: Uint8Array): void {
  const writer = proto._packetRW.write;
  const packet = writer.alloc(payload.length);
  packet.set(payload, writer.allocStart);
  protocolUtils.sendPacket(proto, writer.finalize(packet));
}

function requireHandlers(conn: Ssh2Connection, names: string[]): MessageHandlers {
  const handlers = conn._protocol?._handlers as MessageHandlers | undefined;
  for (const name of names) {
    if (typeof handlers?.[name] !== "function") {
      throw new Ssh2AdaptationError(`connection has no _handlers.${name}`);
    }
  }
  return handlers!;
}

function lookupChannel(conn: Ssh2Connection, id: number): unknown {
  try {
    return conn._chanMgr.get(id);
  } catch {
    return undefined; // utils.js ChannelManager.get throws for ids out of range
  }
}

/**
 * The bytes after the fixed fields of the GLOBAL_REQUEST or CHANNEL_REQUEST being dispatched
 * on `proto` (kept by {@link installRequestCapture}); ssh2's own `data` when there is none.
 */
function requestData(proto: unknown, skip: (r: SshReader) => void, fallback: unknown): Uint8Array {
  const payload = requestPayloads.get(proto as object);
  if (payload !== undefined) {
    try {
      const r = new SshReader(payload, "request");
      skip(r);
      return r.raw(r.remaining);
    } catch {
      // ssh2 accepted what we cannot read: fall back to its data
    }
  }
  return fallback instanceof Uint8Array ? Uint8Array.from(fallback) : new Uint8Array(0);
}

/**
 * Creates a client-mode ssh2 Channel for a custom channel and marks it as ours. Its `eof`
 * (Channel.js, called by its 'finish' listener on `end()`) waits for extended data still
 * waiting for window, so that stderr written before `end()` is not cut off.
 */
function newCustomChannel(
  conn: Ssh2Connection,
  type: string,
  localId: number,
  remote: { id: number; window: number; packetSize: number },
): Ssh2Channel {
  const channel = new channelModule.Channel(conn, {
    type,
    incoming: {
      id: localId,
      window: CHANNEL_WINDOW,
      packetSize: CHANNEL_PACKET_SIZE,
      state: "open",
    },
    outgoing: {
      id: remote.id,
      window: remote.window,
      packetSize: remote.packetSize,
      state: "open",
    },
  }, { server: false });
  const state: CustomChannelState = {
    inbox: [],
    sink: undefined,
    replies: [],
    stderr: [],
    after: undefined,
  };
  customChannels.set(channel, state);
  const ch = channel as Ssh2ChannelInternals & { eof(): void };
  const eof = ch.eof;
  if (typeof eof !== "function") throw new Ssh2AdaptationError("Channel has no eof");
  ch.eof = function (this: typeof ch) {
    if (state.stderr.length > 0 && this.outgoing.state === "open") {
      state.after ??= "eof";
      return;
    }
    return eof.call(this);
  };
  return channel;
}

/**
 * A9: closes a custom channel once its waiting extended data is sent (Channel.js `close` at
 * once when there is none). `close()` itself stays immediate.
 */
export function closeAfterStderr(channel: Ssh2Channel): void {
  const state = customChannels.get(channel);
  if (state !== undefined && state.stderr.length > 0 && channel.outgoing.state === "open") {
    state.after = "close";
    return;
  }
  channel.close();
}

function flushStderr(channel: Ssh2ChannelInternals, state: CustomChannelState): void {
  const out = channel.outgoing;
  const proto = channel._client._protocol;
  while (state.stderr.length > 0 && out.state === "open" && out.window > 0) {
    const head = state.stderr[0]!;
    const n = Math.min(head.length, out.window, out.packetSize);
    // Protocol.js channelExtData takes a Buffer (anything else is written as a string).
    proto.channelExtData(out.id, Buffer.from(head.buffer, head.byteOffset, n), 1);
    out.window -= n;
    if (n === head.length) state.stderr.shift();
    else state.stderr[0] = head.subarray(n);
  }
  if (out.state !== "open") state.stderr.length = 0;
  if (state.stderr.length === 0 && state.after !== undefined) {
    const after = state.after;
    state.after = undefined;
    (channel as Ssh2ChannelInternals & { eof(): void }).eof();
    if (after === "close") channel.close();
  }
}

/**
 * A9, per connection and side: makes custom channels work on an ssh2 connection. A custom
 * channel is a client-mode ssh2 Channel (Channel.js `new Channel(conn, chanInfo, {server:
 * false})`, registered with utils.js `ChannelManager.update`), so flow control, EOF and close
 * are ssh2's own; its stderr is a Readable on both sides. Wraps the connection's message
 * handlers (`_protocol._handlers`, looked up per packet by protocol/handlers.misc.js), taking
 * only what concerns our channels and passing everything else to ssh2's handler unchanged:
 *
 * - CHANNEL_OPEN_CONFIRMATION for an open sent by {@link openCustomChannel}: client.js and
 *   server.js call the pending callback registered with `ChannelManager.add(fn)` (server.js
 *   with a server-mode Channel, whose stderr is a Writable); ours builds the Channel itself.
 *   CHANNEL_OPEN_FAILURE and connection loss (`ChannelManager.cleanup`) reach the callback
 *   through ssh2's handlers (utils.js `onChannelOpenFailure` with `err.reason`, or
 *   "No response from server").
 * - CHANNEL_REQUEST on our channels: both sides' handlers refuse (or, client side, take
 *   exit-status/exit-signal from) requests on non-session channels; ours queue them for the
 *   channel's sink with the raw request data, and send the replies in request order.
 * - CHANNEL_WINDOW_ADJUST: after ssh2's handler, extended data waiting for window is sent.
 * - Server side, CHANNEL_EXTENDED_DATA and CHANNEL_EOF: server.js ignores the former ("should
 *   not be sent by client") and does not end a channel's stderr on the latter; ours do what
 *   client.js does (window accounting, `stderr.push`, Channel.js `windowAdjust`).
 *
 * CHANNEL_SUCCESS/CHANNEL_FAILURE replies to our requests go through ssh2's handlers, which
 * call the oldest of `channel._callbacks` (as A6 relies on).
 */
export function installCustomChannels(conn: Ssh2Connection, side: "client" | "server"): void {
  if (customInstalled.has(conn)) return;
  const handlers = requireHandlers(conn, [
    "CHANNEL_OPEN_CONFIRMATION",
    "CHANNEL_REQUEST",
    "CHANNEL_WINDOW_ADJUST",
    "CHANNEL_EXTENDED_DATA",
    "CHANNEL_EOF",
  ]);
  const mgr = conn._chanMgr;
  if (typeof mgr?.add !== "function" || typeof mgr.update !== "function") {
    throw new Ssh2AdaptationError("connection has no _chanMgr.add/update");
  }
  const proto = conn._protocol;
  for (const m of ["channelSuccess", "channelFailure", "channelExtData"] as const) {
    if (typeof proto[m] !== "function") throw new Ssh2AdaptationError(`Protocol has no ${m}`);
  }
  customInstalled.add(conn);
  const ours = (id: number): Ssh2ChannelInternals | undefined => {
    const target = lookupChannel(conn, id);
    return typeof target === "object" && target !== null && customChannels.has(target)
      ? target as Ssh2ChannelInternals
      : undefined;
  };

  const confirm = handlers.CHANNEL_OPEN_CONFIRMATION as (
    p: unknown,
    info: { recipient: number; sender: number; window: number; packetSize: number },
  ) => unknown;
  handlers.CHANNEL_OPEN_CONFIRMATION = ((p, info) => {
    const pending = lookupChannel(conn, info.recipient);
    if (typeof pending !== "function" || !pendingOpens.has(pending)) return confirm(p, info);
    const done = pending as (err: Error | undefined, channel?: Ssh2Channel) => void;
    const channel = newCustomChannel(
      conn,
      (pending as unknown as { type: string }).type,
      info.recipient,
      {
        id: info.sender,
        window: info.window,
        packetSize: info.packetSize,
      },
    );
    mgr.update(info.recipient, channel);
    if (info.packetSize < 1) {
      channel.close(); // Channel.js _write would loop forever on a zero packet size
      done(new Error("the peer announced a maximum packet size of 0"));
      return;
    }
    done(undefined, channel);
  }) as typeof confirm;

  const request = handlers.CHANNEL_REQUEST as (
    p: unknown,
    recipient: number,
    type: string,
    wantReply: boolean,
    data: unknown,
  ) => unknown;
  handlers.CHANNEL_REQUEST = ((p, recipient, type, wantReply, data) => {
    const channel = ours(recipient);
    if (channel === undefined) return request(p, recipient, type, wantReply, data);
    const state = customChannels.get(channel)!;
    const place = wantReply ? { ok: undefined as boolean | undefined } : undefined;
    if (place !== undefined) state.replies.push(place);
    const raw: RawChannelRequest = {
      name: type,
      wantReply: wantReply === true,
      data: requestData(p, (r) => {
        r.byte();
        r.uint32();
        r.string();
        r.boolean();
      }, data),
      reply: (ok) => {
        if (place === undefined || place.ok !== undefined) return;
        place.ok = ok;
        while (state.replies.length > 0 && state.replies[0]!.ok !== undefined) {
          const next = state.replies.shift()!.ok;
          const s = channel.outgoing.state;
          if (s !== "open" && s !== "eof") continue; // no replies after our CLOSE
          if (next) proto.channelSuccess(channel.outgoing.id);
          else proto.channelFailure(channel.outgoing.id);
        }
      },
    };
    if (state.sink !== undefined) state.sink(raw);
    else state.inbox.push(raw);
  }) as typeof request;

  const windowAdjust = handlers.CHANNEL_WINDOW_ADJUST as (
    p: unknown,
    recipient: number,
    amount: number,
  ) => unknown;
  handlers.CHANNEL_WINDOW_ADJUST = ((p, recipient, amount) => {
    const result = windowAdjust(p, recipient, amount);
    const channel = ours(recipient);
    const state = channel === undefined ? undefined : customChannels.get(channel);
    if (state !== undefined && state.stderr.length > 0) flushStderr(channel!, state);
    return result;
  }) as typeof windowAdjust;

  if (side === "server") {
    const extData = handlers.CHANNEL_EXTENDED_DATA as (
      p: unknown,
      recipient: number,
      data: Uint8Array,
      type: number,
    ) => unknown;
    handlers.CHANNEL_EXTENDED_DATA = ((p, recipient, data, type) => {
      const channel = ours(recipient);
      if (channel === undefined) return extData(p, recipient, data, type);
      const incoming = channel.incoming;
      if (type !== SSH_EXTENDED_DATA_STDERR || incoming.state !== "open") return;
      if (incoming.window === 0) return; // as ssh2 does: the peer overran the window
      incoming.window -= data.length;
      if (!channel.stderr.push(Buffer.from(data))) channel._waitChanDrain = true;
      else if (incoming.window <= CHANNEL_WINDOW / 2) channelModule.windowAdjust(channel);
    }) as typeof extData;
    const eof = handlers.CHANNEL_EOF as (p: unknown, recipient: number) => unknown;
    handlers.CHANNEL_EOF = ((p, recipient) => {
      const channel = ours(recipient);
      const result = eof(p, recipient);
      if (channel !== undefined && channel.stderr.readable) channel.stderr.push(null);
      return result;
    }) as typeof eof;
  }
}

/**
 * A9: sends CHANNEL_OPEN for a custom `type` and resolves with the channel (see
 * {@link installCustomChannels}, which must have run on `conn`). ssh2's `openChannel` (client.js
 * and server.js) throws for types it does not know, so the open is sent here: the pending
 * callback goes into utils.js `ChannelManager.add(fn)` (with `fn.type`), the message is built
 * like Protocol.js's (`_packetRW.write`, utils.js `sendPacket`) with ssh2's window and packet
 * size. Rejects with ssh2's error (`reason`, description) on CHANNEL_OPEN_FAILURE, with
 * "No response from server" when the connection ends first.
 */
export function openCustomChannel(conn: Ssh2Connection, type: string): Promise<Ssh2Channel> {
  if (!customInstalled.has(conn)) {
    throw new Ssh2AdaptationError("installCustomChannels was not called on this connection");
  }
  return new Promise((resolve, reject) => {
    const pending = Object.assign((err: Error | undefined, channel?: Ssh2Channel) => {
      if (err) reject(err);
      else resolve(channel!);
    }, { type });
    pendingOpens.add(pending);
    const id = conn._chanMgr.add(pending);
    if (id === -1) {
      reject(new Error("no free channel ids"));
      return;
    }
    try {
      sendPayload(
        conn._protocol,
        new SshWriter().byte(SSH_MSG_CHANNEL_OPEN).string(type).uint32(id).uint32(CHANNEL_WINDOW)
          .uint32(CHANNEL_PACKET_SIZE).bytes(),
      );
    } catch (err) {
      conn._chanMgr.remove(id);
      reject(err);
    }
  });
}

/**
 * A9: answers the peer's CHANNEL_OPEN for types `claims` accepts (once `ready`), via `onOpen`;
 * `refuse` (client side) replaces the code and description of the failures ssh2 sends for
 * everything else. Wraps the connection's CHANNEL_OPEN handler: client.js (`onCHANNEL_OPEN`)
 * rejects unknown types with an empty description and server.js accepts only session,
 * direct-tcpip and direct-streamlocal; ssh2's handler still answers every type not claimed.
 * Accepting does what those handlers do for a channel: reserve the id
 * (`ChannelManager.add()`), create the Channel (see {@link installCustomChannels}), register
 * it (`ChannelManager.update`) and send Protocol.js `channelOpenConfirm` with ssh2's window and
 * packet size. handlers.misc.js hands unknown types no type-specific data (`data: {}`), so
 * custom opens carry none.
 */
export function installChannelOpens(conn: Ssh2Connection, hooks: {
  ready(): boolean;
  claims(type: string): boolean;
  onOpen(open: RawChannelOpen): void;
  refuse?(type: string, code: number): { code: number; description: string } | undefined;
}): void {
  const handlers = requireHandlers(conn, ["CHANNEL_OPEN"]);
  const proto = conn._protocol;
  if (typeof proto.channelOpenConfirm !== "function") {
    throw new Ssh2AdaptationError("Protocol has no channelOpenConfirm");
  }
  const slot = hooks.refuse === undefined ? undefined : channelOpenFailSlot(proto);
  const original = handlers.CHANNEL_OPEN as (
    p: unknown,
    info: { type: string; sender: number; window: number; packetSize: number },
  ) => unknown;
  handlers.CHANNEL_OPEN = ((p, info) => {
    if (!hooks.ready() || !hooks.claims(info.type)) {
      if (slot === undefined) return original(p, info);
      slot(() => original(p, info), (code) => hooks.refuse!(info.type, code));
      return;
    }
    if (!(info.packetSize >= 1)) {
      proto.channelOpenFail(info.sender, 2, "invalid maximum packet size");
      return;
    }
    const localId = conn._chanMgr.add();
    if (localId === -1) {
      proto.channelOpenFail(info.sender, 4, "no free channel ids");
      return;
    }
    let replied = false;
    hooks.onOpen({
      type: info.type,
      accept: () => {
        if (replied) throw new Ssh2AdaptationError("channel open answered twice");
        // ChannelManager.cleanup (connection gone) drops the reservation (`true`).
        if (conn._chanMgr.get(localId) !== true) throw new Error("the connection is closed");
        replied = true;
        const channel = newCustomChannel(conn, info.type, localId, {
          id: info.sender,
          window: info.window,
          packetSize: info.packetSize,
        });
        conn._chanMgr.update(localId, channel);
        proto.channelOpenConfirm(info.sender, localId, CHANNEL_WINDOW, CHANNEL_PACKET_SIZE);
        return channel;
      },
      reject: (code, description) => {
        if (replied) return;
        replied = true;
        if (conn._chanMgr.get(localId) !== true) return;
        conn._chanMgr.remove(localId);
        proto.channelOpenFail(info.sender, code, description);
      },
    });
  }) as typeof original;
}

/**
 * A9: hands requests on a custom channel to `sink`, first those that arrived before (kept from
 * the moment the channel was created, so none is lost between the open and the caller).
 */
export function setChannelRequestSink(
  channel: Ssh2Channel,
  sink: (request: RawChannelRequest) => void,
): void {
  const state = customChannels.get(channel);
  if (state === undefined) throw new Ssh2AdaptationError("not a custom channel");
  state.sink = sink;
  for (const request of state.inbox.splice(0)) sink(request);
}

/**
 * A9: sends a channel request on a custom channel; with `wantReply` resolves true on
 * CHANNEL_SUCCESS, false on CHANNEL_FAILURE or when the channel closes first (utils.js
 * `onCHANNEL_CLOSE` fails every `channel._callbacks` entry), without it true once sent.
 */
export function sendChannelRequest(
  channel: Ssh2Channel,
  name: string,
  data: Uint8Array,
  wantReply: boolean,
): Promise<boolean> {
  const ch = channel as Ssh2ChannelInternals;
  if (!Array.isArray(ch._callbacks)) throw new Ssh2AdaptationError("Channel has no _callbacks");
  const state = ch.outgoing.state;
  if (state !== "open" && state !== "eof") return Promise.resolve(false);
  const payload = new SshWriter().byte(SSH_MSG_CHANNEL_REQUEST).uint32(ch.outgoing.id)
    .string(name).boolean(wantReply).raw(data).bytes();
  return new Promise((resolve) => {
    const callback = (failed: boolean) => resolve(!failed);
    if (wantReply) ch._callbacks.push(callback);
    try {
      sendPayload(ch._client._protocol, payload);
    } catch {
      const at = ch._callbacks.indexOf(callback);
      if (at !== -1) ch._callbacks.splice(at, 1);
      resolve(false);
      return;
    }
    if (!wantReply) resolve(true);
  });
}

/**
 * A9: sends extended data (stderr) on a custom channel: what the window allows at once, the
 * rest after CHANNEL_WINDOW_ADJUST (see {@link installCustomChannels}) while the channel is
 * open for writing. Uses Protocol.js `channelExtData` through Channel.js `_client._protocol`.
 */
export function writeChannelStderr(channel: Ssh2Channel, data: Uint8Array): void {
  const state = customChannels.get(channel);
  if (state === undefined) throw new Ssh2AdaptationError("not a custom channel");
  const ch = channel as Ssh2ChannelInternals;
  if (ch.outgoing.state !== "open" || data.length === 0) return;
  state.stderr.push(Uint8Array.from(data));
  flushStderr(ch, state);
}

/**
 * A9 (server): lets a server send global requests with want-reply. server.js has no
 * REQUEST_SUCCESS/REQUEST_FAILURE handlers, so replies were dropped, and its keepalive timer
 * (`Client` constructor, `kaTimer`) sends keepalive@openssh.com with want-reply through
 * Protocol.js `ping()` without recording anything (see its "XXX" comment about reply order).
 * This installs both handlers over a reply queue (RFC 4254 §4: replies come in request order)
 * and wraps the connection's `ping` so each probe holds its place in that queue; pending
 * requests fail when the connection closes.
 */
export function installGlobalReplies(client: Ssh2IncomingClient): void {
  const handlers = client._protocol?._handlers as MessageHandlers | undefined;
  const proto = client._protocol;
  if (
    handlers === undefined || handlers.REQUEST_SUCCESS !== undefined ||
    handlers.REQUEST_FAILURE !== undefined || typeof proto.ping !== "function"
  ) {
    throw new Ssh2AdaptationError(
      "server connection has REQUEST_SUCCESS/REQUEST_FAILURE handlers or no Protocol.ping",
    );
  }
  const queue: GlobalReplyCallback[] = [];
  serverReplyQueues.set(client, queue);
  handlers.REQUEST_SUCCESS = ((_p: unknown, data: Uint8Array | null) => {
    queue.shift()?.(false, data);
  }) as Handler;
  handlers.REQUEST_FAILURE = (() => {
    queue.shift()?.(true);
  }) as Handler;
  const ping = proto.ping;
  proto.ping = function (this: Ssh2Protocol) {
    queue.push(() => {}); // the keepalive's reply: only its arrival matters (onPacket)
    return ping.call(this);
  };
  client.on("close", () => {
    const err = new Error("No response from server");
    for (const callback of queue.splice(0)) callback(err);
  });
}

/**
 * A9: sends a global request; with `wantReply` resolves on REQUEST_SUCCESS (with its data) or
 * REQUEST_FAILURE and rejects when the connection closes first. Client side the reply callback
 * joins client.js's `Client._callbacks` (shared with its keepalive, A7 and forwardIn, so replies
 * stay matched in order; on close client.js calls each with an Error); server side the queue
 * of {@link installGlobalReplies}.
 */
const SSH_MSG_DISCONNECT = 1;

/** SSH_MSG_DISCONNECT reason SSH_DISCONNECT_BY_APPLICATION (RFC 4253 §11.1). */
export const SSH_DISCONNECT_BY_APPLICATION = 11;

/**
 * Sends SSH_MSG_DISCONNECT with a description (ssh2's own `end()` sends an empty one), which the
 * stock client prints ("Received disconnect from …: 11: node is shutting down"). The caller ends
 * the socket afterwards.
 */
export function sendDisconnect(conn: Ssh2Connection, description: string): void {
  const payload = new SshWriter().byte(SSH_MSG_DISCONNECT).uint32(SSH_DISCONNECT_BY_APPLICATION)
    .string(description).string("").bytes();
  sendPayload(conn._protocol, payload);
}

export function sendGlobalRequest(
  conn: Ssh2Connection,
  name: string,
  data: Uint8Array,
  wantReply: boolean,
): Promise<{ ok: boolean; data: Uint8Array }> {
  const queue = serverReplyQueues.get(conn) ?? (conn as Ssh2Client)._callbacks;
  if (!Array.isArray(queue)) {
    throw new Ssh2AdaptationError("connection has no global request reply queue");
  }
  const payload = new SshWriter().byte(SSH_MSG_GLOBAL_REQUEST).string(name).boolean(wantReply)
    .raw(data).bytes();
  return new Promise((resolve, reject) => {
    const callback: GlobalReplyCallback = (failed, reply) => {
      if (failed instanceof Error) reject(failed);
      else {
        resolve({ ok: !failed, data: reply ? Uint8Array.from(reply) : new Uint8Array(0) });
      }
    };
    if (wantReply) (queue as GlobalReplyCallback[]).push(callback);
    try {
      sendPayload(conn._protocol, payload);
    } catch (err) {
      const at = (queue as GlobalReplyCallback[]).indexOf(callback);
      if (at !== -1) queue.splice(at, 1);
      reject(err);
      return;
    }
    if (!wantReply) resolve({ ok: true, data: new Uint8Array(0) });
  });
}

/**
 * A9 (client): hands the server's global requests to `onRequest` once `ready`, except
 * hostkeys-00@openssh.com (and anything before login), which client.js's GLOBAL_REQUEST handler
 * keeps answering. Replies leave in request order (RFC 4254 §4) whatever order they are given
 * in: each request that wants one holds a place in a queue, and client.js's own replies are
 * captured into their place by swapping the connection's Protocol.js `requestSuccess` /
 * `requestFailure` during its synchronous handling.
 */
export function installGlobalRequests(client: Ssh2Client, hooks: {
  ready(): boolean;
  onRequest(request: RawGlobalRequest): void;
}): void {
  const handlers = requireHandlers(client, ["GLOBAL_REQUEST"]);
  const proto = client._protocol;
  const success = proto.requestSuccess;
  const failure = proto.requestFailure;
  if (typeof success !== "function" || typeof failure !== "function") {
    throw new Ssh2AdaptationError("Protocol has no requestSuccess/requestFailure");
  }
  const places: Array<{ send: (() => void) | undefined }> = [];
  const flush = () => {
    while (places.length > 0 && places[0]!.send !== undefined) {
      const send = places.shift()!.send!;
      try {
        send();
      } catch {
        // the connection is gone
      }
    }
  };
  const original = handlers.GLOBAL_REQUEST as (
    p: unknown,
    name: string,
    wantReply: boolean,
    data: unknown,
  ) => unknown;
  handlers.GLOBAL_REQUEST = ((p, name, wantReply, data) => {
    const place = wantReply ? { send: undefined as (() => void) | undefined } : undefined;
    if (place !== undefined) places.push(place);
    const fill = (send: () => void) => {
      if (place === undefined || place.send !== undefined) return;
      place.send = send;
      flush();
    };
    const ok = (reply?: Uint8Array | null) =>
      fill(() => success.call(proto, reply && reply.length > 0 ? Buffer.from(reply) : undefined));
    const fail = () => fill(() => failure.call(proto));
    if (name === "hostkeys-00@openssh.com" || !hooks.ready()) {
      const saved = [
        Object.getOwnPropertyDescriptor(proto, "requestSuccess"),
        Object.getOwnPropertyDescriptor(proto, "requestFailure"),
      ] as const;
      proto.requestSuccess = ok;
      proto.requestFailure = fail;
      try {
        original(p, name, wantReply, data);
      } finally {
        restoreProperty(proto, "requestSuccess", saved[0]);
        restoreProperty(proto, "requestFailure", saved[1]);
        fail(); // no-op when client.js answered
      }
      return;
    }
    hooks.onRequest({
      name,
      wantReply: wantReply === true,
      data: requestData(p, (r) => {
        r.byte();
        r.string();
        r.boolean();
      }, data),
      reply: (accepted, reply) => accepted ? ok(reply) : fail(),
    });
  }) as typeof original;
}

function restoreProperty(
  target: object,
  key: string,
  descriptor: PropertyDescriptor | undefined,
): void {
  if (descriptor === undefined) delete (target as Record<string, unknown>)[key];
  else Object.defineProperty(target, key, descriptor);
}
