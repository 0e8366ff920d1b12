/**
 * Resource events from the backend's prefix watch: the keys of CAs, roles and nodes turned
 * back into resources (CAs with their private keys, callers strip them).
 */
import type { Backend, Item, Key } from "../backend/mod.ts";
import type { Resource, WatchKind } from "../resource/mod.ts";
import { decodeJson } from "./_store.ts";

/** Where each watched kind lives, and how long its keys are. */
const PREFIXES: Record<WatchKind, { prefix: Key; length: number }> = {
  cert_authority: { prefix: ["authorities"], length: 3 },
  role: { prefix: ["roles"], length: 2 },
  node: { prefix: ["nodes", "default"], length: 3 },
};

/** A backend event as a resource event; `init` is the backend's (re)start of the feed. */
export type StoredResourceEvent =
  | { type: "init" }
  | { type: "put"; kind: WatchKind; resource: Resource }
  | { type: "delete"; kind: WatchKind; name: string };

function kindOfKey(key: Key, kinds: readonly WatchKind[]): WatchKind | undefined {
  return kinds.find((k) => {
    const p = PREFIXES[k];
    return key.length === p.length && p.prefix.every((s, i) => key[i] === s);
  });
}

function resourceOf(item: Item): Resource {
  const r = decodeJson<Resource>(item);
  return { ...r, metadata: { ...r.metadata, revision: item.revision } } as Resource;
}

/**
 * Streams puts and deletes of `kinds` in commit order, each run of the backend's feed starting
 * with `init` (a resync after a lost feed starts a new run). Ends when `signal` aborts.
 */
export async function* watchResources(
  backend: Backend,
  o: { kinds: readonly WatchKind[]; signal: AbortSignal },
): AsyncGenerator<StoredResourceEvent> {
  const prefixes = o.kinds.map((k) => PREFIXES[k].prefix);
  for await (const ev of backend.watch({ prefixes, signal: o.signal })) {
    if (ev.type === "init") {
      yield ev;
      continue;
    }
    const key = ev.type === "put" ? ev.item.key : ev.key;
    const kind = kindOfKey(key, o.kinds);
    if (kind === undefined) continue;
    if (ev.type === "put") yield { type: "put", kind, resource: resourceOf(ev.item) };
    // A CA's name is its type (`tctl get cert_authority/host`).
    else yield { type: "delete", kind, name: kind === "cert_authority" ? key[1]! : key.at(-1)! };
  }
}
