/**
 * What the server and the client share for custom channels and requests (adaptation A9 in
 * _ssh2.ts does the wire part): the {@link SshChannel} made from an ssh2 Channel, ordered
 * delivery of incoming requests to handlers, offering a channel open to a handler, and the
 * error a refused open becomes.
 */
import { Duplex } from "node:stream";
import { AccessDeniedError, BadParameterError, ConnectionProblemError } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  CHANNEL_OPEN_FAILURE_CODES,
  closeAfterStderr,
  openCustomChannel,
  type RawChannelOpen,
  type RawChannelRequest,
  type RawGlobalRequest,
  sendChannelRequest,
  sendGlobalRequest,
  setChannelRequestSink,
  Ssh2AdaptationError,
  type Ssh2Channel,
  type Ssh2Connection,
  writeChannelStderr,
} from "./_ssh2.ts";
import type {
  ChannelOpenFailureReason,
  ChannelRejection,
  IncomingChannelOpen,
  IncomingChannelRequest,
  IncomingGlobalRequest,
  SshChannel,
} from "./channel.ts";

/** Requests kept waiting for a handler, per channel (and for the client's global requests). */
export const MAX_WAITING_REQUESTS = 64;

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/** Standard phrases for RFC 4254 §5.1 reason codes. */
const REASON_TEXT: Record<number, string> = {
  1: "administratively prohibited",
  2: "connect failed",
  3: "unknown channel type",
  4: "resource shortage",
};

/**
 * Throws BadParameterError unless `name` can name a channel type or request: US-ASCII
 * printable, no spaces, 1 to 64 characters (RFC 4250 §4.6.1).
 */
export function checkSshName(what: string, name: unknown): asserts name is string {
  if (typeof name !== "string" || !/^[\x21-\x7e]{1,64}$/.test(name)) {
    throw new BadParameterError(
      `Cannot ${what}: the name must be 1 to 64 printable US-ASCII characters without spaces`,
    );
  }
}

/** Throws BadParameterError unless `data` is a Uint8Array (or undefined). */
export function checkBytes(what: string, data: unknown): asserts data is Uint8Array | undefined {
  if (data !== undefined && !(data instanceof Uint8Array)) {
    throw new BadParameterError(`Cannot ${what}: the data must be a Uint8Array`);
  }
}

/** Calls a handler and runs `after` once it returned or its promise settled. */
export function runHandler(
  call: () => unknown,
  after: () => void,
  log: Logger,
  what: string,
): void {
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    log.error("SSH {what} handler failed: {error}", { what, error: errText(err) });
    after();
    return;
  }
  if (result instanceof Promise) {
    result.catch((err) => {
      log.error("SSH {what} handler failed: {error}", { what, error: errText(err) });
    }).finally(after);
  } else {
    after();
  }
}

/**
 * Delivers requests to a handler one at a time, in arrival order: the next is handed over
 * once the current one is answered or its handler returned (its promise settled), so replies
 * leave in request order. At most {@link MAX_WAITING_REQUESTS} wait; more are refused.
 */
export class RequestQueue<R extends { readonly name: string; reject(): void }> {
  #waiting: Array<(answered: () => void) => R> = [];
  #handler: ((request: R) => unknown) | undefined;
  #busy = false;
  #log: Logger;
  #what: string;

  constructor(log: Logger, what: string, handler?: (request: R) => unknown) {
    this.#log = log;
    this.#what = what;
    this.#handler = handler;
  }

  /** Queues a request; `make(answered)` builds it, and its replies must call `answered`. */
  push(make: (answered: () => void) => R): void {
    if (this.#waiting.length >= MAX_WAITING_REQUESTS) {
      make(() => {}).reject();
      return;
    }
    this.#waiting.push(make);
    this.#pump();
  }

  setHandler(handler: (request: R) => unknown): void {
    this.#handler = handler;
    this.#pump();
  }

  #pump(): void {
    const handler = this.#handler;
    if (this.#busy || handler === undefined) return;
    const make = this.#waiting.shift();
    if (make === undefined) return;
    this.#busy = true;
    let advanced = false;
    const advance = () => {
      if (advanced) return;
      advanced = true;
      // Deferred so that a handler replying synchronously never runs the next one inside it.
      queueMicrotask(() => {
        this.#busy = false;
        this.#pump();
      });
    };
    const request = make(advance);
    runHandler(
      () => handler(request),
      () => {
        request.reject();
        advance();
      },
      this.#log,
      `${this.#what} ${JSON.stringify(request.name)}`,
    );
  }
}

/** Builds an incoming channel request whose replies go to `raw` once, then `answered`. */
function channelRequest(raw: RawChannelRequest, answered: () => void): IncomingChannelRequest {
  let replied = false;
  const reply = (ok: boolean) => {
    if (replied) return;
    replied = true;
    raw.reply(ok);
    answered();
  };
  return {
    name: raw.name,
    wantReply: raw.wantReply,
    data: raw.data,
    accept: () => reply(true),
    reject: () => reply(false),
  };
}

/** Builds an incoming global request whose replies go to `raw` once, then `answered`. */
export function globalRequest(raw: RawGlobalRequest, answered: () => void): IncomingGlobalRequest {
  let replied = false;
  return {
    name: raw.name,
    wantReply: raw.wantReply,
    data: raw.data,
    accept: (replyData?: Uint8Array) => {
      if (replied) return;
      checkBytes(`accept global request ${JSON.stringify(raw.name)}`, replyData);
      replied = true;
      raw.reply(true, replyData);
      answered();
    },
    reject: () => {
      if (replied) return;
      replied = true;
      raw.reply(false);
      answered();
    },
  };
}

/** Turns an ssh2 Channel of a custom type (A9) into an {@link SshChannel}. */
export function makeSshChannel(raw: Ssh2Channel, log: Logger): SshChannel {
  const type = String((raw as unknown as { type?: unknown }).type ?? "");
  const requests = new RequestQueue<IncomingChannelRequest>(log, `${type} channel request`);
  setChannelRequestSink(raw, (r) => requests.push((answered) => channelRequest(r, answered)));
  Object.defineProperties(raw, {
    channelType: { value: type, enumerable: true },
    writeStderr: {
      value: (data: string | Uint8Array) => {
        if (typeof data !== "string") checkBytes("write stderr", data);
        writeChannelStderr(raw, typeof data === "string" ? encoder.encode(data) : data);
      },
    },
    request: {
      value: (name: string, data?: Uint8Array, options: { wantReply?: boolean } = {}) => {
        try {
          checkSshName("send channel request", name);
          checkBytes(`send channel request ${JSON.stringify(name)}`, data);
        } catch (err) {
          return Promise.reject(err);
        }
        return sendChannelRequest(raw, name, data ?? EMPTY, options.wantReply ?? true);
      },
    },
    onRequest: {
      value: (handler: (request: IncomingChannelRequest) => unknown) => {
        if (typeof handler !== "function") {
          throw new BadParameterError("Cannot handle channel requests: the handler is missing");
        }
        requests.setHandler(handler);
      },
    },
  });
  // ssh2's Channel.destroy() only ends and closes (Channel.js), so `destroyed` would stay
  // false forever; make it a Duplex's: CLOSE now, `destroyed` true at once, 'close' when the
  // peer answered. A channel that closed any other way counts as destroyed too.
  Object.defineProperty(raw, "destroy", {
    configurable: true,
    writable: true,
    value: function (this: Duplex, err?: Error | null) {
      if (this.destroyed) return this;
      raw.close();
      return Duplex.prototype.destroy.call(this, err ?? undefined);
    },
  });
  raw.once("close", () => {
    const stream = raw as unknown as Duplex;
    if (!stream.destroyed) Duplex.prototype.destroy.call(stream);
  });
  // Both directions done (our EOF sent, the peer's read): close, as a socket would.
  let finished = false;
  let ended = false;
  raw.once("finish", () => {
    finished = true;
    if (ended) closeAfterStderr(raw);
  });
  raw.once("end", () => {
    ended = true;
    if (finished) closeAfterStderr(raw);
  });
  return raw as unknown as SshChannel;
}

/**
 * Offers a peer's channel open to `handler` (with `extra` fields, e.g. the connection). An
 * open the handler leaves unanswered is refused with "<type> channels are not permitted".
 */
export function offerChannelOpen<E extends object>(
  raw: RawChannelOpen,
  handler: (open: IncomingChannelOpen & E) => unknown,
  extra: E,
  log: Logger,
): void {
  let replied = false;
  const open = {
    ...extra,
    type: raw.type,
    accept: (): SshChannel => {
      if (replied) {
        throw new BadParameterError(`Cannot accept ${raw.type} channel: already answered`);
      }
      replied = true;
      try {
        return makeSshChannel(raw.accept(), log);
      } catch (err) {
        throw new ConnectionProblemError(`Cannot accept ${raw.type} channel: ${errText(err)}`);
      }
    },
    reject: (rejection?: ChannelRejection) => {
      if (replied) return;
      replied = true;
      const { code, description } = rejectionCode(
        rejection,
        `${raw.type} channels are not permitted`,
      );
      raw.reject(code, description);
    },
  } as IncomingChannelOpen & E;
  runHandler(() => handler(open), () => open.reject(), log, `${raw.type} channel`);
}

/** Reason code and text for CHANNEL_OPEN_FAILURE. */
export function rejectionCode(
  rejection: ChannelRejection | undefined,
  fallback: string,
): { code: number; description: string } {
  const reason: ChannelOpenFailureReason = rejection?.reason ?? "administratively-prohibited";
  return {
    code: CHANNEL_OPEN_FAILURE_CODES[reason] ?? 1,
    description: rejection?.message ?? fallback,
  };
}

/**
 * The error a failed channel open becomes: AccessDeniedError when the peer refused it as
 * administratively prohibited, else ConnectionProblemError; both carry the peer's description.
 */
export function openError(what: string, err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err);
  // ssh2: "(SSH) Channel open failure: <description>"; "Unable to exec" etc.
  const failure = /^\(SSH\) Channel open failure: ?/.test(msg);
  const reason = (err as { reason?: number } | null)?.reason;
  let text = msg.replace(/^\(SSH\) Channel open failure: ?/, "");
  if (text === "" && typeof reason === "number") text = REASON_TEXT[reason] ?? "";
  if (!failure && msg === "No response from server") text = "the connection closed";
  if (reason === 1 || /^Unable to /.test(msg)) {
    return new AccessDeniedError(`${what}: ${text || "administratively prohibited"}`);
  }
  return new ConnectionProblemError(`${what}: ${text || "the peer refused it"}`);
}

export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Opens a channel of a custom type on a live connection (client or server side);
 * `live` returns the ssh2 connection or throws when it is gone.
 */
export async function openChannelOn(
  live: (what: string) => Ssh2Connection,
  type: string,
  log: Logger,
): Promise<SshChannel> {
  checkSshName("open channel", type);
  const what = `Cannot open ${type} channel`;
  const conn = live(what);
  let raw: Ssh2Channel;
  try {
    raw = await openCustomChannel(conn, type);
  } catch (err) {
    throw openError(what, err);
  }
  return makeSshChannel(raw, log);
}

/** Sends a global request on a live connection; see SshClient.globalRequest. */
export async function globalRequestOn(
  live: (what: string) => Ssh2Connection,
  name: string,
  data: Uint8Array | undefined,
  options: { wantReply?: boolean },
): Promise<{ ok: boolean; data: Uint8Array }> {
  checkSshName("send global request", name);
  const what = `Cannot send global request ${JSON.stringify(name)}`;
  checkBytes(what.slice("Cannot ".length), data);
  const conn = live(what);
  try {
    return await sendGlobalRequest(
      conn,
      name,
      data ?? new Uint8Array(0),
      options.wantReply ?? true,
    );
  } catch (err) {
    if (err instanceof Ssh2AdaptationError) throw err;
    throw new ConnectionProblemError(`${what}: the connection closed`, { cause: err });
  }
}
