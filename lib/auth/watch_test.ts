import assert from "node:assert/strict";
import { AuthClient, ResourceFeed } from "../authclient/mod.ts";
import { generateTlsKeyPair } from "../ca/mod.ts";
import { isKind } from "../errors/mod.ts";
import { type LoggedRecord, testLogger } from "../log/mod.ts";
import { RoleCache } from "../rbac/mod.ts";
import type { ResourceEvent, Role, ServerResource, WatchKind } from "../resource/mod.ts";
import { handleApiRequest } from "./api.ts";
import { type AuthApiServer, startAuthApiServer } from "./listener.ts";
import { newTestAuth, nodeIdentity, type TestAuth, userIdentity } from "./_testing.ts";
import { WatchHub } from "./watch.ts";

const role = (name: string, login: string): Role => ({
  kind: "role",
  version: "v7",
  metadata: { name },
  spec: { options: {}, allow: { logins: [login] }, deny: {} },
});

const node = (name: string): ServerResource => ({
  kind: "node",
  version: "v2",
  metadata: { name, expires: new Date(Date.now() + 600_000).toISOString() },
  spec: { addr: "127.0.0.1:3022", hostname: name, version: "test" },
});

/** The auth API on 127.0.0.1 (`port`, 0 for any) and clients of it by system role. */
async function startApi(t: TestAuth, port = 0) {
  const { logger, records } = testLogger();
  const key = await generateTlsKeyPair();
  const certPem = await t.auth.generateHostTlsCert({
    hostId: "auth-host",
    role: "Auth",
    tlsPublicKeyPem: key.publicKeyPem,
    names: ["127.0.0.1", "teleport.cluster.local"],
  });
  const api = await startAuthApiServer({
    server: t.auth,
    logger,
    host: "127.0.0.1",
    port,
    certPem,
    keyPem: key.privateKeyPem,
  });
  return { api, records };
}

async function clientOf(t: TestAuth, port: number, role: "Node" | "Proxy"): Promise<AuthClient> {
  const key = await generateTlsKeyPair();
  const certPem = await t.auth.generateHostTlsCert({
    hostId: crypto.randomUUID(),
    role,
    tlsPublicKeyPem: key.publicKeyPem,
  });
  return new AuthClient({
    host: "127.0.0.1",
    port,
    caCertPems: t.auth.hostCaCertPems(),
    identity: { certPem, keyPem: key.privateKeyPem },
  });
}

/** Reads events from `events` until `n` of them (besides `init`s) arrived. */
async function take(events: AsyncIterator<ResourceEvent>, n: number): Promise<ResourceEvent[]> {
  const out: ResourceEvent[] = [];
  while (out.length < n) {
    const r = await events.next();
    if (r.done) throw new Error(`the stream ended after ${out.length} events`);
    out.push(r.value);
  }
  return out;
}

Deno.test("GET /v1/watch refuses callers without list and read rights on a kind", async () => {
  await using t = await newTestAuth();
  const { logger } = testLogger();
  const watches = new WatchHub({ server: t.auth, logger });
  try {
    const ask = async (caller: ReturnType<typeof nodeIdentity> | undefined, kinds: string) =>
      await handleApiRequest(t.auth, {
        method: "GET",
        path: "/v1/watch",
        query: new URLSearchParams({ kinds }),
        watches,
        ...(caller === undefined ? {} : { caller }),
      });
    assert.equal((await ask(undefined, "role")).status, 403);
    assert.equal((await ask(nodeIdentity(), "cert_authority,node")).status, 403);
    assert.equal((await ask(userIdentity("bob", ["nothing"]), "role")).status, 403);
    // An editor may list and read nodes, but sees only those its labels allow: no node stream.
    const editor = await ask(userIdentity("ed", ["editor"]), "node");
    assert.equal(editor.status, 403);
    assert.match(JSON.stringify(editor.body), /Cannot watch nodes as a user/);
    assert.equal((await ask(nodeIdentity(), "user")).status, 400);
    assert.equal(watches.size, 0);
    const ok = await ask(nodeIdentity(), "cert_authority,role");
    assert.equal(ok.status, 200);
    assert.ok(ok.body instanceof Response);
    assert.equal(watches.size, 1);
    await ok.body.body!.cancel();
    assert.equal(watches.size, 0);
  } finally {
    watches.close();
  }
});

Deno.test("watch stream starts with init, then delivers puts and deletes in commit order", async () => {
  await using t = await newTestAuth();
  const { api } = await startApi(t);
  await using _api = api;
  using proxy = await clientOf(t, api.port, "Proxy");
  const ac = new AbortController();
  const events = proxy.watchOnce(["cert_authority", "role", "node"], { signal: ac.signal });
  try {
    assert.deepEqual(await take(events, 1), [{ type: "init" }]);
    await t.auth.roles.upsert(role("dev", "dev"));
    await t.auth.roles.upsert(role("ops", "ops"));
    await t.auth.presence.upsertNode(node("n1"));
    await t.auth.roles.delete("dev");
    await t.auth.rotateCertAuthority("user", { phase: "init" });
    const got = await take(events, 5);
    assert.deepEqual(
      got.map((e) =>
        e.type === "put"
          ? `put ${e.resource.kind}/${e.resource.metadata.name}`
          : e.type === "delete"
          ? `delete ${e.kind}/${e.name}`
          : e.type
      ),
      ["put role/dev", "put role/ops", "put node/n1", "delete role/dev", "put cert_authority/user"],
    );
    // CAs go out without their private keys.
    const ca = JSON.stringify(got[4]);
    assert.doesNotMatch(ca, /PRIVATE KEY|private_key/);
    assert.match(ca, /"type":"user"/);
  } finally {
    ac.abort();
    await events.return(undefined);
  }
});

Deno.test("a watch stream gives a node only the kinds it asked for", async () => {
  await using t = await newTestAuth();
  const { api } = await startApi(t);
  await using _api = api;
  using n = await clientOf(t, api.port, "Node");
  await assert.rejects(
    async () => {
      for await (const _ of n.watchOnce(["node"])) break;
    },
    (e) => isKind(e, "AccessDenied"),
  );
  const ac = new AbortController();
  const events = n.watchOnce(["role"], { signal: ac.signal });
  try {
    assert.deepEqual(await take(events, 1), [{ type: "init" }]);
    await t.auth.presence.upsertNode(node("n1"));
    await t.auth.roles.upsert(role("dev", "dev"));
    const [ev] = await take(events, 1);
    assert.equal(ev?.type === "put" && ev.resource.kind, "role");
  } finally {
    ac.abort();
    await events.return(undefined);
  }
});

Deno.test("WatchHub cuts a stream whose client does not read its events", async () => {
  await using t = await newTestAuth();
  const { logger, records } = testLogger();
  const cut = Promise.withResolvers<void>();
  // The test logger, telling us when the cut is logged.
  const told = new Proxy(logger, {
    get: (target, name) => {
      const f = Reflect.get(target, name) as (m: unknown, p?: unknown) => void;
      return (message: unknown, props?: unknown) => {
        f.call(target, message, props);
        if (String(message).startsWith("Cut a resource watch")) cut.resolve();
      };
    },
  });
  const hub = new WatchHub({ server: t.auth, logger: told, queueLimit: 4 });
  try {
    const res = hub.open(["role"]);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.equal(first, '{"type":"init"}\n');
    // Nobody reads from here on: the fifth queued event cuts the stream.
    for (let i = 0; i < 5; i++) await t.auth.roles.upsert(role(`r${i}`, "x"));
    await cut.promise;
    await assert.rejects(reader.read(), (e) => isKind(e, "LimitExceeded"));
    assert.equal(hub.size, 0);
    assert.ok(records.some((r: LoggedRecord) => r.message.startsWith("Cut a resource watch")));
  } finally {
    hub.close();
  }
});

Deno.test("watch streams end when the listener stops accepting (drain)", async () => {
  await using t = await newTestAuth();
  const { api } = await startApi(t);
  await using _api = api;
  using proxy = await clientOf(t, api.port, "Proxy");
  const events = proxy.watchOnce(["role"]);
  assert.deepEqual(await take(events, 1), [{ type: "init" }]);
  api.stopAccepting();
  await assert.rejects(events.next(), (e) => isKind(e, "ConnectionProblem"));
});

Deno.test("AuthClient.watch() reconnects to auth restarted on its port; caches reload from init", async () => {
  await using t = await newTestAuth();
  const first = await startApi(t);
  const port = first.api.port;
  let api: AuthApiServer = first.api;
  using proxy = await clientOf(t, port, "Proxy");
  const { logger } = testLogger();
  const ac = new AbortController();
  const seen: ResourceEvent["type"][] = [];
  const waiters: Array<() => void> = [];
  const feed = new ResourceFeed({
    client: proxy,
    kinds: ["role"] satisfies WatchKind[],
    logger,
    signal: ac.signal,
    // Reconnect at once: the test waits for events, not time.
    random: () => 0.01,
  });
  feed.subscribe((ev) => {
    seen.push(ev.type);
    for (const w of waiters.splice(0)) w();
  });
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => waiters.push(r));
  };
  let lists = 0;
  let fetches = 0;
  const calls: string[][] = [];
  const roles = new RoleCache({
    fetch: async (name) => (fetches++, await t.auth.roles.get(name)),
    list: async () => (lists++, await t.auth.roles.list()),
    clock: t.clock,
    logger,
    watch: feed,
    onChange: (names) => {
      calls.push(names);
      for (const w of waiters.splice(0)) w();
    },
  });
  try {
    await t.auth.roles.upsert(role("dev", "dev"));
    await until(() => seen.includes("init"));
    // Nothing cached at the first init: the login reads its role, then the watch keeps it.
    assert.deepEqual((await roles.get(["dev"]))[0]?.spec.allow.logins, ["dev"]);
    assert.equal(fetches, 1);

    await api.close();
    await until(() => seen.includes("lost"));
    assert.equal(feed.healthy, false);
    api = (await startApi(t, port)).api;
    await until(() => seen.filter((s) => s === "init").length === 2);
    // Back on the same port: the next login reloads the cached roles in one listing.
    assert.deepEqual((await roles.get(["dev"]))[0]?.spec.allow.logins, ["dev"]);
    assert.equal(lists, 1);
    const reloads = calls.length;

    // A role change reaches the cache by its event: no fetch, no listing, however old.
    await t.auth.roles.upsert(role("dev", "deploy"));
    await until(() => calls.length === reloads + 1);
    assert.deepEqual(calls.at(-1), ["dev"]);
    t.clock.advance(3_600_000);
    assert.deepEqual((await roles.get(["dev"]))[0]?.spec.allow.logins, ["deploy"]);
    assert.equal(fetches, 1);
    assert.equal(lists, 1);
  } finally {
    ac.abort();
    await feed.done;
    await api.close();
  }
});
