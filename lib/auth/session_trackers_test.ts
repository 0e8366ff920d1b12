import assert from "node:assert/strict";
import type { SessionTracker } from "../resource/mod.ts";
import { handleApiRequest } from "./mod.ts";
import { newTestAuth, nodeIdentity, userIdentity } from "./_testing.ts";

const NODE_A = "0b9e4b36-2f5e-4c8e-8d34-7e0f4c1a2b3c";
const NODE_B = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

function tracker(sid: string, user: string, nodeId: string, expires: Date): SessionTracker {
  return {
    kind: "session_tracker",
    version: "v1",
    metadata: { name: sid, expires: expires.toISOString() },
    spec: {
      session_id: sid,
      kind: "ssh",
      state: "running",
      created: new Date(expires.getTime() - 60_000).toISOString(),
      user,
      login: "root",
      node_id: nodeId,
      hostname: "node-a",
      cluster_name: "",
      participants: [{ user, mode: "owner", joined: new Date().toISOString() }],
    },
  };
}

Deno.test("session trackers: nodes write their own, users list theirs, expiry removes them", async () => {
  await using t = await newTestAuth();
  const call = (
    caller: Parameters<typeof handleApiRequest>[1]["caller"],
    method: string,
    path: string,
    body?: unknown,
  ) => handleApiRequest(t.auth, { method, path, body, ...(caller ? { caller } : {}) });
  const inMinute = new Date(t.clock.now().getTime() + 60_000);
  const s1 = "11111111-1111-4111-8111-111111111111";
  const s2 = "22222222-2222-4222-8222-222222222222";
  const nodeA = nodeIdentity(NODE_A);
  const nodeB = nodeIdentity(NODE_B);

  const put = (who: typeof nodeA, tr: SessionTracker) =>
    call(who, "PUT", `/v1/sessions/${tr.metadata.name}`, { tracker: tr });
  assert.equal((await put(nodeA, tracker(s1, "alice", NODE_A, inMinute))).status, 200);
  assert.equal((await put(nodeA, tracker(s2, "bob", NODE_A, inMinute))).status, 200);
  // A node cannot write another node's session, nor take one over, nor keep one forever.
  const foreign = await put(
    nodeB,
    tracker("33333333-3333-4333-8333-333333333333", "x", NODE_A, inMinute),
  );
  assert.equal(foreign.status, 403);
  assert.equal((await put(nodeB, tracker(s1, "alice", NODE_B, inMinute))).status, 403);
  const forever = await put(
    nodeA,
    tracker(s1, "alice", NODE_A, new Date(t.clock.now().getTime() + 7_200_000)),
  );
  assert.equal(forever.status, 400);
  assert.match(JSON.stringify(forever.body), /within the next hour/);
  // Users cannot write trackers.
  assert.equal(
    (await put(userIdentity("alice", ["access"]), tracker(s1, "alice", NODE_A, inMinute))).status,
    403,
  );

  const ids = async (who: ReturnType<typeof userIdentity>) => {
    const r = await call(who, "GET", "/v1/sessions");
    assert.equal(r.status, 200);
    return (r.body as { items: SessionTracker[] }).items.map((i) => i.metadata.name).sort();
  };
  assert.deepEqual(await ids(userIdentity("alice", ["access"])), [s1]);
  assert.deepEqual(await ids(userIdentity("carol", ["access"])), []);
  assert.deepEqual(await ids(userIdentity("au", ["auditor"])), [s1, s2]);
  // Someone else's session is hidden one by one too.
  assert.equal(
    (await call(userIdentity("carol", ["access"]), "GET", `/v1/sessions/${s1}`)).status,
    404,
  );
  const own = await call(userIdentity("alice", ["access"]), "GET", `/v1/sessions/${s1}`);
  assert.equal((own.body as { item: SessionTracker }).item.spec.cluster_name, "example");

  // Only the node running it ends a session; then it is gone.
  assert.equal((await call(nodeB, "DELETE", `/v1/sessions/${s1}`)).status, 403);
  assert.equal((await call(nodeA, "DELETE", `/v1/sessions/${s1}`)).status, 200);
  assert.deepEqual(await ids(userIdentity("au", ["auditor"])), [s2]);
  // A tracker nobody keeps alive expires.
  t.clock.advance(61_000);
  assert.deepEqual(await ids(userIdentity("au", ["auditor"])), []);
});

Deno.test("session trackers: join_sessions makes others' sessions visible", async () => {
  await using t = await newTestAuth();
  const admin = {
    kind: "host" as const,
    username: "h1.example",
    clusterName: "example",
    roles: ["Admin"],
    logins: [],
    traits: {},
  };
  const watch = {
    kind: "role",
    version: "v7",
    metadata: { name: "watch" },
    spec: {
      allow: {
        join_sessions: [{ name: "w", roles: ["access"], kinds: ["ssh"], modes: ["observer"] }],
      },
    },
  };
  const alice = {
    kind: "user",
    version: "v2",
    metadata: { name: "alice" },
    spec: { roles: ["access"], traits: {} },
  };
  for (const resource of [watch, alice]) {
    const r = await handleApiRequest(t.auth, {
      method: "POST",
      path: "/v1/resources",
      body: { resource },
      caller: admin,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const sid = "44444444-4444-4444-8444-444444444444";
  const inMinute = new Date(t.clock.now().getTime() + 60_000);
  await t.auth.upsertSessionTracker(nodeIdentity(NODE_A), tracker(sid, "alice", NODE_A, inMinute));
  const list = await t.auth.listVisibleSessionTrackers(userIdentity("wendy", ["watch"]));
  assert.deepEqual(list.map((x) => x.metadata.name), [sid]);
  assert.deepEqual(await t.auth.listVisibleSessionTrackers(userIdentity("carol", ["access"])), []);
});
