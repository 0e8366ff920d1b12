/**
 * Supervisor: runs the process's services, broadcasts readiness events
 * (`auth.ready`, later `proxy.ready`, `node.ready`) so callers wait for events
 * rather than sleeping, and stops everything when a critical service fails.
 */
import { messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";

/** A long-running service: resolves when it has stopped after `signal` aborted. */
export type ServiceFn = (signal: AbortSignal) => Promise<void>;

interface Registered {
  name: string;
  critical: boolean;
  done?: Promise<void>;
}

/** Owns services, events and the process's stop signal. */
export class Supervisor implements AsyncDisposable {
  readonly #log: Logger;
  readonly #stop = new AbortController();
  readonly #services: Registered[] = [];
  readonly #events = new Map<string, unknown>();
  readonly #waiters = new Map<string, Array<(payload: unknown) => void>>();
  #failure: Error | undefined;

  constructor(opts: { logger: Logger }) {
    this.#log = opts.logger;
  }

  /** Aborted when the process is stopping. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** The error that stopped the process, if a critical service failed. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Starts a service now. A critical service that fails stops the process. */
  run(name: string, fn: ServiceFn, opts: { critical?: boolean } = {}): void {
    const entry: Registered = { name, critical: opts.critical ?? true };
    entry.done = fn(this.#stop.signal).catch((err) => {
      if (this.#stop.signal.aborted) return;
      this.#log.error("Service {name} failed: {message}", { name, message: messageOf(err) });
      if (entry.critical) {
        this.#failure ??= err instanceof Error ? err : new Error(String(err));
        this.stop();
      }
    });
    this.#services.push(entry);
  }

  /** Records an event and wakes its waiters. */
  broadcast(event: string, payload: unknown = null): void {
    this.#events.set(event, payload);
    this.#log.debug("Event {event}", { event });
    for (const w of this.#waiters.get(event) ?? []) w(payload);
    this.#waiters.delete(event);
  }

  /** Resolves with the event's payload once it has been broadcast (or already was). */
  waitFor(event: string, signal?: AbortSignal): Promise<unknown> {
    if (this.#events.has(event)) return Promise.resolve(this.#events.get(event));
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(event) ?? [];
      list.push(resolve);
      this.#waiters.set(event, list);
      const onStop = () => reject(this.#failure ?? new Error(`Stopped before ${event}`));
      this.#stop.signal.addEventListener("abort", onStop, { once: true });
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }

  /** Asks every service to stop. */
  stop(): void {
    this.#stop.abort();
  }

  /** Resolves when every service has returned after stop(). */
  async wait(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      await new Promise((r) => this.#stop.signal.addEventListener("abort", r, { once: true }));
    }
    await Promise.all(this.#services.map((s) => s.done));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    await this.wait();
  }
}
