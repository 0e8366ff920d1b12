/** Test helpers of lib/events (not exported from mod.ts). */

export { type LoggedRecord, testLogger } from "../log/mod.ts";

/** Lets pending promise callbacks and zero-delay timers run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
