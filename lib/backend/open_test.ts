import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { BadParameterError, NotFoundError } from "../errors/mod.ts";
import { type Backend, MemoryBackend, openBackend } from "./mod.ts";

async function roundTrip(backend: Backend): Promise<void> {
  await backend.put({ key: ["a"], value: new Uint8Array([1]) });
  assert.deepEqual((await backend.get(["a"])).value, new Uint8Array([1]));
}

Deno.test("openBackend() opens memory: as a MemoryBackend", async () => {
  await using backend = await openBackend("memory:");
  assert.ok(backend instanceof MemoryBackend);
  await roundTrip(backend);
});

Deno.test("openBackend() opens kv::memory: as Deno KV in memory", async () => {
  await using backend = await openBackend("kv::memory:");
  assert.ok(!(backend instanceof MemoryBackend));
  await roundTrip(backend);
});

Deno.test("openBackend() opens kv:/path and plain paths as Deno KV files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backend_open_test_" });
  try {
    for (const uri of [`kv:${dir}/a.kv`, `${dir}/b.kv`]) {
      await using backend = await openBackend(uri);
      await roundTrip(backend);
    }
    assert.ok((await Deno.stat(`${dir}/a.kv`)).isFile);
    assert.ok((await Deno.stat(`${dir}/b.kv`)).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openBackend() passes the clock to the backend", async () => {
  for (const uri of ["memory:", "kv::memory:"]) {
    const clock = new FakeClock();
    await using backend = await openBackend(uri, { clock });
    await backend.put({
      key: ["t"],
      value: new Uint8Array(),
      expires: new Date(clock.now().getTime() + 10),
    });
    clock.advance(10);
    await assert.rejects(backend.get(["t"]), NotFoundError);
  }
});

Deno.test("openBackend() rejects unknown schemes with BadParameterError", async () => {
  for (const uri of ["pg://localhost/teleport", "etcd:", "", "kv:"]) {
    await assert.rejects(openBackend(uri), (err: unknown) => {
      assert.ok(err instanceof BadParameterError);
      assert.match(err.message, /^Cannot open backend ".*": .*; accepted forms: "memory:"/);
      return true;
    });
  }
});
