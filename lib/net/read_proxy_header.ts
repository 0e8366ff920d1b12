/**
 * Reading a PROXY protocol header off the front of an accepted socket, for listeners that may be
 * fed by a proxy (the node's SSH port, the auth API). The bytes after the header, or all of them
 * when there is no header, are put back into the paused socket for the real protocol to read.
 */
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { parseProxyHeader, PROXY_V2_SIGNATURE, type ProxyHeader } from "./proxy_protocol.ts";

/** Options of {@linkcode readProxyHeader}. */
export interface ReadProxyHeaderOptions {
  /**
   * How long to wait for the first byte. Protocols where the server speaks first (SSH clients may
   * wait for the server's banner) get `silent` after this and go on without a header; a header
   * that started but did not finish by then is an error.
   * @default {3000}
   */
  timeoutMs?: number;
}

/** What {@linkcode readProxyHeader} found at the front of the socket. */
export type ReadProxyHeaderResult =
  /** The first bytes are something else; they were put back. */
  | { kind: "none" }
  /** Nothing arrived within `timeoutMs`. */
  | { kind: "silent" }
  /** A header, consumed; what followed it was put back. */
  | { kind: "header"; header: ProxyHeader }
  /** A malformed or unfinished header, or the socket closed; the socket should be closed. */
  | { kind: "error"; reason: string };

const V1_PREFIX = new TextEncoder().encode("PROXY ");

/** True when `data` is, or may grow into, the start of a v1 or v2 header. */
function mayBeHeader(data: Uint8Array): boolean {
  const fits = (p: Uint8Array) => {
    const n = Math.min(data.length, p.length);
    for (let i = 0; i < n; i++) if (data[i] !== p[i]) return false;
    return true;
  };
  return fits(PROXY_V2_SIGNATURE) || fits(V1_PREFIX);
}

/**
 * Waits for the first bytes of `socket` and takes a PROXY v1/v2 header off them when there is
 * one (never more than the header). The socket is left paused with the remaining bytes put back.
 * Does not decide whether the header is trusted.
 */
export function readProxyHeader(
  socket: Duplex,
  o: ReadProxyHeaderOptions = {},
): Promise<ReadProxyHeaderResult> {
  const timeoutMs = o.timeoutMs ?? 3000;
  return new Promise((resolve) => {
    let buffered: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (result: ReadProxyHeaderResult, rest?: Uint8Array) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onError);
      socket.pause();
      if (rest !== undefined && rest.length > 0) socket.unshift(Buffer.from(rest));
      resolve(result);
    };
    const onData = (chunk: Buffer | string) => {
      buffered = Buffer.concat([buffered, typeof chunk === "string" ? Buffer.from(chunk) : chunk]);
      if (!mayBeHeader(buffered)) return finish({ kind: "none" }, buffered);
      const r = parseProxyHeader(buffered);
      if (r.kind === "incomplete") return;
      if (r.kind === "error") return finish({ kind: "error", reason: r.reason });
      finish({ kind: "header", header: r.header }, buffered.subarray(r.consumed));
    };
    const onEnd = () =>
      finish({
        kind: "error",
        reason: buffered.length === 0
          ? "the connection closed before sending anything"
          : "the connection closed inside a PROXY header",
      });
    const onError = (err: Error) => finish({ kind: "error", reason: err.message });
    const timer = setTimeout(() => {
      if (buffered.length === 0) return finish({ kind: "silent" });
      finish({
        kind: "error",
        reason: `PROXY header incomplete after ${timeoutMs} ms (${buffered.length} bytes)`,
      });
    }, timeoutMs);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
    socket.resume();
  });
}
