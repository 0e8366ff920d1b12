import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { testLogger } from "./_testing.ts";
import {
  type AuditEvent,
  EventType,
  FileAuditLog,
  MemoryAuditLog,
  newAuditEvent,
  runAuditLogConformance,
} from "./mod.ts";

const DAY1 = Date.UTC(2026, 10, 21, 12, 0, 0);
const DAY = 24 * 3600_000;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "events_audit_log_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function execAt(ms: number, fields: Record<string, unknown> = {}): AuditEvent {
  return newAuditEvent(EventType.Exec, fields, { clock: new FakeClock(ms) });
}

function window(fromMs: number, toMs: number) {
  return { from: new Date(fromMs), to: new Date(toMs) };
}

Deno.test("MemoryAuditLog passes the audit log conformance suite", async (t) => {
  await runAuditLogConformance(t, () => {
    const clock = new FakeClock();
    return Promise.resolve({ log: new MemoryAuditLog({ clock }), clock });
  });
});

Deno.test("FileAuditLog passes the audit log conformance suite", async (t) => {
  await withDir(async (dir) => {
    let n = 0;
    await runAuditLogConformance(t, () => {
      const clock = new FakeClock();
      const { logger } = testLogger();
      return Promise.resolve({
        log: new FileAuditLog({ dir: `${dir}/log-${n++}`, clock, logger }),
        clock,
      });
    });
  });
});

Deno.test("FileAuditLog writes one 0600 file per UTC day in a 0700 directory", async () => {
  await withDir(async (dir) => {
    const { logger } = testLogger();
    const logDir = `${dir}/audit`;
    await using log = new FileAuditLog({ dir: logDir, logger });
    await log.emit(execAt(Date.UTC(2026, 10, 21, 23, 59, 59, 999)));
    await log.emit(execAt(Date.UTC(2026, 10, 22, 0, 0, 0)));
    const names = [];
    for await (const e of Deno.readDir(logDir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["2026-11-21.log", "2026-11-22.log"]);
    assert.equal((await Deno.stat(logDir)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${logDir}/2026-11-21.log`)).mode! & 0o777, 0o600);
    const text = await Deno.readTextFile(`${logDir}/2026-11-22.log`);
    assert.equal(text.split("\n").length, 2);
    assert.equal(JSON.parse(text).time, "2026-11-22T00:00:00.000Z");
  });
});

Deno.test("FileAuditLog keeps whole lines when emits run concurrently", async () => {
  await withDir(async (dir) => {
    const { logger } = testLogger();
    await using log = new FileAuditLog({ dir, logger });
    const big = "z".repeat(40_000);
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => log.emit(execAt(DAY1 + i, { command: big, i }))),
    );
    const lines = (await Deno.readTextFile(`${dir}/2026-11-21.log`)).split("\n");
    assert.equal(lines.pop(), "");
    assert.deepEqual(lines.map((l) => JSON.parse(l).i), Array.from({ length: 100 }, (_, i) => i));
  });
});

Deno.test("FileAuditLog sees the events of an earlier instance after a reopen", async () => {
  await withDir(async (dir) => {
    const { logger } = testLogger();
    const first = new FileAuditLog({ dir, logger });
    const a = execAt(DAY1);
    const b = execAt(DAY1 + DAY);
    await first.emit(a);
    await first.emit(b);
    await first.close();
    await using second = new FileAuditLog({ dir, logger });
    const c = execAt(DAY1 + 1);
    await second.emit(c);
    const { events } = await second.search(window(DAY1 - DAY, DAY1 + 2 * DAY));
    assert.deepEqual(events, [a, c, b]);
  });
});

Deno.test("FileAuditLog skips a truncated last line with one warning and appends after it", async () => {
  await withDir(async (dir) => {
    const { logger, records } = testLogger();
    const a = execAt(DAY1);
    const path = `${dir}/2026-11-21.log`;
    await Deno.writeTextFile(path, JSON.stringify(a) + "\n" + '{"event":"exec","uid":"x","ti');
    await using log = new FileAuditLog({ dir, logger });
    const q = window(DAY1 - 1000, DAY1 + 1000);
    assert.deepEqual((await log.search(q)).events, [a]);
    assert.deepEqual((await log.search(q)).events, [a]);
    const warnings = records.filter((r) => r.level === "warn");
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.properties?.path, path);

    // The next append starts on a fresh line, so it is not lost with the broken one.
    const b = execAt(DAY1 + 1);
    await log.emit(b);
    assert.deepEqual((await log.search(q)).events, [a, b]);
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert.equal(lines.length, 4);
    assert.equal(lines[1], '{"event":"exec","uid":"x","ti');
  });
});

Deno.test("FileAuditLog skips corrupt lines in the middle of a file", async () => {
  await withDir(async (dir) => {
    const { logger, records } = testLogger();
    const a = execAt(DAY1);
    const b = execAt(DAY1 + 5);
    await Deno.writeTextFile(
      `${dir}/2026-11-21.log`,
      [JSON.stringify(a), "not json", "[1,2]", '{"event":"exec"}', JSON.stringify(b), ""].join(
        "\n",
      ),
    );
    await using log = new FileAuditLog({ dir, logger });
    assert.deepEqual((await log.search(window(DAY1 - 1, DAY1 + 10))).events, [a, b]);
    assert.equal(records.filter((r) => r.level === "warn").length, 1);
    assert.equal(records[0]!.properties?.count, 3);
  });
});

Deno.test("FileAuditLog.search() reads only the day files inside the window", async () => {
  await withDir(async (dir) => {
    const { logger, records } = testLogger();
    await Deno.writeTextFile(`${dir}/2026-11-20.log`, "garbage\n");
    await Deno.writeTextFile(`${dir}/2026-11-23.log`, "garbage\n");
    await Deno.writeTextFile(`${dir}/notes.txt`, "garbage\n");
    await using log = new FileAuditLog({ dir, logger });
    const a = execAt(DAY1);
    const b = execAt(DAY1 + DAY);
    await log.emit(a);
    await log.emit(b);
    assert.deepEqual((await log.search(window(DAY1 - 1000, DAY1 + DAY))).events, [a, b]);
    assert.equal(records.length, 0);
    await log.search(window(DAY1 - 2 * DAY, DAY1));
    assert.equal(records.length, 1);
    assert.equal(records[0]!.properties?.path, `${dir}/2026-11-20.log`);
  });
});

Deno.test("FileAuditLog stores events at the day of their own time", async () => {
  await withDir(async (dir) => {
    const { logger } = testLogger();
    await using log = new FileAuditLog({ dir, logger });
    // A late event from a node, stamped 2 hours before midnight in +02:00.
    const late: AuditEvent = { ...execAt(DAY1), time: "2026-11-22T01:00:00.000+02:00" };
    await log.emit(late);
    const text = await Deno.readTextFile(`${dir}/2026-11-21.log`);
    assert.equal(JSON.parse(text).uid, late.uid);
  });
});

Deno.test("FileAuditLog warns when it cuts an oversized event", async () => {
  await withDir(async (dir) => {
    const { logger, records } = testLogger();
    await using log = new FileAuditLog({ dir, logger });
    const e = { ...execAt(Date.UTC(2026, 10, 21)), command: "x".repeat(100_000) };
    await log.emit(e);
    const warned = records.filter((r) => r.level === "warn");
    assert.equal(warned.length, 1);
    assert.match(warned[0]!.message, /longest fields cut/);
    assert.equal(warned[0]!.properties?.uid, e.uid);
    assert.ok(!JSON.stringify(warned[0]).includes("xxxx"), "the warning holds no field values");
  });
});
