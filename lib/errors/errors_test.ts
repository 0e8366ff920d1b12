import assert from "node:assert/strict";
import {
  AccessDeniedError,
  CompareFailedError,
  errorFromStatus,
  httpStatusOf,
  isKind,
  NotFoundError,
} from "./mod.ts";

Deno.test("httpStatusOf() maps kinds to statuses and others to 500", () => {
  assert.equal(httpStatusOf(new NotFoundError("x")), 404);
  assert.equal(httpStatusOf(new AccessDeniedError("x")), 403);
  assert.equal(httpStatusOf(new CompareFailedError("x")), 412);
  assert.equal(httpStatusOf(new Error("x")), 500);
});

Deno.test("errorFromStatus() restores the kind for every mapped status", () => {
  for (
    const [status, kind] of [
      [404, "NotFound"],
      [409, "AlreadyExists"],
      [400, "BadParameter"],
      [403, "AccessDenied"],
      [412, "CompareFailed"],
      [429, "LimitExceeded"],
      [504, "ConnectionProblem"],
      [401, "AccessDenied"],
    ] as const
  ) {
    const err = errorFromStatus(status, "m");
    assert.ok(isKind(err, kind), `${status} -> ${kind}`);
    assert.equal(err.message, "m");
  }
  assert.equal(errorFromStatus(500, "boom").constructor, Error);
});
