/**
 * The audit event model: the JSON shape Teleport uses (`event`, `uid`, `code`, `time`, …), the
 * event names and codes we emit, a constructor that stamps uid/code/time, a validator for events
 * that arrive over the wire, and secret masking.
 *
 * Names and codes are Teleport's (`lib/events/api.go`, `lib/events/codes.go`).
 */

import type { Clock } from "../clock/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
import { maskSecret } from "../log/mod.ts";

/**
 * One audit event as stored and sent over the wire. Field names are Teleport's; anything
 * event-specific (`command`, `exitCode`, `size`, …) goes in further fields.
 */
export interface AuditEvent {
  /** Event name, e.g. `session.start`. */
  event: string;
  /** Unique id of this event (a random UUID). */
  uid: string;
  /** Event code, e.g. `T2000I` (suffix I = info, W = warning, E = error). */
  code: string;
  /** When it happened: RFC 3339, UTC, milliseconds (`2026-11-21T10:00:00.000Z`). */
  time: string;
  /** Cluster the event happened in. */
  cluster_name?: string;
  /** Teleport user. */
  user?: string;
  /** OS login on the node. */
  login?: string;
  /** Session id. */
  sid?: string;
  /** Host id of the node. */
  server_id?: string;
  /** Node name. */
  server_hostname?: string;
  /** Client address (`host:port`). */
  "addr.remote"?: string;
  /** Server address (`host:port`). */
  "addr.local"?: string;
  /** Event-specific fields. */
  [field: string]: unknown;
}

/** Event names (Teleport's). */
export const EventType = Object.freeze(
  {
    /** An interactive or exec session started on a node. */
    SessionStart: "session.start",
    /** A session ended. */
    SessionEnd: "session.end",
    /** A user joined a running session (`tsh join`; `mode`: peer or observer). */
    SessionJoin: "session.join",
    /** A joined user left a running session. */
    SessionLeave: "session.leave",
    /** A session recording was uploaded to the auth service. */
    SessionUpload: "session.upload",
    /** A command ran (`command`, `exitCode`, `exitError`). */
    Exec: "exec",
    /** A port forward (direct-tcpip) was opened or refused. */
    Port: "port",
    /** A subsystem (e.g. sftp) was requested. */
    Subsystem: "subsystem",
    /** A failed authentication attempt against a node. */
    AuthAttempt: "auth",
    /** A user login (`method`: `local`, …). */
    UserLogin: "user.login",
    /** A user changed their own password. */
    UserPasswordChange: "user.password_change",
    /** A user enrolled a second-factor device (`mfa_device_type`). */
    MfaAdd: "mfa.add",
    /** A host tried to join the cluster with a token (success or failure). */
    InstanceJoin: "instance.join",
    /** A join token was created. */
    JoinTokenCreate: "join_token.create",
    /** A session's terminal was resized (`size` = `"W:H"`). */
    Resize: "resize",
    /** The server disconnected a client (`reason`). */
    ClientDisconnect: "client.disconnect",
  } as const,
);

/** One of the event names in {@linkcode EventType}. */
export type KnownEventType = typeof EventType[keyof typeof EventType];

/** Event codes (Teleport's `lib/events/codes.go`). */
export const EventCode = Object.freeze(
  {
    UserLocalLogin: "T1000I",
    UserLocalLoginFailure: "T1000W",
    UserPasswordChange: "T1004I",
    MfaDeviceAdd: "T1006I",
    SessionStart: "T2000I",
    SessionJoin: "T2001I",
    TerminalResize: "T2002I",
    SessionLeave: "T2003I",
    SessionEnd: "T2004I",
    SessionUpload: "T2005I",
    Subsystem: "T3001I",
    SubsystemFailure: "T3001E",
    Exec: "T3002I",
    ExecFailure: "T3002E",
    PortForward: "T3003I",
    PortForwardFailure: "T3003E",
    ClientDisconnect: "T3006I",
    AuthAttemptFailure: "T3007W",
    InstanceJoin: "TJ002I",
    InstanceJoinFailure: "TJ002E",
    JoinTokenCreate: "TJT00I",
  } as const,
);

/** Default codes of each known event: `success`, and `failure` where Teleport has one. */
export const EVENT_CODES: Readonly<Record<KnownEventType, { success: string; failure?: string }>> =
  Object.freeze({
    "session.start": { success: EventCode.SessionStart },
    "session.end": { success: EventCode.SessionEnd },
    "session.join": { success: EventCode.SessionJoin },
    "session.leave": { success: EventCode.SessionLeave },
    "session.upload": { success: EventCode.SessionUpload },
    "exec": { success: EventCode.Exec, failure: EventCode.ExecFailure },
    "port": { success: EventCode.PortForward, failure: EventCode.PortForwardFailure },
    "subsystem": { success: EventCode.Subsystem, failure: EventCode.SubsystemFailure },
    "auth": { success: EventCode.AuthAttemptFailure, failure: EventCode.AuthAttemptFailure },
    "user.login": { success: EventCode.UserLocalLogin, failure: EventCode.UserLocalLoginFailure },
    "user.password_change": { success: EventCode.UserPasswordChange },
    "mfa.add": { success: EventCode.MfaDeviceAdd },
    "instance.join": { success: EventCode.InstanceJoin, failure: EventCode.InstanceJoinFailure },
    "join_token.create": { success: EventCode.JoinTokenCreate },
    "resize": { success: EventCode.TerminalResize },
    "client.disconnect": { success: EventCode.ClientDisconnect },
  });

/** True when `name` is one of {@linkcode EventType}. */
export function isKnownEventType(name: string): name is KnownEventType {
  return Object.hasOwn(EVENT_CODES, name);
}

/** Largest serialized event accepted (bytes of its JSON). */
export const MAX_EVENT_BYTES = 64 * 1024;
/** Deepest nesting of objects/arrays inside an event (the event itself is depth 1). */
export const MAX_EVENT_DEPTH = 5;

const EVENT_NAME = /^[a-z_.]{1,64}$/;
const EVENT_CODE = /^[A-Z0-9]{1,16}$/;
const UID = /^[A-Za-z0-9_.:-]{1,128}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const MAX_KEY_LENGTH = 256;
const STRING_FIELDS = [
  "cluster_name",
  "user",
  "login",
  "sid",
  "server_id",
  "server_hostname",
  "addr.remote",
  "addr.local",
] as const;

/** Options of {@linkcode newAuditEvent}. */
export interface NewAuditEventOptions {
  /** Source of `time`. */
  clock: Clock;
  /** Sets `cluster_name` unless `fields` has one. */
  clusterName?: string;
  /** Explicit code; overrides the default of the type (required for unknown types). */
  code?: string;
  /** Use the type's failure code (e.g. `T3002E` for `exec`). */
  failure?: boolean;
}

/**
 * Builds an event of `type`: a fresh `uid`, the type's default `code` (or its failure code, or
 * `options.code`), `time` from the clock, and `fields`. Secret-looking fields are masked (see
 * {@linkcode maskSecretFields}). Throws BadParameterError for a malformed type or an unknown
 * type without `options.code`.
 */
export function newAuditEvent(
  type: string,
  fields: Record<string, unknown>,
  options: NewAuditEventOptions,
): AuditEvent {
  if (!EVENT_NAME.test(type)) {
    throw new BadParameterError(
      `audit event type ${
        JSON.stringify(type)
      } is malformed: use 1-64 characters of a-z, "_" and "."`,
    );
  }
  let code = options.code;
  if (code === undefined) {
    if (!isKnownEventType(type)) {
      throw new BadParameterError(
        `audit event type "${type}" has no default code: pass options.code`,
      );
    }
    const codes = EVENT_CODES[type];
    if (options.failure && codes.failure === undefined) {
      throw new BadParameterError(
        `audit event type "${type}" has no failure code: pass options.code`,
      );
    }
    code = options.failure ? codes.failure! : codes.success;
  }
  if (!EVENT_CODE.test(code)) {
    throw new BadParameterError(
      `audit event code ${
        JSON.stringify(code)
      } is malformed: use up to 16 of A-Z and 0-9 (e.g. T2000I)`,
    );
  }
  const event: AuditEvent = maskSecretFields({
    ...(options.clusterName !== undefined ? { cluster_name: options.clusterName } : {}),
    ...fields,
    event: type,
    uid: crypto.randomUUID(),
    code,
    time: options.clock.now().toISOString(),
  });
  return event;
}

const SECRET_KEY = /token|password|passwd|secret|private_?key|credential|^otp$|^totp$/i;

/** True when a field of this name holds a secret and must be masked before it is stored. */
export function isSecretFieldName(name: string): boolean {
  return SECRET_KEY.test(name);
}

/**
 * Returns a deep copy of `value` where every string under a secret-looking key (`token`,
 * `password`, `secret`, `private_key`, `otp`, …, case-insensitive, anywhere in the key) is
 * replaced by {@linkcode maskSecret}. Non-string values are kept. Masking is idempotent.
 */
export function maskSecretFields<T>(value: T): T {
  return maskValue(value, undefined) as T;
}

function maskValue(value: unknown, key: string | undefined): unknown {
  if (typeof value === "string") {
    return key !== undefined && isSecretFieldName(key) ? maskSecret(value) : value;
  }
  if (Array.isArray(value)) {
    // Elements inherit the key: {tokens: ["a", "b"]} masks both.
    return value.map((v) => maskValue(v, key));
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, maskValue(v, k)]),
    );
  }
  return value;
}

const ENCODER = new TextEncoder();

/**
 * Checks an event that came from elsewhere (the wire, a file) and returns a masked copy
 * (see {@linkcode maskSecretFields}). Throws BadParameterError when it is not a plain object,
 * `event`/`uid`/`code`/`time` are missing or malformed, a standard field is not a string,
 * a value is not JSON, a key is `__proto__` or too long, or nesting is deeper than
 * {@linkcode MAX_EVENT_DEPTH}. Size is the store's business: see {@linkcode fitAuditEvent}.
 */
export function validateAuditEvent(x: unknown): AuditEvent {
  if (!isPlainObject(x)) {
    throw new BadParameterError("audit event must be a JSON object");
  }
  const { event, uid, code, time } = x;
  if (typeof event !== "string" || !EVENT_NAME.test(event)) {
    throw new BadParameterError(
      `audit event field "event" (${JSON.stringify(event)}) must be a known event name or ` +
        `1-64 characters of a-z, "_" and "."`,
    );
  }
  if (typeof uid !== "string" || !UID.test(uid)) {
    throw new BadParameterError(
      `audit event "${event}" field "uid" must be 1-128 characters of A-Z, a-z, 0-9, "_.:-" ` +
        `(a UUID)`,
    );
  }
  if (typeof code !== "string" || !EVENT_CODE.test(code)) {
    throw new BadParameterError(
      `audit event "${event}" field "code" must be up to 16 of A-Z and 0-9 (e.g. T2000I)`,
    );
  }
  if (typeof time !== "string" || !isRfc3339(time)) {
    throw new BadParameterError(
      `audit event "${event}" field "time" (${JSON.stringify(time)}) must be an RFC 3339 ` +
        `timestamp such as 2026-11-21T10:00:00.000Z`,
    );
  }
  for (const field of STRING_FIELDS) {
    if (x[field] !== undefined && typeof x[field] !== "string") {
      throw new BadParameterError(`audit event "${event}" field "${field}" must be a string`);
    }
  }
  checkJsonValue(x, 1, event, "");
  return maskSecretFields(x as AuditEvent);
}

/** The result of {@linkcode fitAuditEvent}. */
export interface FittedAuditEvent {
  /** The event as it may be stored. */
  event: AuditEvent;
  /** Size of the original event's JSON, in bytes. */
  bytes: number;
  /** True when fields were cut (then `event.truncated` is true too). */
  truncated: boolean;
}

/**
 * An event that fits in `maxBytes` of JSON: the event itself when it does, or else a copy
 * marked `truncated: true` whose longest string fields (anywhere but `event`, `uid`, `code`
 * and `time`) are cut to one common length, the longest that makes it fit, so the longest
 * fields lose the most and short ones nothing. When cutting strings is not enough (many
 * fields, big arrays), the copy keeps only the standard fields, each cut to 1 KiB.
 */
export function fitAuditEvent(event: AuditEvent, maxBytes = MAX_EVENT_BYTES): FittedAuditEvent {
  const bytes = jsonBytes(event);
  if (bytes <= maxBytes) return { event, bytes, truncated: false };
  const copy = structuredClone(event) as Record<string, unknown>;
  copy.truncated = true;
  type Leaf = { holder: Record<string | number, unknown>; key: string | number; text: string };
  const leaves: Leaf[] = [];
  const collect = (holder: Record<string | number, unknown>, key: string | number) => {
    const v = holder[key];
    if (typeof v === "string") leaves.push({ holder, key, text: v });
    else if (Array.isArray(v)) {
      v.forEach((_, i) => collect(v as unknown as Record<number, unknown>, i));
    } else if (v !== null && typeof v === "object") {
      for (const k of Object.keys(v)) collect(v as Record<string, unknown>, k);
    }
  };
  for (const k of Object.keys(copy)) {
    if (!PROTECTED_FIELDS.includes(k)) collect(copy, k);
  }
  const full = leaves.map((l) => jsonBytes(l.text));
  const fixed = jsonBytes(copy) - full.reduce((a, b) => a + b, 0);
  const sizeAt = (cap: number) =>
    leaves.reduce(
      (sum, l, i) => sum + (l.text.length <= cap ? full[i]! : jsonBytes(cutString(l.text, cap))),
      fixed,
    );
  if (sizeAt(0) <= maxBytes) {
    // The longest common length that fits: sizeAt grows with cap.
    let lo = 0;
    let hi = Math.max(...leaves.map((l) => l.text.length));
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (sizeAt(mid) <= maxBytes) lo = mid;
      else hi = mid - 1;
    }
    for (const l of leaves) l.holder[l.key] = cutString(l.text, lo);
    return { event: copy as AuditEvent, bytes, truncated: true };
  }
  const minimal: Record<string, unknown> = {
    event: event.event,
    uid: event.uid,
    code: event.code,
    time: event.time,
    truncated: true,
  };
  for (const f of STRING_FIELDS) {
    const v = event[f];
    if (typeof v === "string") minimal[f] = cutString(v, 1024);
  }
  return { event: minimal as AuditEvent, bytes, truncated: true };
}

/** Fields {@linkcode fitAuditEvent} never cuts. */
const PROTECTED_FIELDS = ["event", "uid", "code", "time"];

/** The first `n` UTF-16 units of `s`, one fewer rather than half a surrogate pair. */
function cutString(s: string, n: number): string {
  if (s.length <= n) return s;
  const last = s.charCodeAt(n - 1);
  return s.slice(0, n > 0 && last >= 0xd800 && last <= 0xdbff ? n - 1 : n);
}

function jsonBytes(x: unknown): number {
  return ENCODER.encode(JSON.stringify(x)).length;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== "object" || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function checkJsonValue(value: unknown, depth: number, event: string, path: string): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) {
        throw new BadParameterError(
          `audit event "${event}" field "${path}" is not a finite number`,
        );
      }
      return;
    case "object":
      break;
    default:
      throw new BadParameterError(
        `audit event "${event}" field "${path}" has type ${typeof value}, which is not JSON`,
      );
  }
  if (value === null) return;
  if (depth > MAX_EVENT_DEPTH) {
    throw new BadParameterError(
      `audit event "${event}" nests objects deeper than ${MAX_EVENT_DEPTH} levels at "${path}": ` +
        `flatten its fields`,
    );
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkJsonValue(v, depth + 1, event, `${path}[${i}]`));
    return;
  }
  if (!isPlainObject(value)) {
    throw new BadParameterError(`audit event "${event}" field "${path}" is not a plain object`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (k === "__proto__" || k.length === 0 || k.length > MAX_KEY_LENGTH) {
      throw new BadParameterError(
        `audit event "${event}" has a field named ${JSON.stringify(k.slice(0, 40))} under ` +
          `"${path}": keys must be 1-${MAX_KEY_LENGTH} characters and not "__proto__"`,
      );
    }
    checkJsonValue(v, depth + 1, event, path === "" ? k : `${path}.${k}`);
  }
}

/** True when `s` is an RFC 3339 timestamp (`2026-11-21T10:00:00.000Z`, offsets allowed). */
export function isRfc3339(s: string): boolean {
  return RFC3339.test(s) && !Number.isNaN(Date.parse(s));
}

/** Milliseconds since the epoch of an event's `time` (NaN when malformed). */
export function eventTimeMs(event: AuditEvent): number {
  return Date.parse(event.time);
}
