import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { isKind } from "../errors/mod.ts";
import type { Resource, ResourceEvent } from "../resource/mod.ts";
import { CaReader } from "./ca_reader.ts";

const ca = (type: string, cluster = "example"): Resource =>
  ({
    kind: "cert_authority",
    version: "v2",
    metadata: { name: cluster },
    spec: { type, cluster_name: cluster },
  }) as unknown as Resource;

Deno.test("CaReader answers host and user readers from one listing within ttlMs", async () => {
  const clock = new FakeClock();
  let lists = 0;
  let fail = false;
  const reader = new CaReader({
    list: () => {
      lists++;
      return fail
        ? Promise.reject(new Error("auth down"))
        : Promise.resolve([ca("host"), ca("user")]);
    },
    clock,
    ttlMs: 5000,
  });
  // Three loops reading at once: one request.
  const [user, host, host2] = await Promise.all([
    reader.read("user"),
    reader.read("host"),
    reader.read("host"),
  ]);
  assert.equal((user.spec as { type: string }).type, "user");
  assert.equal((host.spec as { type: string }).type, "host");
  assert.equal(host2, host);
  assert.equal(lists, 1);
  clock.advance(4999);
  await reader.read("user");
  assert.equal(lists, 1);
  clock.advance(1);
  await reader.read("user");
  assert.equal(lists, 2);
  // A failure is not kept: the next reader asks again.
  clock.advance(5000);
  fail = true;
  await assert.rejects(reader.read("host"), /auth down/);
  fail = false;
  await reader.read("host");
  assert.equal(lists, 4);
});

Deno.test("CaReader.read() fails with NotFound when the listing lacks the type", async () => {
  const reader = new CaReader({
    list: () => Promise.resolve([ca("user"), ca("host", "other")]),
    clock: new FakeClock(),
    clusterName: "example",
  });
  await assert.rejects(reader.read("host"), (e) => isKind(e, "NotFound"));
  assert.equal((await reader.read("user")).metadata.name, "example");
});

/** A resource event source driven by the test. */
function fakeSource() {
  const listeners = new Set<(e: ResourceEvent) => void>();
  const src = {
    healthy: false,
    subscribe(l: (e: ResourceEvent) => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    emit(e: ResourceEvent) {
      if (e.type === "init") src.healthy = true;
      if (e.type === "lost") src.healthy = false;
      for (const l of listeners) l(e);
    },
  };
  return src;
}

Deno.test("CaReader with a healthy watch reads once per init and applies CA events", async () => {
  const clock = new FakeClock();
  const source = fakeSource();
  let lists = 0;
  let changes = 0;
  const rev = (r: Resource, revision: string) => ({ ...r, metadata: { ...r.metadata, revision } });
  const reader = new CaReader({
    list: () => (lists++, Promise.resolve([rev(ca("host"), "1"), rev(ca("user"), "1")])),
    clock,
    ttlMs: 5000,
    watch: source,
    random: () => 0,
    onChange: () => changes++,
  });
  source.emit({ type: "init" });
  // The init's one listing (the read joins it).
  await reader.read("host");
  assert.equal(lists, 1);
  // Minutes of CA loops: no request while the watch is healthy.
  clock.advance(9 * 60_000);
  await reader.read("user");
  await reader.read("host");
  assert.equal(lists, 1);
  // A rotation written on auth arrives as an event: readers see it and onChange fires.
  const rotated = {
    ...rev(ca("user"), "2"),
    spec: { type: "user", cluster_name: "example", x: 1 },
  };
  source.emit({ type: "put", resource: rotated as unknown as Resource });
  assert.equal(changes, 1);
  assert.equal((await reader.read("user")).metadata.revision, "2");
  assert.equal(lists, 1);
  // The rare safety re-read.
  clock.advance(60_001);
  await reader.read("user");
  assert.equal(lists, 2);
  // The watch breaks: polling by ttlMs again.
  source.emit({ type: "lost", reason: "gone" });
  clock.advance(5000);
  await reader.read("user");
  assert.equal(lists, 3);
});
