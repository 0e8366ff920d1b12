/**
 * Error kinds shared by every layer. Each kind maps to one HTTP status so that
 * a kind survives a trip over the auth API (see {@link httpStatusOf} and
 * {@link errorFromStatus}).
 */

/** The kinds of failure the program distinguishes. */
export type ErrorKind =
  | "NotFound"
  | "AlreadyExists"
  | "BadParameter"
  | "AccessDenied"
  | "CompareFailed"
  | "ConnectionProblem"
  | "LimitExceeded"
  | "NotImplemented";

/** Base class of all kinded errors. */
export class TeleportError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
    this.name = `${kind}Error`;
  }
}

/** A resource or key does not exist. HTTP 404. */
export class NotFoundError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("NotFound", message, options);
  }
}

/** A resource or key exists already. HTTP 409. */
export class AlreadyExistsError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("AlreadyExists", message, options);
  }
}

/** Input is malformed or out of range. HTTP 400. */
export class BadParameterError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("BadParameter", message, options);
  }
}

/** The caller is not allowed to do this. HTTP 403. */
export class AccessDeniedError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("AccessDenied", message, options);
  }
}

/** A conditional write lost (the revision moved on). HTTP 412. */
export class CompareFailedError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("CompareFailed", message, options);
  }
}

/** A network peer could not be reached or failed. HTTP 504 (502/503 map here too). */
export class ConnectionProblemError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("ConnectionProblem", message, options);
  }
}

/** A rate or size limit was hit. HTTP 429. */
export class LimitExceededError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("LimitExceeded", message, options);
  }
}

/** The operation is not supported by this build or this peer. HTTP 501. */
export class NotImplementedError extends TeleportError {
  constructor(message: string, options?: ErrorOptions) {
    super("NotImplemented", message, options);
  }
}

const KIND_STATUS: Record<ErrorKind, number> = {
  NotFound: 404,
  AlreadyExists: 409,
  BadParameter: 400,
  AccessDenied: 403,
  CompareFailed: 412,
  ConnectionProblem: 504,
  LimitExceeded: 429,
  NotImplemented: 501,
};

const CONSTRUCTORS: Record<ErrorKind, new (m: string, o?: ErrorOptions) => TeleportError> = {
  NotFound: NotFoundError,
  AlreadyExists: AlreadyExistsError,
  BadParameter: BadParameterError,
  AccessDenied: AccessDeniedError,
  CompareFailed: CompareFailedError,
  ConnectionProblem: ConnectionProblemError,
  LimitExceeded: LimitExceededError,
  NotImplemented: NotImplementedError,
};

/** Returns the kind of an error, or undefined for errors without one. */
export function kindOf(err: unknown): ErrorKind | undefined {
  return err instanceof TeleportError ? err.kind : undefined;
}

/** True when `err` is a kinded error of the given kind. */
export function isKind(err: unknown, kind: ErrorKind): boolean {
  return kindOf(err) === kind;
}

/** HTTP status for an error: its kind's status, or 500 for anything else. */
export function httpStatusOf(err: unknown): number {
  const kind = kindOf(err);
  return kind === undefined ? 500 : KIND_STATUS[kind];
}

/** Builds a kinded error of `kind`. */
export function newError(kind: ErrorKind, message: string, options?: ErrorOptions): TeleportError {
  return new CONSTRUCTORS[kind](message, options);
}

/**
 * Turns an HTTP status and message back into the kinded error the server threw.
 * 401 reads as AccessDenied, 502/503 as ConnectionProblem; other statuses give a plain Error.
 */
export function errorFromStatus(status: number, message: string): Error {
  if (status === 401) return new AccessDeniedError(message);
  if (status === 502 || status === 503) return new ConnectionProblemError(message);
  for (const [kind, s] of Object.entries(KIND_STATUS) as [ErrorKind, number][]) {
    if (s === status) return newError(kind, message);
  }
  return new Error(message);
}

/** The message of any thrown value, for one-line reports. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
