/** `tsh play [--speed=N] [--format=text|json] SESSION_ID`: replays a session recording. */
import { checkSpeed, playRecording } from "../../lib/client/mod.ts";
import { readRecording, validateSessionId } from "../../lib/events/mod.ts";
import { CliError, type FlagSpec, outputFormat, type Parsed, print, str } from "../_common.ts";
import { openContext, type TshEnv, writeAll } from "./_env.ts";

/** Flags of `tsh play`. */
export const PLAY_FLAGS: FlagSpec = { speed: { type: "string" }, format: { type: "string" } };

/** Usage of `tsh play`. */
export const PLAY_HELP = `Usage: tsh play [--speed=N] [--format=text|json] SESSION_ID

Downloads a session recording through the proxy and replays its output at the
original pace, N times faster with --speed (idle gaps longer than 2 s are cut to
2 s). The terminal is set to the recorded size and follows each recorded resize
(xterm "CSI 8;rows;cols t"). --format=json prints the header and records as JSON
lines instead.`;

/** Runs `tsh play`. */
export async function playCommand(env: TshEnv, p: Parsed, args: string[]): Promise<number> {
  if (args.length !== 1) {
    throw new CliError('tsh play: give one session ID (see "tsh play --help")', 2);
  }
  const sid = validateSessionId(args[0]);
  const speedText = str(p, "speed") ?? "1";
  if (!/^\d+(\.\d+)?$/.test(speedText)) {
    throw new CliError(`tsh play: --speed must be a number, not "${speedText}"`, 2);
  }
  const speed = checkSpeed(Number(speedText));
  const fmt = outputFormat(p, ["text", "json"], "text");
  const ctx = await openContext(env, p);
  try {
    const body = await ctx.api.downloadRecording(sid);
    const stream = body instanceof Uint8Array ? ReadableStream.from([body]) : body;
    const reader = await readRecording(stream);
    if (fmt === "json") {
      print(JSON.stringify(reader.header));
      for await (const r of reader.records) {
        print(JSON.stringify(r.type === "print" ? { ...r, data: r.data.toBase64() } : r));
      }
      return 0;
    }
    await playRecording({
      records: reader.records,
      initialSize: { cols: reader.header.cols, rows: reader.header.rows },
      speed,
      write: (data) => writeAll(Deno.stdout, data),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    });
    return 0;
  } finally {
    ctx.api.close();
  }
}
