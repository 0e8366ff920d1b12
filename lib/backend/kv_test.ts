import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { AlreadyExistsError } from "../errors/mod.ts";
import { openKvBackend, runBackendConformance } from "./mod.ts";

Deno.test("openKvBackend() in memory passes the backend conformance suite", async (t) => {
  await runBackendConformance(t, async () => {
    const clock = new FakeClock();
    return { backend: await openKvBackend({ path: ":memory:", clock }), clock };
  });
});

Deno.test("openKvBackend() on a file passes the backend conformance suite", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "backend_kv_test_" });
  try {
    let n = 0;
    await runBackendConformance(t, async () => {
      const clock = new FakeClock();
      const path = `${dir}/backend-${n++}.kv`;
      return { backend: await openKvBackend({ path, clock }), clock };
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openKvBackend() keeps items across a close and reopen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backend_kv_test_" });
  try {
    const path = `${dir}/backend.kv`;
    let revision: string;
    {
      await using backend = await openKvBackend({ path });
      revision = (await backend.put({ key: ["kept"], value: new Uint8Array([1, 2]) })).revision;
    }
    await using backend = await openKvBackend({ path });
    const item = await backend.get(["kept"]);
    assert.deepEqual(item.value, new Uint8Array([1, 2]));
    assert.equal(item.revision, revision);
    // The change log continues after a reopen: a watch sees new writes.
    const controller = new AbortController();
    const it = backend.watch({ prefixes: [["kept"]], signal: controller.signal })
      [Symbol.asyncIterator]();
    assert.deepEqual((await it.next()).value, { type: "init" });
    await backend.delete(["kept"]);
    assert.deepEqual((await it.next()).value, { type: "delete", key: ["kept"] });
    controller.abort();
    assert.equal((await it.next()).done, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openKvBackend() fails when this process already holds the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backend_kv_test_" });
  try {
    const path = `${dir}/backend.kv`;
    {
      await using _backend = await openKvBackend({ path });
      await assert.rejects(openKvBackend({ path }), (err: unknown) => {
        assert.ok(err instanceof AlreadyExistsError);
        assert.equal(
          err.message,
          `Cannot open backend ${
            JSON.stringify(path)
          }: another teleport process (pid ${Deno.pid}) holds it; stop it first`,
        );
        return true;
      });
    }
    await using _again = await openKvBackend({ path });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openKvBackend() fails when another process holds the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backend_kv_test_" });
  try {
    const path = `${dir}/backend.kv`;
    const script = `
      import { openKvBackend } from ${JSON.stringify(new URL("./mod.ts", import.meta.url).href)};
      try {
        const backend = await openKvBackend({ path: ${JSON.stringify(path)} });
        await backend.put({ key: ["child"], value: new Uint8Array([1]) });
        await backend.close();
        console.log("opened");
      } catch (err) {
        console.log(err.name + ": " + err.message);
        Deno.exit(3);
      }`;
    const runChild = async () => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--no-config", "--unstable-kv", script],
        stdin: "null",
      }).output();
      const decoder = new TextDecoder();
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout).trim(),
        stderr: decoder.decode(output.stderr),
      };
    };
    {
      await using backend = await openKvBackend({ path });
      await backend.put({ key: ["parent"], value: new Uint8Array([1]) });
      const child = await runChild();
      assert.equal(child.code, 3, child.stderr);
      assert.equal(
        child.stdout,
        `AlreadyExistsError: Cannot open backend ${
          JSON.stringify(path)
        }: another teleport process (pid ${Deno.pid}) holds it; stop it first`,
      );
      await assert.rejects(backend.get(["child"]));
    }
    const child = await runChild();
    assert.equal(child.code, 0, child.stderr);
    assert.equal(child.stdout, "opened");
    await using backend = await openKvBackend({ path });
    assert.deepEqual((await backend.get(["child"])).value, new Uint8Array([1]));
    assert.deepEqual((await backend.get(["parent"])).value, new Uint8Array([1]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openKvBackend() rejects an empty path", async () => {
  await assert.rejects(openKvBackend({ path: "" }), { name: "BadParameterError" });
});

/** Mode bits of every file in `dir`, by name. */
async function modesIn(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(dir)) {
    out[e.name] = (((await Deno.stat(`${dir}/${e.name}`)).mode ?? 0) & 0o777).toString(8);
  }
  return out;
}

Deno.test("openKvBackend() keeps the database, its -wal, -shm and lock files 0600", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backend_kv_test_" });
  const umask = Deno.umask(0o022);
  try {
    const path = `${dir}/kv.db`;
    await using backend = await openKvBackend({ path });
    await backend.put({ key: ["k"], value: new Uint8Array([1]) });
    const modes = await modesIn(dir);
    for (const name of ["kv.db", "kv.db-wal", "kv.db-shm", "kv.db.lock"]) {
      assert.equal(modes[name], "600", `${name}: ${JSON.stringify(modes)}`);
    }
  } finally {
    Deno.umask(umask);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openKvBackend() makes files that earlier runs left 0644 private", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backend_kv_test_" });
  try {
    const path = `${dir}/kv.db`;
    {
      // As an earlier version left them: SQLite's default 0644 for the db and its companions.
      const kv = await Deno.openKv(path);
      await kv.set(["k"], 1);
      for (const name of await Array.fromAsync(Deno.readDir(dir), (e) => e.name)) {
        await Deno.chmod(`${dir}/${name}`, 0o644);
      }
      await Deno.writeTextFile(`${path}.lock`, "1\n", { mode: 0o644 });
      await Deno.chmod(`${path}.lock`, 0o644);
      kv.close();
    }
    await using backend = await openKvBackend({ path });
    await backend.put({ key: ["k2"], value: new Uint8Array([1]) });
    for (const [name, mode] of Object.entries(await modesIn(dir))) {
      assert.equal(mode, "600", name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
