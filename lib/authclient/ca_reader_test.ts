import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { isKind } from "../errors/mod.ts";
import type { Resource } from "../resource/mod.ts";
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
