/** A logger for tests: records every call instead of writing it. */
import type { Logger } from "./log.ts";

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
