/**
 * Session playback (`tsh play`): writes a recording's output at its original pace, scaled by a
 * speed factor, with long idle gaps cut to `maxIdleMs` (2 s by default, as many players do) so
 * a session left open over lunch replays in seconds. The terminal follows the recorded size:
 * the recording's initial size and each resize record are written, at their time, as the xterm
 * window operation "resize the text area" (`CSI 8 ; rows ; cols t`, as Teleport's player does),
 * so full-screen programs replay at the width they were drawn for.
 */
import { BadParameterError } from "../errors/mod.ts";
import type { RecordingRecord } from "../events/mod.ts";

/** The longest pause playback makes by default, in ms. */
export const DEFAULT_MAX_IDLE_MS = 2_000;

/** Options for {@link playRecording}. */
export interface PlayRecordingOptions {
  /** The records after the header (lib/events `readRecording`). */
  records: AsyncIterable<RecordingRecord>;
  /** Writes terminal output. */
  write(data: Uint8Array): void | Promise<void>;
  /** Waits `ms` milliseconds (injected: tests record the pauses instead). */
  sleep(ms: number): Promise<void>;
  /** Playback speed factor (2 = twice as fast). @default {1} */
  speed?: number;
  /** Longest pause, in ms of playback time. @default {DEFAULT_MAX_IDLE_MS} */
  maxIdleMs?: number;
  /**
   * The terminal size the recording starts with (its header's `cols`/`rows`); set before the
   * first output. Sizes of 0 (unknown) are skipped. @default {none: the size is left alone}
   */
  initialSize?: { cols: number; rows: number };
}

/** What a playback did. */
export interface PlayRecordingResult {
  /** Output records written. */
  prints: number;
  /** Bytes written. */
  bytes: number;
  /** Terminal size changes written (the initial size included). */
  resizes: number;
  /** Total time slept, in ms. */
  sleptMs: number;
}

/**
 * The xterm window operation that resizes the text area to `rows` × `cols` characters
 * (`CSI 8 ; rows ; cols t`, XTWINOPS). Terminals that refuse window operations ignore it.
 */
export function terminalResizeSequence(cols: number, rows: number): Uint8Array {
  return new TextEncoder().encode(`\x1b[8;${rows};${cols}t`);
}

/** The pause before a record at `t` after one at `prevT` (ms): scaled, then capped. */
export function playbackDelay(prevT: number, t: number, speed: number, maxIdleMs: number): number {
  const gap = Math.max(0, t - prevT) / speed;
  return Math.min(gap, maxIdleMs);
}

/** Validates a `--speed` factor. */
export function checkSpeed(speed: number): number {
  if (!Number.isFinite(speed) || speed <= 0 || speed > 1000) {
    throw new BadParameterError(
      `Cannot play at speed ${speed}: use a number above 0 and at most 1000`,
    );
  }
  return speed;
}

/** Plays `records`; see the module doc. */
export async function playRecording(o: PlayRecordingOptions): Promise<PlayRecordingResult> {
  const speed = checkSpeed(o.speed ?? 1);
  const maxIdle = o.maxIdleMs ?? DEFAULT_MAX_IDLE_MS;
  let prevT = 0;
  const result: PlayRecordingResult = { prints: 0, bytes: 0, resizes: 0, sleptMs: 0 };
  const resize = async (cols: number, rows: number) => {
    if (cols <= 0 || rows <= 0) return; // a size the client never told
    await o.write(terminalResizeSequence(cols, rows));
    result.resizes++;
  };
  if (o.initialSize !== undefined) await resize(o.initialSize.cols, o.initialSize.rows);
  for await (const record of o.records) {
    if (record.type !== "print" && record.type !== "resize") continue;
    const delay = playbackDelay(prevT, record.t, speed, maxIdle);
    prevT = record.t;
    if (delay >= 1) {
      await o.sleep(delay);
      result.sleptMs += delay;
    }
    if (record.type === "resize") {
      await resize(record.cols, record.rows);
      continue;
    }
    await o.write(record.data);
    result.prints++;
    result.bytes += record.data.length;
  }
  return result;
}
