/**
 * Logger setup (logtape), component loggers and secret masking.
 *
 * ```ts
 * import { getComponentLogger, maskSecret } from "./mod.ts";
 * const log = getComponentLogger("auth:api");
 * log.info("Token {token} used", { token: maskSecret("0123456789abcdef0123456789abcdef") });
 * ```
 *
 * @module
 */
export {
  configureLogging,
  getComponentLogger,
  type Logger,
  type LoggingOptions,
  maskSecret,
  resetLogging,
  type Severity,
} from "./log.ts";
export { type LoggedRecord, testLogger } from "./test_logger.ts";
