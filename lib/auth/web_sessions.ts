/**
 * Web sessions (the browser UI's logins through the proxy), kept in auth's backend so that any
 * proxy of the cluster can serve a browser that logged in at another one. The proxy makes the
 * session (keys, certificates from a password login, a bearer token of which only the SHA-256
 * is stored) and writes it here; each item expires with the session (`expires`, renewed by the
 * proxy while the session is used, never past `max_expires`, the certificates' end).
 */
import type { Backend, Key } from "../backend/mod.ts";
import type { WebSessionRecord } from "../authclient/mod.ts";
import { BadParameterError, isKind, NotFoundError } from "../errors/mod.ts";

const PREFIX = "web_sessions";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Web session ids are 32 random bytes in hex. */
export const WEB_SESSION_ID = /^[0-9a-f]{64}$/;

/** Throws BadParameterError unless `id` has the shape of a web session id. */
export function checkWebSessionId(id: string): string {
  if (!WEB_SESSION_ID.test(id)) {
    throw new BadParameterError("web session ids are 64 lowercase hex characters");
  }
  return id;
}

/** Checks a record's fields before it is stored. */
function checkRecord(r: WebSessionRecord): WebSessionRecord {
  const strings = ["id", "user", "bearer_sha256", "ssh_cert", "tls_cert", "key_pem", "tls_key_pem"];
  for (const f of strings) {
    const v = (r as unknown as Record<string, unknown>)[f];
    if (typeof v !== "string" || v === "" || v.length > 16_384) {
      throw new BadParameterError(`field "session.${f}" must be a non-empty string`);
    }
  }
  checkWebSessionId(r.id);
  if (!/^[0-9a-f]{64}$/.test(r.bearer_sha256)) {
    throw new BadParameterError(`field "session.bearer_sha256" must be 64 hex characters`);
  }
  for (const f of ["expires", "max_expires", "created"] as const) {
    if (Number.isNaN(Date.parse(r[f]))) {
      throw new BadParameterError(`field "session.${f}" must be an RFC 3339 time`);
    }
  }
  if (Date.parse(r.expires) > Date.parse(r.max_expires)) {
    throw new BadParameterError(`field "session.expires" must not be after "max_expires"`);
  }
  return r;
}

/** Web session storage over a backend, one item per session, expiring with it. */
export class WebSessionStore {
  readonly #backend: Backend;

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  #key(id: string): Key {
    return [PREFIX, checkWebSessionId(id)];
  }

  /** Writes `session` until its `expires`. */
  async upsert(session: WebSessionRecord): Promise<void> {
    checkRecord(session);
    await this.#backend.put({
      key: this.#key(session.id),
      value: enc.encode(JSON.stringify(session)),
      expires: new Date(session.expires),
    });
  }

  /** The session `id`; NotFoundError when there is none (never was, expired, logged out). */
  async get(id: string): Promise<WebSessionRecord> {
    try {
      return JSON.parse(dec.decode((await this.#backend.get(this.#key(id))).value));
    } catch (err) {
      if (isKind(err, "NotFound")) throw new NotFoundError("the web session is not found");
      throw err;
    }
  }

  /** Removes the session `id` (no error when it is already gone). */
  async delete(id: string): Promise<void> {
    try {
      await this.#backend.delete(this.#key(id));
    } catch (err) {
      if (!isKind(err, "NotFound")) throw err;
    }
  }
}
