/**
 * Readiness of the process, per service, with Teleport's semantics (`/readyz`, `process_state`):
 *
 * - a service starts in **starting** (400) until its first successful heartbeat;
 * - a failed heartbeat (or backend check) puts it in **degraded** (503), whatever it was;
 * - a successful one after that moves it to **recovering** (400), and a successful one at least
 *   `recoveryMs` later back to **ok** (200): one lucky heartbeat is not a recovery.
 *
 * The process is as ready as its least ready service: degraded over recovering over starting
 * over ok. `process_state` encodes it as Teleport does: 0 ok, 1 recovering, 2 degraded,
 * 3 starting.
 *
 * @module
 */
import type { Clock } from "../clock/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Gauge, MetricsRegistry } from "../metrics/mod.ts";

/** State of one service, or of the process. */
export type HealthState = "ok" | "recovering" | "degraded" | "starting";

/** Teleport's `process_state` values. */
export const STATE_VALUES: Readonly<Record<HealthState, number>> = Object.freeze({
  ok: 0,
  recovering: 1,
  degraded: 2,
  starting: 3,
});

/** Worst first: the process takes the first state any service is in. */
const PRECEDENCE: readonly HealthState[] = ["degraded", "recovering", "starting", "ok"];

/** Options of {@linkcode ProcessHealth}. */
export interface ProcessHealthOptions {
  clock: Clock;
  logger: Logger;
  /** Time a recovering service needs successful reports over before it is ok. */
  recoveryMs: number;
  /** Where `process_state` and `teleport_service_state` go. */
  metrics?: MetricsRegistry;
}

interface ServiceHealth {
  state: HealthState;
  /** When it entered recovering. */
  recoveringSince: number;
  /** Why it is degraded (for the log and /readyz). */
  reason?: string;
}

/** The readiness state machine; see the module doc. */
export class ProcessHealth {
  readonly #o: ProcessHealthOptions;
  readonly #services = new Map<string, ServiceHealth>();
  readonly #waiters = new Set<() => void>();
  readonly #processGauge?: Gauge;
  readonly #serviceGauge?: Gauge;

  constructor(o: ProcessHealthOptions) {
    this.#o = o;
    if (o.metrics !== undefined) {
      this.#processGauge = o.metrics.gauge({
        name: "process_state",
        help: "State of the teleport process: 0 - ok, 1 - recovering, 2 - degraded, 3 - starting",
      });
      this.#serviceGauge = o.metrics.gauge({
        name: "teleport_service_state",
        help: "State of each service of the process, encoded as process_state",
        labelNames: ["service"],
      });
    }
    this.#publish();
  }

  /** Adds a service in the starting state (idempotent). */
  register(service: string): void {
    if (this.#services.has(service)) return;
    this.#services.set(service, { state: "starting", recoveringSince: 0 });
    this.#publish();
  }

  /** A heartbeat or check of `service` succeeded. */
  ok(service: string): void {
    const s = this.#get(service);
    const now = this.#o.clock.now().getTime();
    switch (s.state) {
      case "starting":
        s.state = "ok";
        this.#o.logger.debug("Service {service} is ready", { service });
        break;
      case "degraded":
        s.state = "recovering";
        s.recoveringSince = now;
        delete s.reason;
        this.#o.logger.info("Service {service} is recovering from a degraded state", { service });
        break;
      case "recovering":
        if (now - s.recoveringSince < this.#o.recoveryMs) return;
        s.state = "ok";
        this.#o.logger.info("Service {service} has recovered from a degraded state", { service });
        break;
      case "ok":
        return;
    }
    this.#publish();
  }

  /** A heartbeat or check of `service` failed with `reason` (no secrets in it). */
  degraded(service: string, reason: string): void {
    const s = this.#get(service);
    const was = s.state;
    s.state = "degraded";
    s.reason = reason;
    if (was !== "degraded") {
      this.#o.logger.warn("Service {service} is degraded: {reason}", { service, reason });
    }
    this.#publish();
  }

  /** The state of the process: that of its least ready service (starting with none). */
  get state(): HealthState {
    const states = new Set([...this.#services.values()].map((s) => s.state));
    if (states.size === 0) return "starting";
    return PRECEDENCE.find((p) => states.has(p))!;
  }

  /** Each service's state, and why the degraded ones are. */
  services(): Record<string, { state: HealthState; reason?: string }> {
    return Object.fromEntries(
      [...this.#services].map((
        [name, s],
      ) => [name, { state: s.state, ...(s.reason === undefined ? {} : { reason: s.reason }) }]),
    );
  }

  /** Resolves at the next change of any service's state. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.add(resolve));
  }

  #get(service: string): ServiceHealth {
    let s = this.#services.get(service);
    if (s === undefined) {
      s = { state: "starting", recoveringSince: 0 };
      this.#services.set(service, s);
    }
    return s;
  }

  #publish(): void {
    this.#processGauge?.set(STATE_VALUES[this.state]);
    for (const [name, s] of this.#services) {
      this.#serviceGauge?.set(STATE_VALUES[s.state], { service: name });
    }
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }
}
