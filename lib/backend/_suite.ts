/**
 * The conformance suite every {@link Backend} implementation must pass (in the manner of
 * Teleport's `RunBackendComplianceSuite`). Each step opens a fresh backend from the factory
 * and closes it at the end.
 */

import assert from "node:assert/strict";
import type { FakeClock } from "../clock/mod.ts";
import {
  AlreadyExistsError,
  BadParameterError,
  CompareFailedError,
  ConnectionProblemError,
  NotFoundError,
} from "../errors/mod.ts";
import {
  type Backend,
  type BackendEvent,
  compareKeys,
  type Item,
  type Key,
  MAX_VALUE_BYTES,
} from "./backend.ts";

/** A fresh backend plus the fake clock it reads expiry from. */
export interface BackendFixture {
  /** The backend under test; the suite closes it. */
  backend: Backend;
  /** The clock the backend was built with. */
  clock: FakeClock;
}

/** Builds a fresh, empty backend for one step of the suite. */
export type BackendFactory = () => Promise<BackendFixture>;

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

function bytes(text: string): Uint8Array {
  return ENCODER.encode(text);
}

function text(item: Item): string {
  return DECODER.decode(item.value);
}

function keysOf(items: Item[]): Key[] {
  return items.map((item) => [...item.key]);
}

function pad(n: number): string {
  return String(n).padStart(4, "0");
}

/** The next event of a watch, failing after `ms` instead of hanging the test run. */
async function nextEvent(
  it: AsyncIterator<BackendEvent>,
  ms = 10_000,
): Promise<IteratorResult<BackendEvent>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`No watch event within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([it.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function expectEvent(it: AsyncIterator<BackendEvent>): Promise<BackendEvent> {
  const result = await nextEvent(it);
  assert.equal(result.done, false, "watch ended early");
  return result.value as BackendEvent;
}

/** Describes an event for comparisons: type, key, and for puts the value and revision. */
function describe(event: BackendEvent): string {
  if (event.type === "init") return "init";
  if (event.type === "delete") return `delete ${event.key.join("/")}`;
  const expires = event.item.expires === undefined ? "" : ` ${event.item.expires.getTime()}`;
  return `put ${event.item.key.join("/")}=${text(event.item)}@${event.item.revision}${expires}`;
}

function describePut(item: Item): string {
  return describe({ type: "put", item });
}

/** Waits for every promise; returns the fulfilled values and the rejection reasons. */
async function settle<T>(promises: Promise<T>[]): Promise<{ ok: T[]; errors: unknown[] }> {
  const results = await Promise.allSettled(promises);
  const ok: T[] = [];
  const errors: unknown[] = [];
  for (const r of results) r.status === "fulfilled" ? ok.push(r.value) : errors.push(r.reason);
  return { ok, errors };
}

/**
 * Runs the backend conformance suite as steps of test `t`.
 *
 * ```ts ignore
 * Deno.test("MemoryBackend passes the backend conformance suite", async (t) => {
 *   await runBackendConformance(t, () => {
 *     const clock = new FakeClock();
 *     return Promise.resolve({ backend: new MemoryBackend({ clock }), clock });
 *   });
 * });
 * ```
 */
export async function runBackendConformance(
  t: Deno.TestContext,
  factory: BackendFactory,
): Promise<void> {
  async function step(
    name: string,
    fn: (backend: Backend, clock: FakeClock) => Promise<void>,
  ): Promise<void> {
    await t.step(name, async () => {
      const fixture = await factory();
      await using backend = fixture.backend;
      await fn(backend, fixture.clock);
    });
  }

  await step("create(), get(), put(), update() and delete() round-trip an item", async (b) => {
    const key = ["crud", "a"];
    const created = await b.create({ key, value: bytes("one") });
    assert.deepEqual([...created.key], key);
    assert.equal(text(created), "one");
    assert.equal(created.expires, undefined);
    assert.equal(typeof created.revision, "string");
    assert.notEqual(created.revision, "");
    assert.deepEqual(await b.get(key), created);

    const put = await b.put({ key, value: bytes("two") });
    assert.equal(text(await b.get(key)), "two");
    const updated = await b.update({ key, value: bytes("three") });
    const got = await b.get(key);
    assert.equal(text(got), "three");
    assert.equal(got.revision, updated.revision);
    assert.equal(new Set([created.revision, put.revision, updated.revision]).size, 3);

    await b.delete(key);
    await assert.rejects(b.get(key), NotFoundError);
    await assert.rejects(b.delete(key), NotFoundError);
    const recreated = await b.create({ key, value: bytes("four") });
    assert.ok(![created.revision, put.revision, updated.revision].includes(recreated.revision));
  });

  await step("writes store a copy of the value", async (b) => {
    const value = bytes("abc");
    await b.put({ key: ["copy"], value });
    value[0] = 0x7a;
    const got = await b.get(["copy"]);
    assert.equal(text(got), "abc");
    got.value[0] = 0x7a;
    assert.equal(text(await b.get(["copy"])), "abc");
  });

  await step("invalid keys, values and options fail with BadParameterError", async (b) => {
    const value = bytes("v");
    const badKeys: unknown[] = [
      [],
      [""],
      ["a", ""],
      "a",
      [1],
      ["\ud800"],
      ["x".repeat(1600)],
      Array.from({ length: 600 }, () => "ab"),
    ];
    for (const key of badKeys) {
      await assert.rejects(b.put({ key: key as Key, value }), BadParameterError);
      await assert.rejects(b.get(key as Key), BadParameterError);
      await assert.rejects(b.delete(key as Key), BadParameterError);
    }
    await assert.rejects(
      b.put({ key: ["big"], value: new Uint8Array(MAX_VALUE_BYTES + 1) }),
      BadParameterError,
    );
    await assert.rejects(
      b.put({ key: ["date"], value, expires: new Date(NaN) }),
      BadParameterError,
    );
    await assert.rejects(b.put({ key: ["str"], value: "v" as unknown as Uint8Array }), {
      name: "BadParameterError",
    });
    await assert.rejects(b.getRange({ prefix: [] }, { limit: -1 }), BadParameterError);
    await assert.rejects(b.getRange({ prefix: [] }, { limit: 1.5 }), BadParameterError);
    assert.throws(() => b.watch({ prefixes: [] }), BadParameterError);
    // The largest key and value are accepted and round-trip.
    const key = ["k".repeat(1534)];
    const max = new Uint8Array(MAX_VALUE_BYTES).fill(7);
    await b.put({ key, value: max });
    assert.deepEqual((await b.get(key)).value, max);
  });

  await step("keys sort segment-wise by UTF-8 bytes, a prefix key first", async (b) => {
    const expected: Key[] = [
      ["a"],
      ["a", "b"],
      ["a", "b", "c"],
      ["a", "c"],
      ["a\u0000"],
      ["a-"],
      ["ab"],
      ["b"],
      ["z"],
      ["\u00e9"],
      ["\ue000"],
      ["\uffff"],
      ["\u{1f600}"],
    ];
    const shuffled = [...expected].reverse();
    shuffled.push(shuffled.splice(3, 1)[0]!);
    await Promise.all(shuffled.map((key, i) => b.put({ key, value: bytes(String(i)) })));
    assert.deepEqual(keysOf(await b.getRange({ prefix: [] })), expected);
    assert.deepEqual([...shuffled].sort(compareKeys), expected);
  });

  await step("getRange() by prefix returns the prefix key and its descendants", async (b) => {
    const keys: Key[] = [
      ["o", "p"],
      ["p"],
      ["p", "a"],
      ["p", "a", "x"],
      ["p", "b"],
      ["p\u0000"],
      ["pa"],
      ["q"],
    ];
    await Promise.all(keys.map((key) => b.put({ key, value: bytes(key.join("/")) })));
    const under = await b.getRange({ prefix: ["p"] });
    assert.deepEqual(keysOf(under), [["p"], ["p", "a"], ["p", "a", "x"], ["p", "b"]]);
    assert.deepEqual(under.map(text), ["p", "p/a", "p/a/x", "p/b"]);
    assert.deepEqual(keysOf(await b.getRange({ prefix: ["p", "a"] })), [["p", "a"], [
      "p",
      "a",
      "x",
    ]]);
    assert.deepEqual(keysOf(await b.getRange({ prefix: ["p"] }, { limit: 2 })), [["p"], [
      "p",
      "a",
    ]]);
    assert.deepEqual(keysOf(await b.getRange({ prefix: [] })), keys);
    assert.deepEqual(await b.getRange({ prefix: ["none"] }), []);
  });

  await step("getRange() by start and end includes start and excludes end", async (b) => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => b.put({ key: ["r", pad(i)], value: bytes(pad(i)) })),
    );
    const range = { start: ["r", pad(5)], end: ["r", pad(10)] };
    assert.deepEqual((await b.getRange(range)).map(text), [5, 6, 7, 8, 9].map(pad));
    assert.deepEqual((await b.getRange(range, { limit: 3 })).map(text), [5, 6, 7].map(pad));
    assert.deepEqual((await b.getRange(range, { limit: 0 })).length, 5);
    assert.deepEqual(await b.getRange({ start: ["r", pad(9)], end: ["r", pad(9)] }), []);
    assert.deepEqual(await b.getRange({ start: ["r", pad(9)], end: ["r", pad(3)] }), []);
    assert.equal(await b.deleteRange({ start: ["r", pad(9)], end: ["r", pad(3)] }), 0);
    assert.equal((await b.getRange({ start: ["r"], end: ["s"] })).length, 20);
  });

  await step("getRange() returns more than 1000 items and honours limits", async (b) => {
    const count = 1500;
    await Promise.all(
      Array.from(
        { length: count },
        (_, i) => b.put({ key: ["big", pad(i)], value: bytes(pad(i)) }),
      ),
    );
    const all = await b.getRange({ prefix: ["big"] });
    assert.equal(all.length, count);
    assert.deepEqual(all.map(text), Array.from({ length: count }, (_, i) => pad(i)));
    const limited = await b.getRange({ prefix: ["big"] }, { limit: 1200 });
    assert.equal(limited.length, 1200);
    assert.equal(text(limited.at(-1)!), pad(1199));
    // Paging: each page starts at the last key of the previous one.
    const paged: string[] = [];
    let start: Key = ["big"];
    for (;;) {
      const page = await b.getRange({ start, end: ["big\u0000"] }, { limit: 400 });
      const fresh = paged.length === 0 ? page : page.slice(1);
      if (fresh.length === 0) break;
      paged.push(...fresh.map(text));
      start = page.at(-1)!.key;
    }
    assert.deepEqual(paged, all.map(text));
    assert.equal(await b.deleteRange({ prefix: ["big"] }), count);
    assert.deepEqual(await b.getRange({ prefix: ["big"] }), []);
  });

  await step("deleteRange() deletes the range and returns the count", async (b) => {
    await b.put({ key: ["d"], value: bytes("d") });
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => b.put({ key: ["d", String(i)], value: bytes("x") })),
    );
    await b.put({ key: ["e"], value: bytes("e") });
    assert.equal(await b.deleteRange({ start: ["d", "2"], end: ["d", "5"] }), 3);
    assert.deepEqual(
      keysOf(await b.getRange({ prefix: ["d"] })),
      [["d"], ...["0", "1", "5", "6", "7", "8", "9"].map((s) => ["d", s])],
    );
    assert.equal(await b.deleteRange({ prefix: ["d"] }), 8);
    assert.equal(await b.deleteRange({ prefix: ["d"] }), 0);
    assert.deepEqual(keysOf(await b.getRange({ prefix: [] })), [["e"]]);
  });

  await step("create() fails with AlreadyExistsError when the item exists", async (b) => {
    await b.create({ key: ["c"], value: bytes("first") });
    await assert.rejects(b.create({ key: ["c"], value: bytes("second") }), AlreadyExistsError);
    assert.equal(text(await b.get(["c"])), "first");
    const { ok, errors } = await settle(
      Array.from({ length: 20 }, (_, i) => b.create({ key: ["race"], value: bytes(String(i)) })),
    );
    assert.equal(ok.length, 1);
    assert.equal(errors.length, 19);
    for (const err of errors) assert.ok(err instanceof AlreadyExistsError, String(err));
    assert.equal(text(await b.get(["race"])), text(ok[0]!));
  });

  await step(
    "update(), delete() and keepAlive() fail with NotFoundError when absent",
    async (b) => {
      const future = new Date(Date.UTC(2100, 0, 1));
      await assert.rejects(b.update({ key: ["missing"], value: bytes("x") }), NotFoundError);
      await assert.rejects(b.delete(["missing"]), NotFoundError);
      await assert.rejects(b.keepAlive(["missing"], future), NotFoundError);
      await assert.rejects(b.get(["missing"]), NotFoundError);
      assert.deepEqual(await b.getRange({ prefix: [] }), []);
    },
  );

  await step("compareAndSwap() swaps only from the expected revision", async (b) => {
    const key = ["cas"];
    await assert.rejects(
      b.compareAndSwap("0", { key, value: bytes("x") }),
      CompareFailedError,
    );
    const first = await b.put({ key, value: bytes("1") });
    await assert.rejects(
      b.compareAndSwap(first.revision + "0", { key, value: bytes("x") }),
      CompareFailedError,
    );
    const second = await b.compareAndSwap(first.revision, { key, value: bytes("2") });
    assert.notEqual(second.revision, first.revision);
    assert.deepEqual(await b.get(key), second);
    await assert.rejects(
      b.compareAndSwap(first.revision, { key, value: bytes("3") }),
      CompareFailedError,
    );
    await b.delete(key);
    await assert.rejects(
      b.compareAndSwap(second.revision, { key, value: bytes("4") }),
      CompareFailedError,
    );
  });

  await step("compareAndSwap() lets exactly one of 20 concurrent writers win", async (b) => {
    const key = ["cas", "race"];
    const base = await b.put({ key, value: bytes("base") });
    const { ok, errors } = await settle(
      Array.from(
        { length: 20 },
        (_, i) => b.compareAndSwap(base.revision, { key, value: bytes(`w${i}`) }),
      ),
    );
    assert.equal(ok.length, 1);
    assert.equal(errors.length, 19);
    for (const err of errors) assert.ok(err instanceof CompareFailedError, String(err));
    assert.deepEqual(await b.get(key), ok[0]);

    // Optimistic increments from concurrent workers lose no update.
    await b.put({ key: ["counter"], value: bytes("0") });
    async function increment(): Promise<void> {
      for (;;) {
        const current = await b.get(["counter"]);
        const next = bytes(String(Number(text(current)) + 1));
        try {
          await b.compareAndSwap(current.revision, { key: ["counter"], value: next });
          return;
        } catch (err) {
          if (!(err instanceof CompareFailedError)) throw err;
        }
      }
    }
    await Promise.all(Array.from({ length: 40 }, increment));
    assert.equal(text(await b.get(["counter"])), "40");
  });

  await step("expired items are never returned and count as absent", async (b, clock) => {
    const expires = new Date(clock.now().getTime() + 1000);
    const item = await b.put({ key: ["ttl", "a"], value: bytes("a"), expires });
    assert.equal(item.expires?.getTime(), expires.getTime());
    await b.put({ key: ["ttl", "b"], value: bytes("b") });
    await b.put({ key: ["ttl", "c"], value: bytes("c"), expires });
    assert.equal((await b.get(["ttl", "a"])).expires?.getTime(), expires.getTime());
    clock.advance(999);
    assert.equal(text(await b.get(["ttl", "a"])), "a");
    assert.equal((await b.getRange({ prefix: ["ttl"] })).length, 3);
    clock.advance(1);
    await assert.rejects(b.get(["ttl", "a"]), NotFoundError);
    assert.deepEqual(keysOf(await b.getRange({ prefix: ["ttl"] })), [["ttl", "b"]]);
    assert.deepEqual(keysOf(await b.getRange({ prefix: ["ttl"] }, { limit: 1 })), [["ttl", "b"]]);
    await assert.rejects(b.update({ key: ["ttl", "a"], value: bytes("x") }), NotFoundError);
    await assert.rejects(
      b.compareAndSwap(item.revision, { key: ["ttl", "a"], value: bytes("x") }),
      CompareFailedError,
    );
    await assert.rejects(b.delete(["ttl", "a"]), NotFoundError);
    await assert.rejects(
      b.keepAlive(["ttl", "a"], new Date(clock.now().getTime() + 1000)),
      NotFoundError,
    );
    const again = await b.create({ key: ["ttl", "a"], value: bytes("again") });
    assert.equal(again.expires, undefined);
    assert.equal(text(await b.get(["ttl", "a"])), "again");
    // deleteRange counts live items only ("c" has expired).
    assert.equal(await b.deleteRange({ prefix: ["ttl"] }), 2);
    assert.deepEqual(await b.getRange({ prefix: ["ttl"] }), []);
    // An item written already expired is never returned.
    await b.put({ key: ["ttl", "past"], value: bytes("p"), expires: new Date(0) });
    await assert.rejects(b.get(["ttl", "past"]), NotFoundError);
  });

  await step("keepAlive() extends the expiry and keeps the value", async (b, clock) => {
    const start = clock.now().getTime();
    const item = await b.put({
      key: ["lease"],
      value: bytes("held"),
      expires: new Date(start + 1000),
    });
    const kept = await b.keepAlive(["lease"], new Date(start + 10_000));
    assert.notEqual(kept.revision, item.revision);
    assert.equal(text(kept), "held");
    assert.equal(kept.expires?.getTime(), start + 10_000);
    clock.advance(5000);
    assert.deepEqual(await b.get(["lease"]), kept);
    clock.advance(5000);
    await assert.rejects(b.get(["lease"]), NotFoundError);
  });

  await step(
    "watch() yields init, then puts and deletes under its prefixes in order",
    async (b) => {
      const controller = new AbortController();
      const it = b.watch({ prefixes: [["w1"], ["w2", "x"]], signal: controller.signal })
        [Symbol.asyncIterator]();
      assert.deepEqual(await expectEvent(it), { type: "init" });
      const expected: string[] = [];
      const a = await b.put({ key: ["w1", "a"], value: bytes("1") });
      expected.push(describePut(a));
      await b.put({ key: ["other", "a"], value: bytes("no") });
      await b.put({ key: ["w2", "y"], value: bytes("no") });
      await b.put({ key: ["w1x"], value: bytes("no") });
      expected.push(describePut(await b.put({ key: ["w2", "x", "1"], value: bytes("2") })));
      expected.push(describePut(await b.update({ key: ["w1", "a"], value: bytes("3") })));
      await b.delete(["w1", "a"]);
      expected.push("delete w1/a");
      const expires = new Date(Date.UTC(2100, 0, 1));
      const created = await b.create({ key: ["w1", "b"], value: bytes("4"), expires });
      expected.push(describePut(created));
      const kept = await b.keepAlive(["w1", "b"], new Date(Date.UTC(2101, 0, 1)));
      expected.push(describePut(kept));
      expected.push(
        describePut(await b.compareAndSwap(kept.revision, { key: ["w1", "b"], value: bytes("5") })),
      );
      expected.push(describePut(await b.put({ key: ["w1"], value: bytes("6") })));
      await b.delete(["other", "a"]);
      assert.equal(await b.deleteRange({ prefix: ["w1"] }), 2);
      expected.push("delete w1", "delete w1/b");
      const received: string[] = [];
      while (received.length < expected.length) received.push(describe(await expectEvent(it)));
      assert.deepEqual(received, expected);
      controller.abort();
      assert.equal((await nextEvent(it)).done, true);
    },
  );

  await step("watch() ends when its signal aborts", async (b) => {
    const controller = new AbortController();
    const it = b.watch({ prefixes: [[]], signal: controller.signal })[Symbol.asyncIterator]();
    const other = new AbortController();
    const seen: string[] = [];
    const all = (async () => {
      for await (const event of b.watch({ prefixes: [["x"]], signal: other.signal })) {
        seen.push(describe(event));
        if (event.type === "init") await b.put({ key: ["x"], value: bytes("x") });
        else other.abort();
      }
    })();
    assert.deepEqual(await expectEvent(it), { type: "init" });
    const pending = nextEvent(it);
    await all;
    assert.equal(seen.length, 2);
    assert.equal(seen[1], describe(await pending.then((r) => r.value as BackendEvent)));
    const waiting = nextEvent(it);
    controller.abort();
    assert.equal((await waiting).done, true);
    await b.put({ key: ["after"], value: bytes("y") });
    assert.equal((await nextEvent(it)).done, true);
    const aborted = b.watch({ prefixes: [[]], signal: AbortSignal.abort() });
    assert.equal((await nextEvent(aborted[Symbol.asyncIterator]())).done, true);
  });

  await step("watch() ends and operations fail once the backend closes", async (b) => {
    const it = b.watch({ prefixes: [[]] })[Symbol.asyncIterator]();
    assert.deepEqual(await expectEvent(it), { type: "init" });
    const waiting = nextEvent(it);
    await b.close();
    assert.equal((await waiting).done, true);
    await b.close();
    await assert.rejects(b.get(["x"]), ConnectionProblemError);
    await assert.rejects(b.put({ key: ["x"], value: bytes("x") }), ConnectionProblemError);
    assert.throws(() => b.watch({ prefixes: [[]] }), ConnectionProblemError);
  });

  await step("500 concurrent operations leave the store consistent", async (b) => {
    const count = 500;
    const controller = new AbortController();
    const it = b.watch({ prefixes: [["many"]], signal: controller.signal })
      [Symbol.asyncIterator]();
    assert.deepEqual(await expectEvent(it), { type: "init" });
    const puts = await Promise.all([
      ...Array.from(
        { length: count },
        (_, i) => b.put({ key: ["many", pad(i)], value: bytes(String(i)) }),
      ),
      ...Array.from({ length: 50 }, (_, i) => b.put({ key: ["hot"], value: bytes(String(i)) })),
    ]);
    assert.equal(new Set(puts.map((item) => item.revision)).size, count + 50);
    const [items, gets] = await Promise.all([
      b.getRange({ prefix: ["many"] }),
      Promise.all(Array.from({ length: count }, (_, i) => b.get(["many", pad(i)]))),
    ]);
    assert.equal(items.length, count);
    assert.deepEqual(gets.map(text), Array.from({ length: count }, (_, i) => String(i)));
    const revisions = new Set<string>();
    for (let i = 0; i < count; i++) {
      const event = await expectEvent(it);
      assert.equal(event.type, "put");
      if (event.type === "put") revisions.add(event.item.revision);
    }
    assert.equal(revisions.size, count);
    await Promise.all(Array.from({ length: count }, (_, i) => b.delete(["many", pad(i)])));
    assert.deepEqual(await b.getRange({ prefix: ["many"] }), []);
    for (let i = 0; i < count; i++) assert.equal((await expectEvent(it)).type, "delete");
    controller.abort();
    assert.equal((await nextEvent(it)).done, true);
  });
}
