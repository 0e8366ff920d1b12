/** openBackend(uri): picks a backend implementation from a URI-style string. */

import type { Clock } from "../clock/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
import type { Backend } from "./backend.ts";
import { openKvBackend } from "./kv.ts";
import { MemoryBackend } from "./memory.ts";
import { maskConnString } from "./_conn_string.ts";

/** Options of {@link openBackend}. */
export interface OpenBackendOptions {
  /**
   * Clock for expiry checks.
   *
   * @default {new RealClock()}
   */
  clock?: Clock;
  /**
   * Deno KV file only: open it beside the process this one takes over from (graceful
   * restart); see `KvBackendOptions.successor`.
   *
   * @default {false}
   */
  successor?: boolean;
  /**
   * For `postgresql://` URIs: a file holding the password (Teleport's `password_file`).
   *
   * @default {undefined}
   */
  passwordFile?: string;
}

const ACCEPTED_FORMS =
  '"memory:", "kv::memory:", "kv:/abs/path", "postgresql://user@host/db" or a plain file path';

/**
 * Opens the backend named by `uri`:
 *
 * - `memory:` → {@link MemoryBackend}
 * - `kv::memory:` → Deno KV in memory
 * - `kv:<path>` or a plain path (`/var/lib/teleport/backend.kv`, `./data.kv`) → Deno KV file
 * - `postgresql://…` or `postgres://…` → PostgreSQL (see {@link openPostgresBackend})
 *
 * Any other `scheme:` fails with BadParameterError.
 */
export function openBackend(uri: string, options: OpenBackendOptions = {}): Promise<Backend> {
  const opts = options.clock === undefined ? {} : { clock: options.clock };
  if (uri === "memory:") return Promise.resolve(new MemoryBackend(opts));
  if (/^postgres(ql)?:\/\//.test(uri)) {
    // Loaded on demand: the Deno KV and memory backends keep a graph without npm packages.
    return import("./postgres.ts").then(({ openPostgresBackend }) =>
      openPostgresBackend({
        connString: uri,
        ...opts,
        ...(options.passwordFile === undefined ? {} : { passwordFile: options.passwordFile }),
      })
    );
  }
  if (uri.startsWith("kv:")) {
    const path = uri.slice("kv:".length);
    if (path === "") return Promise.reject(badUri(uri, "the path is empty"));
    return openKvBackend({ ...opts, path, successor: options.successor ?? false });
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1];
  const windowsDrive = /^[A-Za-z]:[\\/]/.test(uri);
  if (uri === "" || (scheme !== undefined && !windowsDrive)) {
    return Promise.reject(
      badUri(uri, uri === "" ? "the URI is empty" : `unknown scheme ${JSON.stringify(scheme)}`),
    );
  }
  return openKvBackend({ ...opts, path: uri, successor: options.successor ?? false });
}

function badUri(uri: string, detail: string): BadParameterError {
  return new BadParameterError(
    `Cannot open backend ${
      JSON.stringify(maskConnString(uri))
    }: ${detail}; accepted forms: ${ACCEPTED_FORMS}`,
  );
}
