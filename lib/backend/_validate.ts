/** Argument checks shared by the implementations; each throws BadParameterError. */

import { BadParameterError, NotFoundError } from "../errors/mod.ts";
import {
  formatKey,
  type GetRangeOptions,
  type ItemInput,
  type Key,
  type KeyRange,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  type WatchOptions,
} from "./backend.ts";
import { encodeKey } from "./_key_codec.ts";

/** Checks a key (or, with `allowEmpty`, a prefix or range bound) for the action `action`. */
export function validateKey(key: unknown, action: string, allowEmpty = false): Key {
  if (!Array.isArray(key) || (!allowEmpty && key.length === 0)) {
    throw new BadParameterError(
      `Cannot ${action}: key must be a non-empty array of non-empty strings`,
    );
  }
  for (const segment of key) {
    if (typeof segment !== "string" || segment.length === 0 || !segment.isWellFormed()) {
      throw new BadParameterError(
        `Cannot ${action}: key segments must be non-empty well-formed strings, received ${
          JSON.stringify(segment) ?? String(segment)
        }`,
      );
    }
  }
  const size = encodeKey(key).length;
  if (size > MAX_KEY_BYTES) {
    throw new BadParameterError(
      `Cannot ${action}: key is ${size} bytes encoded, the limit is ${MAX_KEY_BYTES}`,
    );
  }
  return key;
}

/** Checks an item to write; `verb` is e.g. "put" or "create". */
export function validateInput(input: ItemInput, verb: string): ItemInput {
  if (typeof input !== "object" || input === null) {
    throw new BadParameterError(`Cannot ${verb} item: item must be an object`);
  }
  validateKey(input.key, `${verb} item`);
  const thing = `${verb} item ${JSON.stringify(formatKey(input.key))}`;
  if (!(input.value instanceof Uint8Array)) {
    throw new BadParameterError(`Cannot ${thing}: value must be a Uint8Array`);
  }
  if (input.value.byteLength > MAX_VALUE_BYTES) {
    throw new BadParameterError(
      `Cannot ${thing}: value is ${input.value.byteLength} bytes, the limit is ${MAX_VALUE_BYTES}`,
    );
  }
  if (input.expires !== undefined) validateExpires(input.expires, thing);
  return input;
}

/** Checks an expiry time. */
export function validateExpires(expires: unknown, thing: string): Date {
  if (!(expires instanceof Date) || Number.isNaN(expires.getTime())) {
    throw new BadParameterError(`Cannot ${thing}: expires must be a valid Date`);
  }
  return expires;
}

/** Checks a range and its options; returns the limit (0 = none). */
export function validateRange(range: KeyRange, opts: GetRangeOptions, verb: string): number {
  if (typeof range !== "object" || range === null) {
    throw new BadParameterError(`Cannot ${verb}: range must be { prefix } or { start, end }`);
  }
  if ("prefix" in range) {
    validateKey(range.prefix, verb, true);
  } else if ("start" in range && "end" in range) {
    validateKey(range.start, verb, true);
    validateKey(range.end, verb, true);
  } else {
    throw new BadParameterError(`Cannot ${verb}: range must be { prefix } or { start, end }`);
  }
  const limit = opts.limit ?? 0;
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new BadParameterError(
      `Cannot ${verb}: limit must be a non-negative integer, received ${limit}`,
    );
  }
  return limit;
}

/** Checks watch options. */
export function validateWatch(opts: WatchOptions): WatchOptions {
  if (!Array.isArray(opts?.prefixes) || opts.prefixes.length === 0) {
    throw new BadParameterError(
      "Cannot watch backend: prefixes must be a non-empty array of keys (use [[]] for all)",
    );
  }
  for (const prefix of opts.prefixes) validateKey(prefix, "watch backend", true);
  return opts;
}

/** True when an item with this expiry is expired at `now` (ms since the epoch). */
export function isExpired(expires: number | undefined, now: number): boolean {
  return expires !== undefined && expires <= now;
}

/** A key quoted for messages: `"/users/alice"`. */
export function quoteKey(key: Key): string {
  return JSON.stringify(formatKey(key));
}

/** `Cannot <verb> item "<key>": item does not exist`. */
export function notFoundError(verb: string, key: Key): NotFoundError {
  return new NotFoundError(`Cannot ${verb} item ${quoteKey(key)}: item does not exist`);
}
