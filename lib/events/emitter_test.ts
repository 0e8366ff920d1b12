import assert from "node:assert/strict";
import { type Clock, FakeClock } from "../clock/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
import { testLogger, tick } from "./_testing.ts";
import { type AuditEvent, BufferedEmitter, EventType, newAuditEvent } from "./mod.ts";

const START = Date.UTC(2026, 10, 21);

function ev(n: number, clock: Clock): AuditEvent {
  return newAuditEvent(EventType.Exec, { n }, { clock });
}

function ns(events: AuditEvent[]): number[] {
  return events.map((e) => e.n as number);
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** A send function whose outcome the test controls; records every batch it was given. */
function controlledSend() {
  const batches: number[][] = [];
  let failing = 0;
  let failAlways = false;
  const send = (events: AuditEvent[]) => {
    batches.push(ns(events));
    if (failAlways || failing > 0) {
      failing--;
      return Promise.reject(new Error("auth unreachable"));
    }
    return Promise.resolve();
  };
  return {
    send,
    batches,
    failNext(n: number) {
      failing = n;
    },
    setFailAlways(v: boolean) {
      failAlways = v;
    },
  };
}

/** A FakeClock that also records the length of every sleep. */
class RecordingClock extends FakeClock {
  sleeps: number[] = [];
  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return super.sleep(ms, signal);
  }
}

Deno.test("BufferedEmitter.emit() returns at once while a send hangs", async () => {
  const clock = new FakeClock(START);
  const { logger } = testLogger();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const sent: number[][] = [];
  const emitter = new BufferedEmitter({
    clock,
    logger,
    send: async (events) => {
      sent.push(ns(events));
      await gate;
    },
  });
  await emitter.emit(ev(1, clock));
  await emitter.emit(ev(2, clock));
  await until("the first send starts", () => sent.length === 1);
  assert.equal(emitter.pending, 2);
  release();
  assert.equal(await emitter.flush(), true);
  assert.deepEqual(sent, [[1], [2]]);
  assert.equal(emitter.pending, 0);
  assert.equal(emitter.sent, 2);
  await emitter.close();
});

Deno.test("BufferedEmitter sends queued events in order in batches of batchSize", async () => {
  const clock = new FakeClock(START);
  const { logger } = testLogger();
  const ctl = controlledSend();
  let block!: () => void;
  const gate = new Promise<void>((resolve) => block = resolve);
  const emitter = new BufferedEmitter({
    clock,
    logger,
    batchSize: 3,
    send: async (events) => {
      await gate;
      return ctl.send(events);
    },
  });
  for (let i = 1; i <= 8; i++) emitter.emit(ev(i, clock));
  block();
  assert.equal(await emitter.flush(), true);
  // The first send took event 1 alone (it started at once); the rest went 3 at a time.
  assert.deepEqual(ctl.batches, [[1], [2, 3, 4], [5, 6, 7], [8]]);
  await emitter.close();
});

Deno.test("BufferedEmitter retries a failed batch after a backoff and keeps the order", async () => {
  const clock = new FakeClock(START);
  const { logger, records } = testLogger();
  const ctl = controlledSend();
  ctl.failNext(2);
  const emitter = new BufferedEmitter({ clock, logger, send: ctl.send, random: () => 1 });
  emitter.emit(ev(1, clock));
  emitter.emit(ev(2, clock));
  await until("the first attempt fails", () => clock.sleepers === 1);
  assert.deepEqual(ctl.batches, [[1]]);
  emitter.emit(ev(3, clock)); // queued behind the failed ones
  clock.advance(999);
  await tick();
  assert.equal(ctl.batches.length, 1);
  clock.advance(1); // 1 s: second attempt, fails again
  await until("the second attempt fails", () => ctl.batches.length === 2 && clock.sleepers === 1);
  clock.advance(1999);
  await tick();
  assert.equal(ctl.batches.length, 2);
  clock.advance(1); // 2 s later: succeeds
  assert.equal(await emitter.flush(), true);
  // Event 1 went alone at once; 2 and 3 queued behind it while it was failing.
  assert.deepEqual(ctl.batches, [[1], [1, 2, 3], [1, 2, 3]]);
  assert.equal(emitter.sent, 3);
  assert.equal(records.filter((r) => r.level === "warn").length, 1);
  await emitter.close();
});

Deno.test("BufferedEmitter backs off exponentially up to maxBackoffMs with jitter", async () => {
  const clock = new RecordingClock(START);
  const { logger } = testLogger();
  const ctl = controlledSend();
  ctl.setFailAlways(true);
  let r = 0;
  const randoms = [0, 1, 0.5, 1, 1, 1, 0, 1];
  const emitter = new BufferedEmitter({
    clock,
    logger,
    send: ctl.send,
    random: () => randoms[r++ % randoms.length]!,
  });
  emitter.emit(ev(1, clock));
  for (let i = 0; i < 8; i++) {
    await until(`attempt ${i + 1} fails`, () => clock.sleepers === 1);
    clock.advance(clock.sleeps.at(-1)!);
  }
  // Base 1, 2, 4, 8, 16, 30, 30, 30 s; each jittered into [base/2, base].
  assert.deepEqual(clock.sleeps.slice(0, 8), [500, 2000, 3000, 8000, 16000, 30000, 15000, 30000]);
  ctl.setFailAlways(false);
  assert.equal(await emitter.flush(), true);
  await emitter.close();
});

Deno.test("BufferedEmitter drops the oldest events when the queue is full", async () => {
  const clock = new FakeClock(START);
  const { logger, records } = testLogger();
  const ctl = controlledSend();
  ctl.setFailAlways(true);
  const emitter = new BufferedEmitter({
    clock,
    logger,
    send: ctl.send,
    maxQueue: 5,
    batchSize: 2,
    random: () => 1,
  });
  for (let i = 1; i <= 12; i++) await emitter.emit(ev(i, clock));
  await until("the first attempt fails", () => clock.sleepers === 1);
  assert.equal(emitter.pending, 5);
  assert.equal(emitter.dropped, 7);
  const full = records.filter((r) => r.level === "warn" && r.message.includes("full"));
  assert.equal(full.length, 1);

  ctl.setFailAlways(false);
  assert.equal(await emitter.flush(), true);
  // The newest five survive, in order.
  assert.deepEqual(ctl.batches.slice(1), [[8, 9], [10, 11], [12]]);
  const counted = records.filter((r) => r.properties?.count === 7);
  assert.equal(counted.length, 1);
  assert.match(counted[0]!.message, /Dropped/);
  await emitter.close();
});

Deno.test("BufferedEmitter.flush() resolves false when an attempt fails, true when delivered", async () => {
  const clock = new FakeClock(START);
  const { logger } = testLogger();
  const ctl = controlledSend();
  const emitter = new BufferedEmitter({ clock, logger, send: ctl.send, random: () => 1 });
  assert.equal(await emitter.flush(), true); // nothing queued
  ctl.setFailAlways(true);
  emitter.emit(ev(1, clock));
  assert.equal(await emitter.flush(), false);
  // flush() skips the backoff: another attempt happens without advancing the clock.
  assert.equal(await emitter.flush(), false);
  assert.equal(ctl.batches.length, 2);
  ctl.setFailAlways(false);
  assert.equal(await emitter.flush(), true);
  assert.deepEqual(ctl.batches, [[1], [1], [1]]);
  await emitter.close();
});

Deno.test("BufferedEmitter.close() delivers what it can and ignores later emits", async () => {
  const clock = new FakeClock(START);
  const { logger, records } = testLogger();
  const ctl = controlledSend();
  const emitter = new BufferedEmitter({ clock, logger, send: ctl.send });
  emitter.emit(ev(1, clock));
  emitter.emit(ev(2, clock));
  await emitter.close();
  assert.deepEqual(ctl.batches.flat(), [1, 2]);
  await emitter.emit(ev(3, clock)); // does not throw
  assert.equal(emitter.pending, 0);
  assert.ok(records.some((r) => r.message.includes("after close")));
  await emitter.close(); // twice is fine
});

Deno.test("BufferedEmitter.close() gives up on a failing send and reports the loss", async () => {
  const clock = new FakeClock(START);
  const { logger, records } = testLogger();
  const ctl = controlledSend();
  ctl.setFailAlways(true);
  const emitter = new BufferedEmitter({ clock, logger, send: ctl.send });
  emitter.emit(ev(1, clock));
  await emitter.close();
  assert.equal(emitter.pending, 1);
  assert.ok(records.some((r) => r.message.includes("undelivered") && r.properties?.count === 1));
  await tick();
  assert.equal(clock.sleepers, 0); // no retry loop left behind
});

Deno.test("BufferedEmitter.close() stops waiting for a hung send after closeTimeoutMs", async () => {
  const clock = new FakeClock(START);
  const { logger } = testLogger();
  let aborted = false;
  const emitter = new BufferedEmitter({
    clock,
    logger,
    closeTimeoutMs: 100,
    send: (_events, signal) =>
      new Promise((_resolve, reject) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          reject(signal.reason);
        });
      }),
  });
  emitter.emit(ev(1, clock));
  const closed = emitter.close();
  await until("close waits", () => clock.sleepers === 1);
  clock.advance(100);
  await closed;
  assert.ok(aborted);
});

Deno.test("BufferedEmitter.emit() drops an event it cannot copy instead of throwing", async () => {
  const clock = new FakeClock(START);
  const { logger, records } = testLogger();
  const ctl = controlledSend();
  const emitter = new BufferedEmitter({ clock, logger, send: ctl.send });
  await emitter.emit({ ...ev(1, clock), f: () => 1 });
  assert.equal(emitter.pending, 0);
  assert.equal(records.length, 1);
  await emitter.close();
});

Deno.test("BufferedEmitter rejects bad options", () => {
  const clock = new FakeClock(START);
  const { logger } = testLogger();
  const send = () => Promise.resolve();
  assert.throws(() => new BufferedEmitter({ clock, logger, send, maxQueue: 0 }), BadParameterError);
  assert.throws(
    () => new BufferedEmitter({ clock, logger, send, batchSize: 1.5 }),
    BadParameterError,
  );
  assert.throws(
    () => new BufferedEmitter({ clock, logger, send, minBackoffMs: 10, maxBackoffMs: 5 }),
    BadParameterError,
  );
});

Deno.test("BufferedEmitter cuts an oversized event and keeps batches under maxBatchBytes", async () => {
  const clock = new FakeClock(START);
  const { logger, records } = testLogger();
  const sent: AuditEvent[][] = [];
  await using emitter = new BufferedEmitter({
    send: (events) => {
      sent.push(events);
      return Promise.resolve();
    },
    clock,
    logger,
    maxBatchBytes: 100 * 1024,
  });
  const big = (n: number, size: number) =>
    newAuditEvent(EventType.Exec, { n, command: "x".repeat(size) }, { clock });
  emitter.emit(big(0, 200_000));
  for (let n = 1; n <= 4; n++) emitter.emit(big(n, 40_000));
  assert.equal(await emitter.flush(), true);
  assert.deepEqual(sent.map(ns), [[0], [1, 2], [3, 4]]);
  assert.equal(sent[0]![0]!.truncated, true);
  assert.ok(JSON.stringify(sent[0]![0]).length <= 64 * 1024);
  const warned = records.filter((r) => r.level === "warn");
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.properties?.uid, sent[0]![0]!.uid);
});
