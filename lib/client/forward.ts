/**
 * Local port forwarding (`tsh ssh -L [bind_address:]port:host:hostport`): a local TCP listener
 * whose connections become direct-tcpip channels (RFC 4254 §7.2) over the node connection, so
 * the node dials `host:hostport`.
 */
import { createServer, type Server, type Socket } from "node:net";
import { BadParameterError, ConnectionProblemError, messageOf } from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import type { SshClient } from "../ssh/mod.ts";

/** One `-L` forward. */
export interface LocalForwardSpec {
  /** Local address to listen on. @default {"127.0.0.1"} */
  bindHost: string;
  /** Local port (0: any free port). */
  bindPort: number;
  /** Host the node dials. */
  destHost: string;
  /** Port the node dials. */
  destPort: number;
}

/** Splits on colons outside `[...]`, dropping the brackets. */
function splitColons(text: string): string[] | undefined {
  const parts: string[] = [];
  let cur = "";
  let bracket = false;
  for (const c of text) {
    if (c === "[" && !bracket && cur === "") bracket = true;
    else if (c === "]" && bracket) bracket = false;
    else if (c === ":" && !bracket) {
      parts.push(cur);
      cur = "";
    } else cur += c;
  }
  if (bracket) return undefined;
  parts.push(cur);
  return parts;
}

function port(text: string, allowZero: boolean): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n > 65535 || (n === 0 && !allowZero) ? undefined : n;
}

/**
 * Parses `[bind_address:]port:host:hostport` (IPv6 addresses in brackets). Without a bind
 * address the forward listens on 127.0.0.1; an empty one or `*` means every interface.
 * Throws BadParameterError.
 */
export function parseLocalForwardSpec(text: string): LocalForwardSpec {
  const bad = (why: string): never => {
    throw new BadParameterError(
      `Cannot parse port forward ${JSON.stringify(text)}: ${why} ` +
        "(use [bind_address:]port:host:hostport, e.g. 8080:localhost:80)",
    );
  };
  const parts = splitColons(text.trim());
  if (parts === undefined) return bad("an IPv6 address has no closing bracket");
  if (parts.length !== 3 && parts.length !== 4) return bad("want 3 or 4 colon-separated fields");
  const [bindText, portText, destHost, destPortText] = parts.length === 4
    ? parts as [string, string, string, string]
    : ["127.0.0.1", ...parts] as [string, string, string, string];
  const bindPort = port(portText, true) ?? bad("the local port must be a number from 0 to 65535");
  const destPort = port(destPortText, false) ??
    bad("the remote port must be a number from 1 to 65535");
  if (destHost === "" || /[\s/]/.test(destHost)) bad("the remote host is empty or malformed");
  if (/[\s/]/.test(bindText)) bad("the bind address is malformed");
  const bindHost = bindText === "" || bindText === "*" ? "0.0.0.0" : bindText;
  return { bindHost, bindPort, destHost, destPort };
}

/** A running forward. */
export interface LocalForward extends AsyncDisposable {
  readonly spec: LocalForwardSpec;
  /** The local port actually bound. */
  readonly port: number;
  /** Stops listening and closes the forwarded connections. */
  close(): Promise<void>;
}

/** Options for {@link startLocalForward}. */
export interface StartLocalForwardOptions {
  /** @default {getComponentLogger("client:forward")} */
  logger?: Logger;
}

/** Starts listening for `spec` and forwards each connection through `client`. */
export async function startLocalForward(
  client: Pick<SshClient, "forwardOut">,
  spec: LocalForwardSpec,
  options: StartLocalForwardOptions = {},
): Promise<LocalForward> {
  const log = options.logger ?? getComponentLogger("client:forward");
  const sockets = new Set<Socket>();
  const target = `${spec.destHost}:${spec.destPort}`;
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.pause();
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    client.forwardOut({
      destHost: spec.destHost,
      destPort: spec.destPort,
      originHost: socket.remoteAddress ?? "127.0.0.1",
      originPort: socket.remotePort ?? 0,
    }).then((channel) => {
      if (socket.destroyed) return channel.close();
      channel.on("error", () => socket.destroy());
      socket.on("close", () => channel.destroy());
      channel.on("close", () => socket.destroy());
      socket.pipe(channel);
      channel.pipe(socket);
      socket.resume();
    }, (err) => {
      log.warn("Port forward to {target} failed: {error}", { target, error: messageOf(err) });
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new ConnectionProblemError(
          `Cannot listen on ${spec.bindHost}:${spec.bindPort} for port forwarding: ` +
            messageOf(err),
        ),
      ));
    server.listen({ host: spec.bindHost, port: spec.bindPort }, () => resolve());
  });
  server.on(
    "error",
    (err) => log.warn("Port forward listener: {error}", { error: messageOf(err) }),
  );
  const bound = (server.address() as { port: number }).port;
  const close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { spec, port: bound, close, [Symbol.asyncDispose]: close };
}
