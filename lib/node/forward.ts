/**
 * `direct-tcpip` (ssh -L): the node dials the requested host:port for the user
 * when a role permits port forwarding, and pipes the channel to it. Every
 * attempt is audited as a `port` event.
 */
import net from "node:net";
import { newAuditEvent } from "../events/mod.ts";
import { type DirectTcpipOpen, spliceChannel } from "../ssh/mod.ts";
import type { UserAccess } from "./authorize.ts";
import type { SessionDeps } from "./session.ts";

/** How long a forward may take to connect. */
const DIAL_TIMEOUT_MS = 15_000;

/** Serves one direct-tcpip channel open; settles once it was accepted or refused. */
export function handleDirectTcpip(
  open: DirectTcpipOpen<UserAccess>,
  deps: SessionDeps,
): Promise<void> {
  const access = open.conn.context;
  const dest = `${
    open.destHost.includes(":") ? `[${open.destHost}]` : open.destHost
  }:${open.destPort}`;
  const fields = {
    user: access.user,
    login: access.login,
    server_id: deps.node.hostId,
    server_hostname: deps.node.nodeName,
    "addr.remote": `${open.conn.remoteAddr}:${open.conn.remotePort}`,
    "addr.local": dest,
    dest,
    proto: "ssh",
  };
  const audit = (failure: boolean, extra: Record<string, unknown> = {}) =>
    void deps.emitter.emit(newAuditEvent("port", { ...fields, ...extra }, {
      clock: deps.clock,
      clusterName: deps.node.clusterName,
      ...(failure ? { failure: true } : {}),
    }));
  if (!access.permitPortForwarding) {
    audit(true, { error: "port forwarding is not permitted by the user's roles" });
    open.reject({ message: "port forwarding is not permitted by your roles" });
    return Promise.resolve();
  }
  if (!(open.destPort > 0 && open.destPort < 65536) || open.destHost === "") {
    audit(true, { error: "bad destination" });
    open.reject({ reason: "connect-failed", message: `bad destination ${dest}` });
    return Promise.resolve();
  }
  const { promise, resolve } = Promise.withResolvers<void>();
  const sock = net.connect({ host: open.destHost, port: open.destPort });
  sock.setNoDelay(true);
  const timer = setTimeout(() => sock.destroy(new Error("connection timed out")), DIAL_TIMEOUT_MS);
  sock.once("error", (err) => {
    clearTimeout(timer);
    audit(true, { error: err.message });
    open.reject({ reason: "connect-failed", message: `cannot connect to ${dest}: ${err.message}` });
    resolve();
  });
  sock.once("connect", () => {
    clearTimeout(timer);
    sock.removeAllListeners("error");
    const ch = open.accept();
    audit(false);
    spliceChannel(ch, sock);
    resolve();
  });
  return promise;
}
