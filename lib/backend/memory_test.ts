import { FakeClock } from "../clock/mod.ts";
import { MemoryBackend, runBackendConformance } from "./mod.ts";

Deno.test("MemoryBackend passes the backend conformance suite", async (t) => {
  await runBackendConformance(t, () => {
    const clock = new FakeClock();
    return Promise.resolve({ backend: new MemoryBackend({ clock }), clock });
  });
});
