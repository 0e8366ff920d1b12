/**
 * Logging for the whole program on top of logtape. Components get a logger by
 * name ("auth:api") and receive it through their options; only the process
 * wiring configures sinks.
 */
import {
  configureSync,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";

export type { Logger };

/** Severity names as written in teleport.yaml. */
export type Severity = "DEBUG" | "INFO" | "WARN" | "ERROR";

/** How and where the process logs. */
export interface LoggingOptions {
  /** Lowest severity written. */
  severity: Severity;
  /** `text` (human) or `json` (JSON Lines). */
  format: "text" | "json";
  /** `stderr`, `stdout`, or a file path (appended, created 0600). */
  output: string;
}

const LEVELS: Record<Severity, LogLevel> = {
  DEBUG: "debug",
  INFO: "info",
  WARN: "warning",
  ERROR: "error",
};

const ROOT = "teleport";

/**
 * Returns the logger of a component. Components are `role:part` names such as
 * `auth:api`; each part becomes a logtape category level under "teleport".
 */
export function getComponentLogger(component: string): Logger {
  return getLogger([ROOT, ...component.split(":").filter((p) => p !== "")]);
}

function writerFor(output: string): (bytes: Uint8Array) => void {
  if (output === "stderr") return (b) => writeAll(Deno.stderr, b);
  if (output === "stdout") return (b) => writeAll(Deno.stdout, b);
  const file = Deno.openSync(output, { append: true, create: true, mode: 0o600 });
  return (b) => writeAll(file, b);
}

function writeAll(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

function sinkFor(options: LoggingOptions): Sink {
  const formatter = options.format === "json" ? getJsonLinesFormatter() : getTextFormatter({
    timestamp: "date-time-tz",
    category: ":",
    value: (v) => typeof v === "string" ? v : v instanceof Error ? v.message : Deno.inspect(v),
  });
  const write = writerFor(options.output);
  const enc = new TextEncoder();
  return (record: LogRecord) => write(enc.encode(formatter(record)));
}

/** Configures process-wide logging. Call once from the wiring; calling again replaces it. */
export function configureLogging(options: LoggingOptions): void {
  resetSync();
  configureSync({
    reset: true,
    sinks: { main: sinkFor(options) },
    loggers: [
      { category: [ROOT], sinks: ["main"], lowestLevel: LEVELS[options.severity] },
      { category: ["logtape", "meta"], sinks: ["main"], lowestLevel: "warning" },
    ],
  });
}

/** Turns logging off again (tests, shutdown). */
export function resetLogging(): void {
  resetSync();
}

/**
 * Masks a secret (token, password) for logs and errors. Short secrets are fully
 * hidden; long ones keep their last quarter so operators can tell them apart,
 * like Teleport's MaskKeyName.
 */
export function maskSecret(secret: string): string {
  if (secret.length < 16) return "*".repeat(Math.max(secret.length, 4));
  const keep = Math.floor(secret.length / 4);
  return "*".repeat(secret.length - keep) + secret.slice(secret.length - keep);
}
