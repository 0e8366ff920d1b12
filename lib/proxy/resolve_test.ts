import assert from "node:assert/strict";
import { isKind } from "../errors/mod.ts";
import type { ResourceEvent, ServerResource } from "../resource/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import { NodeRegistry } from "./registry.ts";
import { assertVisible, parseProxySubsystem, resolveNode } from "./resolve.ts";

function node(id: string, hostname: string, addr: string, labels = {}): ServerResource {
  return {
    kind: "node",
    version: "v2",
    metadata: { name: id, labels },
    spec: { addr, hostname, version: "0" },
  };
}

const NODES = [
  node("u-1", "web", "10.0.0.1:3022", { env: "prod" }),
  node("u-2", "db", "10.0.0.2:3022"),
  node("u-3", "twin", "10.0.0.3:3022"),
  node("u-4", "twin", "10.0.0.4:4022"),
];

Deno.test("parseProxySubsystem() reads host, port and cluster forms", () => {
  assert.deepEqual(parseProxySubsystem("proxy:web:3022"), { host: "web", port: 3022 });
  assert.deepEqual(parseProxySubsystem("proxy:web:0@c1"), { host: "web", port: 0, cluster: "c1" });
  assert.deepEqual(parseProxySubsystem("proxy:web:22@default@c1"), {
    host: "web",
    port: 22,
    cluster: "c1",
  });
  assert.deepEqual(parseProxySubsystem("proxy:[::1]:22"), { host: "::1", port: 22 });
  assert.deepEqual(parseProxySubsystem("proxy:web"), { host: "web", port: 0 });
  for (
    const bad of ["sftp", "proxy:", "proxy:@c1", "proxy:web:99999", "proxy:web:x", "proxy::22"]
  ) {
    assert.throws(() => parseProxySubsystem(bad), (e) => isKind(e, "BadParameter"), bad);
  }
});

Deno.test("resolveNode() finds by UUID, name (port ignored) and registered address", () => {
  assert.equal(resolveNode(NODES, "u-2", 0).metadata.name, "u-2");
  assert.equal(resolveNode(NODES, "web", 3022).metadata.name, "u-1");
  assert.equal(resolveNode(NODES, "web", 1234).metadata.name, "u-1");
  assert.equal(resolveNode(NODES, "10.0.0.4", 4022).metadata.name, "u-4");
  assert.equal(resolveNode(NODES, "10.0.0.4", 0).metadata.name, "u-4");
});

Deno.test("resolveNode() refuses unregistered host:port targets and ambiguous names", () => {
  for (const [h, p] of [["10.0.0.4", 3022], ["127.0.0.1", 22], ["example.com", 443]] as const) {
    assert.throws(
      () => resolveNode(NODES, h, p),
      (e) => isKind(e, "NotFound") && /not a registered node/.test(String(e)),
    );
  }
  assert.throws(
    () => resolveNode(NODES, "twin", 0),
    (e) => isKind(e, "BadParameter") && /u-3, u-4/.test(String(e)),
  );
});

Deno.test("assertVisible() refuses a node the roles cannot see, like a missing one", () => {
  const prodOnly = (t: { labels: Record<string, string> }) => t.labels.env === "prod";
  assertVisible(NODES[0]!, prodOnly, "web");
  assert.throws(
    () => assertVisible(NODES[1]!, prodOnly, "db"),
    (e) => isKind(e, "AccessDenied") && /not a registered node/.test(String(e)),
  );
});

Deno.test("NodeRegistry caches, refreshes on a miss and keeps the last list when auth fails", async () => {
  const clock = new FakeClock(new Date("2026-01-01T00:00:00Z"));
  let list = [NODES[0]!];
  let calls = 0;
  let fail = false;
  const reg = new NodeRegistry({
    list: () => {
      calls++;
      return fail ? Promise.reject(new Error("auth down")) : Promise.resolve(list);
    },
    clock,
    logger: getComponentLogger("test"),
  });
  assert.equal((await reg.resolve("web", 0)).metadata.name, "u-1");
  assert.equal(calls, 1);
  list = NODES;
  await assert.rejects(reg.resolve("db", 0), (e) => isKind(e, "NotFound"));
  assert.equal(calls, 1, "no refresh within missRefreshMs");
  clock.advance(1500);
  assert.equal((await reg.resolve("db", 0)).metadata.name, "u-2");
  assert.equal(calls, 2);
  fail = true;
  clock.advance(10_000);
  assert.equal((await reg.resolve("db", 0)).metadata.name, "u-2");
});

Deno.test("NodeRegistry asks a failing auth again only after a backoff, and serves the last list meanwhile", async () => {
  const clock = new FakeClock(new Date("2026-01-01T00:00:00Z"));
  let calls = 0;
  let fail = false;
  const reg = new NodeRegistry({
    list: () => {
      calls++;
      return fail ? Promise.reject(new Error("auth down")) : Promise.resolve(NODES);
    },
    clock,
    logger: getComponentLogger("test"),
    random: () => 0.999999,
  });
  await reg.nodes();
  fail = true;
  clock.advance(6_000);
  assert.equal((await reg.nodes()).length, NODES.length);
  assert.equal(calls, 2);
  // A burst of clients during the outage: no request to auth until the backoff (1 s) passes,
  // misses included.
  for (let i = 0; i < 20; i++) assert.equal((await reg.nodes()).length, NODES.length);
  await assert.rejects(reg.resolve("nope", 0), (e) => isKind(e, "NotFound"));
  assert.equal(calls, 2);
  clock.advance(1_000);
  await reg.nodes();
  assert.equal(calls, 3);
  // The next wait doubles (2 s), then auth answers again and the list is fresh.
  clock.advance(1_000);
  await reg.nodes();
  assert.equal(calls, 3);
  fail = false;
  clock.advance(1_000);
  await reg.nodes();
  assert.equal(calls, 4);
  await reg.nodes();
  assert.equal(calls, 4);
});

Deno.test("NodeRegistry answers from the last list when a refresh hangs past staleWaitMs", async () => {
  const clock = new FakeClock(new Date("2026-01-01T00:00:00Z"));
  const hang = Promise.withResolvers<typeof NODES>();
  let hanging = false;
  const reg = new NodeRegistry({
    list: () => hanging ? hang.promise : Promise.resolve([NODES[0]!]),
    clock,
    logger: getComponentLogger("test"),
    staleWaitMs: 2_000,
  });
  await reg.nodes();
  hanging = true;
  clock.advance(6_000);
  const answer = reg.nodes();
  await new Promise((r) => setTimeout(r, 0));
  clock.advance(2_000);
  assert.equal((await answer).length, 1, "the last list, without waiting for auth");
  // The refresh still lands when auth answers.
  hang.resolve(NODES);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal((await reg.nodes()).length, NODES.length);
});

Deno.test("NodeRegistry waits for the refresh on a miss, past staleWaitMs", async () => {
  const clock = new FakeClock(new Date("2026-01-01T00:00:00Z"));
  const slow = Promise.withResolvers<typeof NODES>();
  let first = true;
  const reg = new NodeRegistry({
    list: () => {
      if (first) {
        first = false;
        return Promise.resolve([NODES[0]!]);
      }
      return slow.promise;
    },
    clock,
    logger: getComponentLogger("test"),
    staleWaitMs: 2_000,
  });
  await reg.nodes();
  clock.advance(1_500);
  // "db" joined after the last list: its client waits for the (slow) refresh.
  const answer = reg.resolve("db", 0);
  await new Promise((r) => setTimeout(r, 0));
  clock.advance(5_000);
  slow.resolve(NODES);
  assert.equal((await answer).metadata.name, "u-2");
});

Deno.test("NodeRegistry with a healthy watch follows node events without listing again", async () => {
  const clock = new FakeClock();
  const listeners = new Set<(e: ResourceEvent) => void>();
  const source = {
    healthy: false,
    subscribe: (l: (e: ResourceEvent) => void) => (listeners.add(l), () => listeners.delete(l)),
  };
  const emit = (e: ResourceEvent) => {
    source.healthy = e.type !== "lost";
    for (const l of listeners) l(e);
  };
  const expiring = (name: string, inMs: number): ServerResource => ({
    ...node(name, name, "10.0.0.9:3022"),
    metadata: { name, expires: new Date(clock.now().getTime() + inMs).toISOString() },
  });
  let lists = 0;
  const changed: Array<() => void> = [];
  const reg = new NodeRegistry({
    list: () => (lists++, Promise.resolve([expiring("a", 600_000)])),
    clock,
    logger: getComponentLogger("test"),
    watch: source,
    onChange: () => changed.splice(0).forEach((w) => w()),
  });
  const next = () => new Promise<void>((r) => changed.push(r));
  let reloaded = next();
  emit({ type: "init" });
  await reloaded;
  assert.equal(lists, 1);
  emit({ type: "put", resource: expiring("b", 1000) });
  clock.advance(60_000);
  // No listing by age while the watch is healthy; b's heartbeat expired meanwhile.
  assert.deepEqual((await reg.nodes()).map((x) => x.metadata.name), ["a"]);
  emit({ type: "put", resource: expiring("c", 600_000) });
  emit({ type: "delete", kind: "node", name: "a" });
  assert.deepEqual((await reg.nodes()).map((x) => x.metadata.name), ["c"]);
  assert.equal(lists, 1);
  // A resync lists once more.
  reloaded = next();
  emit({ type: "init" });
  await reloaded;
  assert.equal(lists, 2);
  // Down: the list is refreshed by age again.
  emit({ type: "lost", reason: "gone" });
  clock.advance(5000);
  await reg.nodes();
  assert.equal(lists, 3);
});
