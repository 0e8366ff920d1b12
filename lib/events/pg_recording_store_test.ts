import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { type PgServer, startPostgres } from "../backend/mod.ts";
import {
  AlreadyExistsError,
  BadParameterError,
  LimitExceededError,
  NotFoundError,
} from "../errors/mod.ts";
import { testLogger } from "../log/mod.ts";
import { CHUNK_BYTES, newSessionId, openPostgresRecordingStore, RECORDING_FORMAT } from "./mod.ts";

const ignore = skipGroup("postgres");
const MAX = 64 * 1024 * 1024;

/** A gzip recording of `sid` with `extraBytes` of incompressible output after the header. */
async function recording(sid: string, extraBytes = 0): Promise<Uint8Array> {
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
  const lines = [JSON.stringify(header)];
  const random = new Uint8Array(extraBytes);
  for (let i = 0; i < extraBytes; i += 65536) {
    crypto.getRandomValues(random.subarray(i, Math.min(extraBytes, i + 65536)));
  }
  for (let i = 0; i < extraBytes; i += 3000) {
    lines.push(
      JSON.stringify({
        t: i,
        type: "o",
        d: btoa(String.fromCharCode(...random.subarray(i, i + 3000))),
      }),
    );
  }
  lines.push('{"t":0,"type":"end"}');
  const stream = ReadableStream.from([new TextEncoder().encode(lines.join("\n") + "\n")])
    .pipeThrough(
      new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function body(bytes: Uint8Array, chunk = 10_000): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.slice(i, i + chunk));
  return ReadableStream.from(parts);
}

async function store(pg: PgServer) {
  return await openPostgresRecordingStore({ uri: pg.url, logger: testLogger().logger });
}

Deno.test({
  name: "openPostgresRecordingStore() serves a recording saved through another auth server",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await using a = await store(pg);
    await using b = await store(pg);
    const sid = newSessionId();
    const bytes = await recording(sid, 900_000);
    assert.ok(bytes.length > 3 * CHUNK_BYTES, "several chunks");
    assert.deepEqual(await a.save(sid, body(bytes), { maxBytes: MAX }), { size: bytes.length });
    assert.equal(await b.has(sid), true);
    assert.deepEqual(await b.list(), [sid]);
    const read = new Uint8Array(await new Response(await b.open(sid)).arrayBuffer());
    assert.deepEqual(read, bytes);
    await assert.rejects(b.open(newSessionId()), NotFoundError);
  },
});

Deno.test({
  name: "openPostgresRecordingStore() keeps the first of repeated and concurrent uploads",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await using a = await store(pg);
    await using b = await store(pg);
    const sid = newSessionId();
    const bytes = await recording(sid, 300_000);
    const results = await Promise.allSettled([
      a.save(sid, body(bytes), { maxBytes: MAX }),
      b.save(sid, body(bytes), { maxBytes: MAX }),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.ok(lost.reason instanceof AlreadyExistsError, String(lost.reason));
    await assert.rejects(a.save(sid, body(bytes), { maxBytes: MAX }), AlreadyExistsError);
    const read = new Uint8Array(await new Response(await a.open(sid)).arrayBuffer());
    assert.deepEqual(read, bytes);
  },
});

Deno.test({
  name: "openPostgresRecordingStore() refuses wrong headers and oversized bodies, storing nothing",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await using a = await store(pg);
    const sid = newSessionId();
    await assert.rejects(
      a.save(sid, body(await recording(newSessionId())), { maxBytes: MAX }),
      BadParameterError,
    );
    await assert.rejects(
      a.save(sid, body(new TextEncoder().encode("not gzip")), { maxBytes: MAX }),
      BadParameterError,
    );
    const big = await recording(sid, 400_000);
    await assert.rejects(a.save(sid, body(big), { maxBytes: 100_000 }), LimitExceededError);
    assert.equal(await a.has(sid), false);
    assert.deepEqual(await a.list(), []);
    assert.equal(
      (await pg.psql("SELECT count(*) FROM session_recording_chunks")).trim(),
      "0",
    );
    await assert.rejects(a.open("../etc"), BadParameterError);
  },
});
