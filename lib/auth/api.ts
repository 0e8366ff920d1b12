/**
 * The auth HTTP API as a web-standard handler ({@link createAuthApiHandler}:
 * `(Request, AuthConnInfo) => Promise<Response>`) over a pure router of (method, path, body,
 * caller) ({@link handleApiRequest}). The TLS listener (listener.ts, on lib/net's one HTTP
 * adapter) identifies the caller from its verified client certificate and bounds the body;
 * tests call either without sockets. Session recordings are the one non-JSON route:
 * `PUT /v1/recordings/:sid` streams the request body to the recording store and
 * `GET /v1/recordings/:sid` answers with the stored gzip stream (both written and read with
 * backpressure by the adapter).
 *
 * Unauthenticated: `GET /v1/ping`, `GET /v1/cacerts`, and `POST /v1/register`
 * (join; the token is the credential). Everything else needs a caller and
 * passes an RBAC rule check. Login and invite-token routes (password checks)
 * are for the proxy's host identity only, so a user certificate cannot try
 * other users' passwords. Errors keep their kind: the body is
 * `{"error":{"kind","message"}}` with the kind's HTTP status.
 */
import {
  AccessDeniedError,
  BadParameterError,
  httpStatusOf,
  kindOf,
  messageOf,
  NotFoundError,
} from "../errors/mod.ts";
import type { Identity } from "../identity/mod.ts";
import { type Logger, maskSecret } from "../log/mod.ts";
import type { ConnInfo } from "../net/mod.ts";
import type { SearchQuery } from "../events/mod.ts";
import {
  parseResourceValue,
  resolveKind,
  ROTATION_PHASES,
  type RotationPhase,
  type SessionTracker,
} from "../resource/mod.ts";
import type { RegisterRequest, WebSessionRecord } from "../authclient/mod.ts";
import type { AuthServer } from "./server.ts";
import { parseWatchKinds, type WatchHub } from "./watch.ts";

/** One API call, transport-free. */
export interface ApiRequest {
  method: string;
  path: string;
  body?: unknown;
  /** The verified caller; undefined when no (valid) client certificate was presented. */
  caller?: Identity;
  /** Remote address, for logs. */
  remoteAddr?: string;
  /** URL query parameters. */
  query?: URLSearchParams;
  /** Where `GET /v1/watch` opens its streams; without it that route answers 404. */
  watches?: WatchHub;
}

/** The answer: a status and a JSON body, or a streamed Response (`GET /v1/watch`). */
export interface ApiResponse {
  status: number;
  body: unknown;
}

type Handler = (
  server: AuthServer,
  req: ApiRequest,
  params: string[],
) => Promise<unknown>;

interface Route {
  method: string;
  pattern: RegExp;
  /** false: reachable without a client certificate. */
  auth: boolean;
  handler: Handler;
}

function caller(req: ApiRequest): Identity {
  if (req.caller === undefined) {
    throw new AccessDeniedError("this API call needs a client certificate signed by the cluster");
  }
  return req.caller;
}

/** The path's user, when it is the caller itself (a user identity); users manage only themselves. */
function self(req: ApiRequest, user: string): string {
  const id = caller(req);
  if (id.kind !== "user" || id.username !== user) {
    throw new AccessDeniedError(`users manage only their own account, not "${user}"`);
  }
  return user;
}

/** Host identities only: the proxy (or admin) acting for users who have no certificate yet. */
function hostCaller(req: ApiRequest, what: string): Identity {
  const id = caller(req);
  if (id.kind !== "host") {
    throw new AccessDeniedError(`only the proxy service may ${what}; log in through the proxy`);
  }
  return id;
}

/** A client address forwarded by a Proxy host, or else the connection's own address. */
function forwardedAddr(req: ApiRequest, forwarded: string | undefined): string | undefined {
  const proxy = req.caller?.kind === "host" &&
    req.caller.roles.some((r) => r === "Proxy" || r === "Admin");
  if (forwarded !== undefined && proxy) {
    if (forwarded.length > 256 || !/^[A-Za-z0-9.:[\]%_-]+$/.test(forwarded)) {
      throw new BadParameterError(`field "remote_addr" must be a host:port address`);
    }
    return forwarded;
  }
  return req.remoteAddr;
}

function body(req: ApiRequest): Record<string, unknown> {
  if (typeof req.body !== "object" || req.body === null || Array.isArray(req.body)) {
    throw new BadParameterError("request body must be a JSON object");
  }
  return req.body as Record<string, unknown>;
}

function field<T extends "string" | "number" | "boolean">(
  b: Record<string, unknown>,
  name: string,
  type: T,
  optional = false,
): (T extends "string" ? string : T extends "number" ? number : boolean) | undefined {
  const v = b[name];
  if (v === undefined && optional) return undefined;
  // deno-lint-ignore valid-typeof
  if (typeof v !== type) throw new BadParameterError(`field "${name}" must be a ${type}`);
  return v as never;
}

function stringList(b: Record<string, unknown>, name: string): string[] {
  const v = b[name];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new BadParameterError(`field "${name}" must be a list of strings`);
  }
  return v;
}

/** Size and character limits of the join request (`POST /v1/register`). */
export const REGISTER_LIMITS = {
  /** Tokens are 32 hex characters; static tokens from the config may be longer. */
  tokenChars: 128,
  /** A DNS name's longest form. */
  nodeNameChars: 253,
  hostIdChars: 64,
  principals: 64,
  principalChars: 253,
  /** An RSA 16384-bit key in authorized_keys or SPKI PEM form is under 3 KiB. */
  publicKeyChars: 8192,
} as const;

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Printable name characters; glob characters pass here so the join check can name them. */
const PRINCIPAL = /^[A-Za-z0-9.:_*?[\]-]+$/;

/** A string field of at most `max` characters; the error never repeats the value. */
function boundedString(
  b: Record<string, unknown>,
  name: string,
  max: number,
  pattern?: { re: RegExp; what: string },
): string {
  const v = b[name];
  if (typeof v !== "string" || v === "") {
    throw new BadParameterError(`Cannot join: field "${name}" must be a non-empty string`);
  }
  if (v.length > max) {
    throw new BadParameterError(
      `Cannot join: field "${name}" is ${v.length} characters long; the limit is ${max}`,
    );
  }
  if (pattern !== undefined && !pattern.re.test(v)) {
    throw new BadParameterError(`Cannot join: field "${name}" must be ${pattern.what}`);
  }
  return v;
}

/** A list of principals or DNS names, bounded in count and length. */
function principalList(b: Record<string, unknown>, name: string): string[] {
  const v = b[name];
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    throw new BadParameterError(`Cannot join: field "${name}" must be a list of strings`);
  }
  if (v.length > REGISTER_LIMITS.principals) {
    throw new BadParameterError(
      `Cannot join: field "${name}" has ${v.length} entries; the limit is ${REGISTER_LIMITS.principals}`,
    );
  }
  return v.map((p, i) =>
    boundedString({ [`${name}[${i}]`]: p }, `${name}[${i}]`, REGISTER_LIMITS.principalChars, {
      re: PRINCIPAL,
      what: `a host name or address (letters, digits and . : _ * -)`,
    })
  );
}

/**
 * The join request, with every field checked for type, size and characters, so that no
 * oversized or odd value reaches a log line or an audit event.
 */
export function parseRegisterBody(b: Record<string, unknown>): RegisterRequest {
  const token = boundedString(b, "token", REGISTER_LIMITS.tokenChars, {
    re: /^[\x21-\x7e]+$/,
    what: "printable ASCII without spaces",
  });
  const hostID = boundedString(b, "hostID", REGISTER_LIMITS.hostIdChars, {
    re: HOST_ID,
    what: "a UUID (letters, digits and . _ -)",
  });
  const role = boundedString(b, "role", 32, { re: /^[A-Za-z]+$/, what: "node or proxy" });
  return { token, hostID, role, ...parseHostRequestBody(b) };
}

/**
 * The host's own fields of a join or re-registration (node name, names, public keys), each
 * bounded and checked for form as in {@link parseRegisterBody}.
 */
export function parseHostRequestBody(
  b: Record<string, unknown>,
): Omit<RegisterRequest, "token" | "hostID" | "role"> {
  const nodeName = boundedString(b, "node_name", REGISTER_LIMITS.nodeNameChars, {
    re: HOST_NAME,
    what: "a host name (letters, digits and . _ -, starting with a letter or digit)",
  });
  const key = (name: string) =>
    boundedString(b, name, REGISTER_LIMITS.publicKeyChars, {
      re: /^[\x20-\x7e\r\n]+$/,
      what: "a public key in text form",
    });
  return {
    node_name: nodeName,
    additional_principals: principalList(b, "additional_principals"),
    dns_names: principalList(b, "dns_names"),
    public_ssh_key: key("public_ssh_key"),
    public_tls_key: key("public_tls_key"),
  };
}

/** `GET /v1/events?from=&to=&type=a,b&sid=&limit=&order=&start_key=` as a search query. */
function searchQueryOf(q: URLSearchParams): SearchQuery {
  const time = (name: string) => {
    const v = q.get(name);
    if (v === null) {
      throw new BadParameterError(`query parameter "${name}" (RFC 3339 time) is required`);
    }
    const t = Date.parse(v);
    if (Number.isNaN(t)) {
      throw new BadParameterError(`query parameter "${name}" is not a time: ${v}`);
    }
    return new Date(t);
  };
  const out: SearchQuery = { from: time("from"), to: time("to") };
  const types = q.get("type");
  if (types) out.types = types.split(",").filter((t) => t !== "");
  const sid = q.get("sid");
  if (sid) out.sid = sid;
  const limit = q.get("limit");
  if (limit !== null) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n <= 0) {
      throw new BadParameterError(`query parameter "limit" must be a positive integer`);
    }
    out.limit = n;
  }
  const order = q.get("order");
  if (order !== null) {
    if (order !== "asc" && order !== "desc") {
      throw new BadParameterError(`query parameter "order" must be asc or desc`);
    }
    out.order = order;
  }
  const startKey = q.get("start_key");
  if (startKey) out.startKey = startKey;
  return out;
}

const ROUTES: Route[] = [
  {
    method: "GET",
    pattern: /^\/v1\/ping$/,
    auth: false,
    handler: (s) =>
      Promise.resolve({
        cluster_name: s.clusterName,
        server_version: s.version,
        auth_preference: { type: "local", second_factor: s.secondFactor },
        proxy_listener_mode: s.proxyListenerMode,
      }),
  },
  {
    method: "GET",
    pattern: /^\/v1\/cacerts$/,
    auth: false,
    handler: (s) => Promise.resolve({ tls_ca_certs: s.hostCaCertPems() }),
  },
  {
    method: "POST",
    pattern: /^\/v1\/register$/,
    auth: false,
    handler: (s, req) => {
      // The token is the credential; no client certificate is needed. A proxy forwarding a
      // join (`/webapi/host/credentials`) may pass the joining host's address. The fields are
      // checked before anything about the request is logged or audited.
      const b = body(req);
      const join = parseRegisterBody(b);
      const remoteAddr = forwardedAddr(req, field(b, "remote_addr", "string", true));
      return s.registerUsingToken(join, remoteAddr);
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/hosts\/reregister$/,
    auth: true,
    // The caller's host certificate is the credential: its host id and role are used.
    handler: (s, req) => s.reRegisterHost(caller(req), parseHostRequestBody(body(req))),
  },
  {
    method: "POST",
    pattern: /^\/v1\/authorities\/([a-z]+)\/rotate$/,
    auth: true,
    // `tctl auth rotate`: moves a CA's rotation (Teleport's RotateCertAuthority).
    handler: async (s, req, [type]) => {
      await s.authorize(caller(req), "cert_authority", "rotate");
      if (type !== "host" && type !== "user") {
        throw new BadParameterError(`Cannot rotate the "${type}" CA: the types are host and user`);
      }
      const b = body(req);
      const phase = field(b, "phase", "string", true);
      if (phase !== undefined && !(ROTATION_PHASES as readonly string[]).includes(phase)) {
        throw new BadParameterError(
          `Cannot rotate the ${type} CA: phase must be one of ${ROTATION_PHASES.join(", ")}`,
        );
      }
      const mode = field(b, "mode", "string", true);
      if (mode !== undefined && mode !== "auto" && mode !== "manual") {
        throw new BadParameterError(`Cannot rotate the ${type} CA: mode must be auto or manual`);
      }
      const grace = field(b, "grace_period_ms", "number", true);
      if (grace !== undefined && !(Number.isSafeInteger(grace) && grace > 0)) {
        throw new BadParameterError(
          `Cannot rotate the ${type} CA: grace_period_ms must be a positive whole number`,
        );
      }
      const ca = await s.rotateCertAuthority(type, {
        ...(phase === undefined ? {} : { phase: phase as RotationPhase }),
        ...(mode === undefined ? {} : { mode }),
        ...(grace === undefined ? {} : { gracePeriodMs: grace }),
      });
      return { authority: ca };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/status$/,
    auth: true,
    handler: async (s, req) => {
      await s.authorize(caller(req), "cluster", "read");
      return {
        cluster_name: s.clusterName,
        server_version: s.version,
        authorities: await s.authorities(),
      };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/watch$/,
    auth: true,
    // A stream of CA (public parts), role and node events; the caller needs list and read on
    // every kind it asks for. The body is a Response the listener streams.
    handler: async (s, req) => {
      const id = caller(req);
      const kinds = parseWatchKinds(req.query?.get("kinds") ?? null);
      if (id.kind === "user" && kinds.includes("node")) {
        // Users see the nodes their roles' labels allow (listVisibleNodes); a stream of every
        // node's events would go around that filter.
        throw new AccessDeniedError(
          "Cannot watch nodes as a user: list them with GET /v1/resources/node instead",
        );
      }
      for (const kind of kinds) {
        await s.authorize(id, kind, "list");
        await s.authorize(id, kind, "read");
      }
      if (req.watches === undefined) {
        throw new NotFoundError("Cannot watch resources: this listener does not serve watches");
      }
      return req.watches.open(kinds);
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/resources\/([a-z_]+)$/,
    auth: true,
    handler: async (s, req, [kindName]) => {
      const kind = resolveKind(kindName!);
      const id = caller(req);
      // Users see the nodes their roles give access to, without a rule.
      if (kind === "node" && id.kind === "user") return { items: await s.listVisibleNodes(id) };
      await s.authorize(id, kind, "list");
      return { items: await s.listResources(kind) };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/resources\/([a-z_]+)\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [kindName, name]) => {
      const kind = resolveKind(kindName!);
      const id = caller(req);
      if (kind === "node" && id.kind === "user") return { item: await s.getVisibleNode(id, name!) };
      await s.authorize(id, kind, "read");
      return { item: await s.getResource(kind, name!) };
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/resources$/,
    auth: true,
    handler: async (s, req) => {
      const b = body(req);
      const resource = parseResourceValue(b.resource);
      const upsert = field(b, "upsert", "boolean", true) ?? false;
      const id = caller(req);
      await s.authorize(id, resource.kind, "create");
      if (upsert) await s.authorize(id, resource.kind, "update");
      await s.putResource(resource, upsert, id.username);
      return { ok: true };
    },
  },
  {
    method: "DELETE",
    pattern: /^\/v1\/resources\/([a-z_]+)\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [kindName, name]) => {
      const kind = resolveKind(kindName!);
      await s.authorize(caller(req), kind, "delete");
      await s.deleteResource(kind, name!);
      return { ok: true };
    },
  },
  {
    method: "PUT",
    pattern: /^\/v1\/nodes\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [name]) => {
      const id = caller(req);
      await s.authorize(id, "node", "update");
      const node = parseResourceValue(body(req).node);
      if (node.kind !== "node" || node.metadata.name !== name) {
        throw new BadParameterError(`field "node" must be the node resource named "${name}"`);
      }
      await s.upsertNodeHeartbeat(id, node);
      return { ok: true };
    },
  },
  {
    method: "PUT",
    pattern: /^\/v1\/proxies\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [name]) => {
      const id = caller(req);
      await s.authorize(id, "proxy", "update");
      const proxy = parseResourceValue(body(req).proxy);
      if (proxy.kind !== "proxy" || proxy.metadata.name !== name) {
        throw new BadParameterError(`field "proxy" must be the proxy resource named "${name}"`);
      }
      await s.upsertProxyHeartbeat(id, proxy);
      return { ok: true };
    },
  },
  {
    method: "DELETE",
    pattern: /^\/v1\/proxies\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [name]) => {
      await s.deleteProxyHeartbeat(caller(req), name!);
      return { ok: true };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/proxies$/,
    auth: true,
    handler: async (s, req) => {
      caller(req); // any cluster identity, users included (tsh finds proxies this way)
      return { items: await s.presence.listProxies() };
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/events$/,
    auth: true,
    handler: async (s, req) => {
      const id = caller(req);
      await s.authorize(id, "event", "create");
      const events = body(req).events;
      if (!Array.isArray(events)) throw new BadParameterError(`field "events" must be a list`);
      return { stored: await s.ingestEvents(id, events) };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/events$/,
    auth: true,
    handler: async (s, req) => {
      await s.authorize(caller(req), "event", "list");
      return await s.searchEvents(searchQueryOf(req.query ?? new URLSearchParams()));
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/recordings$/,
    auth: true,
    handler: async (s, req) => {
      await s.authorize(caller(req), "session", "list");
      return { sessions: await s.listRecordings() };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/sessions$/,
    auth: true,
    // Running interactive sessions, filtered per caller (see listVisibleSessionTrackers).
    handler: async (s, req) => ({ items: await s.listVisibleSessionTrackers(caller(req)) }),
  },
  {
    method: "GET",
    pattern: /^\/v1\/sessions\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [sid]) => ({
      item: await s.getVisibleSessionTracker(caller(req), sid!),
    }),
  },
  {
    method: "PUT",
    pattern: /^\/v1\/sessions\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [sid]) => {
      const id = caller(req);
      await s.authorize(id, "session_tracker", "update");
      const tracker = parseResourceValue(body(req).tracker);
      if (tracker.kind !== "session_tracker" || tracker.metadata.name !== sid) {
        throw new BadParameterError(
          `field "tracker" must be the session_tracker resource named "${sid}"`,
        );
      }
      await s.upsertSessionTracker(id, tracker as SessionTracker);
      return { ok: true };
    },
  },
  {
    method: "DELETE",
    pattern: /^\/v1\/sessions\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [sid]) => {
      const id = caller(req);
      await s.authorize(id, "session_tracker", "delete");
      await s.deleteSessionTracker(id, sid!);
      return { ok: true };
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/tokens$/,
    auth: true,
    handler: async (s, req) => {
      const id = caller(req);
      await s.authorize(id, "token", "create");
      const b = body(req);
      const token = field(b, "token", "string", true);
      return {
        token: await s.createToken({
          roles: stringList(b, "roles"),
          ttlMs: field(b, "ttl_ms", "number")!,
          ...(token === undefined ? {} : { token }),
        }, id.username),
      };
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/users$/,
    auth: true,
    handler: async (s, req) => {
      const id = caller(req);
      await s.authorize(id, "user", "create");
      const user = parseResourceValue(body(req).user);
      if (user.kind !== "user") throw new BadParameterError(`field "user" must be a user resource`);
      return await s.createUser(user, id.username);
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/users\/([^/]+)\/reset$/,
    auth: true,
    handler: async (s, req, [name]) => {
      await s.authorize(caller(req), "user", "update");
      return { token: await s.resetUser(name!) };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/users\/password\/token\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [token]) => {
      await s.authorize(hostCaller(req, "read invite tokens"), "user_token", "read");
      return await s.getUserTokenDetails(token!);
    },
  },
  {
    method: "PUT",
    pattern: /^\/v1\/users\/password\/token$/,
    auth: true,
    handler: async (s, req) => {
      await s.authorize(hostCaller(req, "use invite tokens"), "user_token", "use");
      const b = body(req);
      const user = await s.changePasswordWithToken(
        field(b, "token", "string")!,
        field(b, "password", "string")!,
        field(b, "second_factor_token", "string", true),
      );
      return { user };
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/users\/([^/]+)\/ssh\/authenticate$/,
    auth: true,
    handler: async (s, req, [user]) => {
      await s.authorize(hostCaller(req, "authenticate users"), "user_login", "create");
      const b = body(req);
      const otp = field(b, "otp_token", "string", true);
      const ssh = field(b, "ssh_public_key", "string", true);
      const tls = field(b, "tls_public_key", "string", true);
      const remoteAddr = forwardedAddr(req, field(b, "remote_addr", "string", true));
      const method = field(b, "method", "string", true);
      if (method !== undefined && method !== "local" && method !== "web") {
        throw new BadParameterError(`field "method" must be "local" or "web"`);
      }
      return await s.authenticateSshUser({
        ...(method === undefined ? {} : { method }),
        user: user!,
        password: field(b, "password", "string")!,
        ttlMs: field(b, "ttl_ms", "number")!,
        ...(otp === undefined ? {} : { otpToken: otp }),
        ...(ssh === undefined ? {} : { sshPublicKey: ssh }),
        ...(tls === undefined ? {} : { tlsPublicKeyPem: tls }),
        ...(remoteAddr === undefined ? {} : { remoteAddr }),
      });
    },
  },
  {
    method: "PUT",
    pattern: /^\/v1\/users\/([^/]+)\/password$/,
    auth: true,
    handler: async (s, req, [user]) => {
      const id = caller(req);
      // Users change their own password only (with the current one); admins reset instead.
      if (id.kind !== "user" || id.username !== user) {
        throw new AccessDeniedError(
          "users change only their own password; an administrator resets others (tctl users reset)",
        );
      }
      const b = body(req);
      const otp = field(b, "second_factor_token", "string", true);
      const remoteAddr = req.remoteAddr;
      await s.changePassword({
        user: user!,
        oldPassword: field(b, "old_password", "string")!,
        newPassword: field(b, "new_password", "string")!,
        ...(otp === undefined || otp.trim() === "" ? {} : { otpToken: otp.trim() }),
        ...(remoteAddr === undefined ? {} : { remoteAddr }),
      });
      return { ok: true };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/users\/([^/]+)\/mfa\/devices$/,
    auth: true,
    handler: async (s, req, [user]) => ({ devices: await s.listMfaDevices(self(req, user!)) }),
  },
  {
    method: "POST",
    pattern: /^\/v1\/users\/([^/]+)\/mfa\/totp\/replace$/,
    auth: true,
    handler: async (s, req, [user]) => {
      const b = body(req);
      const otp = field(b, "second_factor_token", "string", true);
      return await s.beginTotpReplace({
        user: self(req, user!),
        password: field(b, "password", "string")!,
        ...(otp === undefined || otp.trim() === "" ? {} : { otpToken: otp.trim() }),
        ...(req.remoteAddr === undefined ? {} : { remoteAddr: req.remoteAddr }),
      });
    },
  },
  {
    method: "PUT",
    pattern: /^\/v1\/users\/([^/]+)\/mfa\/totp$/,
    auth: true,
    handler: async (s, req, [user]) => {
      await s.finishTotpReplace(self(req, user!), field(body(req), "code", "string")!);
      return { ok: true };
    },
  },
  {
    method: "PUT",
    pattern: /^\/v1\/web\/sessions\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [id]) => {
      await s.authorize(hostCaller(req, "store web sessions"), "web_session", "create");
      const session = body(req).session as WebSessionRecord;
      if (typeof session !== "object" || session === null || session.id !== id) {
        throw new BadParameterError(`field "session" must be the web session with id in the path`);
      }
      await s.webSessions.upsert(session);
      return { ok: true };
    },
  },
  {
    method: "GET",
    pattern: /^\/v1\/web\/sessions\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [id]) => {
      await s.authorize(hostCaller(req, "read web sessions"), "web_session", "read");
      return { session: await s.webSessions.get(id!) };
    },
  },
  {
    method: "DELETE",
    pattern: /^\/v1\/web\/sessions\/([^/]+)$/,
    auth: true,
    handler: async (s, req, [id]) => {
      await s.authorize(hostCaller(req, "delete web sessions"), "web_session", "delete");
      await s.webSessions.delete(id!);
      return { ok: true };
    },
  },
  {
    method: "POST",
    pattern: /^\/v1\/certs\/user$/,
    auth: true,
    handler: async (s, req) => {
      await s.authorize(caller(req), "user_cert", "create");
      const b = body(req);
      const ssh = field(b, "ssh_public_key", "string", true);
      const tls = field(b, "tls_public_key", "string", true);
      return await s.generateUserCerts({
        user: field(b, "user", "string")!,
        ttlMs: field(b, "ttl_ms", "number")!,
        ...(ssh === undefined ? {} : { sshPublicKey: ssh }),
        ...(tls === undefined ? {} : { tlsPublicKeyPem: tls }),
      });
    },
  },
];

/** Every route as `METHOD /path` (for the API docs and tests). */
export const API_ROUTES: readonly string[] = ROUTES.map((r) =>
  `${r.method} ${r.pattern.source.replace(/\\\//g, "/").replace(/^\^|\$$/g, "")}`
);

/** The path as logs may show it: token values in the path are masked. */
export function redactPath(path: string): string {
  return path.replace(
    /^(\/v1\/resources\/(?:token|tokens)\/|\/v1\/users\/password\/token\/|\/v1\/web\/sessions\/)([^/]+)/,
    (_m, head: string, token: string) => head + maskSecret(safeDecode(token)),
  );
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** What the auth API's handler knows about a request beyond the request itself. */
export interface AuthConnInfo extends ConnInfo {
  /** The verified caller; undefined without a (valid) client certificate. */
  caller?: Identity;
}

/**
 * The auth API as a web-standard handler, `(Request, AuthConnInfo) => Promise<Response>`: a JSON
 * body in (bounded by the listener), `{...}` or `{"error":{"kind","message"}}` out with the
 * kind's status. The TLS listener identifies the caller from its certificate; tests call it with
 * `new Request(…)`.
 */
export function createAuthApiHandler(
  server: AuthServer,
  logger?: Logger,
  o: { watches?: WatchHub } = {},
): (req: Request, info: AuthConnInfo) => Promise<Response> {
  return async (req, info) => {
    const url = new URL(req.url);
    const recording = RECORDING_PATH.exec(url.pathname);
    if (recording !== null) return await onRecording(server, req, info, recording[1]!, logger);
    const text = req.body === null ? "" : await req.text();
    let body: unknown = undefined;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        return Response.json(
          { error: { kind: "BadParameter", message: "request body is not valid JSON" } },
          { status: 400 },
        );
      }
    }
    const out = await handleApiRequest(server, {
      method: req.method,
      path: url.pathname,
      query: url.searchParams,
      body,
      ...(info.caller === undefined ? {} : { caller: info.caller }),
      remoteAddr: info.remoteAddr,
      ...(o.watches === undefined ? {} : { watches: o.watches }),
    }, logger);
    // A watch stream, answered as is.
    if (out.body instanceof Response) return out.body;
    return Response.json(out.body, { status: out.status });
  };
}

/** Session recordings move as raw gzip streams, not JSON: `PUT` and `GET` of one. */
export const RECORDING_PATH = /^\/v1\/recordings\/([^/]+)$/;

/**
 * `PUT` (the body streamed to the recording store) and `GET` (the recording streamed out) of
 * one session recording; a caller with a client certificate only.
 */
async function onRecording(
  server: AuthServer,
  req: Request,
  info: AuthConnInfo,
  rawSid: string,
  logger?: Logger,
): Promise<Response> {
  try {
    if (info.caller === undefined) {
      throw new AccessDeniedError("this API call needs a client certificate signed by the cluster");
    }
    let sid: string;
    try {
      sid = decodeURIComponent(rawSid);
    } catch {
      throw new BadParameterError("the session id in the path is not valid URL encoding");
    }
    if (req.method === "PUT") {
      await server.authorize(info.caller, "session", "create");
      const body = req.body ?? new Response(new Uint8Array()).body!;
      return Response.json(await server.saveRecording(info.caller, sid, body));
    }
    if (req.method === "GET") {
      await server.authorize(info.caller, "session", "read");
      return new Response(await server.openRecording(sid), {
        headers: { "content-type": "application/gzip" },
      });
    }
    throw new BadParameterError(`method ${req.method} is not allowed on recordings`);
  } catch (err) {
    const status = httpStatusOf(err);
    if (status === 500) {
      logger?.error("Recording request {path} failed: {error}", {
        path: new URL(req.url).pathname,
        error: err,
      });
    }
    return Response.json({
      error: {
        kind: kindOf(err) ?? "Internal",
        message: status === 500 ? "internal error, see the auth server log" : messageOf(err),
      },
    }, { status });
  }
}

/**
 * The route a request goes to, as a metric label: `METHOD /v1/path/:param` (parameters
 * replaced, so the label set stays small), or `other` for a path no route serves.
 */
export function apiRouteOf(method: string, path: string): string {
  const route = ROUTES.find((r) => r.method === method && r.pattern.test(path));
  if (route === undefined) return "other";
  const template = route.pattern.source
    .replace(/^\^/, "")
    .replace(/\$$/, "")
    .replace(/\([^)]*\)/g, ":param")
    .replace(/\\\//g, "/");
  return `${method} ${template}`;
}

/** Routes the request, runs it and maps errors to statuses. Never throws. */
export async function handleApiRequest(
  server: AuthServer,
  req: ApiRequest,
  logger?: Logger,
): Promise<ApiResponse> {
  let pathMatched = false;
  for (const route of ROUTES) {
    const m = route.pattern.exec(req.path);
    if (m === null) continue;
    pathMatched = true;
    if (route.method !== req.method) continue;
    try {
      const params = m.slice(1).map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw new BadParameterError(`path ${redactPath(req.path)} is not valid URL encoding`);
        }
      });
      return { status: 200, body: await route.handler(server, req, params) };
    } catch (err) {
      const status = httpStatusOf(err);
      if (status === 500) {
        logger?.error("Auth API {method} {path} failed: {error}", {
          method: req.method,
          path: redactPath(req.path),
          error: err,
        });
      } else {
        logger?.debug("Auth API {method} {path} refused: {message}", {
          method: req.method,
          path: redactPath(req.path),
          message: messageOf(err),
        });
      }
      return {
        status,
        body: {
          error: {
            kind: kindOf(err) ?? "Internal",
            message: status === 500 ? "internal error, see the auth server log" : messageOf(err),
          },
        },
      };
    }
  }
  const err = pathMatched
    ? new BadParameterError(`method ${req.method} is not allowed on ${req.path}`)
    : new NotFoundError(`no API endpoint ${req.method} ${redactPath(req.path)}`);
  return {
    status: httpStatusOf(err),
    body: { error: { kind: kindOf(err), message: err.message } },
  };
}
