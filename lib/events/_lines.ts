/** Splitting byte streams into lines (JSON Lines files and recordings). */

import { BadParameterError } from "../errors/mod.ts";

/** One line of a stream. */
export interface Line {
  /** The text without its "\n". */
  text: string;
  /** False for a last line that did not end in "\n" (truncated or still being written). */
  complete: boolean;
}

/**
 * Yields the lines of a UTF-8 byte stream. A line longer than `maxLineChars` throws
 * BadParameterError naming `what`. Stopping early cancels the stream.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  what: string,
  maxLineChars: number,
): AsyncGenerator<Line> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let rest = "";
  let done = false;
  try {
    while (true) {
      const chunk = await reader.read();
      if (chunk.done) break;
      rest += chunk.value;
      let start = 0;
      let nl: number;
      while ((nl = rest.indexOf("\n", start)) >= 0) {
        if (nl - start > maxLineChars) throw tooLong(what, maxLineChars);
        yield { text: rest.slice(start, nl), complete: true };
        start = nl + 1;
      }
      rest = rest.slice(start);
      if (rest.length > maxLineChars) throw tooLong(what, maxLineChars);
    }
    done = true;
    if (rest.length > 0) yield { text: rest, complete: false };
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

function tooLong(what: string, max: number): BadParameterError {
  return new BadParameterError(`${what} has a line longer than ${max} characters: it is corrupt`);
}

/** Writes all of `bytes` to `file`. */
export async function writeAll(
  file: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}
