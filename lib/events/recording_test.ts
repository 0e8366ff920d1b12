import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { AlreadyExistsError, BadParameterError } from "../errors/mod.ts";
import { testLogger, tick } from "./_testing.ts";
import {
  gzipRecordingFile,
  listPendingRecordings,
  newSessionId,
  readRecording,
  RECORDING_FORMAT,
  type RecordingRecord,
  SessionRecorder,
  type SessionRecorderOptions,
  validateSessionId,
} from "./mod.ts";

const START = Date.UTC(2026, 10, 21, 10, 0, 0);
const SID = "0f8fad5b-d9cb-469f-a165-70867728950e";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "events_recording_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function options(dir: string, clock: FakeClock, extra: Partial<SessionRecorderOptions> = {}) {
  return {
    dir,
    sid: SID,
    clusterName: "example.com",
    serverId: "5c1d7e3a-1111-4222-8333-944444444444",
    user: "alice",
    login: "root",
    cols: 80,
    rows: 24,
    clock,
    ...extra,
  };
}

async function plainLines(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  assert.ok(text.endsWith("\n"));
  return text.slice(0, -1).split("\n").map((l) => JSON.parse(l));
}

async function eventually(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("condition not met in time");
}

function gzipOf(text: string | Uint8Array): ReadableStream<Uint8Array> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  return ReadableStream.from([bytes]).pipeThrough(
    new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
}

async function collect(records: AsyncIterable<RecordingRecord>): Promise<RecordingRecord[]> {
  const out = [];
  for await (const r of records) out.push(r);
  return out;
}

function header(sid = SID): string {
  return JSON.stringify({
    format: RECORDING_FORMAT,
    version: 1,
    sid,
    cluster_name: "c",
    server_id: "s",
    user: "u",
    login: "l",
    started: "2026-11-21T10:00:00.000Z",
    cols: 80,
    rows: 24,
  });
}

Deno.test("validateSessionId() accepts only lowercase canonical UUIDs", () => {
  assert.equal(validateSessionId(SID), SID);
  assert.equal(validateSessionId(newSessionId()).length, 36);
  const bad: unknown[] = [
    "",
    "../x",
    "..%2f",
    "..%2F..%2Fetc%2Fpasswd",
    `../${SID}`,
    `${SID}/..`,
    SID.toUpperCase(),
    `{${SID}}`,
    `${SID}\n`,
    ` ${SID}`,
    SID.replaceAll("-", ""),
    "0f8fad5b-d9cb-469f-a165-70867728950g",
    "0f8fad5b-d9cb-469f-a165-70867728950e0",
    undefined,
    null,
    42,
  ];
  for (const sid of bad) {
    assert.throws(() => validateSessionId(sid), BadParameterError, String(sid));
  }
});

Deno.test("SessionRecorder writes a header and records to .rec.part, then renames to .rec", async () => {
  await withDir(async (base) => {
    const dir = `${base}/rec`;
    const clock = new FakeClock(START);
    const rec = await SessionRecorder.create(options(dir, clock));
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(rec.partPath)).mode! & 0o777, 0o600);
    await rec.print(new TextEncoder().encode("hello"));
    clock.advance(50);
    await rec.resize(100, 30);
    clock.advance(50);
    await rec.print(new Uint8Array([0xff, 0x00, 0xfe]));
    const path = await rec.close();
    assert.equal(path, `${dir}/${SID}.rec`);
    await assert.rejects(Deno.stat(`${dir}/${SID}.rec.part`), Deno.errors.NotFound);
    assert.deepEqual(await plainLines(path), [
      {
        format: "teleport-deno-recording",
        version: 1,
        sid: SID,
        cluster_name: "example.com",
        server_id: "5c1d7e3a-1111-4222-8333-944444444444",
        user: "alice",
        login: "root",
        started: "2026-11-21T10:00:00.000Z",
        cols: 80,
        rows: 24,
      },
      { t: 0, type: "print", data: "aGVsbG8=" },
      { t: 50, type: "resize", cols: 100, rows: 30 },
      { t: 100, type: "print", data: "/wD+" },
      { t: 100, type: "end" },
    ]);
    assert.equal(await rec.close(), path); // idempotent
  });
});

Deno.test("SessionRecorder coalesces prints within coalesceMs and up to maxChunkBytes", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(START);
    const rec = await SessionRecorder.create(options(dir, clock, { maxChunkBytes: 8 }));
    const enc = new TextEncoder();
    rec.print(enc.encode("ab"));
    clock.advance(5);
    rec.print(enc.encode("cd")); // 5 ms later: same record
    clock.advance(6);
    rec.print(enc.encode("ef")); // 11 ms after the first: new record
    rec.print(enc.encode("0123456789")); // over 8 bytes: split
    const lines = await plainLines(await rec.close());
    const prints = lines.filter((l) => l.type === "print").map((l) => ({
      t: l.t,
      text: new TextDecoder().decode(Uint8Array.fromBase64(l.data as string)),
    }));
    assert.deepEqual(prints, [
      { t: 0, text: "abcd" },
      { t: 11, text: "ef012345" },
      { t: 11, text: "6789" },
    ]);
  });
});

Deno.test("SessionRecorder flushes a pending print when coalesceMs passes", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(START);
    const rec = await SessionRecorder.create(options(dir, clock));
    rec.print(new TextEncoder().encode("$ "));
    clock.advance(9);
    for (let i = 0; i < 5; i++) await tick();
    assert.equal((await plainLines(rec.partPath)).length, 1); // header only
    clock.advance(1);
    await eventually(async () => (await plainLines(rec.partPath)).length === 2);
    const lines = await plainLines(rec.partPath);
    assert.deepEqual(lines[1], { t: 0, type: "print", data: "JCA=" });
    await rec.close();
    assert.equal(clock.sleepers, 0);
  });
});

Deno.test("SessionRecorder keeps t from going down when the clock steps back", async () => {
  await withDir(async (dir) => {
    let now = START;
    const clock = new FakeClock(START);
    const stepping = { now: () => new Date(now), sleep: clock.sleep.bind(clock) };
    const rec = await SessionRecorder.create({ ...options(dir, clock), clock: stepping });
    now += 100;
    rec.resize(90, 20);
    now -= 60_000;
    rec.resize(91, 20);
    now += 60_200;
    rec.resize(92, 20);
    const ts = (await plainLines(await rec.close())).slice(1).map((l) => l.t);
    assert.deepEqual(ts, [100, 100, 300, 300]);
  });
});

Deno.test("SessionRecorder records everything when the caller awaits backpressure", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(START);
    const rec = await SessionRecorder.create(
      options(dir, clock, { maxBufferedBytes: 1024, maxChunkBytes: 1000 }),
    );
    const sent: number[] = [];
    for (let i = 0; i < 300; i++) {
      const chunk = new Uint8Array(700).fill(i % 256);
      sent.push(...chunk);
      await rec.print(chunk);
    }
    const path = await rec.close();
    const reader = await readRecording(await gzipRecordingFile(path));
    const got: number[] = [];
    for await (const r of reader.records) if (r.type === "print") got.push(...r.data);
    assert.equal(got.length, sent.length);
    assert.deepEqual(got, sent);
  });
});

Deno.test("SessionRecorder ignores output after close() with one warning", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(START);
    const { logger, records } = testLogger();
    const rec = await SessionRecorder.create(options(dir, clock, { logger }));
    const path = await rec.close();
    await rec.print(new Uint8Array([1]));
    await rec.resize(1, 1);
    assert.equal(records.length, 1);
    assert.equal((await plainLines(path)).length, 2);
  });
});

Deno.test("SessionRecorder.create() refuses a bad sid, bad sizes and a session already recorded", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(START);
    for (const sid of ["../escape", "..%2fescape", SID.toUpperCase(), ""]) {
      await assert.rejects(SessionRecorder.create(options(dir, clock, { sid })), BadParameterError);
    }
    await assert.rejects(
      SessionRecorder.create(options(dir, clock, { cols: -1 })),
      BadParameterError,
    );
    await assert.rejects(
      SessionRecorder.create(options(dir, clock, { maxChunkBytes: 1 << 20 })),
      BadParameterError,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    const rec = await SessionRecorder.create(options(dir, clock));
    await assert.rejects(SessionRecorder.create(options(dir, clock)), AlreadyExistsError);
    await rec.close();
    await assert.rejects(SessionRecorder.create(options(dir, clock)), AlreadyExistsError);
  });
});

Deno.test("readRecording() reads records in order and stops after the end record", async () => {
  const body = [
    header(),
    JSON.stringify({ t: 0, type: "print", data: "aGk=" }),
    JSON.stringify({ t: 5, type: "future-kind", x: 1 }), // skipped
    JSON.stringify({ t: 7, type: "resize", cols: 10, rows: 5 }),
    JSON.stringify({ t: 9, type: "end" }),
    JSON.stringify({ t: 10, type: "print", data: "aGk=" }), // after end: ignored
    "",
  ].join("\n");
  const { header: h, records } = await readRecording(gzipOf(body));
  assert.equal(h.sid, SID);
  assert.deepEqual(await collect(records), [
    { t: 0, type: "print", data: new Uint8Array([0x68, 0x69]) },
    { t: 7, type: "resize", cols: 10, rows: 5 },
    { t: 9, type: "end" },
  ]);
});

Deno.test("readRecording() tolerates a missing end record and a cut-off last line", async () => {
  const body = [header(), JSON.stringify({ t: 3, type: "print", data: "aGk=" }), '{"t":4,"ty'].join(
    "\n",
  );
  const { records } = await readRecording(gzipOf(body));
  assert.deepEqual(await collect(records), [
    { t: 3, type: "print", data: new Uint8Array([0x68, 0x69]) },
  ]);
});

Deno.test("readRecording() rejects data that is not a recording", async () => {
  const cases: [string, ReadableStream<Uint8Array>][] = [
    ["not gzip", ReadableStream.from([new TextEncoder().encode(header() + "\n")])],
    ["empty", gzipOf("")],
    ["no newline after the header", gzipOf(header())],
    ["not JSON", gzipOf("hello\n")],
    ["another format", gzipOf(header().replace(RECORDING_FORMAT, "asciicast") + "\n")],
    ["another version", gzipOf(header().replace('"version":1', '"version":2') + "\n")],
    ["a bad sid", gzipOf(header("../../etc") + "\n")],
  ];
  for (const [what, stream] of cases) {
    await assert.rejects(readRecording(stream), BadParameterError, what);
  }
  const badRecords = [
    JSON.stringify({ t: -1, type: "end" }),
    JSON.stringify({ t: 1, type: "print", data: "!!" }),
    JSON.stringify({ t: 1, type: "resize", cols: "80", rows: 24 }),
    "[1]",
  ];
  for (const line of badRecords) {
    const { records } = await readRecording(gzipOf(`${header()}\n${line}\n`));
    await assert.rejects(collect(records), BadParameterError, line);
  }
  // A gzip stream cut short fails once the good records are read.
  const lines = [header()];
  for (let t = 0; t < 100; t++) {
    const data = crypto.getRandomValues(new Uint8Array(100)).toBase64();
    lines.push(JSON.stringify({ t, type: "print", data }));
  }
  const full = new Uint8Array(await new Response(gzipOf(lines.join("\n") + "\n")).arrayBuffer());
  const cut = full.subarray(0, full.length - 10);
  const reader = await readRecording(ReadableStream.from([cut]));
  await assert.rejects(collect(reader.records), BadParameterError);
});

Deno.test("listPendingRecordings() lists finished recordings and finalizes stale parts", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(Date.now() + 2 * 3600_000);
    const { logger, records } = testLogger();
    const done = newSessionId();
    const stale = newSessionId();
    const active = newSessionId();
    const broken = newSessionId();
    await Deno.writeTextFile(`${dir}/${done}.rec`, `${header(done)}\n{"t":0,"type":"end"}\n`);
    const staleBody = `${header(stale)}\n{"t":1,"type":"print","data":"aGk="}\n{"t":2,"ty`;
    await Deno.writeTextFile(`${dir}/${stale}.rec.part`, staleBody);
    await Deno.writeTextFile(`${dir}/${active}.rec.part`, `${header(active)}\n`);
    await Deno.writeTextFile(`${dir}/${broken}.rec.part`, `{"format":"teleport-deno-rec`);
    await Deno.writeTextFile(`${dir}/notes.rec`, "ignored");
    await Deno.writeTextFile(`${dir}/${SID.toUpperCase()}.rec`, "ignored");

    const pending = await listPendingRecordings(dir, {
      clock,
      logger,
      activeSids: new Set([active]),
    });
    const expected = [
      { sid: done, path: `${dir}/${done}.rec`, crashed: false },
      { sid: stale, path: `${dir}/${stale}.rec`, crashed: true },
    ].sort((a, b) => a.sid < b.sid ? -1 : 1);
    assert.deepEqual(pending, expected);
    // The cut-off line is gone; what remains reads as a crashed session.
    const { header: h, records: recs } = await readRecording(
      await gzipRecordingFile(`${dir}/${stale}.rec`),
    );
    assert.equal(h.sid, stale);
    assert.deepEqual(await collect(recs), [
      { t: 1, type: "print", data: new Uint8Array([0x68, 0x69]) },
    ]);
    // Active parts are untouched; broken ones are moved aside with a warning.
    await Deno.stat(`${dir}/${active}.rec.part`);
    await Deno.stat(`${dir}/${broken}.rec.corrupted`);
    assert.equal(records.filter((r) => r.level === "warn").length, 1);
  });
});

Deno.test("listPendingRecordings() leaves fresh parts alone and handles a missing dir", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(Date.now());
    const rec = await SessionRecorder.create(options(dir, clock));
    assert.deepEqual(await listPendingRecordings(dir, { clock }), []);
    await rec.close();
    assert.deepEqual(await listPendingRecordings(dir, { clock }), [
      { sid: SID, path: `${dir}/${SID}.rec`, crashed: false },
    ]);
    assert.deepEqual(await listPendingRecordings(`${dir}/missing`, { clock }), []);
  });
});

Deno.test("listPendingRecordings() with staleAfterMs 0 finalizes every part at startup", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(Date.now());
    await Deno.writeTextFile(`${dir}/${SID}.rec.part`, `${header()}\n`);
    assert.deepEqual(await listPendingRecordings(dir, { clock, staleAfterMs: 0 }), [
      { sid: SID, path: `${dir}/${SID}.rec`, crashed: true },
    ]);
  });
});

Deno.test("listPendingRecordings() leaves a part alone while its recorder runs, whatever its age", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(Date.now());
    // The recorder of a live session (here, or in the old process of a graceful restart) holds
    // its part file locked; a scan at the next process's start must not take it for a crash.
    const rec = await SessionRecorder.create(options(dir, clock));
    clock.advance(2 * 3600_000);
    assert.deepEqual(await listPendingRecordings(dir, { clock, staleAfterMs: 0 }), []);
    await Deno.stat(`${dir}/${SID}.rec.part`);
    await rec.close();
    assert.deepEqual(await listPendingRecordings(dir, { clock, staleAfterMs: 0 }), [
      { sid: SID, path: `${dir}/${SID}.rec`, crashed: false },
    ]);
  });
});
