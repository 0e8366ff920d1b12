/**
 * Remote port forwarding (`ssh -R`, RFC 4254 §7.1): on a `tcpip-forward` global request the
 * node listens on its own loopback interface (as sshd with `GatewayPorts no`: the address the
 * client asked for is only echoed back) and turns each accepted connection into a
 * `forwarded-tcpip` channel to the client, which connects it on its side.
 * `cancel-tcpip-forward` stops one listener; all of a connection's listeners close with it.
 * Refused unless the user's roles permit remote forwarding (`port_forwarding` /
 * `ssh_port_forwarding.remote`); privileged ports only for root logins. Every request is
 * audited as a `port` event.
 */
import { messageOf } from "../errors/mod.ts";
import { newAuditEvent } from "../events/mod.ts";
import {
  ConnectionGuard,
  type GuardedListener,
  listenGuarded,
  markEstablished,
} from "../net/mod.ts";
import { type GlobalRequest, spliceChannel, type SshConnection } from "../ssh/mod.ts";
import type { UserAccess } from "./authorize.ts";
import { lookupOsUser } from "./os_user.ts";
import type { SessionDeps } from "./session.ts";

/** Listeners one connection may hold at once. */
export const MAX_REMOTE_FORWARDS = 32;

/** Where forwarded ports are bound: the node's loopback only (sshd's `GatewayPorts no`). */
const BIND_HOST = "127.0.0.1";

/** Lowest port a non-root login may ask for (ports below are privileged). */
const FIRST_UNPRIVILEGED_PORT = 1024;

/** A connection's remote forwards, by `<requested address>:<bound port>`. */
interface Forwards {
  listeners: Map<string, GuardedListener>;
  /** Set once the connection closed (its listeners are closed then). */
  closed: boolean;
}

const forwardsByConn = new WeakMap<SshConnection<UserAccess>, Forwards>();

function forwardsOf(conn: SshConnection<UserAccess>): Forwards {
  let forwards = forwardsByConn.get(conn);
  if (forwards === undefined) {
    const created: Forwards = { listeners: new Map(), closed: false };
    forwards = created;
    forwardsByConn.set(conn, created);
    void conn.closed.then(async () => {
      created.closed = true;
      const all = [...created.listeners.values()];
      created.listeners.clear();
      await Promise.all(all.map((l) => l.close()));
    });
  }
  return forwards;
}

/**
 * Serves a global request of an authenticated user: tcpip-forward and cancel-tcpip-forward;
 * every other request (streamlocal forwarding included) is refused. Settles once answered.
 */
export async function handleGlobalRequest(
  req: GlobalRequest<UserAccess>,
  deps: SessionDeps,
): Promise<void> {
  if (req.name === "tcpip-forward") return await startRemoteForward(req, deps);
  if (req.name === "cancel-tcpip-forward") return await cancelRemoteForward(req);
  req.reject();
}

async function startRemoteForward(
  req: GlobalRequest<UserAccess>,
  deps: SessionDeps,
): Promise<void> {
  const conn = req.conn;
  const access = conn.context;
  const log = deps.logger;
  const requestedAddr = req.bindAddr ?? "";
  const requestedPort = req.bindPort ?? -1;
  const audit = (bound: string, failure: boolean, extra: Record<string, unknown> = {}) =>
    void deps.emitter.emit(newAuditEvent("port", {
      user: access.user,
      login: access.login,
      server_id: deps.node.hostId,
      server_hostname: deps.node.nodeName,
      "addr.remote": `${conn.remoteAddr}:${conn.remotePort}`,
      "addr.local": bound,
      forward: "remote",
      proto: "ssh",
      ...extra,
    }, {
      clock: deps.clock,
      clusterName: deps.node.clusterName,
      ...(failure ? { failure: true } : {}),
    }));
  const refuse = (why: string) => {
    log.info("Refused remote port forward of {user} as {login} on port {port}: {why}", {
      user: access.user,
      login: access.login,
      port: requestedPort,
      why,
    });
    audit(`${BIND_HOST}:${requestedPort}`, true, { error: why });
    req.reject();
  };
  if (!access.permitRemotePortForwarding) {
    return refuse("remote port forwarding is not permitted by the user's roles");
  }
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    return refuse(`bad port ${requestedPort}`);
  }
  const forwards = forwardsOf(conn);
  if (forwards.listeners.size >= MAX_REMOTE_FORWARDS) {
    return refuse(`more than ${MAX_REMOTE_FORWARDS} remote forwards on one connection`);
  }
  if (requestedPort !== 0 && requestedPort < FIRST_UNPRIVILEGED_PORT) {
    let uid: number;
    try {
      uid = (await lookupOsUser(access.login)).uid;
    } catch (err) {
      return refuse(messageOf(err));
    }
    if (uid !== 0) return refuse(`port ${requestedPort} is privileged (only root may bind it)`);
  }
  let listener: GuardedListener;
  try {
    listener = await listenGuarded({
      host: BIND_HOST,
      port: requestedPort,
      guard: deps.guard ?? new ConnectionGuard({ logger: log }),
      name: "node remote forward",
      logger: log,
      onConnection: (socket) => {
        socket.pause();
        conn.openForwardedTcpip({
          boundAddr: requestedAddr,
          boundPort: listener.addr.port,
          originAddr: socket.remoteAddress ?? BIND_HOST,
          originPort: socket.remotePort ?? 0,
        }).then((channel) => {
          if (socket.destroyed) return channel.destroy();
          markEstablished(socket);
          spliceChannel(channel, socket);
          socket.resume();
        }, (err) => {
          log.debug("Remote forward of {user} on port {port}: the client refused: {error}", {
            user: access.user,
            port: listener.addr.port,
            error: messageOf(err),
          });
          socket.destroy();
        });
      },
    });
  } catch (err) {
    return refuse(`cannot listen on ${BIND_HOST}:${requestedPort}: ${messageOf(err)}`);
  }
  const bound = `${BIND_HOST}:${listener.addr.port}`;
  if (forwards.closed) {
    await listener.close();
    return req.reject();
  }
  forwards.listeners.set(`${requestedAddr}:${listener.addr.port}`, listener);
  log.info("Remote port forward of {user} as {login}: {bound}", {
    user: access.user,
    login: access.login,
    bound,
  });
  audit(bound, false);
  req.accept(listener.addr.port);
}

async function cancelRemoteForward(req: GlobalRequest<UserAccess>): Promise<void> {
  const forwards = forwardsByConn.get(req.conn);
  const key = `${req.bindAddr ?? ""}:${req.bindPort ?? -1}`;
  const listener = forwards?.listeners.get(key);
  if (listener === undefined) return req.reject();
  forwards!.listeners.delete(key);
  await listener.close();
  req.accept();
}
