import assert from "node:assert/strict";
import { generateSshKeyPair, generateTlsKeyPair } from "../ca/mod.ts";
import { handleApiRequest, redactPath } from "./mod.ts";
import { apiRouteOf } from "./api.ts";
import { ADMIN, newTestAuth, userIdentity } from "./_testing.ts";

Deno.test("handleApiRequest() serves ping and cacerts without a caller, nothing else", async () => {
  await using t = await newTestAuth();
  const ping = await handleApiRequest(t.auth, { method: "GET", path: "/v1/ping" });
  assert.equal(ping.status, 200);
  assert.equal((ping.body as { cluster_name: string }).cluster_name, "example");
  const cas = await handleApiRequest(t.auth, { method: "GET", path: "/v1/cacerts" });
  assert.equal(cas.status, 200);
  assert.equal((cas.body as { tls_ca_certs: string[] }).tls_ca_certs.length, 1);
  for (
    const [method, path] of [["GET", "/v1/status"], ["GET", "/v1/resources/user"], [
      "POST",
      "/v1/tokens",
    ], ["POST", "/v1/certs/user"]]
  ) {
    const r = await handleApiRequest(t.auth, { method: method!, path: path!, body: {} });
    assert.equal(r.status, 403, `${method} ${path}`);
  }
});

Deno.test("handleApiRequest() keeps error kinds as statuses", async () => {
  await using t = await newTestAuth();
  const call = (method: string, path: string, body?: unknown) =>
    handleApiRequest(t.auth, { method, path, body, caller: ADMIN });
  assert.equal((await call("GET", "/v1/resources/user/bob")).status, 404);
  assert.equal((await call("GET", "/v1/nowhere")).status, 404);
  assert.equal((await call("GET", "/v1/resources/widget")).status, 400);
  assert.equal((await call("POST", "/v1/tokens", { roles: "node" })).status, 400);
  const role = {
    kind: "role",
    version: "v7",
    metadata: { name: "dev" },
    spec: { allow: { logins: ["dev"] } },
  };
  assert.equal((await call("POST", "/v1/resources", { resource: role })).status, 200);
  const dup = await call("POST", "/v1/resources", { resource: role });
  assert.equal(dup.status, 409);
  assert.deepEqual((dup.body as { error: { kind: string } }).error.kind, "AlreadyExists");
  const got = await call("GET", "/v1/resources/role/dev");
  const rev = (got.body as { item: { metadata: { revision: string } } }).item.metadata.revision;
  assert.ok(rev);
  const edited = { ...role, metadata: { name: "dev", revision: rev } };
  assert.equal(
    (await call("POST", "/v1/resources", { resource: edited, upsert: true })).status,
    200,
  );
  const stale = await call("POST", "/v1/resources", { resource: edited, upsert: true });
  assert.equal(stale.status, 412);
  assert.equal((await call("DELETE", "/v1/resources/cert_authority/host")).status, 400);
});

Deno.test("handleApiRequest() applies role rules to users", async () => {
  await using t = await newTestAuth();
  const editor = userIdentity("ed", ["editor"]);
  const auditor = userIdentity("au", ["auditor"]);
  const tok = await handleApiRequest(t.auth, {
    method: "POST",
    path: "/v1/tokens",
    body: { roles: ["node"], ttl_ms: 60_000 },
    caller: editor,
  });
  assert.equal(tok.status, 200);
  const denied = await handleApiRequest(t.auth, {
    method: "POST",
    path: "/v1/tokens",
    body: { roles: ["node"], ttl_ms: 60_000 },
    caller: auditor,
  });
  assert.equal(denied.status, 403);
  assert.match(JSON.stringify(denied.body), /access denied to create token/);
  const sign = await handleApiRequest(t.auth, {
    method: "POST",
    path: "/v1/certs/user",
    body: { user: "ed", ttl_ms: 60_000 },
    caller: editor,
  });
  assert.equal(sign.status, 403);
  const other = await handleApiRequest(t.auth, {
    method: "GET",
    path: "/v1/status",
    caller: { ...editor, clusterName: "elsewhere" },
  });
  assert.equal(other.status, 403);
  const cas = await handleApiRequest(t.auth, {
    method: "GET",
    path: "/v1/resources/cert_authority",
    caller: ADMIN,
  });
  assert.ok(!JSON.stringify(cas.body).includes("PRIVATE KEY"));
});

Deno.test("redactPath() masks token values in logged paths", () => {
  const token = "0123456789abcdef0123456789abcdef";
  const out = redactPath(`/v1/resources/token/${token}`);
  assert.ok(!out.includes("0123456789abcdef0123"), out);
  assert.equal(redactPath("/v1/resources/role/dev"), "/v1/resources/role/dev");
});

Deno.test("handleApiRequest() creates users from resources without invite tokens", async () => {
  await using t = await newTestAuth();
  const user = {
    kind: "user",
    version: "v2",
    metadata: { name: "carol" },
    spec: { roles: ["access"] },
  };
  const r = await handleApiRequest(t.auth, {
    method: "POST",
    path: "/v1/resources",
    body: { resource: user },
    caller: ADMIN,
  });
  assert.equal(r.status, 200);
  assert.equal((await t.auth.users.get("carol")).spec.created_by?.user, "h1.example");
  assert.deepEqual(await t.auth.userTokens.list(), []);
});

Deno.test("POST /v1/register refuses oversized or odd fields before auditing", async () => {
  await using t = await newTestAuth();
  const token = await t.auth.createToken({ roles: ["node"], ttlMs: 60_000 });
  const good = {
    token: token.metadata.name,
    hostID: crypto.randomUUID(),
    node_name: "node1",
    role: "node",
    public_ssh_key: (await generateSshKeyPair("ed25519")).authorizedKey,
    public_tls_key: (await generateTlsKeyPair()).publicKeyPem,
  };
  const huge = "a".repeat(60_000);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["node_name", { node_name: huge }, /"node_name" is 60000 characters long; the limit is 253/],
    ["node_name", { node_name: "bad name\n" }, /"node_name" must be a host name/],
    ["hostID", { hostID: "x".repeat(65) }, /"hostID" is 65 characters long; the limit is 64/],
    ["hostID", { hostID: "../../etc" }, /"hostID" must be a UUID/],
    ["token", { token: huge }, /"token" is 60000 characters long; the limit is 128/],
    ["token", { token: 42 }, /"token" must be a non-empty string/],
    ["role", { role: huge }, /"role" is 60000 characters long/],
    ["public_ssh_key", { public_ssh_key: huge }, /the limit is 8192/],
    [
      "additional_principals",
      { additional_principals: Array(65).fill("p") },
      /has 65 entries; the limit is 64/,
    ],
    [
      "dns_names",
      { dns_names: ["ok.example", "b".repeat(254)] },
      /"dns_names\[1\]" is 254 characters long/,
    ],
  ];
  for (const [name, patch, message] of cases) {
    const r = await handleApiRequest(t.auth, {
      method: "POST",
      path: "/v1/register",
      body: { ...good, ...patch },
      remoteAddr: "127.0.0.9",
    });
    assert.equal(r.status, 400, name);
    const error = (r.body as { error: { kind: string; message: string } }).error;
    assert.equal(error.kind, "BadParameter");
    assert.match(error.message, message);
    assert.ok(error.message.length < 200, `${name}: the message does not echo the value`);
  }
  const { events } = await t.auth.searchEvents({
    from: new Date(0),
    to: new Date(t.clock.now().getTime() + 1),
    types: ["instance.join"],
  });
  assert.deepEqual(events, [], "nothing was audited");
  // The token was not spent on the refused requests.
  const ok = await handleApiRequest(t.auth, { method: "POST", path: "/v1/register", body: good });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});

Deno.test("POST /v1/events stores an oversized event cut and marked, not refused", async () => {
  await using t = await newTestAuth();
  const event = {
    event: "exec",
    uid: crypto.randomUUID(),
    code: "T3002I",
    time: t.clock.now().toISOString(),
    command: "x".repeat(100_000),
  };
  const r = await handleApiRequest(t.auth, {
    method: "POST",
    path: "/v1/events",
    caller: ADMIN,
    body: { events: [event] },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const { events } = await t.auth.searchEvents({
    from: new Date(0),
    to: new Date(t.clock.now().getTime() + 1),
    types: ["exec"],
  });
  assert.equal(events.length, 1);
  assert.equal(events[0]!.uid, event.uid);
  assert.equal(events[0]!.truncated, true);
  assert.ok((events[0]!.command as string).length < 65_536);
});

Deno.test("handleApiRequest() rotates a CA for an admin and refuses editors and bad phases", async () => {
  await using t = await newTestAuth();
  const call = (caller: typeof ADMIN, path: string, body: unknown) =>
    handleApiRequest(t.auth, { method: "POST", path, body, caller });
  const editor = userIdentity("ed", ["editor"]);
  assert.equal((await call(editor, "/v1/authorities/host/rotate", { phase: "init" })).status, 403);
  assert.equal((await call(ADMIN, "/v1/authorities/db/rotate", { phase: "init" })).status, 400);
  assert.equal((await call(ADMIN, "/v1/authorities/host/rotate", { phase: "half" })).status, 400);
  const bad = await call(ADMIN, "/v1/authorities/host/rotate", { phase: "standby" });
  assert.equal(bad.status, 400);
  assert.match(
    (bad.body as { error: { message: string } }).error.message,
    /it is in phase standby, which only init can follow/,
  );
  const ok = await call(ADMIN, "/v1/authorities/user/rotate", { grace_period_ms: 60_000 });
  assert.equal(ok.status, 200);
  const ca = (ok.body as {
    authority: { spec: { rotation: { phase: string; mode: string }; active_keys: unknown } };
  }).authority;
  assert.deepEqual([ca.spec.rotation.phase, ca.spec.rotation.mode], ["init", "auto"]);
  assert.doesNotMatch(JSON.stringify(ca), /private_key|"key"/);
  const status = await handleApiRequest(t.auth, {
    method: "GET",
    path: "/v1/status",
    caller: ADMIN,
  });
  const user = (status.body as { authorities: Array<{ type: string; pins: string[] }> })
    .authorities.find((a) => a.type === "user");
  assert.equal(user!.pins.length, 2);
});

Deno.test("apiRouteOf() names the route with its parameters replaced, or other", () => {
  assert.equal(apiRouteOf("PUT", "/v1/nodes/abc-123"), "PUT /v1/nodes/:param");
  assert.equal(
    apiRouteOf("GET", "/v1/resources/cert_authority/user"),
    "GET /v1/resources/:param/:param",
  );
  assert.equal(apiRouteOf("GET", "/v1/ping"), "GET /v1/ping");
  assert.equal(apiRouteOf("DELETE", "/v1/ping"), "other");
  assert.equal(apiRouteOf("GET", "/nothing"), "other");
});
