import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import {
  AlreadyExistsError,
  BadParameterError,
  LimitExceededError,
  NotFoundError,
} from "../errors/mod.ts";
import { testLogger } from "./_testing.ts";
import {
  gzipRecordingFile,
  newSessionId,
  readRecording,
  RECORDING_FORMAT,
  type RecordingRecord,
  RecordingStore,
  SessionRecorder,
} from "./mod.ts";

const START = Date.UTC(2026, 10, 21, 10, 0, 0);
const SID = "0f8fad5b-d9cb-469f-a165-70867728950e";
const MB = 1024 * 1024;
const BAD_SIDS = ["../x", "..%2f", "..%2F..%2Fetc", SID.toUpperCase(), "", `${SID}/../..`, "."];

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "events_recording_store_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function newStore(dir: string): RecordingStore {
  return new RecordingStore({ dir, logger: testLogger().logger });
}

function gzipOf(text: string | Uint8Array): ReadableStream<Uint8Array> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  return ReadableStream.from([bytes]).pipeThrough(
    new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
}

function recordingText(sid: string): string {
  const header = {
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
  };
  return `${JSON.stringify(header)}\n{"t":0,"type":"end"}\n`;
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function dirNames(dir: string): Promise<string[]> {
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** A body stream that records whether it was cancelled. */
function trackedBody(chunks: Uint8Array[]) {
  const state = { cancelled: false };
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]!);
      else controller.close();
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { body, state };
}

Deno.test("recorder → gzip → RecordingStore.save → open → readRecording keeps bytes and timing", async () => {
  await withDir(async (dir) => {
    const clock = new FakeClock(START);
    const rec = await SessionRecorder.create({
      dir: `${dir}/node`,
      sid: SID,
      clusterName: "example.com",
      serverId: "node-1",
      user: "alice",
      login: "root",
      cols: 80,
      rows: 24,
      clock,
    });
    // Non-UTF-8 bytes, a UTF-8 sequence split across prints, NUL, and a big burst.
    const prints = [
      new Uint8Array([0xff, 0xfe, 0x00, 0x80]),
      new Uint8Array([0xe2, 0x82]),
      new Uint8Array([0xac, 0x0a]),
      crypto.getRandomValues(new Uint8Array(60_000)),
      new TextEncoder().encode("exit\r\n"),
    ];
    const expectedSizes: [number, number][] = [];
    for (const [i, p] of prints.entries()) {
      await rec.print(p);
      clock.advance(15 + i);
      if (i % 2 === 0) {
        const size: [number, number] = [80 + i, 24 + i];
        expectedSizes.push(size);
        await rec.resize(...size);
        clock.advance(3);
      }
    }
    const path = await rec.close();

    const store = newStore(`${dir}/auth`);
    const uploaded = await bytesOf(await gzipRecordingFile(path));
    const { size } = await store.save(SID, ReadableStream.from([uploaded]), { maxBytes: MB });
    assert.equal(size, uploaded.length);
    assert.ok(size > 0);
    assert.equal(await store.has(SID), true);
    assert.deepEqual(await store.list(), [SID]);
    assert.equal((await Deno.stat(`${dir}/auth/${SID}.rec.gz`)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/auth`)).mode! & 0o777, 0o700);

    const { header, records } = await readRecording(await store.open(SID));
    assert.equal(header.sid, SID);
    assert.equal(header.user, "alice");
    assert.equal(header.started, "2026-11-21T10:00:00.000Z");
    const got: RecordingRecord[] = [];
    for await (const r of records) got.push(r);

    const printed = got.flatMap((r) => r.type === "print" ? [...r.data] : []);
    assert.deepEqual(new Uint8Array(printed), new Uint8Array(prints.flatMap((p) => [...p])));
    const resizes = got.filter((r) => r.type === "resize").map((r) => [r.cols, r.rows]);
    assert.deepEqual(resizes, expectedSizes);
    const ts = got.map((r) => r.t);
    assert.deepEqual(ts, [...ts].sort((a, b) => a - b));
    const resizeTs = got.filter((r) => r.type === "resize").map((r) => r.t);
    for (let i = 1; i < resizeTs.length; i++) assert.ok(resizeTs[i]! > resizeTs[i - 1]!);
    assert.equal(got.at(-1)?.type, "end");
    // The stored bytes are exactly what was uploaded.
    assert.deepEqual(await bytesOf(await store.open(SID)), uploaded);
  });
});

Deno.test("RecordingStore rejects path traversal and malformed session ids", async () => {
  await withDir(async (dir) => {
    const store = newStore(`${dir}/rec`);
    for (const sid of BAD_SIDS) {
      const { body, state } = trackedBody([new Uint8Array([1])]);
      await assert.rejects(store.save(sid, body, { maxBytes: MB }), BadParameterError, sid);
      assert.ok(state.cancelled, `body of ${sid} is cancelled`);
      await assert.rejects(store.open(sid), BadParameterError, sid);
      await assert.rejects(store.has(sid), BadParameterError, sid);
    }
    assert.deepEqual(await dirNames(dir), []);
  });
});

Deno.test("RecordingStore.save() refuses a recording that exists and keeps the first", async () => {
  await withDir(async (dir) => {
    const store = newStore(dir);
    await store.save(SID, gzipOf(recordingText(SID)), { maxBytes: MB });
    const first = await bytesOf(await store.open(SID));
    const { body, state } = trackedBody([new Uint8Array([1, 2, 3])]);
    await assert.rejects(store.save(SID, body, { maxBytes: MB }), AlreadyExistsError);
    assert.ok(state.cancelled);
    assert.deepEqual(await bytesOf(await store.open(SID)), first);
    assert.deepEqual(await dirNames(dir), [`${SID}.rec.gz`]);
  });
});

Deno.test("RecordingStore.save() lets one of two concurrent uploads of a session win", async () => {
  await withDir(async (dir) => {
    const store = newStore(dir);
    const results = await Promise.allSettled([
      store.save(SID, gzipOf(recordingText(SID)), { maxBytes: MB }),
      store.save(SID, gzipOf(recordingText(SID)), { maxBytes: MB }),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.ok(failed.reason instanceof AlreadyExistsError);
    assert.deepEqual(await dirNames(dir), [`${SID}.rec.gz`]);
  });
});

Deno.test("RecordingStore.save() rejects a body whose header names another session", async () => {
  await withDir(async (dir) => {
    const store = newStore(dir);
    const other = newSessionId();
    await assert.rejects(
      store.save(SID, gzipOf(recordingText(other)), { maxBytes: MB }),
      (err: unknown) => err instanceof BadParameterError && err.message.includes(other),
    );
    assert.deepEqual(await dirNames(dir), []);
    assert.equal(await store.has(SID), false);
  });
});

Deno.test("RecordingStore.save() rejects bodies that are not gzip recordings", async () => {
  await withDir(async (dir) => {
    const store = newStore(dir);
    const bodies = [
      ReadableStream.from([new TextEncoder().encode(recordingText(SID))]), // not gzip
      gzipOf("hello world\n"),
      gzipOf(""),
      ReadableStream.from<Uint8Array>([]),
    ];
    for (const body of bodies) {
      await assert.rejects(store.save(SID, body, { maxBytes: MB }), BadParameterError);
    }
    assert.deepEqual(await dirNames(dir), []);
  });
});

Deno.test("RecordingStore.save() enforces maxBytes and removes the partial upload", async () => {
  await withDir(async (dir) => {
    const store = newStore(dir);
    const chunks = Array.from({ length: 10 }, () => new Uint8Array(1000));
    const { body, state } = trackedBody(chunks);
    await assert.rejects(store.save(SID, body, { maxBytes: 4500 }), LimitExceededError);
    assert.ok(state.cancelled);
    assert.deepEqual(await dirNames(dir), []);
    await assert.rejects(
      store.save(SID, gzipOf(recordingText(SID)), { maxBytes: 0 }),
      BadParameterError,
    );
    // Exactly at the limit is fine.
    const gz = await bytesOf(gzipOf(recordingText(SID)));
    await store.save(SID, ReadableStream.from([gz]), { maxBytes: gz.length });
  });
});

Deno.test("RecordingStore.open() fails with NotFound for a session without a recording", async () => {
  await withDir(async (dir) => {
    const store = newStore(dir);
    // The message names the session, never the directory on the server.
    await assert.rejects(store.open(SID), (err: Error) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.message, `session ${SID} has no recording`);
      return true;
    });
    assert.equal(await store.has(SID), false);
    assert.deepEqual(await store.list(), []);
    assert.deepEqual(await newStore(`${dir}/missing`).list(), []);
  });
});

Deno.test("RecordingStore.list() returns only stored recordings, sorted", async () => {
  await withDir(async (dir) => {
    const store = newStore(dir);
    const sids = [newSessionId(), newSessionId(), newSessionId()];
    for (const sid of sids) await store.save(sid, gzipOf(recordingText(sid)), { maxBytes: MB });
    await Deno.writeTextFile(`${dir}/.upload-${SID}-x.tmp`, "");
    await Deno.writeTextFile(`${dir}/README`, "");
    assert.deepEqual(await store.list(), [...sids].sort());
  });
});
