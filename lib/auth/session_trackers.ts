/**
 * Session trackers (Teleport's `session_tracker`): the interactive sessions running right now,
 * so `tsh sessions ls` can list them and `tsh join` can find the node of one. The node running
 * a session writes its tracker when the session starts, again whenever its participants change
 * and periodically to keep it alive (each write carries an expiry within the hour), and deletes
 * it when the session ends; a node that dies leaves a tracker that expires by itself.
 */
import type { Backend, Key } from "../backend/mod.ts";
import { isKind, NotFoundError } from "../errors/mod.ts";
import { parseResourceValue, type SessionTracker } from "../resource/mod.ts";

const PREFIX = "session_trackers";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Tracker storage over a backend, one item per session id, expiring with the tracker. */
export class SessionTrackerStore {
  readonly #backend: Backend;

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  #key(sid: string): Key {
    return [PREFIX, sid];
  }

  /** Writes `tracker` until its `metadata.expires`. */
  async upsert(tracker: SessionTracker): Promise<void> {
    const expires = tracker.metadata.expires;
    await this.#backend.put({
      key: this.#key(tracker.metadata.name),
      value: enc.encode(JSON.stringify(tracker)),
      ...(expires === undefined ? {} : { expires: new Date(expires) }),
    });
  }

  /** The tracker of session `sid`; NotFoundError when no such session runs. */
  async get(sid: string): Promise<SessionTracker> {
    try {
      return decode((await this.#backend.get(this.#key(sid))).value);
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new NotFoundError(`session "${sid}" is not running (no session tracker)`);
      }
      throw err;
    }
  }

  /** Every live tracker, oldest session first. */
  async list(): Promise<SessionTracker[]> {
    const items = await this.#backend.getRange({ prefix: [PREFIX] });
    return items
      .filter((i) => i.key.length === 2)
      .map((i) => decode(i.value))
      .sort((a, b) => a.spec.created.localeCompare(b.spec.created));
  }

  /** Removes the tracker of `sid`; NotFoundError when there is none. */
  async delete(sid: string): Promise<void> {
    try {
      await this.#backend.delete(this.#key(sid));
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new NotFoundError(`session "${sid}" is not running (no session tracker)`);
      }
      throw err;
    }
  }
}

function decode(value: Uint8Array): SessionTracker {
  return parseResourceValue(JSON.parse(dec.decode(value))) as SessionTracker;
}
