/**
 * A worker process for the multi-process tests of postgres_test.ts:
 * `deno run -A _pg_worker.ts <mode> <conn string> [args…]`. It prints `ready` once its backend
 * is open, waits for a line on stdin ("go"), does its part and prints JSON lines.
 *
 * - `cas <revision>`: one compare-and-swap of key `race` from `<revision>`; prints
 *   `{"won":true}` or `{"won":false}`.
 * - `increment <n>`: n optimistic increments of key `counter`; prints `{"done":n}`.
 * - `write <id> <n>`: puts `seq/<id>` = 0 … n-1 one after another; prints `{"done":n}`.
 * - `watch <prefix>`: prints each event under `<prefix>` as a JSON line (after `ready`, which
 *   follows init), until stdin closes.
 */

import { CompareFailedError } from "../errors/mod.ts";
import type { BackendEvent } from "./backend.ts";
import { openPostgresBackend } from "./postgres.ts";

const [mode, connString, ...args] = Deno.args;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function print(line: unknown): void {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(line) + "\n"));
}

async function waitForGo(): Promise<void> {
  const reader = Deno.stdin.readable.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
  }
  reader.releaseLock();
}

function describe(event: BackendEvent): unknown {
  if (event.type === "init") return { type: "init" };
  if (event.type === "delete") return { type: "delete", key: event.key };
  return {
    type: "put",
    key: event.item.key,
    value: decoder.decode(event.item.value),
    revision: event.item.revision,
  };
}

const backend = await openPostgresBackend({ connString: connString! });
try {
  if (mode === "watch") {
    const controller = new AbortController();
    const events = backend.watch({ prefixes: [[args[0]!]], signal: controller.signal });
    // stdin closing ends the watch.
    void (async () => {
      for await (const _ of Deno.stdin.readable) { /* drain */ }
      controller.abort();
    })();
    for await (const event of events) {
      if (event.type === "init") print("ready");
      else print(describe(event));
    }
  } else {
    print("ready");
    await waitForGo();
    if (mode === "cas") {
      try {
        await backend.compareAndSwap(args[0]!, {
          key: ["race"],
          value: encoder.encode(String(Deno.pid)),
        });
        print({ won: true });
      } catch (err) {
        if (!(err instanceof CompareFailedError)) throw err;
        print({ won: false });
      }
    } else if (mode === "increment") {
      const n = Number(args[0]);
      for (let i = 0; i < n; i++) {
        for (;;) {
          const current = await backend.get(["counter"]);
          const next = encoder.encode(String(Number(decoder.decode(current.value)) + 1));
          try {
            await backend.compareAndSwap(current.revision, { key: ["counter"], value: next });
            break;
          } catch (err) {
            if (!(err instanceof CompareFailedError)) throw err;
          }
        }
      }
      print({ done: n });
    } else if (mode === "write") {
      const n = Number(args[1]);
      for (let i = 0; i < n; i++) {
        await backend.put({ key: ["seq", args[0]!], value: encoder.encode(String(i)) });
      }
      print({ done: n });
    } else {
      throw new Error(`Cannot run worker: unknown mode ${JSON.stringify(mode)}`);
    }
  }
} finally {
  await backend.close();
}
