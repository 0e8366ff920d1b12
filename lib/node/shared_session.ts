/**
 * Session sharing (Teleport's `tsh join`): an interactive session on a PTY is a shared object.
 * Its output fans out to every party; peers' input is merged into the PTY; observers only
 * watch. Everyone in the session sees a line when someone joins or leaves (written to the
 * parties' channels, not into the PTY, so neither the shell nor the recording sees it).
 *
 * Joining: a client opens a session channel, sends `env TELEPORT_SESSION=<sid>` (and
 * optionally `TELEPORT_PARTICIPANT_MODE=peer|observer`, default peer), then `shell`; see
 * session.ts. The session's own Teleport user may join in either mode; anyone else needs a
 * role whose `allow.join_sessions` admits the mode for the owner's roles (lib/rbac).
 *
 * Every shared session has a tracker in auth ({@link SessionRegistry}): written when it
 * starts and whenever its participants change, kept alive with a TTL, deleted when it ends,
 * so `tsh sessions ls` lists it and `tsh join` finds its node.
 *
 * @module
 */
import type { Clock } from "../clock/mod.ts";
import { messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";
import type {
  SessionParticipant,
  SessionParticipantMode,
  SessionTracker,
} from "../resource/mod.ts";
import type { ServerChannel } from "../ssh/mod.ts";
import type { UserAccess } from "./authorize.ts";
import type { ExitStatus } from "./pty.ts";

/** Env request names a joining client sends before its shell request. */
export const JOIN_SESSION_ENV = "TELEPORT_SESSION";
export const JOIN_MODE_ENV = "TELEPORT_PARTICIPANT_MODE";

/** One joined party. */
interface Party {
  user: string;
  mode: SessionParticipantMode;
  channel: ServerChannel;
  joined: string;
}

const enc = new TextEncoder();

function writable(ch: ServerChannel): boolean {
  return !ch.destroyed && !ch.writableEnded;
}

/** Options of {@link SharedSession}. */
export interface SharedSessionOptions {
  sid: string;
  /** The access of the user who started it (owner of the session). */
  owner: Pick<UserAccess, "user" | "login" | "roles">;
  /** The owner's channel (it gets the PTY output on its own pipe). */
  ownerChannel: ServerChannel;
  /** Writes a peer's keystrokes into the PTY. */
  input: (data: Uint8Array) => void;
  clock: Clock;
  /** Called whenever the participants change (to update the tracker). */
  onChange?: () => void;
}

/** A running interactive session others may join. */
export class SharedSession {
  readonly sid: string;
  readonly owner: Pick<UserAccess, "user" | "login" | "roles">;
  /** When the session started (RFC 3339). */
  readonly created: string;
  readonly #o: SharedSessionOptions;
  readonly #parties = new Set<Party>();
  /** Everyone who took part, for the session.end event. */
  readonly #everyone: Set<string>;
  #ended = false;

  constructor(o: SharedSessionOptions) {
    this.#o = o;
    this.sid = o.sid;
    this.owner = o.owner;
    this.created = o.clock.now().toISOString();
    this.#everyone = new Set([o.owner.user]);
  }

  /** The parties now in the session, the owner first. */
  get participants(): SessionParticipant[] {
    return [
      { user: this.owner.user, mode: "owner", joined: this.created },
      ...[...this.#parties].map((p) => ({ user: p.user, mode: p.mode, joined: p.joined })),
    ];
  }

  /** Every user who took part so far (owner first). */
  get everyone(): string[] {
    return [...this.#everyone];
  }

  /** Sends PTY output to every joined party (the owner gets it on its own pipe). */
  broadcast(data: Uint8Array): void {
    for (const p of this.#parties) if (writable(p.channel)) p.channel.write(data);
  }

  #announce(text: string): void {
    const line = enc.encode(`\r\n${text}\r\n`);
    if (writable(this.#o.ownerChannel)) this.#o.ownerChannel.write(line);
    for (const p of this.#parties) if (writable(p.channel)) p.channel.write(line);
  }

  /**
   * Adds a party on `channel` (an accepted shell request): a peer's input goes to the PTY, an
   * observer's is dropped. The end of its input or its channel closing makes it leave; the
   * session goes on.
   */
  join(
    user: string,
    mode: SessionParticipantMode,
    channel: ServerChannel,
    onLeave?: () => void,
  ): void {
    if (this.#ended) {
      channel.stderr.write(`Cannot join session ${this.sid}: it has ended\r\n`);
      sendExit(channel, { code: 1 });
      return;
    }
    const party: Party = { user, mode, channel, joined: this.#o.clock.now().toISOString() };
    this.#announce(`[user ${user} joined the session as ${mode}]`);
    this.#parties.add(party);
    this.#everyone.add(user);
    channel.write(enc.encode(`[joined session ${this.sid} as ${mode}]\r\n`));
    channel.on("data", (d: Uint8Array) => {
      if (mode === "peer" && this.#parties.has(party)) this.#o.input(Uint8Array.from(d));
    });
    const leave = () => {
      if (!this.#parties.delete(party)) return;
      this.#announce(`[user ${user} left the session]`);
      sendExit(channel, { code: 0 });
      onLeave?.();
      this.#o.onChange?.();
    };
    channel.on("end", leave);
    channel.on("close", leave);
    channel.on("error", leave);
    this.#o.onChange?.();
  }

  /** The session ended: every party gets its exit status and its channel closes. */
  end(status: ExitStatus): void {
    this.#ended = true;
    const parties = [...this.#parties];
    this.#parties.clear();
    for (const p of parties) sendExit(p.channel, status);
  }
}

function sendExit(ch: ServerChannel, status: ExitStatus): void {
  try {
    if ("code" in status) ch.exit(status.code);
    else ch.exitSignal(status.signal);
    ch.end();
  } catch {
    // the party went away first
  }
}

/** The slice of the auth API the registry uses (lib/authclient AuthClient fits). */
export interface SessionTrackerApi {
  upsertSessionTracker(tracker: SessionTracker): Promise<void>;
  deleteSessionTracker(sid: string): Promise<void>;
}

/** Options of {@link SessionRegistry}. */
export interface SessionRegistryOptions {
  auth: SessionTrackerApi;
  node: { hostId: string; nodeName: string; clusterName: string };
  clock: Clock;
  logger: Logger;
  /** How long one tracker write keeps a session listed. @default {120000} */
  trackerTtlMs?: number;
}

/** The node's shared sessions by id, mirrored to auth as session trackers. */
export class SessionRegistry {
  readonly #o: SessionRegistryOptions;
  readonly #sessions = new Map<string, SharedSession>();
  /** Tracker writes in order per session, so a late keepalive never revives a deleted one. */
  readonly #writes = new Map<string, Promise<void>>();

  constructor(o: SessionRegistryOptions) {
    this.#o = o;
  }

  /** A running session on this node. */
  get(sid: string): SharedSession | undefined {
    return this.#sessions.get(sid);
  }

  /** How long one tracker write keeps a session listed. */
  get trackerTtlMs(): number {
    return this.#o.trackerTtlMs ?? 120_000;
  }

  /** Registers a started session and writes its tracker. */
  add(session: SharedSession): void {
    this.#sessions.set(session.sid, session);
    this.update(session.sid);
  }

  /** Writes the tracker of `sid` again (participants changed, or keepalive). */
  update(sid: string): Promise<void> {
    const session = this.#sessions.get(sid);
    if (session === undefined) return Promise.resolve();
    return this.#queue(sid, () => this.#o.auth.upsertSessionTracker(this.#tracker(session)));
  }

  /** The session ended: forgets it and deletes its tracker. */
  remove(sid: string): Promise<void> {
    if (!this.#sessions.delete(sid)) return Promise.resolve();
    const done = this.#queue(sid, () => this.#o.auth.deleteSessionTracker(sid));
    void done.then(() => {
      if (!this.#sessions.has(sid) && this.#writes.get(sid) === done) this.#writes.delete(sid);
    });
    return done;
  }

  /** Keeps every tracker alive (called periodically by the node service). */
  async keepAlive(): Promise<void> {
    await Promise.all([...this.#sessions.keys()].map((sid) => this.update(sid)));
  }

  #queue(sid: string, write: () => Promise<void>): Promise<void> {
    const next = (this.#writes.get(sid) ?? Promise.resolve()).then(write).catch((err) =>
      this.#o.logger.warn("Cannot update the tracker of session {sid}: {reason}", {
        sid,
        reason: messageOf(err),
      })
    );
    this.#writes.set(sid, next);
    return next;
  }

  #tracker(s: SharedSession): SessionTracker {
    const n = this.#o.node;
    return {
      kind: "session_tracker",
      version: "v1",
      metadata: {
        name: s.sid,
        expires: new Date(this.#o.clock.now().getTime() + this.trackerTtlMs).toISOString(),
      },
      spec: {
        session_id: s.sid,
        kind: "ssh",
        state: "running",
        created: s.created,
        user: s.owner.user,
        login: s.owner.login,
        node_id: n.hostId,
        hostname: n.nodeName,
        cluster_name: n.clusterName,
        participants: s.participants,
      },
    };
  }
}
