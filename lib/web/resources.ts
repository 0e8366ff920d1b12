/**
 * The resource list of the web UI (`GET /webapi/sites/:site/resources`): the nodes the user's
 * roles let them see, filtered by keywords (`search`) and a small predicate (`query`), sorted by
 * hostname, paginated on the server by an opaque `startKey` cursor.
 *
 * It stays fast with many nodes: the sorted list with its lower-cased search text is computed
 * once per node list the proxy's registry returns (the registry hands out the same array until
 * it refreshes), a page starts by binary search on the cursor, and logins are worked out for the
 * items of the page only.
 *
 * `search`: words separated by spaces, every word must occur (case-insensitive) in the hostname,
 * id, address or a label `name=value`; a word `name=value` matches that label exactly.
 * `query`: conditions joined by `&&`, each `labels["name"] == "value"`, `labels.name == "value"`,
 * `hostname == "value"` or `name == "value"` (`!=` too); anything else is refused (400).
 */
import { BadParameterError } from "../errors/mod.ts";
import type { AccessChecker } from "../rbac/mod.ts";
import type { ServerResource } from "../resource/mod.ts";

/** One node as the UI lists it. */
export interface NodeItem {
  kind: "node";
  id: string;
  hostname: string;
  /** The registered address, "" for tunnel-only nodes. */
  addr: string;
  tunnel: boolean;
  labels: Array<{ name: string; value: string }>;
  /** The logins the user's roles allow on this node. */
  logins: string[];
  /** Reachable now: direct nodes while heartbeating, tunnel nodes while their tunnel is up. */
  online: boolean;
}

/** `GET …/resources` answer. */
export interface ResourcePage {
  items: NodeItem[];
  /** Cursor of the next page; "" when this is the last one. */
  startKey: string;
  /** Matches in all pages. */
  totalCount: number;
}

/** Parameters of one page. */
export interface ResourceQuery {
  limit: number;
  startKey: string;
  search: string;
  query: string;
}

/** Largest page. */
export const MAX_PAGE = 1000;
/** Page size when `limit` is absent. */
export const DEFAULT_PAGE = 50;

interface Entry {
  node: ServerResource;
  key: string;
  text: string;
  labels: Record<string, string>;
}

const sorted = new WeakMap<readonly ServerResource[], Entry[]>();

function entriesOf(nodes: readonly ServerResource[]): Entry[] {
  let list = sorted.get(nodes);
  if (list !== undefined) return list;
  list = nodes.map((node) => {
    const labels = node.metadata.labels ?? {};
    return {
      node,
      key: `${node.spec.hostname.toLowerCase()}\u0000${node.metadata.name}`,
      text: [
        node.spec.hostname,
        node.metadata.name,
        node.spec.addr,
        ...Object.entries(labels).map(([k, v]) => `${k}=${v}`),
      ].join("\u0000").toLowerCase(),
      labels,
    };
  }).sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  sorted.set(nodes, list);
  return list;
}

/** Reads the page parameters of a URL; BadParameterError names a bad one. */
export function parseResourceQuery(params: URLSearchParams): ResourceQuery {
  const rawLimit = params.get("limit");
  const limit = rawLimit === null || rawLimit === "" ? DEFAULT_PAGE : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new BadParameterError(
      `Cannot list resources: "limit" must be a whole number from 1 to ${MAX_PAGE}`,
    );
  }
  const startKey = params.get("startKey") ?? "";
  if (startKey.length > 1024 || !/^[A-Za-z0-9_-]*$/.test(startKey)) {
    throw new BadParameterError(
      `Cannot list resources: "startKey" must be the startKey of the previous page`,
    );
  }
  const search = params.get("search") ?? "";
  const query = params.get("query") ?? "";
  if (search.length > 1024 || query.length > 1024) {
    throw new BadParameterError(
      `Cannot list resources: "search" and "query" are limited to 1024 characters`,
    );
  }
  return { limit, startKey, search, query };
}

type Condition = (e: Entry) => boolean;

const CONDITION =
  /^\s*(?:labels\s*\[\s*"([^"]*)"\s*\]|labels\.([A-Za-z0-9_.\/-]+)|(hostname|name))\s*(==|!=)\s*"([^"]*)"\s*$/;

/** Compiles `query` (see the module doc). */
export function compileQuery(query: string): Condition {
  if (query.trim() === "") return () => true;
  const parts = query.split("&&").map((part) => {
    const m = CONDITION.exec(part);
    if (m === null) {
      throw new BadParameterError(
        `Cannot list resources: cannot read the query condition ${JSON.stringify(part.trim())}; ` +
          `use labels["name"] == "value", hostname == "value", joined by &&`,
      );
    }
    const [, quoted, dotted, field, op, value] = m;
    const get = field === undefined
      ? ((e: Entry) => e.labels[(quoted ?? dotted)!])
      : field === "hostname"
      ? ((e: Entry) => e.node.spec.hostname)
      : ((e: Entry) => e.node.metadata.name);
    return op === "==" ? (e: Entry) => get(e) === value : (e: Entry) => get(e) !== value;
  });
  return (e) => parts.every((c) => c(e));
}

function compileSearch(search: string): Condition {
  const words = search.toLowerCase().split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) return () => true;
  return (e) =>
    words.every((w) => {
      const eq = w.indexOf("=");
      if (eq > 0) {
        const name = w.slice(0, eq);
        const value = w.slice(eq + 1);
        return Object.entries(e.labels).some(([k, v]) =>
          k.toLowerCase() === name && v.toLowerCase() === value
        );
      }
      return e.text.includes(w);
    });
}

function encodeKey(key: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(key)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeKey(cursor: string): string {
  try {
    const b64 = cursor.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bin, (c) => c.charCodeAt(0)),
    );
  } catch {
    throw new BadParameterError(
      `Cannot list resources: "startKey" must be the startKey of the previous page`,
    );
  }
}

/** Who is asking and what the proxy knows about reachability. */
export interface ResourceContext {
  checker: AccessChecker;
  /** True when the node has a reverse tunnel to this proxy now. */
  hasTunnel(nodeName: string): boolean;
}

/** One page of the nodes the user may see; see the module doc. */
export function listNodePage(
  nodes: readonly ServerResource[],
  q: ResourceQuery,
  ctx: ResourceContext,
): ResourcePage {
  const match = compileQuery(q.query);
  const search = compileSearch(q.search);
  const entries = entriesOf(nodes);
  const start = q.startKey === "" ? "" : decodeKey(q.startKey);
  // First entry at or after the cursor.
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.key < start) lo = mid + 1;
    else hi = mid;
  }
  const visible = (e: Entry) =>
    ctx.checker.canSeeNode({ name: e.node.spec.hostname, labels: e.labels }) && match(e) &&
    search(e);
  let before = 0;
  for (let i = 0; i < lo; i++) if (visible(entries[i]!)) before++;
  const page: Entry[] = [];
  let next = "";
  let after = 0;
  for (let i = lo; i < entries.length; i++) {
    const e = entries[i]!;
    if (!visible(e)) continue;
    if (page.length < q.limit) page.push(e);
    else {
      if (next === "") next = encodeKey(e.key);
      after++;
    }
  }
  const logins = ctx.checker.logins();
  return {
    items: page.map((e) => {
      const n = e.node;
      const tunnel = n.spec.use_tunnel === true || n.spec.addr === "";
      return {
        kind: "node",
        id: n.metadata.name,
        hostname: n.spec.hostname,
        addr: tunnel ? "" : n.spec.addr,
        tunnel,
        labels: Object.entries(e.labels).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
          .map(([name, value]) => ({ name, value })),
        logins: logins.filter((l) => {
          try {
            ctx.checker.checkLogin(l, { name: n.spec.hostname, labels: e.labels });
            return true;
          } catch {
            return false;
          }
        }),
        online: tunnel ? ctx.hasTunnel(n.metadata.name) : true,
      };
    }),
    startKey: next,
    totalCount: before + page.length + after,
  };
}
