// Web sessions through the handler (`new Request(…)`): cookie + bearer, renewal, logout.
import assert from "node:assert/strict";
import { createHandlerWeb, type HandlerWeb } from "./_testing.ts";
import { bearerOf, cookieValue, SESSION_COOKIE } from "./sessions.ts";

const LOGIN = {
  user: "alice",
  pass: "correct-horse-battery-staple-7",
  second_factor_token: "123456",
};

async function login(t: HandlerWeb): Promise<{ cookie: string; token: string; res: Response }> {
  const res = await t.request("/v1/webapi/sessions/web", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(LOGIN),
  });
  assert.equal(res.status, 200);
  const setCookie = res.headers.getSetCookie()[0]!;
  const id = cookieValue(setCookie.split(";")[0]!, SESSION_COOKIE)!;
  const body = await res.clone().json();
  return { cookie: `${SESSION_COOKIE}=${id}`, token: body.token, res };
}

const call = (t: HandlerWeb, path: string, method: string, headers: Record<string, string>) =>
  t.request(path, { method, headers });

Deno.test("POST /webapi/sessions/web sets a __Host- cookie and answers a bearer token", async () => {
  await using t = createHandlerWeb();
  const { res, cookie, token } = await login(t);
  const setCookie = res.headers.getSetCookie()[0]!;
  assert.match(setCookie, /^__Host-session=[0-9a-f]{64}; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
  const body = await res.json();
  assert.equal(body.type, "Bearer");
  assert.equal(body.user, "alice");
  assert.match(body.token, /^[0-9a-f]{64}$/);
  assert.ok(!cookie.includes(token), "the cookie value is not the bearer token");
  assert.equal(body.expires_in, 30 * 60);
  assert.equal(body.max_expires_in, 12 * 3600);
  // Same login as tsh: password, OTP, 12 h certificates, audited as a web login.
  const sent = t.auth.logins[0]!;
  assert.equal(sent.password, LOGIN.pass);
  assert.equal(sent.otp_token, "123456");
  assert.equal(sent.method, "web");
  assert.equal(sent.ttl_ms, 12 * 3_600_000);
  assert.equal(sent.remote_addr, "127.0.0.1");
  // Auth's backend keeps the keys; the token only as its hash.
  const stored = [...t.auth.webSessions.values()][0]!;
  assert.equal(stored.user, "alice");
  assert.ok(!JSON.stringify(stored).includes(token));
  assert.match(stored.key_pem, /BEGIN PRIVATE KEY/);
  assert.ok(!JSON.stringify(body).includes("PRIVATE KEY"));
});

Deno.test("POST /webapi/sessions/web/renew needs the cookie and the bearer token together", async () => {
  await using t = createHandlerWeb();
  const a = await login(t);
  const b = await login(t);
  const path = "/v1/webapi/sessions/web/renew";
  const cases: Array<[string, Record<string, string>]> = [
    ["neither", {}],
    ["cookie only", { cookie: a.cookie }],
    ["bearer only", { authorization: `Bearer ${a.token}` }],
    ["another session's bearer", { cookie: a.cookie, authorization: `Bearer ${b.token}` }],
    ["a malformed cookie", {
      cookie: `${SESSION_COOKIE}=../x`,
      authorization: `Bearer ${a.token}`,
    }],
  ];
  for (const [what, headers] of cases) {
    const res = await call(t, path, "POST", headers);
    assert.equal(res.status, 401, what);
    assert.match((await res.json()).error.message, /^Cannot renew the web session: /, what);
  }
  const ok = await call(t, path, "POST", { cookie: a.cookie, authorization: `Bearer ${a.token}` });
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).token, a.token);
});

Deno.test("POST /webapi/sessions/web/renew extends while used, never past the certificates", async () => {
  await using t = createHandlerWeb();
  const s = await login(t);
  const headers = { cookie: s.cookie, authorization: `Bearer ${s.token}` };
  const renew = () => call(t, "/webapi/sessions/web/renew", "POST", headers);
  // Used every 20 minutes: stays alive past the 30 min idle timeout, up to 11 h 40 in.
  for (let i = 0; i < 34; i++) {
    t.clock.advance(20 * 60_000);
    assert.equal((await renew()).status, 200);
  }
  t.clock.advance(20 * 60_000);
  // The renewal at 11 h 40 reaches the 12 h certificate end and stops there.
  const late = await renew();
  assert.equal(late.status, 200);
  assert.equal((await late.json()).expires_in, 20 * 60);
  t.clock.advance(20 * 60_000);
  assert.equal((await renew()).status, 401);
});

Deno.test("a web session ends after the idle timeout without renewal", async () => {
  await using t = createHandlerWeb();
  const s = await login(t);
  t.clock.advance(30 * 60_000);
  const res = await call(t, "/webapi/sessions/web/renew", "POST", {
    cookie: s.cookie,
    authorization: `Bearer ${s.token}`,
  });
  assert.equal(res.status, 401);
  assert.match((await res.json()).error.message, /expired; log in again/);
});

Deno.test("DELETE /webapi/sessions/web logs out everywhere and clears the cookie", async () => {
  await using t = createHandlerWeb();
  const s = await login(t);
  const headers = { cookie: s.cookie, authorization: `Bearer ${s.token}` };
  const crossSite = await call(t, "/webapi/sessions/web", "DELETE", {
    ...headers,
    origin: "https://evil.example",
  });
  assert.equal(crossSite.status, 403);
  const out = await call(t, "/webapi/sessions/web", "DELETE", headers);
  assert.equal(out.status, 200);
  assert.match(out.headers.getSetCookie()[0]!, /^__Host-session=; .*Max-Age=0/);
  assert.equal(t.auth.webSessions.size, 0);
  assert.equal((await call(t, "/webapi/sessions/web/renew", "POST", headers)).status, 401);
});

Deno.test("POST /webapi/sessions/web passes auth's refusal through and validates the body", async () => {
  await using t = createHandlerWeb();
  t.auth.loginOutcome = new (await import("../errors/mod.ts")).AccessDeniedError(
    "invalid username, password or second factor",
  );
  const res = await t.request("/webapi/sessions/web", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(LOGIN),
  });
  assert.equal(res.status, 403);
  assert.equal((await res.json()).error.message, "invalid username, password or second factor");
  assert.equal(res.headers.getSetCookie().length, 0);
  const bad = await t.request("/webapi/sessions/web", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: "alice" }),
  });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /field "pass"/);
});

Deno.test("bearerOf() and cookieValue() read only well-formed headers", () => {
  assert.equal(bearerOf("Bearer abc"), "abc");
  assert.equal(bearerOf("Basic abc"), undefined);
  assert.equal(bearerOf(null), undefined);
  assert.equal(cookieValue("a=1; __Host-session=xyz; b=2", SESSION_COOKIE), "xyz");
  assert.equal(cookieValue("session=xyz", SESSION_COOKIE), undefined);
});
