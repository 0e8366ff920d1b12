/**
 * Remote port forwarding (`tsh ssh -R [bind_address:]port:host:hostport`): the node listens on
 * `port` (tcpip-forward, RFC 4254 §7.1) and each connection it accepts arrives as a
 * forwarded-tcpip channel, which this side connects to `host:hostport`.
 */
import { connect } from "node:net";
import { ConnectionProblemError, messageOf } from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import { spliceChannel, type SshClient } from "../ssh/mod.ts";
import { type LocalForwardSpec, parseLocalForwardSpec } from "./forward.ts";

/** One `-R` forward: the node listens on `bindHost:bindPort`, this side dials `destHost:destPort`. */
export type RemoteForwardSpec = LocalForwardSpec;

/**
 * Parses `[bind_address:]port:host:hostport` for -R (IPv6 addresses in brackets); port 0 lets
 * the node pick one. Without a bind address the node's loopback is asked for. Throws
 * BadParameterError.
 */
export function parseRemoteForwardSpec(text: string): RemoteForwardSpec {
  return parseLocalForwardSpec(text);
}

/** A running remote forward. */
export interface RemoteForward extends AsyncDisposable {
  readonly spec: RemoteForwardSpec;
  /** The port the node listens on. */
  readonly port: number;
  /** Cancels the forward on the node. */
  close(): Promise<void>;
}

/** Options of {@link startRemoteForward}. */
export interface StartRemoteForwardOptions {
  /** @default {getComponentLogger("client:forward")} */
  logger?: Logger;
}

/** Asks the node to listen for `spec` and connects each forwarded connection locally. */
export async function startRemoteForward(
  client: Pick<SshClient, "forwardIn">,
  spec: RemoteForwardSpec,
  options: StartRemoteForwardOptions = {},
): Promise<RemoteForward> {
  const log = options.logger ?? getComponentLogger("client:forward");
  const target = `${spec.destHost}:${spec.destPort}`;
  let handle;
  try {
    handle = await client.forwardIn(
      { bindAddr: spec.bindHost, bindPort: spec.bindPort },
      (conn) => {
        const sock = connect({ host: spec.destHost, port: spec.destPort });
        sock.setNoDelay(true);
        sock.once("error", (err) => {
          log.warn("Remote forward to {target} failed: {error}", {
            target,
            error: messageOf(err),
          });
          conn.reject();
        });
        sock.once("connect", () => {
          sock.removeAllListeners("error");
          spliceChannel(conn.accept(), sock);
        });
      },
    );
  } catch (err) {
    throw new ConnectionProblemError(
      `Cannot forward port ${spec.bindPort} on the node to ${target}: ${messageOf(err)} ` +
        "(remote forwarding needs a role with port_forwarding or ssh_port_forwarding.remote, " +
        "a free port, and a port from 1024 up unless the login is root)",
      { cause: err },
    );
  }
  const h = handle;
  const close = () => h.cancel();
  return { spec, port: h.port, close, [Symbol.asyncDispose]: close };
}
