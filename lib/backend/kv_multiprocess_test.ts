import assert from "node:assert/strict";
import { AlreadyExistsError } from "../errors/mod.ts";
import { type BackendEvent, openKvBackend } from "./mod.ts";

const WORKER = new URL("./_kv_worker.ts", import.meta.url).pathname;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Starts a worker process; resolves its CAS wins once it printed `done`. */
function startWorker(path: string, id: string, rounds: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", WORKER, path, id, String(rounds)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const done = (async () => {
    let text = "";
    for await (const chunk of child.stdout) {
      text += dec.decode(chunk);
      const m = /done (\d+)/.exec(text);
      if (m) return Number(m[1]);
    }
    throw new Error(`worker ${id} ended without finishing: ${text}`);
  })();
  return {
    child,
    done,
    async stop() {
      await child.stdin.close();
      await child.status;
    },
  };
}

Deno.test(
  "openKvBackend() shares a file with a successor process: one CAS winner each round, watches see its writes in order",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "backend_kv_mp_" });
    const path = `${dir}/backend.kv`;
    const rounds = 150;
    const backend = await openKvBackend({ path, pollIntervalMs: 50 });
    const workers: Array<ReturnType<typeof startWorker>> = [];
    try {
      await backend.put({ key: ["mp", "counter"], value: enc.encode("0") });
      const controller = new AbortController();
      const events: BackendEvent[] = [];
      const watched = (async () => {
        for await (const ev of backend.watch({ prefixes: [["mp"]], signal: controller.signal })) {
          events.push(ev);
          const puts = events.filter((e) => e.type === "put" && e.item.key[1] !== "counter");
          if (puts.length === 2 * rounds + rounds) return;
        }
      })();
      workers.push(startWorker(path, "a", rounds), startWorker(path, "b", rounds));
      // This process writes too, racing the workers on the counter.
      let wins = 0;
      for (let i = 0; i < rounds; i++) {
        await backend.put({
          key: ["mp", "self", String(i).padStart(5, "0")],
          value: enc.encode("s"),
        });
        for (;;) {
          const cur = await backend.get(["mp", "counter"]);
          try {
            await backend.compareAndSwap(cur.revision, {
              key: ["mp", "counter"],
              value: enc.encode(String(Number(dec.decode(cur.value)) + 1)),
            });
            wins++;
            break;
          } catch {
            // lost to another process: read again
          }
        }
      }
      const workerWins = await Promise.all(workers.map((w) => w.done));
      assert.deepEqual(workerWins, [rounds, rounds]);
      assert.equal(wins, rounds);
      const counter = Number(dec.decode((await backend.get(["mp", "counter"])).value));
      assert.equal(counter, 3 * rounds, "every increment landed exactly once");
      await watched;
      controller.abort();
      // Each writer's puts arrive in its own order, and revisions only grow.
      for (const id of ["a", "b", "self"]) {
        const keys = events.flatMap((e) =>
          e.type === "put" && e.item.key[1] === id ? [e.item.key[2]] : []
        );
        assert.equal(keys.length, rounds, `all puts of ${id} seen`);
        assert.deepEqual(keys, [...keys].sort(), `puts of ${id} in order`);
      }
      const revisions = events.flatMap((e) => e.type === "put" ? [e.item.revision] : []);
      assert.deepEqual(revisions, [...revisions].sort(), "revisions in commit order");
    } finally {
      await backend.close();
      await Promise.all(workers.map((w) => w.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("openKvBackend() successor takes the owner lock when its predecessor closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backend_kv_mp_" });
  const path = `${dir}/backend.kv`;
  const first = await openKvBackend({ path });
  await first.put({ key: ["mp", "counter"], value: enc.encode("0") });
  const worker = startWorker(path, "succ", 1);
  try {
    await worker.done;
    // While the first process owns the file, nobody else but a successor opens it.
    await assert.rejects(openKvBackend({ path }), AlreadyExistsError);
    await first.close();
    // The successor's lock poll takes the lock and records its pid.
    for (let i = 0; i < 100; i++) {
      if ((await Deno.readTextFile(`${path}.lock`)).trim() === String(worker.child.pid)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await Deno.readTextFile(`${path}.lock`)).trim(), String(worker.child.pid));
    await assert.rejects(openKvBackend({ path }), (err: unknown) => {
      assert.ok(err instanceof AlreadyExistsError);
      assert.match(err.message, new RegExp(`pid ${worker.child.pid}`));
      return true;
    });
  } finally {
    await first.close();
    await worker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
