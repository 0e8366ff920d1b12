import assert from "node:assert/strict";
import { RECORDING_FORMAT, RecordingStore } from "../events/mod.ts";
import { testLogger } from "../log/mod.ts";
import { createAuthApiHandler } from "./mod.ts";
import { ADMIN, newTestAuth, nodeIdentity } from "./_testing.ts";

const SID = "0f8fad5b-d9cb-469f-a165-70867728950e";

/** A minimal gzip recording of session `sid`, as a stream of small chunks. */
function recordingOf(
  sid: string,
): { bytes: Promise<Uint8Array>; stream: () => ReadableStream<Uint8Array> } {
  const header = {
    format: RECORDING_FORMAT,
    version: 1,
    sid,
    cluster_name: "example",
    server_id: "s",
    user: "u",
    login: "l",
    started: "2026-11-21T10:00:00.000Z",
    cols: 80,
    rows: 24,
  };
  const text = `${JSON.stringify(header)}\n{"t":0,"type":"end"}\n`;
  const bytes = new Response(
    ReadableStream.from([new TextEncoder().encode(text)]).pipeThrough(
      new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    ),
  ).bytes();
  return {
    bytes,
    // Several chunks: the upload is read as a stream, not as one buffer.
    stream: () =>
      new ReadableStream({
        async start(c) {
          const all = await bytes;
          for (let i = 0; i < all.length; i += 7) c.enqueue(all.slice(i, i + 7));
          c.close();
        },
      }),
  };
}

Deno.test("createAuthApiHandler() streams a recording upload in and the download out, from `new Request`", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-api-recordings-" });
  try {
    const recordings = new RecordingStore({ dir, logger: testLogger().logger });
    await using t = await newTestAuth({ recordings });
    const handle = createAuthApiHandler(t.auth);
    const url = `https://auth.invalid/v1/recordings/${SID}`;
    const rec = recordingOf(SID);
    const put = await handle(
      new Request(url, { method: "PUT", body: rec.stream(), duplex: "half" } as RequestInit),
      { remoteAddr: "127.0.0.1", caller: nodeIdentity() },
    );
    assert.equal(put.status, 200, await put.clone().text());
    assert.equal((await put.json()).size, (await rec.bytes).length);
    const got = await handle(new Request(url), { remoteAddr: "127.0.0.1", caller: ADMIN });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-type"), "application/gzip");
    assert.ok(got.body instanceof ReadableStream);
    assert.deepEqual(await got.bytes(), await rec.bytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createAuthApiHandler() refuses recordings without a caller, with a bad id or method", async () => {
  await using t = await newTestAuth();
  const handle = createAuthApiHandler(t.auth);
  const anonymous = await handle(
    new Request(`https://auth.invalid/v1/recordings/${SID}`, { method: "PUT", body: "x" }),
    { remoteAddr: "127.0.0.1" },
  );
  assert.equal(anonymous.status, 403);
  assert.equal((await anonymous.json()).error.kind, "AccessDenied");
  const badId = await handle(new Request("https://auth.invalid/v1/recordings/%zz"), {
    remoteAddr: "127.0.0.1",
    caller: ADMIN,
  });
  assert.equal(badId.status, 400);
  const post = await handle(
    new Request(`https://auth.invalid/v1/recordings/${SID}`, { method: "POST", body: "x" }),
    { remoteAddr: "127.0.0.1", caller: ADMIN },
  );
  assert.equal(post.status, 400);
  // This auth server keeps no recordings.
  const none = await handle(new Request(`https://auth.invalid/v1/recordings/${SID}`), {
    remoteAddr: "127.0.0.1",
    caller: ADMIN,
  });
  assert.equal((await none.json()).error.kind, "NotImplemented");
});
