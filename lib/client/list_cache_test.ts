import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import type { ProxyResource, ServerResource } from "../resource/mod.ts";
import type { ClusterApi } from "./cluster.ts";
import { withListCache } from "./list_cache.ts";

const node = (name: string): ServerResource => ({
  kind: "node",
  version: "v2",
  metadata: { name },
  spec: { hostname: name, addr: "127.0.0.1:3022", version: "1" },
});
const proxy = (name: string): ProxyResource => ({
  kind: "proxy",
  version: "v2",
  metadata: { name },
  spec: { addr: "127.0.0.1:3080", hostname: name, version: "1" },
});

/** A ClusterApi whose lists are whatever `state` holds now, counting the calls. */
function countingApi(state: { nodes: ServerResource[]; proxies: ProxyResource[] }) {
  const calls = { nodes: 0, proxies: 0 };
  const api: ClusterApi = {
    listNodes: () => (calls.nodes++, Promise.resolve(state.nodes)),
    listProxies: () => (calls.proxies++, Promise.resolve(state.proxies)),
    listSessionTrackers: () => Promise.resolve([]),
    getSessionTracker: () => Promise.reject(new Error("none")),
    downloadRecording: () => Promise.reject(new Error("none")),
    close: () => {},
  };
  return { api, calls };
}

Deno.test("withListCache() answers from the file within maxAgeMs and asks again after", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/keys/p/alice-cache/c1.json`;
  const clock = new FakeClock(new Date("2026-01-01T00:00:00Z"));
  const state = { nodes: [node("n1")], proxies: [proxy("p1")] };
  const { api, calls } = countingApi(state);
  const cached = withListCache(api, { path, sshCert: "cert-a", clock });

  assert.deepEqual(await cached.listNodes({ maxAgeMs: 60_000 }), [node("n1")]);
  assert.deepEqual(await cached.listProxies({ maxAgeMs: 60_000 }), [proxy("p1")]);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(`${dir.path}/keys/p/alice-cache`)).mode! & 0o777, 0o700);

  // Another command (a new wrapper over the same file) within the age: no call.
  state.nodes = [node("n2")];
  const next = withListCache(countingApi(state).api, { path, sshCert: "cert-a", clock });
  clock.advance(60_000);
  assert.deepEqual(await next.listNodes({ maxAgeMs: 60_000 }), [node("n1")]);
  assert.deepEqual(await next.listProxies({ maxAgeMs: 60_000 }), [proxy("p1")]);
  // Older than that, or no age given: asked, and the file follows.
  clock.advance(1);
  assert.deepEqual(await cached.listNodes({ maxAgeMs: 60_000 }), [node("n2")]);
  state.nodes = [node("n3")];
  assert.deepEqual(await cached.listNodes(), [node("n3")]);
  assert.equal(calls.nodes, 3);
  const later = withListCache(countingApi(state).api, { path, sshCert: "cert-a", clock });
  assert.deepEqual(await later.listNodes({ maxAgeMs: 1 }), [node("n3")]);
  // The proxies entry kept its own time.
  assert.equal(calls.proxies, 1);
});

Deno.test("withListCache() ignores answers of another certificate and a bad file", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/c1.json`;
  const clock = new FakeClock(new Date("2026-01-01T00:00:00Z"));
  const state = { nodes: [node("n1")], proxies: [] };
  await withListCache(countingApi(state).api, { path, sshCert: "cert-a", clock }).listNodes();

  // A new login (another certificate) does not see the old answer.
  state.nodes = [node("n2")];
  const relogin = countingApi(state);
  const other = withListCache(relogin.api, { path, sshCert: "cert-b", clock });
  assert.deepEqual(await other.listNodes({ maxAgeMs: 60_000 }), [node("n2")]);
  assert.equal(relogin.calls.nodes, 1);

  // Malformed files are misses, never errors.
  for (
    const text of [
      "not json",
      "[]",
      JSON.stringify({ version: 2 }),
      JSON.stringify({ version: 1, cert: "x", nodes: { at: "soon", items: [] } }),
    ]
  ) {
    await Deno.writeTextFile(path, text);
    const fresh = countingApi(state);
    const api = withListCache(fresh.api, { path, sshCert: "cert-b", clock });
    assert.deepEqual(await api.listNodes({ maxAgeMs: 60_000 }), [node("n2")], text);
    assert.equal(fresh.calls.nodes, 1, text);
  }
  // Entries of the wrong kind are not served as nodes.
  const { createHash } = await import("node:crypto");
  const cert = createHash("sha256").update("cert-b").digest("hex");
  await Deno.writeTextFile(
    path,
    JSON.stringify({ version: 1, cert, nodes: { at: clock.now().getTime(), items: [proxy("x")] } }),
  );
  const wrongKind = countingApi(state);
  const api = withListCache(wrongKind.api, { path, sshCert: "cert-b", clock });
  assert.deepEqual(await api.listNodes({ maxAgeMs: 60_000 }), [node("n2")]);
  assert.equal(wrongKind.calls.nodes, 1);
});

Deno.test("withListCache() still answers when the file cannot be written", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/file`, "");
  const state = { nodes: [node("n1")], proxies: [] };
  const api = withListCache(countingApi(state).api, {
    path: `${dir.path}/file/c1.json`, // its directory is a file
    sshCert: "cert-a",
  });
  assert.deepEqual(await api.listNodes({ maxAgeMs: 60_000 }), [node("n1")]);
});

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "tp-list-cache-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
