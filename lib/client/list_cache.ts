/**
 * A short-lived copy of the cluster's node and proxy lists in the profile, so `tsh ssh`,
 * `tsh scp` and `tsh proxy ssh` reach a node over one connection (the SSH connection to the
 * proxy) instead of three: listing the nodes and the proxies through the auth API costs two
 * more TLS sessions per command, and through an HTTP CONNECT proxy that leaves Nagle on
 * (tinyproxy) each of them waits for delayed ACKs.
 *
 * The lists are inventory, not trust: every host key is still checked against the cluster's
 * host CA, and the proxy and the node still decide who may log in. A cached answer is used only
 * when the caller accepts its age (`maxAgeMs`), and only for the certificate that fetched it
 * (a new `tsh login` starts afresh). Callers that find a cached entry wrong (unknown node, host
 * key not certified by it, route refused) ask again with `maxAgeMs: 0`. Live answers (`tsh ls`)
 * refresh the file. A missing, unreadable or malformed file is a cache miss; a failed write
 * is logged and otherwise ignored, as the answer itself is good.
 *
 * File (0600, directory 0700): `{"version":1,"cert":"<sha256 of the SSH cert>",
 * "nodes":{"at":<ms>,"items":[…]},"proxies":{"at":<ms>,"items":[…]}}`.
 */
import { createHash } from "node:crypto";
import type { Clock } from "../clock/mod.ts";
import { RealClock } from "../clock/mod.ts";
import { messageOf } from "../errors/mod.ts";
import { getComponentLogger, type Logger } from "../log/mod.ts";
import type { ProxyResource, ServerResource } from "../resource/mod.ts";
import type { ClusterApi, ListOptions } from "./cluster.ts";

/**
 * How old a cached list `tsh ssh` accepts by default, in ms: long enough for commands run one
 * after another, short enough that a changed cluster is seen soon even without a retry.
 */
export const DEFAULT_LIST_CACHE_MAX_AGE_MS = 5 * 60_000;

/** Options for {@link withListCache}. */
export interface ListCacheOptions {
  /** The cache file (see {@link ProfileStore.paths}, `listCache`). */
  path: string;
  /** The profile's SSH certificate (authorized_keys line): answers are kept per certificate. */
  sshCert: string;
  /** @default {new RealClock()} */
  clock?: Clock;
  /** @default {getComponentLogger("client")} */
  logger?: Logger;
}

interface Entry<T> {
  at: number;
  items: T[];
}

interface CacheFile {
  version: 1;
  cert: string;
  nodes?: Entry<ServerResource>;
  proxies?: Entry<ProxyResource>;
}

type ListName = "nodes" | "proxies";

/**
 * `api` with its node and proxy lists cached in `o.path`; see the module doc. Other calls go
 * to `api` unchanged.
 */
export function withListCache(api: ClusterApi, o: ListCacheOptions): ClusterApi {
  const clock = o.clock ?? new RealClock();
  const logger = o.logger ?? getComponentLogger("client");
  const cert = createHash("sha256").update(o.sshCert.trim()).digest("hex");
  let loaded: Promise<CacheFile> | undefined;
  // Writes are chained so two lists fetched at once both end up in the file.
  let writing: Promise<void> = Promise.resolve();

  const load = () => loaded ??= readCache(o.path, cert);

  async function list<T>(
    name: ListName,
    fetch: () => Promise<T[]>,
    options: ListOptions | undefined,
  ): Promise<T[]> {
    const maxAge = options?.maxAgeMs ?? 0;
    if (maxAge > 0) {
      const entry = (await load())[name] as Entry<T> | undefined;
      const age = entry === undefined ? -1 : clock.now().getTime() - entry.at;
      if (entry !== undefined && age >= 0 && age <= maxAge) return entry.items;
    }
    const items = await fetch();
    const at = clock.now().getTime();
    writing = writing.then(async () => {
      const file = await load();
      loaded = Promise.resolve({ ...file, [name]: { at, items } });
      try {
        await writeCache(o.path, await loaded);
      } catch (err) {
        logger.debug("Cannot write the list cache {path}: {error}", {
          path: o.path,
          error: messageOf(err),
        });
      }
    });
    await writing;
    return items;
  }

  return {
    listNodes: (options) => list("nodes", () => api.listNodes(), options),
    listProxies: (options) => list("proxies", () => api.listProxies(), options),
    listSessionTrackers: () => api.listSessionTrackers(),
    getSessionTracker: (sid) => api.getSessionTracker(sid),
    downloadRecording: (sid) => api.downloadRecording(sid),
    close: () => api.close(),
    ...(api.setHostCaCerts === undefined
      ? {}
      : { setHostCaCerts: (pems: string[]) => api.setHostCaCerts!(pems) }),
  };
}

async function readCache(path: string, cert: string): Promise<CacheFile> {
  const empty: CacheFile = { version: 1, cert };
  let value: unknown;
  try {
    value = JSON.parse(await Deno.readTextFile(path));
  } catch {
    return empty; // missing or not JSON: a miss
  }
  if (typeof value !== "object" || value === null) return empty;
  const v = value as Record<string, unknown>;
  if (v.version !== 1 || v.cert !== cert) return empty;
  const file: CacheFile = { ...empty };
  const nodes = entryOf(v.nodes, "node");
  if (nodes !== undefined) file.nodes = nodes as Entry<ServerResource>;
  const proxies = entryOf(v.proxies, "proxy");
  if (proxies !== undefined) file.proxies = proxies as Entry<ProxyResource>;
  return file;
}

function entryOf(value: unknown, kind: string): Entry<unknown> | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { at, items } = value as { at?: unknown; items?: unknown };
  if (typeof at !== "number" || !Number.isFinite(at) || !Array.isArray(items)) return undefined;
  const ok = items.every((r) =>
    typeof r === "object" && r !== null && (r as { kind?: unknown }).kind === kind &&
    typeof (r as { metadata?: { name?: unknown } }).metadata?.name === "string" &&
    typeof (r as { spec?: unknown }).spec === "object"
  );
  return ok ? { at, items } : undefined;
}

async function writeCache(path: string, file: CacheFile): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(file), { mode: 0o600, createNew: true });
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
