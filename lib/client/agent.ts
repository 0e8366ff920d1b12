/**
 * Agent forwarding on the client side (`tsh ssh -A`): each `auth-agent@openssh.com` channel the
 * node opens (OpenSSH PROTOCOL §2.1) is connected to the local agent's unix socket
 * (SSH_AUTH_SOCK), so programs on the node use the keys of the user's own agent. The keys never
 * leave the agent; only its protocol messages cross the channel.
 */
import { connect, type Socket } from "node:net";
import { messageOf } from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import { type IncomingChannelOpen, spliceChannel } from "../ssh/mod.ts";

/** The channel type of a forwarded agent connection. */
export const AGENT_CHANNEL_TYPE = "auth-agent@openssh.com";

/**
 * A handler for `auth-agent@openssh.com` channel opens (ConnectSshOptions `channels`) that
 * serves them from the agent at `socketPath`; an agent that cannot be reached refuses the open
 * with the reason. Settles once the open is answered.
 */
export function agentChannelHandler(
  socketPath: string,
  logger: Logger = getComponentLogger("client:agent"),
): (open: IncomingChannelOpen) => Promise<void> {
  return (open) =>
    new Promise<void>((resolve) => {
      const sock: Socket = connect({ path: socketPath });
      sock.once("error", (err) => {
        logger.warn("Cannot reach the local SSH agent at {path}: {error}", {
          path: socketPath,
          error: messageOf(err),
        });
        open.reject({
          reason: "connect-failed",
          message: `the client's agent is not reachable: ${messageOf(err)}`,
        });
        resolve();
      });
      sock.once("connect", () => {
        sock.removeAllListeners("error");
        try {
          spliceChannel(open.accept(), sock);
        } catch (err) {
          logger.debug("Agent channel closed before it opened: {error}", {
            error: messageOf(err),
          });
          sock.destroy();
        }
        resolve();
      });
    });
}
