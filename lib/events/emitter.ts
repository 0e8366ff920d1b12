/**
 * {@linkcode BufferedEmitter}: sends audit events to a remote audit log (the auth service) in
 * order and in batches, without ever making the caller wait on the network.
 */

import type { Clock } from "../clock/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Emitter } from "./audit_log.ts";
import { type AuditEvent, fitAuditEvent, MAX_EVENT_BYTES } from "./event.ts";

/** Options of {@linkcode BufferedEmitter}. */
export interface BufferedEmitterOptions {
  /** Delivers one batch; rejects when it did not arrive (the batch is retried). */
  send: (events: AuditEvent[], signal: AbortSignal) => Promise<void>;
  /** Drives the backoff sleeps. */
  clock: Clock;
  /** Warnings (failures, drops) go here. */
  logger: Logger;
  /** Most events waiting (not counting one batch in flight); the oldest go first. Default 10000. */
  maxQueue?: number;
  /** Most events per `send`. Default 100. */
  batchSize?: number;
  /**
   * Most bytes of event JSON per `send` (a batch holds at least one event). The auth API
   * takes request bodies of up to 1 MiB.
   * @default {524288}
   */
  maxBatchBytes?: number;
  /** First retry delay. Default 1000 ms. */
  minBackoffMs?: number;
  /** Longest retry delay. Default 30000 ms. */
  maxBackoffMs?: number;
  /** Random number in [0, 1) for jitter; default Math.random. */
  random?: () => number;
  /** How long `close()` waits for a last delivery. Default 5000 ms. */
  closeTimeoutMs?: number;
}

type Waiter = (delivered: boolean) => void;

/**
 * Queues events and sends them in order, `batchSize` at a time. A failed batch stays at the
 * head of the queue and is retried after a backoff that doubles from `minBackoffMs` to
 * `maxBackoffMs`, each delay jittered to between half and all of its value. When the queue is
 * full the oldest events are dropped: one warning when dropping starts, one with the count
 * when delivery recovers (or at close).
 */
export class BufferedEmitter implements Emitter {
  readonly #send: BufferedEmitterOptions["send"];
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #maxQueue: number;
  readonly #batchSize: number;
  readonly #maxBatchBytes: number;
  readonly #minBackoff: number;
  readonly #maxBackoff: number;
  readonly #random: () => number;
  readonly #closeTimeout: number;

  #queue: AuditEvent[] = [];
  /** JSON size of each queued event, in the queue's order. */
  #sizes: number[] = [];
  #inflight = 0;
  #failures = 0;
  #droppedNow = 0;
  #droppedTotal = 0;
  #sent = 0;
  #closed = false;
  #running = false;
  #wake: (() => void) | undefined;
  #backoff: AbortController | undefined;
  #waiters: Waiter[] = [];
  readonly #stop = new AbortController();

  /** Checks the options (BadParameterError); sending starts with the first event. */
  constructor(options: BufferedEmitterOptions) {
    this.#send = options.send;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#maxQueue = positiveInt("maxQueue", options.maxQueue ?? 10_000);
    this.#batchSize = positiveInt("batchSize", options.batchSize ?? 100);
    this.#maxBatchBytes = positiveInt("maxBatchBytes", options.maxBatchBytes ?? 512 * 1024);
    this.#minBackoff = positiveInt("minBackoffMs", options.minBackoffMs ?? 1000);
    this.#maxBackoff = positiveInt("maxBackoffMs", options.maxBackoffMs ?? 30_000);
    this.#random = options.random ?? Math.random;
    this.#closeTimeout = positiveInt("closeTimeoutMs", options.closeTimeoutMs ?? 5000);
    if (this.#maxBackoff < this.#minBackoff) {
      throw new BadParameterError(
        `BufferedEmitter: maxBackoffMs (${this.#maxBackoff}) is below minBackoffMs ` +
          `(${this.#minBackoff}): raise it`,
      );
    }
  }

  /** Events waiting or in flight. */
  get pending(): number {
    return this.#queue.length + this.#inflight;
  }

  /** Events dropped because the queue was full, since construction. */
  get dropped(): number {
    return this.#droppedTotal;
  }

  /** Events delivered, since construction. */
  get sent(): number {
    return this.#sent;
  }

  /**
   * Queues one event and returns at once; never rejects. After `close()` the event is dropped
   * with a warning.
   */
  emit(event: AuditEvent): Promise<void> {
    if (this.#closed) {
      this.#logger.warn("Audit event {event} emitted after close; it is dropped", {
        event: event?.event,
      });
      return Promise.resolve();
    }
    let copy: AuditEvent;
    let bytes: number;
    try {
      // Cut to the store's limit here: an event the auth service refuses would hold up its
      // batch and every event behind it.
      const fit = fitAuditEvent(structuredClone(event));
      if (fit.truncated) {
        this.#logger.warn(
          "Audit event {event} {uid} is {bytes} bytes of JSON, more than {limit}: " +
            "sending it with its longest fields cut and truncated: true",
          { event: fit.event.event, uid: fit.event.uid, bytes: fit.bytes, limit: MAX_EVENT_BYTES },
        );
      }
      copy = fit.event;
      bytes = fit.truncated ? new TextEncoder().encode(JSON.stringify(copy)).length : fit.bytes;
    } catch (err) {
      this.#logger.warn("Audit event {event} cannot be copied; it is dropped: {error}", {
        event: event?.event,
        error: messageOf(err),
      });
      return Promise.resolve();
    }
    this.#queue.push(copy);
    this.#sizes.push(bytes);
    this.#trim();
    this.#kick();
    return Promise.resolve();
  }

  /**
   * Sends now (cutting short a backoff) and resolves true once everything queued is
   * delivered, or false as soon as a delivery attempt fails. Never rejects.
   */
  flush(): Promise<boolean> {
    if (this.pending === 0) return Promise.resolve(true);
    const done = new Promise<boolean>((resolve) => this.#waiters.push(resolve));
    this.#backoff?.abort();
    this.#kick();
    return done;
  }

  /**
   * Stops accepting events, makes a last delivery attempt (waiting at most `closeTimeoutMs`),
   * then stops. Events still queued are reported in a warning and lost.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const timeout = new AbortController();
    await Promise.race([
      this.flush(),
      this.#clock.sleep(this.#closeTimeout, timeout.signal).catch(() => {}),
    ]);
    timeout.abort();
    this.#stop.abort(new Error("BufferedEmitter closed"));
    this.#backoff?.abort();
    this.#wake?.();
    this.#reportDrops();
    if (this.pending > 0) {
      this.#logger.warn("Audit emitter closed with {count} undelivered event(s)", {
        count: this.pending,
      });
    }
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #trim(): void {
    const excess = this.#queue.length - this.#maxQueue;
    if (excess <= 0) return;
    this.#queue.splice(0, excess);
    this.#sizes.splice(0, excess);
    if (this.#droppedNow === 0) {
      this.#logger.warn(
        "Audit event queue is full ({max} events); dropping the oldest until delivery recovers",
        { max: this.#maxQueue },
      );
    }
    this.#droppedNow += excess;
    this.#droppedTotal += excess;
  }

  #reportDrops(): void {
    if (this.#droppedNow === 0) return;
    this.#logger.warn("Dropped {count} audit event(s) because the queue was full", {
      count: this.#droppedNow,
    });
    this.#droppedNow = 0;
  }

  #settle(delivered: boolean): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(delivered);
  }

  #kick(): void {
    if (this.#wake) {
      const wake = this.#wake;
      this.#wake = undefined;
      wake();
    }
    if (!this.#running) {
      this.#running = true;
      this.#run().finally(() => this.#running = false);
    }
  }

  async #run(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      if (this.#queue.length === 0) {
        this.#settle(true);
        if (this.#closed) return;
        await new Promise<void>((resolve) => this.#wake = resolve);
        continue;
      }
      let count = 0;
      let bytes = 0;
      while (count < Math.min(this.#batchSize, this.#queue.length)) {
        bytes += this.#sizes[count]!;
        if (count > 0 && bytes > this.#maxBatchBytes) break;
        count++;
      }
      const batch = this.#queue.splice(0, count);
      const sizes = this.#sizes.splice(0, count);
      this.#inflight = batch.length;
      try {
        await this.#send(batch, this.#stop.signal);
        this.#inflight = 0;
        this.#sent += batch.length;
        if (this.#failures > 0) {
          this.#logger.info("Audit events are delivered again after {failures} failure(s)", {
            failures: this.#failures,
          });
        }
        this.#failures = 0;
        this.#reportDrops();
      } catch (err) {
        this.#inflight = 0;
        this.#queue.unshift(...batch);
        this.#sizes.unshift(...sizes);
        this.#trim();
        this.#failures++;
        this.#settle(false);
        if (this.#stop.signal.aborted) return;
        const delay = this.#delay();
        const message =
          "Sending {count} audit event(s) failed ({failures} in a row), retrying in {delay} ms: {error}";
        const props = {
          count: batch.length,
          failures: this.#failures,
          delay,
          error: messageOf(err),
        };
        if (this.#failures === 1) this.#logger.warn(message, props);
        else this.#logger.debug(message, props);
        this.#backoff = new AbortController();
        await this.#clock.sleep(delay, this.#backoff.signal).catch(() => {});
        this.#backoff = undefined;
      }
    }
  }

  #delay(): number {
    const exp = Math.min(
      this.#maxBackoff,
      this.#minBackoff * 2 ** Math.min(this.#failures - 1, 30),
    );
    return Math.round(exp / 2 + (exp / 2) * this.#random());
  }
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new BadParameterError(
      `BufferedEmitter: ${name} must be a positive integer, got ${value}`,
    );
  }
  return value;
}
