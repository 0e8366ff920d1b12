/**
 * Channel types shared by the SSH server and client (RFC 4254). Channels are node Duplex
 * streams: `write()` returns false when the SSH window and local buffer are full and 'drain'
 * follows, `end()` sends EOF (and, server side, CHANNEL_CLOSE). As with any node Duplex,
 * `for await` over a channel destroys it (closing the SSH channel) when the loop ends; use
 * `channel.iterator({ destroyOnReturn: false })` or 'data'/'end' events to keep writing after
 * reading the peer's EOF.
 */
import type { Duplex, Readable, Writable } from "node:stream";

/** RFC 4254 §5.1 reason codes for refusing a channel open, as names. */
export type ChannelOpenFailureReason =
  | "administratively-prohibited"
  | "connect-failed"
  | "unknown-channel-type"
  | "resource-shortage";

/** Why a channel open is refused; the client shows `message` (OpenSSH: "open failed: …"). */
export interface ChannelRejection {
  /** @default {"administratively-prohibited"} */
  reason?: ChannelOpenFailureReason;
  /** Text for the user, e.g. "port forwarding is not permitted by your roles". */
  message?: string;
}

/** A server-side channel: stdout is the Duplex itself, stderr a separate Writable. */
export interface ServerChannel extends Duplex {
  /** Extended data (RFC 4254 §5.2, SSH_EXTENDED_DATA_STDERR). */
  readonly stderr: Writable;
  /** Sends exit-status (RFC 4254 §6.10). Call before `end()`. */
  exit(code: number): void;
  /**
   * Sends exit-signal (RFC 4254 §6.10); `name` without "SIG" ("TERM", "KILL", …). Call before
   * `end()`.
   */
  exitSignal(name: string, options?: { coreDumped?: boolean; message?: string }): void;
  /** Sends CHANNEL_CLOSE without waiting for buffered data. */
  close(): void;
}

/** How a remote command ended (RFC 4254 §6.10). */
export type ExitStatus =
  | { kind: "code"; code: number }
  | { kind: "signal"; signal: string; coreDumped: boolean; message: string }
  | { kind: "unknown" };

/** A client-side channel: stdin/stdout is the Duplex itself, stderr a separate Readable. */
export interface ClientChannel extends Duplex {
  /** Extended data from the server (stderr). */
  readonly stderr: Readable;
  /**
   * Resolves when the channel closes, with the exit status or signal the server sent, or
   * `{kind: "unknown"}` when it sent none.
   */
  readonly exitStatus: Promise<ExitStatus>;
  /** Sends CHANNEL_CLOSE. */
  close(): void;
}

/** Terminal size in characters and (optionally) pixels (RFC 4254 §6.2, §6.7). */
export interface WindowSize {
  cols: number;
  rows: number;
  /** @default {0} */
  widthPx?: number;
  /** @default {0} */
  heightPx?: number;
}

/** A pty-req (RFC 4254 §6.2). */
export interface PtyOptions extends WindowSize {
  /** TERM value. @default {"xterm"} */
  term?: string;
  /** Terminal modes by RFC 4254 §8 name (e.g. `{ ECHO: 1 }`). */
  modes?: Record<string, number>;
}

/**
 * Joins a channel and a socket both ways (port forwarding, proxying to a node): bytes flow until
 * either side closes; the socket closing ends the channel (EOF, then close), the channel closing
 * or an error on either side destroys both.
 */
export function spliceChannel(channel: Duplex, socket: Duplex): void {
  socket.pipe(channel);
  channel.pipe(socket);
  const done = () => {
    socket.destroy();
    channel.destroy();
  };
  socket.on("error", done);
  channel.on("error", done);
  socket.on("close", () => channel.end());
  channel.on("close", () => socket.destroy());
}

/**
 * A channel of a custom type (e.g. Teleport's reverse tunnel channels), with channel requests
 * both ways. It is a node Duplex (stdin/stdout is the stream itself) with ssh2's flow control:
 * `write()` returns false once the peer's window and the local buffer are full, and reading
 * slowly holds the peer back. `end()` sends EOF; the channel closes by itself once both sides
 * sent EOF and the peer's EOF was read, or on `close()` / `destroy()`. `destroyed` is true
 * after `destroy()` and once the channel closed; 'close' follows the peer's CHANNEL_CLOSE (or
 * the end of the connection).
 */
export interface SshChannel extends Duplex {
  /** The channel type named in the open, e.g. "teleport-transport". */
  readonly channelType: string;
  /** Extended data (stderr) the peer sent. */
  readonly stderr: Readable;
  /**
   * Sends extended data (stderr) to the peer: what its window allows at once, the rest as the
   * window opens; `end()` sends EOF only after it. Ignored once EOF was sent.
   */
  writeStderr(data: string | Uint8Array): void;
  /**
   * Sends a channel request (RFC 4254 §5.4). With wantReply (default true) resolves true on
   * CHANNEL_SUCCESS, false on CHANNEL_FAILURE or when the channel closes first; without,
   * resolves true once queued.
   */
  request(name: string, data?: Uint8Array, options?: { wantReply?: boolean }): Promise<boolean>;
  /**
   * Installs the handler of the peer's requests on this channel (a later call replaces it).
   * Requests that arrive before a handler exists are queued (at most 64; more are refused)
   * and delivered to it in order. The handler must call accept or reject (no-ops when no reply
   * is wanted); if it throws or returns without replying, the request is refused. Requests
   * are handled one at a time: the next is delivered once this one is answered or its handler
   * returned (its promise settled), so replies keep the order RFC 4254 §5.4 requires.
   */
  onRequest(handler: (request: IncomingChannelRequest) => unknown): void;
  /** Sends CHANNEL_CLOSE. */
  close(): void;
}

/** A channel request from the peer on an {@link SshChannel}. */
export interface IncomingChannelRequest {
  readonly name: string;
  readonly wantReply: boolean;
  /** The request-specific bytes, as sent. */
  readonly data: Uint8Array;
  /** Replies CHANNEL_SUCCESS (when a reply is wanted); later calls do nothing. */
  accept(): void;
  /** Replies CHANNEL_FAILURE (when a reply is wanted); later calls do nothing. */
  reject(): void;
}

/**
 * The peer asks to open a channel of a custom type. Reply before the handler returns (or its
 * promise settles), else the open is refused.
 */
export interface IncomingChannelOpen {
  readonly type: string;
  /** Confirms the open; throws when already answered or the connection is gone. */
  accept(): SshChannel;
  /** Refuses the open with a reason code and a description the opener sees. */
  reject(rejection?: ChannelRejection): void;
}

/** A global request from the server (RFC 4254 §4), as the client sees it. */
export interface IncomingGlobalRequest {
  readonly name: string;
  readonly wantReply: boolean;
  /** The request-specific bytes, as sent. */
  readonly data: Uint8Array;
  /** Replies REQUEST_SUCCESS with `replyData` (when a reply is wanted); later calls do nothing. */
  accept(replyData?: Uint8Array): void;
  /** Replies REQUEST_FAILURE (when a reply is wanted); later calls do nothing. */
  reject(): void;
}
