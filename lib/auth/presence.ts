/**
 * Presence of the cluster's hosts and sessions as the auth server enforces it: node and proxy
 * heartbeats (a host announces only itself, for at most an hour), session trackers (a node
 * tracks only its own sessions), and which nodes and running sessions a caller may see.
 */
import { parseSshCertificate } from "../ca/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  isKind,
  messageOf,
  NotFoundError,
} from "../errors/mod.ts";
import { hostIdOf, type Identity } from "../identity/mod.ts";
import type { ProxyResource, ServerResource, SessionTracker } from "../resource/mod.ts";
import type { AuthContext } from "./_shared.ts";

/** Longest expiry a node heartbeat may ask for. */
const MAX_HEARTBEAT_TTL_MS = 3_600_000;

/** Heartbeats, session trackers and what callers may see of them. */
export class AuthPresence {
  readonly #ctx: AuthContext;

  constructor(ctx: AuthContext) {
    this.#ctx = ctx;
  }

  /**
   * A node's heartbeat: stores its own server resource until `metadata.expires`.
   * A host may only announce itself (name = its host UUID); the expiry must lie
   * in the next hour, so a node cannot leave a permanent entry behind.
   */
  async upsertNodeHeartbeat(caller: Identity, node: ServerResource): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    if (!isAdmin && node.metadata.name !== hostIdOf(caller)) {
      throw new AccessDeniedError(
        `host ${
          hostIdOf(caller)
        } cannot announce node "${node.metadata.name}": a node announces only itself`,
      );
    }
    this.#checkHeartbeat(node);
    await this.#ctx.presence.upsertNode(node);
  }

  /**
   * A proxy's heartbeat, like {@link upsertNodeHeartbeat}: only a Proxy host (or Admin), only
   * for itself (name = its host UUID), expiring within the hour.
   */
  async upsertProxyHeartbeat(caller: Identity, proxy: ProxyResource): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    const isProxy = caller.kind === "host" && caller.roles.includes("Proxy");
    if (!isAdmin && !(isProxy && proxy.metadata.name === hostIdOf(caller))) {
      throw new AccessDeniedError(
        `${caller.username} cannot announce proxy "${proxy.metadata.name}": a proxy announces only itself`,
      );
    }
    this.#checkHeartbeat(proxy);
    await this.#ctx.presence.upsertProxy(proxy);
  }

  /** A proxy that shuts down withdraws its presence (so agents stop looking for it). */
  async deleteProxyHeartbeat(caller: Identity, name: string): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    const isProxy = caller.kind === "host" && caller.roles.includes("Proxy");
    if (!isAdmin && !(isProxy && name === hostIdOf(caller))) {
      throw new AccessDeniedError(
        `${caller.username} cannot withdraw proxy "${name}": a proxy withdraws only itself`,
      );
    }
    await this.#ctx.presence.deleteProxy(name);
  }

  // ---- session trackers ------------------------------------------------------

  /**
   * A node's tracker of a session it runs: only a Node host (or Admin), only for itself
   * (`spec.node_id` = its host UUID), never over another node's session, expiring within the
   * hour (the node keeps it alive).
   */
  async upsertSessionTracker(caller: Identity, tracker: SessionTracker): Promise<void> {
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    const isNode = caller.kind === "host" && caller.roles.includes("Node");
    const hostId = hostIdOf(caller);
    if (!isAdmin && !(isNode && tracker.spec.node_id === hostId)) {
      throw new AccessDeniedError(
        `${caller.username} cannot track session "${tracker.metadata.name}": a node tracks ` +
          "only its own sessions",
      );
    }
    const sid = tracker.metadata.name;
    const existing = await this.#ctx.sessionTrackers.get(sid).catch((err) => {
      if (isKind(err, "NotFound")) return undefined;
      throw err;
    });
    if (existing !== undefined && existing.spec.node_id !== tracker.spec.node_id) {
      throw new AccessDeniedError(
        `Cannot track session "${sid}": it runs on node ${existing.spec.node_id}`,
      );
    }
    const expires = Date.parse(tracker.metadata.expires ?? "");
    const now = this.#ctx.clock.now().getTime();
    if (Number.isNaN(expires) || expires <= now || expires > now + 3_600_000) {
      throw new BadParameterError(
        `Cannot track session "${sid}": metadata.expires must lie within the next hour`,
      );
    }
    await this.#ctx.sessionTrackers.upsert({
      ...tracker,
      spec: { ...tracker.spec, cluster_name: this.#ctx.clusterName },
    });
  }

  /** A node withdraws the tracker of a session that ended (only its own sessions). */
  async deleteSessionTracker(caller: Identity, sid: string): Promise<void> {
    const tracker = await this.#ctx.sessionTrackers.get(sid);
    const isAdmin = caller.kind === "host" && caller.roles.includes("Admin");
    if (!isAdmin && !(caller.kind === "host" && tracker.spec.node_id === hostIdOf(caller))) {
      throw new AccessDeniedError(
        `${caller.username} cannot end the tracker of session "${sid}": it runs on node ` +
          tracker.spec.node_id,
      );
    }
    await this.#ctx.sessionTrackers.delete(sid);
  }

  /**
   * The running sessions `caller` may see: all of them for hosts and for users whose roles
   * allow `list` on `session_tracker` or `session` (recordings); otherwise the user's own
   * sessions and those their `join_sessions` policies let them join.
   */
  async listVisibleSessionTrackers(caller: Identity): Promise<SessionTracker[]> {
    const all = await this.#ctx.sessionTrackers.list();
    const sees = await this.#sessionVisibility(caller);
    const out: SessionTracker[] = [];
    for (const t of all) if (await sees(t)) out.push(t);
    return out;
  }

  /** One running session, if `caller` may see it (NotFoundError otherwise, hiding it). */
  async getVisibleSessionTracker(caller: Identity, sid: string): Promise<SessionTracker> {
    const tracker = await this.#ctx.sessionTrackers.get(sid);
    if (!await (await this.#sessionVisibility(caller))(tracker)) {
      throw new NotFoundError(`session "${sid}" is not running (no session tracker)`);
    }
    return tracker;
  }

  async #sessionVisibility(caller: Identity): Promise<(t: SessionTracker) => Promise<boolean>> {
    if (caller.kind === "host") return () => Promise.resolve(true);
    const checker = await this.#ctx.checkerFor(caller);
    const allows = (resource: string) => {
      try {
        checker.checkRule(resource, "list");
        return true;
      } catch {
        return false;
      }
    };
    if (allows("session_tracker") || allows("session")) return () => Promise.resolve(true);
    const ownerRoles = new Map<string, Promise<string[]>>();
    return async (t) => {
      if (t.spec.user === caller.username) return true;
      let roles = ownerRoles.get(t.spec.user);
      if (roles === undefined) {
        roles = this.#ctx.users.get(t.spec.user).then((u) => u.spec.roles, () => []);
        ownerRoles.set(t.spec.user, roles);
      }
      const session = { owner: t.spec.user, ownerRoles: await roles, kind: t.spec.kind };
      return checker.canJoinSession(caller.username, session, "observer") ||
        checker.canJoinSession(caller.username, session, "peer");
    };
  }

  /** Expiry within the next hour; a host certificate, when given, must parse as one. */
  #checkHeartbeat(r: ServerResource | ProxyResource): void {
    const now = this.#ctx.clock.now().getTime();
    const expires = r.metadata.expires === undefined ? NaN : Date.parse(r.metadata.expires);
    if (!(expires > now && expires <= now + MAX_HEARTBEAT_TTL_MS)) {
      throw new BadParameterError(
        "Cannot store heartbeat: metadata.expires must be a time within the next hour",
      );
    }
    if (r.spec.host_cert !== undefined) {
      let certType: string;
      try {
        certType = parseSshCertificate(r.spec.host_cert).certType;
      } catch (err) {
        throw new BadParameterError(
          `Cannot store heartbeat: spec.host_cert is not an SSH certificate (${messageOf(err)})`,
          { cause: err },
        );
      }
      if (certType !== "host") {
        throw new BadParameterError(
          "Cannot store heartbeat: spec.host_cert must be a host certificate, not a user one",
        );
      }
    }
  }

  /** The nodes a user's roles let them see (node_labels; deny wins). Hosts see all. */
  async listVisibleNodes(caller: Identity): Promise<ServerResource[]> {
    const nodes = await this.#ctx.presence.listNodes();
    if (caller.kind !== "user") return nodes;
    const checker = await this.#ctx.checkerFor(caller);
    return nodes.filter((n) =>
      checker.canSeeNode({ name: n.metadata.name, labels: n.metadata.labels ?? {} })
    );
  }

  /** One node, if the caller may see it (NotFoundError otherwise, hiding its existence). */
  async getVisibleNode(caller: Identity, name: string): Promise<ServerResource> {
    const node = await this.#ctx.presence.getNode(name);
    if (caller.kind === "user") {
      const checker = await this.#ctx.checkerFor(caller);
      if (!checker.canSeeNode({ name: node.metadata.name, labels: node.metadata.labels ?? {} })) {
        throw new NotFoundError(`node "${name}" is not found`);
      }
    }
    return node;
  }
}
