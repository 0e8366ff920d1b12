/**
 * One watcher's queue of backend events, shared by the memory and PostgreSQL backends: the
 * backend pushes the events of the keys it watches, {@link WatchQueue.events} yields them in
 * order; a watcher that falls {@link MAX_QUEUED_EVENTS} behind ends with LimitExceededError.
 *
 * @module
 */
import { LimitExceededError } from "../errors/mod.ts";
import type { BackendEvent, Key } from "./backend.ts";

/** Events a watcher may have queued before it is closed for falling behind. */
export const MAX_QUEUED_EVENTS = 65536;

/** A watcher's pending events; see the module doc. */
export class WatchQueue {
  /** True once the watch was stopped (its signal aborted, the backend closed). */
  done = false;
  #error: Error | undefined;
  #queue: BackendEvent[] = [];
  #head = 0;
  #wake: (() => void) | undefined;

  constructor(readonly prefixes: Key[]) {}

  /** Queues `event` (dropped once stopped or failed); wakes the reader. */
  push(event: BackendEvent): void {
    if (this.done || this.#error !== undefined) return;
    if (this.#queue.length - this.#head >= MAX_QUEUED_EVENTS) {
      this.#error = new LimitExceededError(
        `Cannot watch backend: watcher fell behind by ${MAX_QUEUED_EVENTS} events`,
      );
    } else {
      this.#queue.push(event);
    }
    this.#wake?.();
  }

  /** Ends the watch; the reader returns. */
  stop(): void {
    this.done = true;
    this.#wake?.();
  }

  /** Resolves at the next push or stop. */
  changed(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#wake = () => {
      this.#wake = undefined;
      resolve();
    };
    return promise;
  }

  /** The queued events in order, then the ones pushed later, until stopped; throws if failed. */
  async *events(): AsyncGenerator<BackendEvent> {
    while (!this.done) {
      if (this.#head < this.#queue.length) {
        const event = this.#queue[this.#head]!;
        this.#queue[this.#head++] = undefined!;
        if (this.#head === this.#queue.length) {
          this.#queue = [];
          this.#head = 0;
        }
        yield event;
        continue;
      }
      if (this.#error !== undefined) throw this.#error;
      await this.changed();
    }
  }
}
