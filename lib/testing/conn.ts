/**
 * One request/response exchange over a real connection, for fuzzing servers: write the bytes,
 * optionally half-close, and read until the server closes, within a deadline. The deadline is a
 * hang detector, not a timing assertion: a server that neither answers nor closes in time is
 * what it catches.
 */

/** Options of {@link exchange}. */
export interface ExchangeOptions {
  /** Close our write side after sending (the server sees EOF). @default {false} */
  halfClose?: boolean;
  /** Give up, close the connection and report `timedOut` after this long. @default {15000} */
  deadlineMs?: number;
  /** Stop reading after this many bytes (the answer is still "answered"). @default {65536} */
  maxBytes?: number;
  /**
   * Stop reading once a whole HTTP/1.x response (head and Content-Length or chunked body) is
   * in, for servers that keep the connection open after answering. @default {false}
   */
  untilHttpResponse?: boolean;
}

/** What the server did with one request. */
export interface ExchangeResult {
  /** Everything the server sent before it closed (at most `maxBytes`). */
  response: Uint8Array;
  /** The server neither closed nor finished within the deadline. */
  timedOut: boolean;
}

/** Sends `data` on `conn`, reads until EOF or the deadline, and closes `conn`. */
export async function exchange(
  conn: Deno.Conn,
  data: Uint8Array,
  opts: ExchangeOptions = {},
): Promise<ExchangeResult> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timedOut = false;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already closed by a failed read or write
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    close();
  }, opts.deadlineMs ?? 15_000);
  try {
    // The server may answer (and close) before it has read everything: a failed write is an
    // answer, not an error.
    const written = (async () => {
      try {
        for (let at = 0; at < data.length;) at += await conn.write(data.subarray(at));
        if (opts.halfClose) await conn.closeWrite();
      } catch {
        // reset or closed by the server
      }
    })();
    const buf = new Uint8Array(16 * 1024);
    const max = opts.maxBytes ?? 65536;
    while (size < max) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        break; // reset by the server, or closed by the deadline
      }
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      size += n;
      if (opts.untilHttpResponse && isCompleteHttpResponse(concat(chunks, size))) break;
    }
    close();
    await written;
  } finally {
    clearTimeout(timer);
    close();
  }
  return { response: concat(chunks, size), timedOut };
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c.subarray(0, size - at), at);
    at += c.length;
  }
  return out;
}

const LATIN1 = new TextDecoder("latin1");

/**
 * Whether `data` holds a whole HTTP/1.x message: the head plus a Content-Length body, or a
 * chunked body up to its last chunk. A message with neither ends only when the peer closes.
 */
export function isCompleteHttpResponse(data: Uint8Array): boolean {
  const text = LATIN1.decode(data);
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd === -1) return false;
  const head = text.slice(0, headEnd);
  const bodyLength = text.length - headEnd - 4;
  if (/^transfer-encoding:.*chunked/im.test(head)) return /(^|\r\n)0\r\n\r\n$/.test(text);
  const m = /^content-length:\s*(\d+)\s*$/im.exec(head);
  if (m !== null) return bodyLength >= Number(m[1]);
  // No body for 1xx, 204 and 304 (RFC 9112 §6.3).
  return /^HTTP\/1\.[01] (1\d\d|204|304) /.test(head);
}

/** The status code of an HTTP/1.x response, or `undefined` when `response` is not one. */
export function httpStatusOfResponse(response: Uint8Array): number | undefined {
  const head = new TextDecoder("latin1").decode(response.subarray(0, 64));
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
  return m === null ? undefined : Number(m[1]);
}
