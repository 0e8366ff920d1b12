// The web API's handler called with `new Request(…)`: no sockets (the adapter has its own tests
// in lib/net, and server_test.ts runs the same API over TLS).
import assert from "node:assert/strict";
import { createHandlerWeb } from "./_testing.ts";
import { MAX_BODY_BYTES } from "./http.ts";

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

Deno.test("WebServer.handler() answers ping without sockets, with the security headers", async () => {
  await using t = createHandlerWeb();
  const res = await t.request("/webapi/ping");
  assert.equal(res.status, 200);
  assert.equal((await res.json()).cluster_name, "example");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.match(res.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
});

Deno.test("WebServer.handler() serves /v1/webapi/… as /webapi/…", async () => {
  await using t = createHandlerWeb();
  assert.equal((await t.request("/v1/webapi/find")).status, 200);
  assert.equal((await t.request("/v1/webapi/nothing")).status, 404);
});

Deno.test("WebServer.handler() maps unknown paths to 404 and wrong methods to 405", async () => {
  await using t = createHandlerWeb();
  const missing = await t.request("/webapi/nothing");
  assert.equal(missing.status, 404);
  assert.match((await missing.json()).error.message, /^Cannot find \/webapi\/nothing/);
  const wrong = await t.request("/webapi/ping", { method: "DELETE" });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET, HEAD");
  await wrong.body?.cancel();
});

Deno.test("WebServer.handler() refuses a cross-site login with 403 before reading the body", async () => {
  await using t = createHandlerWeb();
  const res = await t.request(
    "/webapi/ssh/certs",
    json({ user: "alice" }, { origin: "https://evil.example" }),
  );
  assert.equal(res.status, 403);
  assert.match((await res.json()).error.message, /cross-site requests are refused/);
  assert.equal(t.auth.logins.length, 0);
});

Deno.test("WebServer.handler() refuses a body by its Content-Length without reading it", async () => {
  await using t = createHandlerWeb();
  let pulled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled = true;
      c.close();
    },
  }, { highWaterMark: 0 });
  const res = await t.request("/webapi/ssh/certs", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-length": String(MAX_BODY_BYTES + 1),
    },
    body,
    duplex: "half",
  } as RequestInit);
  assert.equal(res.status, 413);
  assert.equal(pulled, false);
});

Deno.test("WebServer.handler() refuses a streamed body once it passes the limit", async () => {
  await using t = createHandlerWeb();
  const res = await t.request("/webapi/ssh/certs", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "x".repeat(MAX_BODY_BYTES + 1),
  });
  assert.equal(res.status, 413);
});

Deno.test("WebServer.handler() throttles logins per client address", async () => {
  await using t = createHandlerWeb({ loginRateLimit: { burst: 1, perMinute: 1 } });
  const bad = json({ user: "alice" });
  assert.equal((await t.request("/webapi/ssh/certs", bad, "127.0.0.2")).status, 400);
  const limited = await t.request("/webapi/ssh/certs", bad, "127.0.0.2");
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  await limited.body?.cancel();
  assert.equal((await t.request("/webapi/ssh/certs", bad, "127.0.0.3")).status, 400);
});
