/**
 * Supervisor: runs the process's services, broadcasts readiness events
 * (`auth.ready`, later `proxy.ready`, `node.ready`) so callers wait for events
 * rather than sleeping, and stops everything when a critical service fails.
 *
 * Two ways to stop (Teleport's ExitContext and GracefulExitContext):
 * - {@link Supervisor.stop}: fast; `signal` aborts and services drop their connections.
 * - {@link Supervisor.drain}: graceful; every drain hook stops accepting at once, then waits
 *   for its sessions and tunnels to end by themselves (bounded by a timeout); hooks registered
 *   as `last` (auth, which the others' sessions still report to) run after the rest; then stop.
 *
 * {@link Supervisor.listenForSignals} maps process signals onto these: TERM/INT fast stop
 * (forced exit if it overruns), QUIT drain, USR1 a diagnostic report to the log, USR2 start a
 * successor process that serves beside this one, HUP start a successor and, once it is ready,
 * drain (handover.ts). A successor that fails leaves this process serving.
 */
import { messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";

/** A long-running service: resolves when it has stopped after `signal` aborted. */
export type ServiceFn = (signal: AbortSignal) => Promise<void>;

/**
 * A graceful stop step: stop accepting, then resolve once the work in flight has ended, or
 * soon after `deadline` aborts (the drain timeout ran out, or a fast stop came in).
 */
export type DrainFn = (deadline: AbortSignal) => Promise<void>;

/** One section of the diagnostic report: a flat record of what the service has open. */
export type ReportFn = () => Promise<Record<string, unknown>> | Record<string, unknown>;

/** Options of {@link Supervisor.listenForSignals}. */
export interface SignalOptions {
  /** Upper bound of a QUIT drain; then the process stops as on TERM. */
  drainTimeoutMs: number;
  /** Time TERM/INT give the services to close before {@link onForcedExit} (Teleport: 3 s + 2 s). */
  fastStopTimeoutMs: number;
  /** Called when a fast stop overran its time or a second TERM/INT came; must exit. */
  onForcedExit: () => void;
  /** The USR1 report: one multi-line text for the log. */
  report: () => Promise<string>;
  /**
   * Starts a successor process on the same ports (USR2, HUP); resolves once it is ready,
   * rejects with the reason it is not. Without it USR2 and HUP are logged and ignored.
   */
  startSuccessor?: () => Promise<unknown>;
}

interface DrainStep {
  name: string;
  fn: DrainFn;
  last: boolean;
}

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
  readonly #drains: DrainStep[] = [];
  readonly #reports: Array<{ name: string; fn: ReportFn }> = [];
  #draining: Promise<void> | undefined;
  #successor: Promise<boolean> | undefined;
  #handedOver = false;

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

  /**
   * Registers a graceful stop step for {@link drain}. `last` steps run once the others are done
   * (a service the others still need while their sessions finish).
   */
  onDrain(name: string, fn: DrainFn, opts: { last?: boolean } = {}): void {
    this.#drains.push({ name, fn, last: opts.last ?? false });
  }

  /** Registers a section of the diagnostic report ({@link report}). */
  onReport(name: string, fn: ReportFn): void {
    this.#reports.push({ name, fn });
  }

  /**
   * The diagnostic report's service sections, one line each (`name: key=value ...`); a section
   * that fails shows its error instead.
   */
  async report(): Promise<string[]> {
    return await Promise.all(this.#reports.map(async ({ name, fn }) => {
      try {
        return `${name}: ${formatFields(await fn())}`;
      } catch (err) {
        return `${name}: cannot report: ${messageOf(err)}`;
      }
    }));
  }

  /**
   * True once a successor process took over (HUP): its services now own the cluster presence
   * this process shares with it (same host id), so this one must not withdraw it on stop.
   */
  get handedOver(): boolean {
    return this.#handedOver;
  }

  /**
   * Starts a successor (one at a time); true once it is ready. On HUP (`handOver`), then
   * drains this process. Failures are logged; this process keeps serving.
   */
  #startSuccessor(
    start: () => Promise<unknown>,
    signal: string,
    handOver: boolean,
    drainTimeoutMs: number,
  ): void {
    if (this.#successor !== undefined) {
      this.#log.warn("Received {signal} while a new process is starting; ignored", { signal });
      return;
    }
    if (this.#draining !== undefined || this.#stop.signal.aborted) {
      this.#log.warn("Received {signal} while stopping; ignored", { signal });
      return;
    }
    this.#log.info(
      handOver
        ? "Received {signal}: starting a new process; this one drains once it is ready"
        : "Received {signal}: starting a new process that serves beside this one",
      { signal },
    );
    this.#successor = start().then(
      () => {
        if (handOver && !this.#stop.signal.aborted) {
          this.#handedOver = true;
          this.#log.info("The new process is ready; this one stops accepting and drains");
          void this.drain(drainTimeoutMs);
        } else {
          this.#log.info("The new process is ready and serves beside this one");
        }
        return true;
      },
      (err) => {
        this.#log.error(
          "Cannot hand over to a new process: {message}; this process keeps serving",
          {
            message: messageOf(err),
          },
        );
        return false;
      },
    ).finally(() => {
      this.#successor = undefined;
    });
  }

  /** True once {@link drain} was called. */
  get draining(): boolean {
    return this.#draining !== undefined;
  }

  /**
   * Graceful stop: runs the drain steps (see the module doc), bounded by `timeoutMs` in all,
   * then {@link stop}. A {@link stop} meanwhile cuts it short. Idempotent.
   */
  drain(timeoutMs: number): Promise<void> {
    this.#draining ??= (async () => {
      const deadline = AbortSignal.any([this.#stop.signal, AbortSignal.timeout(timeoutMs)]);
      const t0 = performance.now();
      this.#log.info(
        "Draining: no new connections; waiting up to {seconds} s for sessions and tunnels to end",
        { seconds: Math.round(timeoutMs / 1000) },
      );
      const run = async (steps: DrainStep[]) => {
        await Promise.all(steps.map(async ({ name, fn }) => {
          try {
            await fn(deadline);
          } catch (err) {
            this.#log.warn("Cannot drain {name}: {message}", { name, message: messageOf(err) });
          }
        }));
      };
      // Newest first: a service stops accepting before the ones it depends on.
      const steps = [...this.#drains].reverse();
      await run(steps.filter((s) => !s.last));
      await run(steps.filter((s) => s.last));
      if (this.#stop.signal.aborted) return;
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      if (deadline.aborted) {
        this.#log.warn("Drain timeout ({seconds} s) reached; closing what is left", { seconds });
      } else {
        this.#log.info("Drained in {seconds} s; stopping", { seconds });
      }
      this.stop();
    })();
    return this.#draining;
  }

  /**
   * Installs the process's signal handlers (see the module doc). Returns a Disposable that
   * removes them.
   */
  listenForSignals(o: SignalOptions): Disposable {
    let forced: ReturnType<typeof setTimeout> | undefined;
    const fast = (name: string) => () => {
      if (this.#stop.signal.aborted) {
        this.#log.warn("Received {signal} again while stopping; exiting now", { signal: name });
        o.onForcedExit();
        return;
      }
      this.#log.info("Received {signal}: stopping now (existing connections are closed)", {
        signal: name,
      });
      this.stop();
      const timer = setTimeout(() => {
        this.#log.error("The services did not stop within {ms} ms; exiting", {
          ms: o.fastStopTimeoutMs,
        });
        o.onForcedExit();
      }, o.fastStopTimeoutMs);
      Deno.unrefTimer(timer);
      forced = timer;
    };
    const onTerm = fast("SIGTERM");
    const onInt = fast("SIGINT");
    const onQuit = () => {
      this.#log.info("Received SIGQUIT: draining gracefully");
      void this.drain(o.drainTimeoutMs);
    };
    const onUsr1 = () => {
      o.report().then(
        (text) => this.#log.info("Diagnostic report (SIGUSR1):\n{report}", { report: text }),
        (err) =>
          this.#log.warn("Cannot write the diagnostic report: {message}", {
            message: messageOf(err),
          }),
      );
    };
    const successor = (signal: string, handOver: boolean) => () => {
      if (o.startSuccessor === undefined) {
        this.#log.warn("Received {signal}: this process cannot start a successor; ignored", {
          signal,
        });
        return;
      }
      this.#startSuccessor(o.startSuccessor, signal, handOver, o.drainTimeoutMs);
    };
    const handlers: Array<[Deno.Signal, () => void]> = [
      ["SIGTERM", onTerm],
      ["SIGINT", onInt],
      ["SIGQUIT", onQuit],
      ["SIGUSR1", onUsr1],
      ["SIGUSR2", successor("SIGUSR2", false)],
      ["SIGHUP", successor("SIGHUP", true)],
    ];
    for (const [sig, fn] of handlers) Deno.addSignalListener(sig, fn);
    return {
      [Symbol.dispose]: () => {
        for (const [sig, fn] of handlers) Deno.removeSignalListener(sig, fn);
        if (forced !== undefined) clearTimeout(forced);
      },
    };
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

/** `key=value` pairs; objects as JSON, strings with spaces quoted. */
export function formatFields(fields: Record<string, unknown>): string {
  return Object.entries(fields).map(([k, v]) => {
    const text = typeof v === "string"
      ? (/[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v)
      : JSON.stringify(v);
    return `${k}=${text}`;
  }).join(" ");
}
