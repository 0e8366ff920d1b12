/** Test helpers of lib/events (not exported from mod.ts). */

import type { Logger } from "../log/mod.ts";

/** One call to a {@linkcode testLogger} method. */
export interface LoggedRecord {
  level: string;
  message: string;
  properties: Record<string, unknown> | undefined;
}

/** A logger that records every call instead of writing it. */
export function testLogger(): { logger: Logger; records: LoggedRecord[] } {
  const records: LoggedRecord[] = [];
  const logger = new Proxy({}, {
    get(_target, level) {
      return (message: unknown, properties?: Record<string, unknown>) => {
        records.push({ level: String(level), message: String(message), properties });
      };
    },
  }) as Logger;
  return { logger, records };
}

/** Lets pending promise callbacks and zero-delay timers run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
