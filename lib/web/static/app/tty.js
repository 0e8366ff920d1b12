// The terminal's wire protocol over a WebSocket: the bearer token as the first text message,
// then binary frames, each a protobuf Envelope {1: version "1", 2: type (one char),
// 3: payload}. Types: r raw pty bytes, w resize {"size":"W:H"}, s session metadata,
// c close, e error, l latency.

const encoder = new TextEncoder();

function pushVarint(out, n) {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
}

/** Encodes an Envelope; `payload` is a string or bytes. */
export function encodeEnvelope(type, payload) {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const head = [];
  for (const [tag, bytes] of [[0x0a, encoder.encode("1")], [0x12, encoder.encode(type)]]) {
    head.push(tag);
    pushVarint(head, bytes.length);
    head.push(...bytes);
  }
  head.push(0x1a);
  pushVarint(head, body.length);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/** Decodes an Envelope into `{version, type, payload}` (payload as bytes). */
export function decodeEnvelope(buf) {
  const msg = { version: "", type: "", payload: new Uint8Array(0) };
  let i = 0;
  const varint = () => {
    let n = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error("Cannot decode the envelope: it is cut short");
      const b = buf[i++];
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
      shift += 7;
      if (shift > 49) throw new Error("Cannot decode the envelope: a varint is too long");
    }
  };
  const decoder = new TextDecoder();
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error("Cannot decode the envelope: a field is cut short");
      const bytes = buf.subarray(i, i + len);
      i += len;
      if (field === 1) msg.version = decoder.decode(bytes);
      else if (field === 2) msg.type = decoder.decode(bytes);
      else if (field === 3) msg.payload = bytes;
    } else if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`Cannot decode the envelope: unknown wire type ${wire}`);
  }
  return msg;
}

function parseJson(bytes) {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/**
 * One terminal connection. Handlers: `onOutput(bytes)`, `onSession(meta)`, `onLatency(l)`,
 * `onEnd({exitCode, message, error})` (called once).
 */
export class TtyClient {
  #ws;
  #ended = false;
  #handlers;

  constructor(url, token, handlers) {
    this.#handlers = handlers;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    let authed = false;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ token })));
    ws.addEventListener("message", (ev) => {
      if (typeof ev.data === "string") {
        const answer = JSON.parse(ev.data);
        if (answer.type === "create_session_response" && answer.status === "ok") {
          authed = true;
          handlers.onReady?.();
        } else {
          this.#end({ error: true, message: answer.message ?? "the proxy refused the session" });
        }
        return;
      }
      if (!authed) return;
      let env;
      try {
        env = decodeEnvelope(new Uint8Array(ev.data));
      } catch (err) {
        this.#end({ error: true, message: err.message });
        return;
      }
      this.#dispatch(env);
    });
    ws.addEventListener("close", (ev) => {
      this.#end({
        error: !authed || ev.code !== 1000,
        message: authed
          ? "The connection to the proxy closed."
          : `Cannot open the terminal: the proxy closed the connection (${ev.code}${
            ev.reason ? ": " + ev.reason : ""
          }).`,
      });
    });
  }

  #dispatch(env) {
    const h = this.#handlers;
    switch (env.type) {
      case "r":
        h.onOutput?.(env.payload);
        break;
      case "s":
        h.onSession?.(parseJson(env.payload) ?? {});
        break;
      case "l":
        h.onLatency?.(parseJson(env.payload) ?? {});
        break;
      case "c": {
        const info = parseJson(env.payload) ?? {};
        const code = info.exit_code ?? info.exitCode ?? info.code;
        this.#end({ exitCode: typeof code === "number" ? code : undefined, message: info.message });
        break;
      }
      case "e": {
        const info = parseJson(env.payload);
        const text = info?.message ?? new TextDecoder().decode(env.payload);
        const code = info?.exit_code ?? info?.exitCode;
        this.#end({
          error: true,
          exitCode: typeof code === "number" ? code : undefined,
          message: text,
        });
        break;
      }
      default:
        break;
    }
  }

  #end(info) {
    if (this.#ended) return;
    this.#ended = true;
    this.#handlers.onEnd?.(info);
    if (this.#ws.readyState <= 1) this.#ws.close(1000);
  }

  /** Sends keystrokes (a string) or bytes. */
  send(data) {
    if (!this.#ended && this.#ws.readyState === 1) this.#ws.send(encodeEnvelope("r", data));
  }

  /** Tells the node the terminal's new size. */
  resize(cols, rows) {
    if (!this.#ended && this.#ws.readyState === 1) {
      this.#ws.send(encodeEnvelope("w", JSON.stringify({ size: `${cols}:${rows}` })));
    }
  }

  close() {
    this.#end({ message: "You closed the session." });
  }
}

/** The WebSocket URL of a terminal (`params` travels in the URL; the token never does). */
export function ttyUrl(site, params) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/v1/webapi/sites/${encodeURIComponent(site)}/connect/ws` +
    `?params=${encodeURIComponent(JSON.stringify(params))}`;
}
