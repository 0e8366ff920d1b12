/**
 * The browser terminal (`GET /webapi/sites/:site/connect/ws?params=…`, a WebSocket).
 *
 * 1. Before the upgrade: the session cookie is checked and `params` validated (400/401).
 * 2. The client's first message must be text `{"token":"<bearer>"}` of that session, within
 *    {@link TERMINAL_AUTH_TIMEOUT_MS}; the answer is `{"type":"create_session_response",
 *    "status":"ok"}`, or `"status":"error"` and the socket closes (1008). The token never travels
 *    in the URL.
 * 3. The proxy connects to the node as the user with the web session's key and certificate,
 *    through the routing tsh gets (direct dial with a signed client address, or the node's
 *    reverse tunnel), checking the node's host certificate against the cluster's host CA. The
 *    node applies the user's RBAC, records and audits the session as for tsh.
 * 4. Then binary frames, each an {@link Envelope}: `s` session metadata (first), `r` raw pty
 *    bytes both ways, `w` resize from the client (`{"size":"W:H"}`), `c` close, `e` error.
 *    When the shell ends the server sends `c` with `{"node_id", "exit_code"}` (or
 *    `"exit_signal"`) and closes the socket normally (1000); a failure sends `e` with
 *    `{"message"}` first. A client `c` ends the session.
 *
 * Joining (`sid` in params): the shell request joins that running session on the node (`mode`
 * "observer" by default, or "peer"), if the user's roles allow it there.
 */
import type { Duplex } from "node:stream";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { WebSocketConnection } from "../net/mod.ts";
import { connectSsh, type SshClient } from "../ssh/mod.ts";
import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";
import type { WebSession, WebSessions } from "./sessions.ts";
import type { WebClusterAccess } from "./types.ts";

/** Time the client has to send its token after the upgrade. */
export const TERMINAL_AUTH_TIMEOUT_MS = 4000;

/** What the client asks for. */
export interface TerminalParams {
  server_id: string;
  login: string;
  term: { w: number; h: number };
  /** A running session to join. */
  sid?: string;
  /** How to join. @default {"observer"} */
  mode?: "observer" | "peer";
}

const SERVER_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
const LOGIN = /^[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}$/;
const SID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const ACTION = "open the terminal";

/** Reads and checks `params`; BadParameterError names what is wrong. */
export function parseTerminalParams(raw: string | null): TerminalParams {
  const bad = (why: string): never => {
    throw new BadParameterError(`Cannot ${ACTION}: ${why}`);
  };
  if (raw === null || raw === "") return bad(`the "params" query parameter is missing`);
  if (raw.length > 4096) return bad(`"params" is longer than 4096 characters`);
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(raw);
  } catch {
    return bad(`"params" is not JSON`);
  }
  if (typeof p !== "object" || p === null || Array.isArray(p)) {
    return bad(`"params" is not an object`);
  }
  if (typeof p.server_id !== "string" || !SERVER_ID.test(p.server_id)) {
    bad(`"server_id" must be a node UUID, name or host:port`);
  }
  if (typeof p.login !== "string" || !LOGIN.test(p.login)) {
    bad(`"login" must be an OS login name (letters, digits, . _ - @)`);
  }
  const term = p.term as Record<string, unknown> | undefined;
  const dim = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v > 0 && v < 4096;
  if (typeof term !== "object" || term === null || !dim(term.w) || !dim(term.h)) {
    bad(`"term" must be {"w": columns, "h": rows}, each from 1 to 4095`);
  }
  if (p.sid !== undefined && p.sid !== "" && (typeof p.sid !== "string" || !SID.test(p.sid))) {
    bad(`"sid" must be a session id (a UUID)`);
  }
  if (p.mode !== undefined && p.mode !== "observer" && p.mode !== "peer") {
    bad(`"mode" must be "observer" or "peer"`);
  }
  return {
    server_id: p.server_id as string,
    login: p.login as string,
    term: { w: term!.w as number, h: term!.h as number },
    ...(typeof p.sid === "string" && p.sid !== "" ? { sid: p.sid } : {}),
    ...(p.mode === undefined ? {} : { mode: p.mode as "observer" | "peer" }),
  };
}

/** Inputs of {@link runTerminal}. */
export interface TerminalOptions {
  ws: WebSocketConnection;
  session: WebSession;
  sessions: WebSessions;
  params: TerminalParams;
  cluster: WebClusterAccess;
  remoteAddr: string;
  remotePort?: number;
  logger: Logger;
  /** @default {TERMINAL_AUTH_TIMEOUT_MS} */
  authTimeoutMs?: number;
  /** How long to wait for the node's session tracker to learn the session id. @default {3000} */
  sidWaitMs?: number;
}

const enc = new TextEncoder();

function frame(type: string, payload: string): Uint8Array {
  return encodeEnvelope({ version: "1", type, payload });
}

/** Waits for the client's token; true when it is the session's. */
async function authenticate(o: TerminalOptions): Promise<boolean> {
  const timeoutMs = o.authTimeoutMs ?? TERMINAL_AUTH_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const first = await Promise.race([
    o.ws.next(),
    new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), timeoutMs)),
  ]);
  clearTimeout(timer);
  const refuse = (message: string) => {
    o.ws.send(JSON.stringify({ type: "create_session_response", status: "error", message }));
    o.ws.close(1008, message);
    o.logger.info("Refused a web terminal from {addr}: {why}", {
      addr: o.remoteAddr,
      why: message,
    });
    return false;
  };
  if (first === "timeout") return refuse(`no token within ${timeoutMs} ms`);
  if (first === undefined) return false;
  if (typeof first !== "string") return refuse("the first message must be text with the token");
  let token: unknown;
  try {
    token = JSON.parse(first)?.token;
  } catch {
    return refuse("the first message is not JSON");
  }
  if (typeof token !== "string" || !o.sessions.matchesBearer(o.session.record, token)) {
    return refuse("invalid token");
  }
  o.ws.send(JSON.stringify({ type: "create_session_response", status: "ok" }));
  return true;
}

/** The id of the session the node just started for us, from its tracker (or ""). */
async function findSid(
  o: TerminalOptions,
  nodeId: string,
  before: Set<string>,
  signal: AbortSignal,
): Promise<string> {
  const deadline = Date.now() + (o.sidWaitMs ?? 3000);
  const api = o.cluster.userApi(o.session.record);
  while (!signal.aborted && Date.now() < deadline) {
    try {
      const mine = (await api.listSessionTrackers()).filter((t) =>
        t.spec.node_id === nodeId && t.spec.user === o.session.record.user &&
        t.spec.login === o.params.login && !before.has(t.spec.session_id)
      );
      if (mine.length === 1) return mine[0]!.spec.session_id;
      if (mine.length > 1) return ""; // two new sessions at once: cannot tell which is ours
    } catch (err) {
      o.logger.debug("Cannot list session trackers for the web terminal: {reason}", {
        reason: messageOf(err),
      });
      return "";
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return "";
}

/** Serves one terminal WebSocket to its end; see the module doc. Never throws. */
export async function runTerminal(o: TerminalOptions): Promise<void> {
  const { ws, params, logger } = o;
  const abort = new AbortController();
  void ws.closed.then(() => abort.abort());
  let client: SshClient | undefined;
  const fail = (err: unknown) => {
    const message = messageOf(err);
    logger.info("Web terminal of {user} to {node} as {login} failed: {message}", {
      user: o.session.record.user,
      node: params.server_id,
      login: params.login,
      message,
    });
    ws.send(frame("e", JSON.stringify({ message })));
    ws.close(1000, "error");
  };
  try {
    if (!await authenticate(o)) return;
    const user = await o.cluster.certifyUser(o.session.sshCertBlob, o.remoteAddr);
    const { node, socket } = await o.cluster.dial(
      { ...user, login: params.login },
      params.server_id,
      {
        remoteAddr: o.remoteAddr,
        ...(o.remotePort === undefined ? {} : { remotePort: o.remotePort }),
      },
    );
    if (abort.signal.aborted) return void socket.destroy();
    let hostKeyError: unknown;
    try {
      client = await connectSsh({
        socket: socket as Duplex,
        username: params.login,
        key: await o.session.sshKey(),
        certificate: o.session.sshCertBlob,
        signal: abort.signal,
        logger,
        verifyHostKey: async ({ keyBlob }) => {
          try {
            await o.cluster.verifyHostKey(node, keyBlob);
            return true;
          } catch (err) {
            hostKeyError = err;
            return false;
          }
        },
      });
    } catch (err) {
      throw hostKeyError ?? new Error(
        `Cannot log in to ${node.spec.hostname} as ${JSON.stringify(params.login)}: ${
          messageOf(err)
        }`,
      );
    }
    const ssh = client;
    void ws.closed.then(() => ssh.close().catch(() => {}));
    const api = o.cluster.userApi(o.session.record);
    const before = params.sid === undefined
      ? new Set((await api.listSessionTrackers().catch(() => [])).map((t) => t.spec.session_id))
      : new Set<string>();
    const sess = await ssh.openSession();
    if (
      !await sess.requestPty({ term: "xterm-256color", cols: params.term.w, rows: params.term.h })
    ) {
      throw new Error(`node ${node.spec.hostname} refused a terminal (permit-pty)`);
    }
    if (params.sid !== undefined) {
      await sess.setEnv("TELEPORT_SESSION", params.sid);
      await sess.setEnv("TELEPORT_PARTICIPANT_MODE", params.mode ?? "observer");
    }
    if (!await sess.shell()) throw new Error(`node ${node.spec.hostname} refused a shell`);
    const ch = sess.channel;
    const sid = params.sid ?? await findSid(o, node.metadata.name, before, abort.signal);
    ws.send(frame(
      "s",
      JSON.stringify({
        session: {
          sid,
          kind: "ssh",
          login: params.login,
          server_id: node.metadata.name,
          server_hostname: node.spec.hostname,
          server_addr: node.spec.addr,
          cluster_name: o.cluster.clusterName,
          created: new Date().toISOString(),
          terminal_params: { w: params.term.w, h: params.term.h },
          participant_mode: params.sid === undefined ? "owner" : params.mode ?? "observer",
        },
      }),
    ));
    logger.info("User {user} opened a web terminal to {node} as {login} (session {sid})", {
      user: o.session.record.user,
      node: node.spec.hostname,
      login: params.login,
      sid: sid || "unknown",
    });
    // Node → browser, UTF-8 decoded across chunk borders, held back while the socket is full.
    const decoder = new TextDecoder();
    const toBrowser = (d: Uint8Array) => {
      const text = decoder.decode(d, { stream: true });
      if (text !== "") ws.send(frame("r", text));
      if (ws.bufferedAmount > 1024 * 1024) {
        ch.pause();
        void ws.whenDrained().then(() => ch.resume());
      }
    };
    ch.on("data", toBrowser);
    ch.stderr.on("data", toBrowser);
    // Browser → node.
    const reading = (async () => {
      for await (const m of ws) {
        if (typeof m === "string") continue; // only binary frames carry terminal traffic
        let e;
        try {
          e = decodeEnvelope(m);
        } catch (err) {
          logger.debug("Dropped a bad terminal frame: {reason}", { reason: messageOf(err) });
          continue;
        }
        if (e.type === "r") ch.write(enc.encode(e.payload));
        else if (e.type === "w") {
          const size = /^(\d{1,4}):(\d{1,4})$/.exec(String(parseJson(e.payload)?.size ?? ""));
          const cols = Number(size?.[1]);
          const rows = Number(size?.[2]);
          if (size && cols > 0 && rows > 0 && cols < 4096 && rows < 4096) {
            sess.windowChange({ cols, rows });
          }
        } else if (e.type === "c") {
          sess.close();
          break;
        }
      }
    })();
    const status = await ch.exitStatus;
    const rest = decoder.decode();
    if (rest !== "") ws.send(frame("r", rest));
    await ws.whenDrained();
    ws.send(frame(
      "c",
      JSON.stringify({
        node_id: node.metadata.name,
        ...(status.kind === "code" ? { exit_code: status.code } : {}),
        ...(status.kind === "signal" ? { exit_signal: status.signal } : {}),
      }),
    ));
    ws.close(1000, "session ended");
    await reading.catch(() => {});
  } catch (err) {
    if (!ws.isClosed) fail(err);
  } finally {
    await client?.close().catch(() => {});
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}
