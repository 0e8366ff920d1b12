import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { FakeClock } from "../clock/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import type { SessionTracker } from "../resource/mod.ts";
import type { ServerChannel } from "../ssh/mod.ts";
import { SessionRegistry, SharedSession } from "./shared_session.ts";

/** An in-memory server channel: what is written to it is collected; exits are recorded. */
function fakeChannel() {
  const ch = new PassThrough() as unknown as ServerChannel & {
    written: string;
    exits: number[];
  };
  const stderr = new PassThrough();
  ch.written = "";
  ch.exits = [];
  Object.assign(ch, {
    stderr,
    write: (d: Uint8Array | string) => {
      ch.written += typeof d === "string" ? d : new TextDecoder().decode(d);
      return true;
    },
    exit: (code: number) => ch.exits.push(code),
    exitSignal: () => ch.exits.push(-1),
    close: () => ch.destroy(),
    /** Data from the client. */
    fromClient: (text: string) => ch.emit("data", new TextEncoder().encode(text)),
  });
  return ch as typeof ch & { fromClient(text: string): void };
}

const OWNER = { user: "alice", login: "root", roles: ["access"] };

Deno.test("SharedSession fans output out, takes only peers' input and announces parties", () => {
  const clock = new FakeClock();
  const owner = fakeChannel();
  const typed: string[] = [];
  let changes = 0;
  const s = new SharedSession({
    sid: "s1",
    owner: OWNER,
    ownerChannel: owner,
    input: (d) => typed.push(new TextDecoder().decode(d)),
    clock,
    onChange: () => changes++,
  });
  const observer = fakeChannel();
  const peer = fakeChannel();
  s.join("bob", "observer", observer);
  s.join("carol", "peer", peer);
  assert.match(owner.written, /\[user bob joined the session as observer\]/);
  assert.match(observer.written, /\[user carol joined the session as peer\]/);
  assert.deepEqual(s.participants.map((p) => `${p.user}:${p.mode}`), [
    "alice:owner",
    "bob:observer",
    "carol:peer",
  ]);
  s.broadcast(new TextEncoder().encode("hello"));
  assert.match(observer.written, /hello/);
  assert.match(peer.written, /hello/);
  observer.fromClient("ignored");
  peer.fromClient("ls\n");
  assert.deepEqual(typed, ["ls\n"]);
  peer.emit("end");
  assert.deepEqual(peer.exits, [0]);
  assert.match(owner.written, /\[user carol left the session\]/);
  assert.equal(changes, 3);
  s.end({ code: 7 });
  assert.deepEqual(observer.exits, [7]);
  assert.deepEqual(s.everyone, ["alice", "bob", "carol"]);
  // A late join is refused with a reason.
  const late = fakeChannel();
  s.join("dave", "peer", late);
  assert.deepEqual(late.exits, [1]);
});

Deno.test("SessionRegistry writes trackers with a TTL and deletes them, in order", async () => {
  const clock = new FakeClock();
  const writes: string[] = [];
  const stored = new Map<string, SessionTracker>();
  const registry = new SessionRegistry({
    auth: {
      upsertSessionTracker: (t) => {
        writes.push(`put ${t.metadata.name} ${t.spec.participants.length}`);
        stored.set(t.metadata.name, t);
        return Promise.resolve();
      },
      deleteSessionTracker: (sid) => {
        writes.push(`delete ${sid}`);
        stored.delete(sid);
        return Promise.resolve();
      },
    },
    node: { hostId: "h1", nodeName: "node1", clusterName: "c" },
    clock,
    logger: getComponentLogger("node:test"),
    trackerTtlMs: 60_000,
  });
  const s = new SharedSession({
    sid: "s1",
    owner: OWNER,
    ownerChannel: fakeChannel(),
    input: () => {},
    clock,
    onChange: () => void registry.update("s1"),
  });
  registry.add(s);
  s.join("bob", "observer", fakeChannel());
  const keepalive = registry.keepAlive();
  const removed = registry.remove("s1");
  await Promise.all([keepalive, removed, registry.keepAlive()]);
  // Each write sends the tracker as it is then; nothing is written after the delete.
  assert.deepEqual(writes, ["put s1 2", "put s1 2", "put s1 2", "delete s1"]);
  assert.equal(stored.size, 0);
  assert.equal(registry.get("s1"), undefined);
});

Deno.test("SessionRegistry fills the tracker from the session and the node", async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  let last: SessionTracker | undefined;
  const registry = new SessionRegistry({
    auth: {
      upsertSessionTracker: (t) => {
        last = t;
        return Promise.resolve();
      },
      deleteSessionTracker: () => Promise.resolve(),
    },
    node: { hostId: "h1", nodeName: "node1", clusterName: "c" },
    clock,
    logger: getComponentLogger("node:test"),
  });
  registry.add(
    new SharedSession({
      sid: "s2",
      owner: OWNER,
      ownerChannel: fakeChannel(),
      input: () => {},
      clock,
    }),
  );
  await registry.keepAlive();
  assert.equal(last?.metadata.expires, "2026-01-01T00:02:00.000Z");
  assert.deepEqual(
    { ...last?.spec, participants: undefined },
    {
      session_id: "s2",
      kind: "ssh",
      state: "running",
      created: "2026-01-01T00:00:00.000Z",
      user: "alice",
      login: "root",
      node_id: "h1",
      hostname: "node1",
      cluster_name: "c",
      participants: undefined,
    },
  );
});
