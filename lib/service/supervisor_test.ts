import assert from "node:assert/strict";
import { getComponentLogger } from "../log/mod.ts";
import { formatFields, Supervisor } from "./supervisor.ts";

const logger = getComponentLogger("test");

/** A service that returns once the supervisor stops. */
function idle(signal: AbortSignal): Promise<void> {
  return new Promise((r) => signal.addEventListener("abort", () => r(), { once: true }));
}

Deno.test("Supervisor.drain() runs the last steps after the others, then stops", async () => {
  const sup = new Supervisor({ logger });
  sup.run("svc", idle);
  const order: string[] = [];
  const proxyDone = Promise.withResolvers<void>();
  sup.onDrain("auth", () => {
    order.push("auth");
    return Promise.resolve();
  }, { last: true });
  sup.onDrain("proxy", async () => {
    order.push("proxy start");
    await proxyDone.promise;
    order.push("proxy end");
  });
  sup.onDrain("node", () => {
    order.push("node");
    return Promise.resolve();
  });
  const drained = sup.drain(60_000);
  assert.equal(sup.draining, true);
  // Both non-last steps started at once (newest first); auth waits for the proxy.
  assert.deepEqual(order, ["node", "proxy start"]);
  assert.equal(sup.signal.aborted, false);
  proxyDone.resolve();
  await drained;
  assert.deepEqual(order, ["node", "proxy start", "proxy end", "auth"]);
  assert.equal(sup.signal.aborted, true);
  await sup.wait();
});

Deno.test("Supervisor.drain() aborts the steps' deadline when the timeout runs out", async () => {
  const sup = new Supervisor({ logger });
  let seen: AbortSignal | undefined;
  sup.onDrain("stuck", (deadline) => {
    seen = deadline;
    return new Promise((r) => deadline.addEventListener("abort", () => r(), { once: true }));
  });
  await sup.drain(20);
  assert.equal(seen?.aborted, true);
  assert.equal(sup.signal.aborted, true);
});

Deno.test("Supervisor.drain() is cut short by stop()", async () => {
  const sup = new Supervisor({ logger });
  let seen: AbortSignal | undefined;
  sup.onDrain("stuck", (deadline) => {
    seen = deadline;
    return new Promise((r) => deadline.addEventListener("abort", () => r(), { once: true }));
  });
  const drained = sup.drain(60_000);
  sup.stop();
  await drained;
  assert.equal(seen?.aborted, true);
});

Deno.test("Supervisor.report() lists each section and names one that fails", async () => {
  const sup = new Supervisor({ logger });
  sup.onReport("node", () => ({ listener: "127.0.0.1:3022", ssh_sessions: 2 }));
  sup.onReport("auth", () => Promise.reject(new Error("backend is closed")));
  assert.deepEqual(await sup.report(), [
    "node: listener=127.0.0.1:3022 ssh_sessions=2",
    "auth: cannot report: backend is closed",
  ]);
});

Deno.test("formatFields() quotes strings with spaces and writes objects as JSON", () => {
  assert.equal(
    formatFields({ a: "ok (1 ms)", b: { x: 1 }, c: "plain", d: [] }),
    'a="ok (1 ms)" b={"x":1} c=plain d=[]',
  );
});

Deno.test({
  name: "Supervisor.listenForSignals() drains on SIGQUIT and reports on SIGUSR1",
  async fn() {
    const sup = new Supervisor({ logger });
    sup.run("svc", idle);
    const drained = Promise.withResolvers<void>();
    sup.onDrain("svc", () => {
      drained.resolve();
      return Promise.resolve();
    });
    const reported = Promise.withResolvers<void>();
    using _signals = sup.listenForSignals({
      drainTimeoutMs: 60_000,
      fastStopTimeoutMs: 60_000,
      onForcedExit: () => assert.fail("no forced exit expected"),
      report: () => {
        reported.resolve();
        return Promise.resolve("report");
      },
    });
    Deno.kill(Deno.pid, "SIGUSR1");
    await reported.promise;
    Deno.kill(Deno.pid, "SIGQUIT");
    await drained.promise;
    await sup.wait();
    assert.equal(sup.signal.aborted, true);
  },
});

Deno.test({
  name: "Supervisor.listenForSignals() exits by force when a TERM stop overruns its time",
  async fn() {
    const sup = new Supervisor({ logger });
    // A service that never returns.
    sup.run("hung", () => new Promise(() => {}));
    const forced = Promise.withResolvers<void>();
    using _signals = sup.listenForSignals({
      drainTimeoutMs: 60_000,
      fastStopTimeoutMs: 20,
      onForcedExit: () => forced.resolve(),
      report: () => Promise.resolve(""),
    });
    Deno.kill(Deno.pid, "SIGTERM");
    await forced.promise;
    assert.equal(sup.signal.aborted, true);
  },
});
