/**
 * API permissions of the login, invite-token, proxy-presence and node-listing routes,
 * transport-free through handleApiRequest.
 */
import assert from "node:assert/strict";
import * as OTPAuth from "otpauth";
import type { UserCerts, UserTokenDetails } from "../authclient/mod.ts";
import { generateSshKeyPair, generateTlsKeyPair } from "../ca/mod.ts";
import type { Identity } from "../identity/mod.ts";
import type { ServerResource } from "../resource/mod.ts";
import { LOGIN_FAILED_MESSAGE, redactPath } from "./mod.ts";
import {
  ADMIN,
  callApi as call,
  newTestAuth,
  nodeIdentity,
  proxyIdentity,
  type TestAuth,
  userIdentity,
} from "./_testing.ts";

const PASSWORD = "correct horse battery staple";
const PROXY = proxyIdentity();
const PROXY_ID = PROXY.username.replace(/\.example$/, "");

function errorOf(body: unknown): { kind: string; message: string } {
  return (body as { error: { kind: string; message: string } }).error;
}

function codeNow(t: TestAuth, secret: string): string {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) }).generate({
    timestamp: t.clock.now().getTime(),
  });
}

/** alice with a password and TOTP, enrolled through the API as the proxy would. */
async function enrollAlice(t: TestAuth): Promise<string> {
  const { token } = await t.auth.createUser({
    kind: "user",
    version: "v2",
    metadata: { name: "alice" },
    spec: { roles: ["access"], traits: { logins: ["alice"] } },
  });
  const details = await call(t, "GET", `/v1/users/password/token/${token.token}`, PROXY);
  assert.equal(details.status, 200);
  const secret = (details.body as UserTokenDetails).totp!.secret;
  const set = await call(t, "PUT", "/v1/users/password/token", PROXY, {
    token: token.token,
    password: PASSWORD,
    second_factor_token: codeNow(t, secret),
  });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.deepEqual(set.body, { user: "alice" });
  t.clock.advance(30_000);
  return secret;
}

Deno.test("POST /v1/users/:user/ssh/authenticate is for the proxy only", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const secret = await enrollAlice(t);
  await t.auth.roles.create({
    kind: "role",
    version: "v7",
    metadata: { name: "superuser" },
    spec: { options: {}, allow: { rules: [{ resources: ["*"], verbs: ["*"] }] }, deny: {} },
  });
  const ssh = (await generateSshKeyPair("ed25519")).authorizedKey;
  const tls = (await generateTlsKeyPair()).publicKeyPem;
  const req = () => ({
    password: PASSWORD,
    otp_token: codeNow(t, secret),
    ssh_public_key: ssh,
    tls_public_key: tls,
    ttl_ms: 3_600_000,
    remote_addr: "203.0.113.7:40000",
  });
  const path = "/v1/users/alice/ssh/authenticate";
  for (
    const [who, caller] of [
      ["no certificate", undefined],
      ["a node", nodeIdentity()],
      ["a user with every rule", userIdentity("mallory", ["superuser"])],
      ["an editor", userIdentity("ed", ["editor"])],
    ] as Array<[string, Identity | undefined]>
  ) {
    const r = await call(t, "POST", path, caller, req());
    assert.equal(r.status, 403, who);
  }
  const ok = await call(t, "POST", path, PROXY, req());
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const certs = ok.body as UserCerts;
  assert.ok(certs.sshCert && certs.tlsCert);
  // Replay through the API gets the generic refusal.
  const replay = await call(t, "POST", path, PROXY, req());
  assert.equal(replay.status, 403);
  assert.equal(errorOf(replay.body).message, LOGIN_FAILED_MESSAGE);
  // The forwarded address reaches the audit log.
  const { events } = await t.auth.searchEvents({
    from: new Date(0),
    to: new Date(t.clock.now().getTime() + 1),
    types: ["user.login"],
  });
  assert.deepEqual(events.map((e) => [e.code, e["addr.remote"]]), [
    ["T1000I", "203.0.113.7:40000"],
    ["T1000W", "203.0.113.7:40000"],
  ]);
  const bad = await call(t, "POST", path, PROXY, { ...req(), ttl_ms: "1h" });
  assert.equal(bad.status, 400);
});

Deno.test("invite token routes are for the proxy only", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const { token } = await t.auth.createUser({
    kind: "user",
    version: "v2",
    metadata: { name: "bob" },
    spec: { roles: ["access"], traits: {} },
  });
  const path = `/v1/users/password/token/${token.token}`;
  for (const caller of [undefined, nodeIdentity(), userIdentity("bob", ["editor"])]) {
    assert.equal((await call(t, "GET", path, caller)).status, 403);
    const put = await call(t, "PUT", "/v1/users/password/token", caller, {
      token: token.token,
      password: PASSWORD,
    });
    assert.equal(put.status, 403);
  }
  const details = await call(t, "GET", path, PROXY);
  assert.equal(details.status, 200);
  const d = details.body as UserTokenDetails;
  assert.equal(d.user, "bob");
  assert.equal(d.totp?.required, true);
  const missing = await call(t, "PUT", "/v1/users/password/token", PROXY, {
    token: token.token,
    password: PASSWORD,
  });
  assert.equal(missing.status, 403);
  assert.equal((await call(t, "GET", path, PROXY)).status, 200, "the token survives a failure");
  const unknown = await call(t, "GET", "/v1/users/password/token/ffffffffffffffff", PROXY);
  assert.equal(unknown.status, 403);
  assert.match(errorOf(unknown.body).message, /invalid or has expired/);
  assert.ok(!redactPath(path).includes(token.token.slice(0, 16)), redactPath(path));
  assert.equal(redactPath("/v1/users/password/token/%zz"), "/v1/users/password/token/****");
});

Deno.test("proxies announce only themselves and anyone in the cluster lists them", async () => {
  await using t = await newTestAuth();
  const proxy = (name = PROXY_ID) => ({
    kind: "proxy",
    version: "v2",
    metadata: { name, expires: new Date(t.clock.now().getTime() + 60_000).toISOString() },
    spec: { addr: "0.0.0.0:3080", hostname: "proxy1", version: "0.0.0-test" },
  });
  const put = (caller: Identity | undefined, name = PROXY_ID, body: unknown = { proxy: proxy() }) =>
    call(t, "PUT", `/v1/proxies/${name}`, caller, body);
  assert.equal((await put(PROXY)).status, 200);
  assert.equal((await put(nodeIdentity(PROXY_ID))).status, 403);
  assert.equal((await put(userIdentity("ed", ["editor"]))).status, 403);
  assert.equal((await put(undefined)).status, 403);
  const other = "11111111-2222-4333-8444-555555555555";
  assert.equal((await put(PROXY, other, { proxy: proxy(other) })).status, 403);
  assert.equal((await put(PROXY, other)).status, 400, "path and body disagree");
  assert.equal((await put(PROXY, PROXY_ID, { proxy: { ...proxy(), kind: "node" } })).status, 400);
  assert.equal(
    (await put(PROXY, PROXY_ID, {
      proxy: { ...proxy(), spec: { ...proxy().spec, host_cert: "ssh-ed25519 AAAA" } },
    })).status,
    400,
  );
  for (const caller of [PROXY, nodeIdentity(), userIdentity("u", ["access"]), ADMIN]) {
    const list = await call(t, "GET", "/v1/proxies", caller);
    assert.equal(list.status, 200);
    assert.deepEqual(
      (list.body as { items: { metadata: { name: string } }[] }).items.map((p) => p.metadata.name),
      [PROXY_ID],
    );
  }
  assert.equal((await call(t, "GET", "/v1/proxies")).status, 403);
  const admin = await call(t, "GET", "/v1/resources/proxies", ADMIN);
  assert.equal(admin.status, 200);
  assert.equal((await call(t, "POST", "/v1/resources", ADMIN, { resource: proxy() })).status, 400);
  assert.equal((await call(t, "DELETE", `/v1/resources/proxy/${PROXY_ID}`, ADMIN)).status, 200);
  const after = (await call(t, "GET", "/v1/proxies", PROXY)).body as { items: unknown[] };
  assert.equal(after.items.length, 0);
});

Deno.test("GET /v1/resources/node shows users the nodes their roles allow", async () => {
  await using t = await newTestAuth();
  await t.auth.roles.create({
    kind: "role",
    version: "v7",
    metadata: { name: "dev-only" },
    spec: { options: {}, allow: { logins: ["dev"], node_labels: { env: "dev" } }, deny: {} },
  });
  const expires = new Date(t.clock.now().getTime() + 60_000).toISOString();
  for (const [name, env] of [["dev1", "dev"], ["prod1", "prod"]] as const) {
    const node: ServerResource = {
      kind: "node",
      version: "v2",
      metadata: { name, labels: { env }, expires },
      spec: { addr: "", hostname: name, version: "0" },
    };
    await t.auth.presence.upsertNode(node);
  }
  const names = (body: unknown) =>
    (body as { items: ServerResource[] }).items.map((n) => n.metadata.name).sort();
  const dev = userIdentity("d", ["dev-only"]);
  assert.deepEqual(names((await call(t, "GET", "/v1/resources/node", dev)).body), ["dev1"]);
  assert.deepEqual(names((await call(t, "GET", "/v1/resources/nodes", ADMIN)).body), [
    "dev1",
    "prod1",
  ]);
  assert.equal((await call(t, "GET", "/v1/resources/node/dev1", dev)).status, 200);
  assert.equal((await call(t, "GET", "/v1/resources/node/prod1", dev)).status, 404);
  assert.deepEqual(
    names((await call(t, "GET", "/v1/resources/node", userIdentity("a", ["auditor"]))).body),
    [],
  );
  // Other kinds still need a rule.
  assert.equal((await call(t, "GET", "/v1/resources/user", dev)).status, 403);
});

Deno.test("POST /v1/register takes the joining host's address only from a proxy", async () => {
  await using t = await newTestAuth();
  const join = async (caller: Identity | undefined) => {
    const token = await t.auth.createToken({ roles: ["node"], ttlMs: 60_000 });
    return await call(t, "POST", "/v1/register", caller, {
      token: token.metadata.name,
      hostID: crypto.randomUUID(),
      node_name: "node1",
      role: "node",
      public_ssh_key: (await generateSshKeyPair("ed25519")).authorizedKey,
      public_tls_key: (await generateTlsKeyPair()).publicKeyPem,
      remote_addr: "198.51.100.4:50000",
    });
  };
  assert.equal((await join(PROXY)).status, 200);
  assert.equal((await join(undefined)).status, 200);
  assert.equal((await join(nodeIdentity())).status, 200);
  const { events } = await t.auth.searchEvents({
    from: new Date(0),
    to: new Date(t.clock.now().getTime() + 1),
    types: ["instance.join"],
  });
  assert.deepEqual(events.map((e) => e["addr.remote"]), [
    "198.51.100.4:50000",
    "127.0.0.9",
    "127.0.0.9",
  ]);
});

Deno.test("the built-in editor and auditor roles may read recordings", async () => {
  await using t = await newTestAuth();
  await t.auth.authorize(userIdentity("e", ["editor"]), "session", "read");
  await t.auth.authorize(userIdentity("a", ["auditor"]), "session", "read");
  await assert.rejects(t.auth.authorize(userIdentity("x", ["access"]), "session", "read"));
});
