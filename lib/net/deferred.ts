/**
 * A stream that exists before its connection does. node:http(s) wants `createConnection` to
 * return a socket synchronously, while `dialTcp` (a proxy's CONNECT, a tunnel) needs time:
 * `tls.connect({ ...options, socket: deferredDuplex(() => dialTcp(host, port)) })` bridges the
 * two.
 *
 * Measured on Deno 2.9.6 (deferred_test.ts): node:https accepts such a TLS socket both from a
 * per-request `createConnection` option (only when no `agent` is given: with an agent, even
 * `agent: false`, node:https ignores the option, as Node does) and from a keep-alive
 * `https.Agent` subclass overriding `createConnection(options)`, which reuses the connection
 * across requests. A dial failure reaches the request as the TLS socket's error, unchanged, and
 * the request `timeout` still fires.
 */
import { Duplex } from "node:stream";
import type { Buffer } from "node:buffer";

/** What the stream may forward to the real one (net.Socket methods node:http calls). */
interface SocketLike extends Duplex {
  setNoDelay?(noDelay?: boolean): unknown;
  setKeepAlive?(enable?: boolean, initialDelay?: number): unknown;
  ref?(): unknown;
  unref?(): unknown;
}

/**
 * Returns a Duplex at once that buffers writes until `open()` resolves, then pipes both ways
 * to the stream it resolved with: data, end, errors and close travel both ways. When `open()`
 * fails the Duplex is destroyed with that error; when the Duplex is destroyed first, the stream
 * `open()` later yields is destroyed.
 */
export function deferredDuplex(open: () => Promise<Duplex>): Duplex {
  return new DeferredDuplex(open);
}

class DeferredDuplex extends Duplex {
  #inner: SocketLike | undefined;
  #pendingWrite: { chunk: Buffer; callback: (err?: Error | null) => void } | undefined;
  #pendingFinal: ((err?: Error | null) => void) | undefined;
  #innerEnded = false;
  #noDelay: boolean | undefined;
  #keepAlive: [boolean | undefined, number | undefined] | undefined;
  #unref = false;

  constructor(open: () => Promise<Duplex>) {
    super({ allowHalfOpen: false });
    let opening: Promise<Duplex>;
    try {
      opening = open();
    } catch (err) {
      opening = Promise.reject(err);
    }
    opening.then((s) => this.#attach(s), (err) => {
      this.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  }

  #attach(s: SocketLike): void {
    if (this.destroyed) {
      s.destroy();
      return;
    }
    this.#inner = s;
    if (this.#noDelay !== undefined) s.setNoDelay?.(this.#noDelay);
    if (this.#keepAlive !== undefined) s.setKeepAlive?.(...this.#keepAlive);
    if (this.#unref) s.unref?.();
    s.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) s.pause();
    });
    s.on("end", () => {
      this.#innerEnded = true;
      this.push(null);
    });
    s.on("error", (err: Error) => this.destroy(err));
    s.on("close", () => {
      // An orderly end already travels as 'end'; a close without one is an abort.
      if (!this.#innerEnded) this.destroy();
    });
    s.resume(); // a stream handed over paused (dialTcp after CONNECT) must flow now
    const pending = this.#pendingWrite;
    this.#pendingWrite = undefined;
    if (pending !== undefined) this.#writeInner(pending.chunk, pending.callback);
    const final = this.#pendingFinal;
    this.#pendingFinal = undefined;
    if (final !== undefined) this._final(final);
  }

  #writeInner(chunk: Buffer, callback: (err?: Error | null) => void): void {
    const inner = this.#inner!;
    if (inner.write(chunk)) callback();
    else inner.once("drain", () => callback());
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (err?: Error | null) => void,
  ): void {
    if (this.#inner === undefined) this.#pendingWrite = { chunk, callback };
    else this.#writeInner(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    const inner = this.#inner;
    if (inner === undefined) {
      this.#pendingFinal = callback;
      return;
    }
    if (inner.destroyed || inner.writableEnded) return callback();
    inner.end(() => callback());
  }

  override _read(): void {
    this.#inner?.resume();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#inner?.destroy();
    this.#pendingWrite = undefined;
    this.#pendingFinal = undefined;
    callback(err);
  }

  /** Forwarded to the real stream (now or once it exists). */
  setNoDelay(noDelay = true): this {
    this.#noDelay = noDelay;
    this.#inner?.setNoDelay?.(noDelay);
    return this;
  }

  /** Forwarded to the real stream (now or once it exists). */
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#keepAlive = [enable, initialDelay];
    this.#inner?.setKeepAlive?.(enable, initialDelay);
    return this;
  }

  /** Forwarded to the real stream. */
  ref(): this {
    this.#unref = false;
    this.#inner?.ref?.();
    return this;
  }

  /** Forwarded to the real stream (now or once it exists). */
  unref(): this {
    this.#unref = true;
    this.#inner?.unref?.();
    return this;
  }
}
