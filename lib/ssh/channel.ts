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
