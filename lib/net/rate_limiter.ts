/**
 * Token buckets per key (client IP): each key may spend `burst` attempts at once and earns
 * `perMinute` back per minute. Time comes from the injected clock, so tests refill buckets by
 * advancing a FakeClock.
 */
import { BadParameterError } from "../errors/mod.ts";
import type { Clock } from "../clock/mod.ts";

/** A rate: `burst` at once, `perMinute` sustained. */
export interface RateLimit {
  burst: number;
  perMinute: number;
}

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions extends RateLimit {
  clock: Clock;
  /**
   * Most keys tracked at once. Beyond it, full buckets are forgotten first, then the oldest.
   * @default {10000}
   */
  maxKeys?: number;
}

/** The verdict of {@link RateLimiter.take}. */
export type RateLimitResult =
  | { allowed: true }
  | { allowed: false; /** Time until one attempt is earned back. */ retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** Per-key token buckets (see the module doc). */
export class RateLimiter {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: RateLimiterOptions) {
    if (!Number.isInteger(opts.burst) || opts.burst < 1) {
      throw new BadParameterError(
        `Cannot create rate limiter: burst must be a positive integer, received ${opts.burst}`,
      );
    }
    if (!Number.isFinite(opts.perMinute) || opts.perMinute <= 0) {
      throw new BadParameterError(
        `Cannot create rate limiter: perMinute must be positive, received ${opts.perMinute}`,
      );
    }
    this.#burst = opts.burst;
    this.#perMs = opts.perMinute / 60_000;
    this.#clock = opts.clock;
    this.#maxKeys = opts.maxKeys ?? 10_000;
  }

  /** Spends one attempt of `key` when it has one. */
  take(key: string): RateLimitResult {
    const now = this.#clock.now().getTime();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      this.#makeRoom(now);
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(key, bucket);
    } else {
      this.#refill(bucket, now);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / this.#perMs) };
  }

  /** Number of keys tracked (for tests and diagnostics). */
  get size(): number {
    return this.#buckets.size;
  }

  #refill(bucket: Bucket, now: number): void {
    const elapsed = Math.max(0, now - bucket.at);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#perMs);
    bucket.at = now;
  }

  #makeRoom(now: number): void {
    if (this.#buckets.size < this.#maxKeys) return;
    for (const [key, bucket] of this.#buckets) {
      this.#refill(bucket, now);
      if (bucket.tokens >= this.#burst) this.#buckets.delete(key);
    }
    // Still full: forget the oldest keys (Map iterates in insertion order).
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size < this.#maxKeys) break;
      this.#buckets.delete(key);
    }
  }
}
