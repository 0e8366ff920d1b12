/**
 * SSH agent forwarding on the node (`ssh -A`, OpenSSH PROTOCOL §2.1 / PROTOCOL.agent): once a
 * session's `auth-agent-req@openssh.com` is accepted, the node listens on a unix socket private
 * to the session's OS user (a 0600 socket in a 0700 directory, both owned by the user) and
 * hands its path to the session's programs as SSH_AUTH_SOCK. Each connection to that socket
 * becomes an `auth-agent@openssh.com` channel back to the client, which serves it from its own
 * agent. The socket and its directory are removed when the session ends.
 */
import { createServer, type Server, type Socket } from "node:net";
import { ConnectionProblemError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import { type ConnectionGuard, guardServer, markEstablished } from "../net/mod.ts";
import { spliceChannel, type SshChannel } from "../ssh/mod.ts";
import type { OsUser } from "./os_user.ts";

/** The channel type a forwarded agent connection opens (OpenSSH PROTOCOL §2.1). */
export const AGENT_CHANNEL_TYPE = "auth-agent@openssh.com";

/** Options of {@link startAgentForward}. */
export interface AgentForwardOptions {
  /** Opens a channel of a custom type to the client (the session's SSH connection). */
  openChannel(type: string): Promise<SshChannel>;
  /** The session's OS user: owner of the socket and its directory. */
  user: OsUser;
  /** Admission control, shared with the node's other listeners. */
  guard: ConnectionGuard;
  logger: Logger;
  /** Where the private directory is created. @default {"/tmp"} */
  parentDir?: string;
}

/** A forwarded agent socket of one session. */
export interface AgentForward extends AsyncDisposable {
  /** The socket path, for SSH_AUTH_SOCK. */
  readonly socketPath: string;
  /** Stops listening, closes the forwarded connections and removes the socket directory. */
  close(): Promise<void>;
}

/** Listens on a fresh private unix socket; see the module doc. */
export async function startAgentForward(o: AgentForwardOptions): Promise<AgentForward> {
  const dir = await Deno.makeTempDir({ dir: o.parentDir ?? "/tmp", prefix: "teleport-agent-" });
  const socketPath = `${dir}/agent.sock`;
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    // Until it is handed to the user the directory is the node's own and closed to everyone
    // else, so the socket is never reachable with looser modes.
    await Deno.chmod(dir, 0o700);
    const s = createServer();
    server = s;
    guardServer(s, {
      guard: o.guard,
      name: "node agent forwarding",
      logger: o.logger,
    });
    s.on("connection", (socket: Socket) => {
      if (socket.destroyed) return;
      socket.pause();
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      o.openChannel(AGENT_CHANNEL_TYPE).then((channel) => {
        if (socket.destroyed) return channel.destroy();
        markEstablished(socket);
        spliceChannel(channel, socket);
        socket.resume();
      }, (err) => {
        o.logger.info("Cannot forward an agent connection to the client: {error}", {
          error: messageOf(err),
        });
        socket.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen({ path: socketPath }, () => {
        s.off("error", reject);
        resolve();
      });
    });
    s.on("error", (err: Error) =>
      o.logger.warn("Agent forwarding socket {path} failed: {error}", {
        path: socketPath,
        error: messageOf(err),
      }));
    await Deno.chmod(socketPath, 0o600);
    if (Deno.uid() !== o.user.uid) {
      await Deno.chown(socketPath, o.user.uid, o.user.gid);
      await Deno.chown(dir, o.user.uid, o.user.gid);
    }
  } catch (err) {
    server?.close();
    await removeDir();
    throw new ConnectionProblemError(
      `Cannot set up agent forwarding for ${o.user.name}: ${messageOf(err)}`,
      { cause: err },
    );
  }
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      await new Promise<void>((resolve) => {
        server!.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await removeDir();
    })();
    return closed;
  };
  return { socketPath, close, [Symbol.asyncDispose]: close };
}
