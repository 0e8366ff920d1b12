/**
 * Reconnect delays: exponential growth with "equal jitter" (half fixed, half random), so a
 * thousand agents cut off by one proxy restart spread their reconnects over the window instead
 * of arriving together, and a long outage is retried at most every `maxMs`.
 */

/** Inputs of {@link Backoff}. */
export interface BackoffOptions {
  /** First delay ceiling. @default {1000} */
  baseMs?: number;
  /** Largest delay. @default {30000} */
  maxMs?: number;
  /** Random source in [0, 1). @default {Math.random} */
  random?: () => number;
}

/** Delays for successive failures; {@link reset} after a success. */
export class Backoff {
  readonly #base: number;
  readonly #max: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(o: BackoffOptions = {}) {
    this.#base = o.baseMs ?? 1000;
    this.#max = o.maxMs ?? 30_000;
    this.#random = o.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt, in ms: in [ceiling/2, ceiling). */
  next(): number {
    const ceiling = Math.min(this.#max, this.#base * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.floor(ceiling / 2 + this.#random() * (ceiling / 2));
  }

  reset(): void {
    this.#attempt = 0;
  }
}
