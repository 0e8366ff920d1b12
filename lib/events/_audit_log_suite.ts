/**
 * The conformance suite every {@link AuditLog} implementation must pass. Each step builds a
 * fresh, empty log from the factory and closes it at the end.
 */

import assert from "node:assert/strict";
import type { FakeClock } from "../clock/mod.ts";
import { BadParameterError, ConnectionProblemError } from "../errors/mod.ts";
import { type AuditLog, MAX_SEARCH_LIMIT, type SearchQuery } from "./audit_log.ts";
import { type AuditEvent, EventType, MAX_EVENT_BYTES, newAuditEvent } from "./event.ts";

/** A fresh log plus the fake clock the test stamps events with. */
export interface AuditLogFixture {
  /** The log under test; the suite closes it. */
  log: AuditLog;
  /** Clock for event times; starts wherever the factory likes. */
  clock: FakeClock;
}

/** Builds a fresh, empty audit log for one step of the suite. */
export type AuditLogFactory = () => Promise<AuditLogFixture>;

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const DAY1 = Date.UTC(2026, 10, 21, 0, 0, 0); // 2026-11-21T00:00:00Z

/** Runs the suite as steps of the test `t`. */
export async function runAuditLogConformance(
  t: Deno.TestContext,
  factory: AuditLogFactory,
): Promise<void> {
  async function step(name: string, fn: (f: AuditLogFixture) => Promise<void>): Promise<void> {
    await t.step(name, async () => {
      const fixture = await factory();
      try {
        await fn(fixture);
      } finally {
        await fixture.log.close();
      }
    });
  }

  /** Emits `type` events at each offset (ms from DAY1), in the given order. */
  async function emitAt(
    f: AuditLogFixture,
    offsets: number[],
    type: string = EventType.Exec,
    fields: Record<string, unknown> = {},
  ): Promise<AuditEvent[]> {
    const out: AuditEvent[] = [];
    for (const off of offsets) {
      const clock = { now: () => new Date(DAY1 + off), sleep: f.clock.sleep.bind(f.clock) };
      const e = newAuditEvent(type, { ...fields, n: off }, { clock, clusterName: "c1" });
      await f.log.emit(e);
      out.push(e);
    }
    return out;
  }

  function window(fromOff: number, toOff: number, rest: Partial<SearchQuery> = {}): SearchQuery {
    return { from: new Date(DAY1 + fromOff), to: new Date(DAY1 + toOff), ...rest };
  }

  await step("emit() then search() returns the event as emitted", async (f) => {
    const [e] = await emitAt(f, [1000], EventType.SessionStart, {
      user: "alice",
      login: "root",
      sid: "7b1e4f4a-8c7e-4d7e-9a37-0c2b7f6a1f10",
      "addr.remote": "10.0.0.1:5555",
      nested: { a: [1, "x", null, true] },
    });
    const { events, lastKey } = await f.log.search(window(0, DAY));
    assert.deepEqual(events, [e]);
    assert.equal(lastKey, undefined);
  });

  await step(
    "emit() stores an oversized event cut to the limit and marked truncated",
    async (f) => {
      const [e] = await emitAt(f, [1000], EventType.InstanceJoin, {
        node_name: "n".repeat(MAX_EVENT_BYTES),
        host_id: "h1",
      });
      const { events } = await f.log.search(window(0, DAY));
      assert.equal(events.length, 1);
      const stored = events[0]!;
      assert.equal(stored.uid, e!.uid);
      assert.equal(stored.truncated, true);
      assert.equal(stored.host_id, "h1");
      assert.ok((stored.node_name as string).length < MAX_EVENT_BYTES);
      assert.ok(new TextEncoder().encode(JSON.stringify(stored)).length <= MAX_EVENT_BYTES);
    },
  );

  await step("search() finds nothing when the log is empty", async (f) => {
    assert.deepEqual(await f.log.search(window(-DAY, DAY)), { events: [] });
  });

  await step("search() keeps only events inside [from, to] across two days", async (f) => {
    // 23:00 on day 1, 00:00, 01:00 and 23:59:59.999 on day 2, 00:00 on day 3.
    const all = await emitAt(f, [DAY - HOUR, DAY, DAY + HOUR, 2 * DAY - 1, 2 * DAY]);
    const both = await f.log.search(window(DAY - HOUR, 2 * DAY - 1));
    assert.deepEqual(both.events, all.slice(0, 4));
    const inner = await f.log.search(window(DAY - HOUR + 1, DAY + HOUR));
    assert.deepEqual(inner.events, all.slice(1, 3));
    const exact = await f.log.search(window(DAY, DAY));
    assert.deepEqual(exact.events, [all[1]]);
    const none = await f.log.search(window(-DAY, -1));
    assert.deepEqual(none.events, []);
  });

  await step("search() filters by types and by sid", async (f) => {
    const sidA = "11111111-2222-4333-8444-555555555555";
    const sidB = "11111111-2222-4333-8444-666666666666";
    const [startA] = await emitAt(f, [1], EventType.SessionStart, { sid: sidA });
    const [execA] = await emitAt(f, [2], EventType.Exec, { sid: sidA });
    const [startB] = await emitAt(f, [3], EventType.SessionStart, { sid: sidB });
    const [login] = await emitAt(f, [4], EventType.UserLogin, { user: "bob" });
    const [endA] = await emitAt(f, [5], EventType.SessionEnd, { sid: sidA });
    const q = (rest: Partial<SearchQuery>) => f.log.search(window(0, DAY, rest));
    assert.deepEqual((await q({ types: [EventType.SessionStart] })).events, [startA, startB]);
    assert.deepEqual((await q({ types: [EventType.UserLogin, EventType.SessionEnd] })).events, [
      login,
      endA,
    ]);
    assert.deepEqual((await q({ types: [] })).events.length, 5);
    assert.deepEqual((await q({ sid: sidA })).events, [startA, execA, endA]);
    assert.deepEqual((await q({ sid: sidA, types: [EventType.Exec] })).events, [execA]);
    assert.deepEqual((await q({ types: ["no.such"] })).events, []);
  });

  await step("search() orders by time, then by emit order, asc or desc", async (f) => {
    // Emitted out of time order; two share one millisecond.
    const [c, a, b1, b2] = await emitAt(f, [3000, 1000, 2000, 2000]);
    const asc = await f.log.search(window(0, DAY));
    assert.deepEqual(asc.events, [a, b1, b2, c]);
    const desc = await f.log.search(window(0, DAY, { order: "desc" }));
    assert.deepEqual(desc.events, [c, b2, b1, a]);
  });

  await step("search() pages with limit and startKey without gaps or repeats", async (f) => {
    const offsets = Array.from({ length: 23 }, (_, i) => (i % 3 === 0 ? i : i - 1) * 1000);
    offsets.push(DAY + 5); // one on the next day
    const all = await emitAt(f, offsets);
    for (const order of ["asc", "desc"] as const) {
      const seen: AuditEvent[] = [];
      let startKey: string | undefined;
      let pages = 0;
      do {
        const page = await f.log.search(window(0, 2 * DAY, { order, limit: 5, startKey }));
        assert.ok(page.events.length <= 5);
        seen.push(...page.events);
        startKey = page.lastKey;
        pages++;
      } while (startKey !== undefined);
      assert.equal(pages, 5);
      assert.deepEqual(seen.map((e) => e.uid), stableOrder(all, order));
    }
    const exact = await f.log.search(window(0, 2 * DAY, { limit: 24 }));
    assert.equal(exact.events.length, 24);
    assert.equal(exact.lastKey, undefined);
  });

  await step("search() uses a default limit of 500", async (f) => {
    await Promise.all(
      Array.from({ length: 501 }, (_, i) => emitAt(f, [i])),
    );
    const page = await f.log.search(window(0, DAY));
    assert.equal(page.events.length, 500);
    assert.ok(page.lastKey);
    const rest = await f.log.search(window(0, DAY, { startKey: page.lastKey }));
    assert.equal(rest.events.length, 1);
  });

  await step("search() rejects malformed queries", async (f) => {
    const bad: Partial<SearchQuery>[] = [
      { limit: 0 },
      { limit: MAX_SEARCH_LIMIT + 1 },
      { limit: 1.5 },
      { startKey: "garbage" },
      { order: "sideways" as "asc" },
    ];
    for (const rest of bad) {
      await assert.rejects(f.log.search(window(0, DAY, rest)), BadParameterError);
    }
    await assert.rejects(f.log.search(window(DAY, 0)), BadParameterError);
    await assert.rejects(
      f.log.search({ from: new Date(NaN), to: new Date(DAY1) }),
      BadParameterError,
    );
    assert.equal(
      (await f.log.search(window(0, DAY, { limit: MAX_SEARCH_LIMIT }))).events.length,
      0,
    );
  });

  await step("emit() rejects malformed events", async (f) => {
    const [good] = await emitAt(f, [1]);
    const bad: unknown[] = [
      null,
      "event",
      { ...good, event: "Session Start" },
      { ...good, uid: undefined },
      { ...good, code: "" },
      { ...good, time: "yesterday" },
      { ...good, user: 42 },
      { ...good, deep: { a: { b: { c: { d: { e: 1 } } } } } },
    ];
    for (const e of bad) await assert.rejects(f.log.emit(e as AuditEvent), BadParameterError);
    assert.equal((await f.log.search(window(0, DAY))).events.length, 1);
  });

  await step("emit() masks secret fields before storing", async (f) => {
    const token = "0123456789abcdef0123456789abcdef";
    const e = { ...(await emitAt(f, [1]))[0]!, uid: "masked-1" };
    await f.log.emit({ ...e, token, meta: { password: "hunter2" } });
    const found = (await f.log.search(window(0, DAY))).events.find((x) => x.uid === "masked-1");
    assert.ok(found);
    assert.equal(found.token, "************************89abcdef");
    assert.deepEqual(found.meta, { password: "*******" });
    assert.ok(!JSON.stringify(found).includes(token));
  });

  await step("emit() keeps every event whole when many run at once", async (f) => {
    const emitted = await Promise.all(
      Array.from(
        { length: 200 },
        (_, i) => emitAt(f, [i * 10], EventType.Exec, { command: "y".repeat(i * 37) }),
      ),
    );
    const { events } = await f.log.search(window(0, DAY, { limit: 1000 }));
    assert.equal(events.length, 200);
    assert.deepEqual(events, emitted.map(([e]) => e));
  });

  await step("search() returns copies the caller may change", async (f) => {
    const [e] = await emitAt(f, [1]);
    const first = await f.log.search(window(0, DAY));
    first.events[0]!.user = "mallory";
    const second = await f.log.search(window(0, DAY));
    assert.deepEqual(second.events, [e]);
  });

  await step("emit() and search() fail after close()", async (f) => {
    const [e] = await emitAt(f, [1]);
    await f.log.close();
    await assert.rejects(f.log.emit(e!), ConnectionProblemError);
    await assert.rejects(f.log.search(window(0, DAY)), ConnectionProblemError);
  });
}

/** uids of `emitted` by time, ties in emit order (asc) or reverse emit order (desc). */
function stableOrder(emitted: AuditEvent[], order: "asc" | "desc"): string[] {
  const index = new Map(emitted.map((e, i) => [e.uid, i]));
  const sign = order === "asc" ? 1 : -1;
  return [...emitted].sort((a, b) =>
    sign * (Date.parse(a.time) - Date.parse(b.time) || index.get(a.uid)! - index.get(b.uid)!)
  ).map((e) => e.uid);
}
