/**
 * Small pieces of the web-standard core that lib/web's handlers share: reading a JSON body
 * under a size limit from a `Request`, and {@link HttpError} for the statuses no error kind
 * has (401: no or expired credentials). Everything else maps kinds to statuses through
 * lib/errors' httpStatusOf, in the router only.
 */
import { BadParameterError } from "../errors/mod.ts";

/**
 * Headers on every answer of the web port, API and UI alike (HSTS, no sniffing, no framing, no
 * referrer, same-origin isolation). Each answer adds its own Cache-Control and CSP.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
});

/** Largest request body accepted. */
export const MAX_BODY_BYTES = 64 * 1024;

/** An error answered with exactly this status and message. */
export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
    this.name = "HttpError";
  }
}

/**
 * Reads the JSON body: `application/json` only (415), at most `limit` bytes (413; a declared
 * `Content-Length` over it is refused before any byte is read), not empty, valid JSON (400).
 */
export async function readJsonBody(req: Request, action: string, limit: number): Promise<unknown> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(415, `Cannot ${action}: send the body as application/json`);
  }
  const tooLarge = () =>
    new HttpError(413, `Cannot ${action}: the request body is larger than ${limit} bytes`);
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body !== null) {
    const reader = req.body.getReader();
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch {
        throw new BadParameterError(`Cannot ${action}: the request body was cut short`);
      }
      if (next.done) break;
      size += next.value.length;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(next.value);
    }
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") {
    throw new BadParameterError(
      `Cannot ${action}: the request body is empty; send a JSON object`,
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new BadParameterError(`Cannot ${action}: the request body is not valid JSON`);
  }
}
