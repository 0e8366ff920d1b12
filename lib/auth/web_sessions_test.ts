/** Web session storage through the auth API (transport-free), and web logins' audit. */
import assert from "node:assert/strict";
import type { WebSessionRecord } from "../authclient/mod.ts";
import { createAuthApiHandler } from "./mod.ts";
import {
  callApi as call,
  newTestAuth,
  nodeIdentity,
  proxyIdentity,
  type TestAuth,
  userIdentity,
} from "./_testing.ts";

function record(t: TestAuth, over: Partial<WebSessionRecord> = {}): WebSessionRecord {
  const now = t.clock.now().getTime();
  return {
    id: "a".repeat(64),
    user: "alice",
    bearer_sha256: "b".repeat(64),
    ssh_cert: "ssh-ed25519-cert-v01@openssh.com AAAA",
    tls_cert: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
    key_pem: "-----BEGIN PRIVATE KEY-----\nX\n-----END PRIVATE KEY-----\n",
    tls_key_pem: "-----BEGIN PRIVATE KEY-----\nY\n-----END PRIVATE KEY-----\n",
    created: new Date(now).toISOString(),
    expires: new Date(now + 60_000).toISOString(),
    max_expires: new Date(now + 3_600_000).toISOString(),
    ...over,
  };
}

Deno.test("/v1/web/sessions stores, reads and deletes web sessions for the proxy only", async () => {
  await using t = await newTestAuth();
  const proxy = proxyIdentity();
  const r = record(t);
  const path = `/v1/web/sessions/${r.id}`;
  for (const who of [undefined, nodeIdentity(), userIdentity("alice", ["access"])]) {
    assert.equal((await call(t, "PUT", path, who, { session: r })).status, 403);
    assert.equal((await call(t, "GET", path, who)).status, 403);
  }
  assert.equal((await call(t, "PUT", path, proxy, { session: r })).status, 200);
  const got = await call(t, "GET", path, proxy);
  assert.equal(got.status, 200);
  assert.deepEqual((got.body as { session: WebSessionRecord }).session, r);
  assert.equal((await call(t, "DELETE", path, proxy)).status, 200);
  assert.equal((await call(t, "GET", path, proxy)).status, 404);
});

Deno.test("/v1/web/sessions refuses bad ids and records before storage, and expires them", async () => {
  await using t = await newTestAuth();
  const proxy = proxyIdentity();
  const bad = await call(t, "GET", "/v1/web/sessions/..%2Fusers", proxy);
  assert.equal(bad.status, 400);
  const r = record(t);
  const mismatch = await call(t, "PUT", `/v1/web/sessions/${"c".repeat(64)}`, proxy, {
    session: r,
  });
  assert.equal(mismatch.status, 400);
  const late = record(t, { expires: new Date(t.clock.now().getTime() + 7_200_000).toISOString() });
  assert.equal(
    (await call(t, "PUT", `/v1/web/sessions/${r.id}`, proxy, { session: late })).status,
    400,
  );
  assert.equal(
    (await call(t, "PUT", `/v1/web/sessions/${r.id}`, proxy, { session: r })).status,
    200,
  );
  t.clock.advance(61_000);
  assert.equal((await call(t, "GET", `/v1/web/sessions/${r.id}`, proxy)).status, 404);
});

Deno.test("createAuthApiHandler() serves the API to `new Request`, errors with their kind", async () => {
  await using t = await newTestAuth();
  const handle = createAuthApiHandler(t.auth);
  const ping = await handle(new Request("https://auth.invalid/v1/ping"), {
    remoteAddr: "127.0.0.1",
  });
  assert.equal(ping.status, 200);
  assert.equal((await ping.json()).cluster_name, t.auth.clusterName);
  const denied = await handle(
    new Request(`https://auth.invalid/v1/web/sessions/${"a".repeat(64)}`),
    { remoteAddr: "127.0.0.1", caller: userIdentity("alice", ["access"]) },
  );
  assert.equal(denied.status, 403);
  assert.equal((await denied.json()).error.kind, "AccessDenied");
  const bad = await handle(
    new Request("https://auth.invalid/v1/tokens", { method: "POST", body: "{not json" }),
    { remoteAddr: "127.0.0.1", caller: proxyIdentity() },
  );
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json(), {
    error: { kind: "BadParameter", message: "request body is not valid JSON" },
  });
});
