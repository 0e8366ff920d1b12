/**
 * Error kinds (NotFound, AlreadyExists, BadParameter, AccessDenied, CompareFailed,
 * ConnectionProblem, LimitExceeded, NotImplemented) and their HTTP status mapping both ways.
 *
 * ```ts
 * import { httpStatusOf, NotFoundError } from "./mod.ts";
 * httpStatusOf(new NotFoundError("user \"bob\" is not found")); // 404
 * ```
 *
 * @module
 */
export {
  AccessDeniedError,
  AlreadyExistsError,
  BadParameterError,
  CompareFailedError,
  ConnectionProblemError,
  errorFromStatus,
  type ErrorKind,
  httpStatusOf,
  isKind,
  kindOf,
  LimitExceededError,
  messageOf,
  newError,
  NotFoundError,
  NotImplementedError,
  TeleportError,
} from "./errors.ts";
