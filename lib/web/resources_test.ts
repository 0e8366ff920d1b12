import assert from "node:assert/strict";
import { AccessChecker } from "../rbac/mod.ts";
import type { Role, ServerResource } from "../resource/mod.ts";
import { compileQuery, listNodePage, parseResourceQuery, type ResourceQuery } from "./resources.ts";

function node(i: number, labels: Record<string, string>, tunnel = false): ServerResource {
  return {
    kind: "node",
    version: "v2",
    metadata: { name: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, labels },
    spec: {
      addr: tunnel ? "" : `10.0.0.${i % 250}:3022`,
      hostname: `host-${String(i).padStart(3, "0")}`,
      version: "0.1.0",
      ...(tunnel ? { use_tunnel: true } : {}),
    },
  };
}

function role(name: string, allow: Record<string, string | string[]>, logins: string[]): Role {
  return {
    kind: "role",
    version: "v7",
    metadata: { name },
    spec: { options: {}, allow: { node_labels: allow, logins }, deny: {} },
  } as Role;
}

const NODES = Array.from(
  { length: 120 },
  (_, i) =>
    node(i, { env: i % 2 === 0 ? "prod" : "dev", team: i % 3 === 0 ? "db" : "web" }, i % 10 === 0),
);
const DEV_ONLY = new AccessChecker([role("dev", { env: "dev" }, ["ubuntu", "root"])]);
const ALL = new AccessChecker([role("all", { "*": "*" }, ["ubuntu"])]);
const q = (over: Partial<ResourceQuery> = {}): ResourceQuery => ({
  limit: 50,
  startKey: "",
  search: "",
  query: "",
  ...over,
});
const ctx = (checker: AccessChecker) => ({ checker, hasTunnel: (n: string) => n.endsWith("10") });

Deno.test("listNodePage() shows only the nodes the roles allow, with their logins", () => {
  const page = listNodePage(NODES, q({ limit: 1000 }), ctx(DEV_ONLY));
  assert.equal(page.totalCount, 60);
  assert.ok(page.items.every((n) => n.labels.some((l) => l.name === "env" && l.value === "dev")));
  assert.deepEqual(page.items[0]!.logins, ["ubuntu", "root"]);
  assert.equal(page.startKey, "");
});

Deno.test("listNodePage() pages by cursor in hostname order without gaps or repeats", () => {
  const seen: string[] = [];
  let startKey = "";
  for (let pages = 0; pages < 10; pages++) {
    const page = listNodePage(NODES, q({ limit: 25, startKey }), ctx(ALL));
    assert.equal(page.totalCount, 120);
    seen.push(...page.items.map((n) => n.hostname));
    startKey = page.startKey;
    if (startKey === "") break;
  }
  assert.equal(seen.length, 120);
  assert.deepEqual(seen, [...seen].sort());
  assert.equal(new Set(seen).size, 120);
});

Deno.test("listNodePage() reports tunnel nodes without an address, online by their tunnel", () => {
  const page = listNodePage(NODES, q({ search: "host-010 host-020" }), ctx(ALL));
  assert.equal(page.totalCount, 0); // both words must match one node
  const one = listNodePage(NODES, q({ search: "host-010" }), ctx(ALL));
  assert.equal(one.items[0]!.tunnel, true);
  assert.equal(one.items[0]!.addr, "");
  assert.equal(one.items[0]!.online, true);
  const other = listNodePage(NODES, q({ search: "HOST-020" }), ctx(ALL));
  assert.equal(other.items[0]!.online, false);
});

Deno.test("listNodePage() filters by search words, label words and the query predicate", () => {
  assert.equal(listNodePage(NODES, q({ search: "env=prod team=db" }), ctx(ALL)).totalCount, 20);
  assert.equal(
    listNodePage(NODES, q({ query: 'labels["env"] == "prod" && labels.team != "db"' }), ctx(ALL))
      .totalCount,
    40,
  );
  assert.equal(listNodePage(NODES, q({ query: 'hostname == "host-007"' }), ctx(ALL)).totalCount, 1);
  assert.throws(() => compileQuery("rm -rf /"), /cannot read the query condition/);
});

Deno.test("parseResourceQuery() refuses bad limits and cursors", () => {
  assert.equal(parseResourceQuery(new URLSearchParams("")).limit, 50);
  for (const bad of ["limit=0", "limit=1001", "limit=x", "startKey=%2F..%2F", "startKey=a b"]) {
    assert.throws(() => parseResourceQuery(new URLSearchParams(bad)), /Cannot list resources/, bad);
  }
});
