/** Go-style durations ("30h", "1h30m", "90s", "500ms") as used in Teleport resources and flags. */
import { BadParameterError } from "../errors/mod.ts";

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration into milliseconds. Accepts a sequence of `<number><unit>`
 * with units ms, s, m, h (and `d` for days, which Teleport's tctl also takes).
 * Throws BadParameterError naming `where` on anything else.
 */
export function parseDuration(text: string, where = "duration"): number {
  const s = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  if (s === "0") return 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const unit = m[2] === "d" ? 86_400_000 : UNITS[m[2]!]!;
    total += Number(m[1]) * unit;
    matched = re.lastIndex;
  }
  if (s === "" || matched !== s.length) {
    throw new BadParameterError(
      `Cannot parse ${where}: "${text}" is not a duration (use forms like 30m, 12h, 1h30m)`,
    );
  }
  return Math.round(total);
}

/** Formats milliseconds like Go's time.Duration.String for whole seconds ("12h0m0s", "30m0s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${rest}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1000;
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}
