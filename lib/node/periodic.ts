/**
 * Runs a task now and then every `intervalMs` less up to a seventh, at random (Teleport's
 * "seventh jitter": a fleet of nodes started together does not stay in lockstep against auth);
 * when it fails, retries with a jittered exponential backoff (so a fleet of nodes does not
 * stampede a restarted auth server) and logs the outage once and the recovery once.
 */
import type { Clock } from "../clock/mod.ts";
import { messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";

/** Inputs of {@link runPeriodic}. */
export interface PeriodicOptions {
  /** What the task is, for logs ("heartbeat"). */
  name: string;
  task: () => Promise<void>;
  intervalMs: number;
  /** First retry delay after a failure. @default {1000} */
  backoffMinMs?: number;
  /** Longest retry delay. @default {30000} */
  backoffMaxMs?: number;
  clock: Clock;
  logger: Logger;
  signal: AbortSignal;
  /** Random source in [0, 1) for both jitters (tests inject a fixed one). @default {Math.random} */
  random?: () => number;
}

/** The delay before retry number `attempt` (1-based): full jitter in [d/2, d]. */
export function backoffDelay(
  attempt: number,
  o: { minMs: number; maxMs: number; random: () => number },
): number {
  const d = Math.min(o.maxMs, o.minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(d / 2 + o.random() * d / 2);
}

/** Loops until `signal` aborts; never throws. */
export async function runPeriodic(o: PeriodicOptions): Promise<void> {
  let failures = 0;
  const random = o.random ?? Math.random;
  while (!o.signal.aborted) {
    let delay = Math.round(o.intervalMs * (1 - random() / 7));
    try {
      await o.task();
      if (failures > 0) {
        o.logger.info("{name} works again after {failures} failed attempts", {
          name: o.name,
          failures,
        });
      }
      failures = 0;
    } catch (err) {
      if (o.signal.aborted) return;
      failures++;
      delay = backoffDelay(failures, {
        minMs: o.backoffMinMs ?? 1000,
        maxMs: o.backoffMaxMs ?? 30_000,
        random,
      });
      const props = { name: o.name, failures, delay, reason: messageOf(err) };
      const text = "{name} failed (attempt {failures}), retrying in {delay} ms: {reason}";
      if (failures === 1) o.logger.warn(text, props);
      else o.logger.debug(text, props);
    }
    try {
      await o.clock.sleep(delay, o.signal);
    } catch {
      return;
    }
  }
}
