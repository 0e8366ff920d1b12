/**
 * A second process on one Deno KV file, for kv_multiprocess_test.ts: opens `path` as a
 * successor (the file's owner lock belongs to the test process), then per round puts
 * `["mp", id, i]` and increments `["mp", "counter"]` by compare-and-swap, retrying lost races.
 * Prints `done <cas wins>` when finished, then holds the file until stdin closes.
 *
 * Usage: deno run -A lib/backend/_kv_worker.ts PATH ID ROUNDS
 */
import { CompareFailedError } from "../errors/mod.ts";
import { openKvBackend } from "./kv.ts";

const [path, id, roundsText] = Deno.args;
if (path === undefined || id === undefined || roundsText === undefined) {
  throw new Error("usage: _kv_worker.ts PATH ID ROUNDS");
}
const backend = await openKvBackend({ path, successor: true });
const enc = new TextEncoder();
const dec = new TextDecoder();
let wins = 0;
for (let i = 0; i < Number(roundsText); i++) {
  await backend.put({ key: ["mp", id, String(i).padStart(5, "0")], value: enc.encode(id) });
  for (;;) {
    const cur = await backend.get(["mp", "counter"]);
    const next = enc.encode(String(Number(dec.decode(cur.value)) + 1));
    try {
      await backend.compareAndSwap(cur.revision, { key: ["mp", "counter"], value: next });
      wins++;
      break;
    } catch (err) {
      if (!(err instanceof CompareFailedError)) throw err;
    }
  }
}
await Deno.stdout.write(enc.encode(`done ${wins}\n`));
for await (const _ of Deno.stdin.readable) {
  // hold the file until the test closes stdin
}
await backend.close();
