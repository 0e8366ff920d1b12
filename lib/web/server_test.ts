// createWebServer(): routes, answers, limits and logs through its handler (`new Request(…)`,
// createHandlerWeb); what needs a socket (the adapter, connection close, malformed HTTP, the
// listener's client address) over a real TLS listener (startTestWeb).
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { AccessDeniedError, ConnectionProblemError, NotFoundError } from "../errors/mod.ts";
import { createHandlerWeb, FakeAuth, logText, startTestWeb } from "./_testing.ts";
import { UI_CSP } from "./ui.ts";
import type {
  SshLoginResponse,
  UserTokenResponse,
  WebFindResponse,
  WebPingResponse,
} from "./types.ts";

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const unb64 = (value: string) => Buffer.from(value, "base64").toString("utf8");

const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests alice@laptop";
const TLS_KEY = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfake\n" +
  "-----END PUBLIC KEY-----\n";
const PASSWORD = "correct-horse-battery-staple-7";
const TOKEN = "0123456789abcdef0123456789abcdef";

function assertSecurityHeaders(res: Response): void {
  assert.match(res.headers.get("strict-transport-security") ?? "", /max-age=\d+/);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  assert.equal(res.headers.get("referrer-policy"), "no-referrer");
  assert.equal(res.headers.get("cache-control"), "no-store");
}

Deno.test("createWebServer() answers /webapi/ping with Teleport's fields and types", async () => {
  await using t = createHandlerWeb();
  const res = await t.fetch("/webapi/ping");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assertSecurityHeaders(res);
  const body = await res.json() as WebPingResponse;
  assert.equal(body.cluster_name, "example");
  assert.equal(body.server_version, "0.1.0-test");
  assert.equal(body.min_client_version, "0.1.0");
  assert.equal(body.edition, "community");
  assert.equal(body.fips, false);
  assert.equal(body.automatic_upgrades, false);
  assert.deepEqual(body.auto_update, {
    tools_version: "",
    tools_auto_update: false,
    agent_version: "",
    agent_auto_update: false,
    agent_update_jitter_seconds: 0,
  });
  assert.deepEqual(body.auth, {
    type: "local",
    second_factor: "otp",
    preferred_local_mfa: "otp",
    allow_passwordless: false,
    allow_headless: false,
    local: { name: "" },
    has_motd: false,
    load_all_cas: false,
    default_session_ttl: 43_200_000_000_000,
    signature_algorithm_suite: "",
    private_key_policy: "none",
  });
  assert.equal(typeof body.proxy.ssh.dial_timeout, "number");
  assert.equal(body.proxy.ssh.dial_timeout, 30_000_000_000);
  assert.equal(body.proxy.tls_routing_enabled, true);
  assert.equal(body.proxy.ssh.public_addr, "proxy.example.com:3080");
  assert.equal(body.proxy.kube.enabled, false);
  assert.equal(body.proxy.db.postgres_public_addr, "");

  const connector = await t.fetch("/webapi/ping/local");
  assert.equal(connector.status, 200);
  assert.deepEqual(await connector.json(), body);
  const slash = await t.fetch("/webapi/ping/");
  assert.equal(slash.status, 200);
  await slash.body?.cancel();
});

Deno.test("createWebServer() reports no preferred MFA when the second factor is off", async () => {
  const auth = new FakeAuth();
  auth.pingOutcome = {
    cluster_name: "c2",
    server_version: "x",
    auth_preference: { type: "local", second_factor: "off" },
  };
  await using t = createHandlerWeb({ auth });
  const body = await (await t.fetch("/webapi/ping")).json() as WebPingResponse;
  assert.equal(body.auth.second_factor, "off");
  assert.equal(body.auth.preferred_local_mfa, "");
});

Deno.test("createWebServer() answers ping to real curl", async () => {
  await using t = await startTestWeb();
  const out = await new Deno.Command("curl", {
    args: ["-sk", "--max-time", "20", "-w", "\\n%{http_code}", t.url("/webapi/ping")],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  const nl = text.lastIndexOf("\n");
  assert.equal(text.slice(nl + 1), "200");
  const body = JSON.parse(text.slice(0, nl)) as WebPingResponse;
  assert.equal(body.cluster_name, "example");
  assert.equal(body.proxy.tls_routing_enabled, true);
  assert.equal(body.proxy.ssh.dial_timeout, 30_000_000_000);
});

Deno.test("createWebServer() caches auth's ping for 10 s", async () => {
  await using t = createHandlerWeb();
  for (let i = 0; i < 5; i++) await (await t.fetch("/webapi/ping")).body?.cancel();
  await (await t.fetch("/webapi/find")).body?.cancel();
  assert.equal(t.auth.pings.length, 1);
  t.clock.advance(10_000);
  await (await t.fetch("/webapi/ping")).body?.cancel();
  assert.equal(t.auth.pings.length, 2);
});

Deno.test("createWebServer() answers ping with 502 when auth was never reachable", async () => {
  const auth = new FakeAuth();
  auth.pingOutcome = new ConnectionProblemError("Cannot reach auth at 10.0.0.1:3025: refused");
  await using t = createHandlerWeb({ auth });
  const res = await t.fetch("/webapi/ping");
  assert.equal(res.status, 502);
  const body = await res.json() as { error: { message: string } };
  assert.match(body.error.message, /auth unreachable/);
  assert.doesNotMatch(body.error.message, /10\.0\.0\.1/);
  const find = await t.fetch("/webapi/find");
  assert.equal(find.status, 502);
  await find.body?.cancel();
});

Deno.test("createWebServer() answers ping from the cache while auth is unreachable", async () => {
  await using t = createHandlerWeb();
  await (await t.fetch("/webapi/ping")).body?.cancel();
  t.auth.pingOutcome = new ConnectionProblemError("Cannot reach auth: refused");
  t.clock.advance(60_000);
  const res = await t.fetch("/webapi/ping");
  assert.equal(res.status, 200);
  assert.equal((await res.json() as WebPingResponse).cluster_name, "example");
  assert.equal(t.auth.pings.length, 2);
  assert.ok(t.records.some((r) => r.level === "warn" && /Cannot ping the auth/.test(r.message)));
});

Deno.test("createWebServer() answers /webapi/find without auth details and without limits", async () => {
  await using t = createHandlerWeb({ loginRateLimit: { burst: 1, perMinute: 1 } });
  for (let i = 0; i < 20; i++) {
    const res = await t.fetch("/webapi/find");
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  const body = await (await t.fetch("/webapi/find")).json() as WebFindResponse;
  assert.deepEqual(body.auth, { signature_algorithm_suite: "" });
  assert.deepEqual(Object.keys(body).sort(), [
    "auth",
    "auto_update",
    "cluster_name",
    "edition",
    "fips",
    "min_client_version",
    "proxy",
    "server_version",
  ]);
  assert.equal(body.cluster_name, "example");
  assert.equal(body.proxy.ssh.tunnel_listen_addr, "0.0.0.0:3024");
});

Deno.test("createWebServer() logs in through /webapi/ssh/certs with base64 keys", async () => {
  await using t = createHandlerWeb();
  const res = await t.fetchJson("/webapi/ssh/certs", {
    user: "alice",
    password: PASSWORD,
    otp_token: "123456",
    ssh_pub_key: b64(SSH_KEY),
    tls_pub_key: b64(TLS_KEY),
    ttl: 3_600_000_000_000,
  });
  assert.equal(res.status, 200);
  assertSecurityHeaders(res);
  const body = await res.json() as SshLoginResponse;
  assert.deepEqual(t.auth.logins, [{
    user: "alice",
    password: PASSWORD,
    otp_token: "123456",
    ssh_public_key: SSH_KEY,
    tls_public_key: TLS_KEY,
    ttl_ms: 3_600_000,
    remote_addr: "127.0.0.1",
  }]);
  assert.equal(body.username, "alice");
  assert.equal(unb64(body.cert!), "ssh-ed25519-cert-v01@openssh.com AAAAcert alice\n");
  assert.match(unb64(body.tls_cert!), /TLSCERT/);
  assert.equal(body.host_signers.length, 1);
  assert.equal(body.host_signers[0]!.domain_name, "example");
  assert.deepEqual(body.host_signers[0]!.checking_keys.map(unb64), [
    "ssh-ed25519 AAAAhostca host-ca",
  ]);
  assert.match(unb64(body.host_signers[0]!.tls_certs[0]!), /HOSTCA/);
});

Deno.test("createWebServer() asks for 12 h certificates when ttl is absent", async () => {
  await using t = createHandlerWeb();
  const res = await t.fetchJson("/webapi/ssh/certs", {
    user: "alice",
    password: PASSWORD,
    pub_key: b64(SSH_KEY),
  });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  assert.equal(t.auth.logins[0]!.ttl_ms, 12 * 3_600_000);
  assert.equal(t.auth.logins[0]!.ssh_public_key, SSH_KEY);
  assert.equal(t.auth.logins[0]!.tls_public_key, undefined);
});

Deno.test("createWebServer() refuses malformed login bodies with 4xx and clear messages", async (t) => {
  await using w = createHandlerWeb({ loginRateLimit: { burst: 100, perMinute: 100 } });
  const cases: Array<[string, RequestInit, number, RegExp]> = [
    [
      "bad JSON",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{not json",
      },
      400,
      /Cannot log in: the request body is not valid JSON/,
    ],
    [
      "an array",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "[]",
      },
      400,
      /must be a JSON object/,
    ],
    [
      "an empty body",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
      },
      400,
      /body is empty/,
    ],
    [
      "a form body",
      {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "user=alice",
      },
      415,
      /application\/json/,
    ],
    [
      "pub_key with ssh_pub_key",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          user: "alice",
          password: PASSWORD,
          pub_key: b64(SSH_KEY),
          ssh_pub_key: b64(SSH_KEY),
        }),
      },
      400,
      /"pub_key" cannot be combined/,
    ],
    [
      "a key that is not base64",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: "alice", password: PASSWORD, ssh_pub_key: SSH_KEY }),
      },
      400,
      /"ssh_pub_key" must be base64/,
    ],
    [
      "no key",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: "alice", password: PASSWORD }),
      },
      400,
      /give a public key/,
    ],
    [
      "a fractional ttl",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          user: "alice",
          password: PASSWORD,
          ssh_pub_key: b64(SSH_KEY),
          ttl: 1.5,
        }),
      },
      400,
      /"ttl" must be a non-negative integer/,
    ],
    [
      "a body over 64 KiB",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: "a".repeat(70_000) }),
      },
      413,
      /larger than 65536 bytes/,
    ],
  ];
  for (const [name, init, status, message] of cases) {
    await t.step(`refuses ${name}`, async () => {
      const res = await w.fetch("/webapi/ssh/certs", init);
      assert.equal(res.status, status);
      const body = await res.json() as { error: { message: string } };
      assert.match(body.error.message, message);
      assert.ok(!body.error.message.includes(PASSWORD));
    });
  }
  assert.equal(w.auth.logins.length, 0);
});

Deno.test("createWebServer() throttles logins per IP with 429 and refills with time", async () => {
  await using t = createHandlerWeb({ loginRateLimit: { burst: 3, perMinute: 6 } });
  const attempt = () =>
    t.fetchJson("/webapi/ssh/certs", {
      user: "alice",
      password: PASSWORD,
      ssh_pub_key: b64(SSH_KEY),
    });
  for (let i = 0; i < 3; i++) {
    const res = await attempt();
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  const refused = await attempt();
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "10");
  assert.deepEqual(await refused.json(), {
    error: {
      message: "Cannot log in: too many attempts from 127.0.0.1; wait a minute and try again",
    },
  });
  assert.equal(t.auth.logins.length, 3);
  t.clock.advance(10_000);
  const again = await attempt();
  assert.equal(again.status, 200);
  await again.body?.cancel();
  const refusedAgain = await attempt();
  assert.equal(refusedAgain.status, 429);
  await refusedAgain.body?.cancel();
});

Deno.test("createWebServer() uses the address the listener reports for limits and auth", async () => {
  await using t = await startTestWeb({
    loginRateLimit: { burst: 1, perMinute: 1 },
    connectionInfo: { remoteAddr: "::ffff:203.0.113.7" },
  });
  const body = { user: "alice", password: PASSWORD, ssh_pub_key: b64(SSH_KEY) };
  assert.equal((await t.fetchJson("/webapi/ssh/certs", body)).status, 200);
  assert.equal(t.auth.logins[0]!.remote_addr, "203.0.113.7");
  const refused = await t.fetchJson("/webapi/ssh/certs", body);
  assert.equal(refused.status, 429);
  assert.match((await refused.json()).error.message, /too many attempts from 203\.0\.113\.7;/);
});

Deno.test("createWebServer() passes auth's access denied through as 403", async () => {
  const auth = new FakeAuth();
  auth.loginOutcome = new AccessDeniedError("invalid user name, password or second factor");
  await using t = createHandlerWeb({ auth });
  const res = await t.fetchJson("/webapi/ssh/certs", {
    user: "alice",
    password: PASSWORD,
    ssh_pub_key: b64(SSH_KEY),
  });
  assert.equal(res.status, 403);
  assert.deepEqual(await res.json(), {
    error: { message: "invalid user name, password or second factor" },
  });
});

Deno.test("createWebServer() hides the details of unexpected failures", async () => {
  const auth = new FakeAuth();
  auth.loginOutcome = new Error("database exploded at /var/lib/secret");
  await using t = createHandlerWeb({ auth });
  const res = await t.fetchJson("/webapi/ssh/certs", {
    user: "alice",
    password: PASSWORD,
    ssh_pub_key: b64(SSH_KEY),
  });
  assert.equal(res.status, 500);
  const body = await res.json() as { error: { message: string } };
  assert.equal(body.error.message, "Cannot log in: internal error, see the proxy log");
  assert.ok(t.records.some((r) => r.level === "error"));
});

Deno.test("createWebServer() forwards /webapi/host/credentials with the client address", async () => {
  await using t = createHandlerWeb();
  const req = {
    token: TOKEN,
    hostID: "6f1c0c1e-0000-4000-8000-000000000001",
    node_name: "node-1",
    role: "Node",
    additional_principals: ["node-1.example.com"],
    dns_names: [],
    public_ssh_key: SSH_KEY,
    public_tls_key: TLS_KEY,
  };
  const res = await t.fetchJson("/webapi/host/credentials", req);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), t.auth.registerOutcome);
  assert.deepEqual(t.auth.registers, [{ ...req, remote_addr: "127.0.0.1" }]);

  // Teleport's Go client sends the keys as base64 ([]byte).
  const goStyle = await t.fetchJson("/webapi/host/credentials", {
    ...req,
    public_ssh_key: b64(SSH_KEY),
    public_tls_key: b64(TLS_KEY),
  });
  assert.equal(goStyle.status, 200);
  await goStyle.body?.cancel();
  assert.equal(t.auth.registers[1]!.public_ssh_key, SSH_KEY);
  assert.equal(t.auth.registers[1]!.public_tls_key, TLS_KEY);

  t.auth.registerOutcome = new AccessDeniedError("Cannot join: the token is not valid");
  const denied = await t.fetchJson("/webapi/host/credentials", req);
  assert.equal(denied.status, 403);
  await denied.body?.cancel();

  const missing = await t.fetchJson("/webapi/host/credentials", { ...req, hostID: undefined });
  assert.equal(missing.status, 400);
  assert.match((await missing.json()).error.message, /"hostID" is required/);
  assert.ok(!logText(t.records).includes(TOKEN), "the join token reached the log");
});

Deno.test("createWebServer() throttles joins per IP", async () => {
  await using t = createHandlerWeb({ loginRateLimit: { burst: 1, perMinute: 1 } });
  const body = {
    token: TOKEN,
    hostID: "h1",
    node_name: "n1",
    role: "Node",
    public_ssh_key: SSH_KEY,
    public_tls_key: TLS_KEY,
  };
  assert.equal((await t.fetchJson("/webapi/host/credentials", body)).status, 200);
  const refused = await t.fetchJson("/webapi/host/credentials", body);
  assert.equal(refused.status, 429);
  assert.match((await refused.json()).error.message, /Cannot join the cluster: too many attempts/);
});

Deno.test("createWebServer() serves the web UI, invite and reset links included", async () => {
  await using t = createHandlerWeb();
  for (
    const path of ["/web", "/web/", "/web/login", `/web/invite/${TOKEN}`, `/web/reset/${TOKEN}`]
  ) {
    const res = await t.fetch(path);
    assert.equal(res.status, 200, path);
    assertSecurityHeaders(res);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(res.headers.get("content-security-policy"), UI_CSP);
    const html = await res.text();
    assert.ok(!html.includes(TOKEN), "the token is not written into the page");
    assert.match(html, /<script type="module" src="\/web\/app\/main\.js">/);
  }
  const asset = await t.fetch("/web/app/vendor/xterm.mjs");
  assert.equal(asset.status, 200);
  assert.equal(asset.headers.get("x-content-type-options"), "nosniff");
  assert.equal(asset.headers.get("cache-control"), "no-cache");
  const etag = asset.headers.get("etag") ?? "";
  assert.match(etag, /^"/);
  await asset.body?.cancel();
  const again = await t.fetch("/web/app/vendor/xterm.mjs", { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
  await again.body?.cancel();
});

Deno.test("createWebServer() describes and uses invite tokens", async () => {
  await using t = createHandlerWeb();
  const res = await t.fetch(`/webapi/users/password/token/${TOKEN}`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json() as UserTokenResponse, {
    user: "alice",
    kind: "invite",
    expires: "2026-01-02T00:00:00.000Z",
    otpauth_uri: "otpauth://totp/example:alice?secret=JBSWY3DPEHPK3PXP&issuer=example",
    otp_secret: "JBSWY3DPEHPK3PXP",
    second_factor_required: true,
  });
  assert.deepEqual(t.auth.tokenLookups, [TOKEN]);

  const put = await t.fetchJson("/webapi/users/password/token", {
    token: TOKEN,
    password: PASSWORD,
    second_factor_token: "654321",
  }, "PUT");
  assert.equal(put.status, 200);
  assert.deepEqual(await put.json(), { user: "alice" });
  assert.deepEqual(t.auth.passwordChanges, [{
    token: TOKEN,
    password: PASSWORD,
    second_factor_token: "654321",
  }]);
  const log = logText(t.records);
  assert.ok(!log.includes(TOKEN), "the token reached the log");
  assert.ok(!log.includes(PASSWORD), "the password reached the log");
});

Deno.test("createWebServer() refuses malformed and unknown tokens", async () => {
  await using t = createHandlerWeb();
  const bad = await t.fetch("/webapi/users/password/token/not-a-token");
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /32 hexadecimal characters/);
  const badPut = await t.fetchJson("/webapi/users/password/token", {
    token: "XYZ",
    password: PASSWORD,
  }, "PUT");
  assert.equal(badPut.status, 400);
  await badPut.body?.cancel();
  assert.equal(t.auth.tokenLookups.length, 0);
  assert.equal(t.auth.passwordChanges.length, 0);

  t.auth.tokenOutcome = new NotFoundError(
    "Cannot use token ****cdef: it does not exist or expired",
  );
  const unknown = await t.fetch(`/webapi/users/password/token/${TOKEN}`);
  assert.equal(unknown.status, 403);
  assert.deepEqual(await unknown.json(), {
    error: { message: "Cannot use token ****cdef: it does not exist or expired" },
  });
  t.auth.changePasswordOutcome = new AccessDeniedError("Cannot set password: wrong TOTP code");
  const wrongCode = await t.fetchJson("/webapi/users/password/token", {
    token: TOKEN,
    password: PASSWORD,
    second_factor_token: "000000",
  }, "PUT");
  assert.equal(wrongCode.status, 403);
  assert.match((await wrongCode.json()).error.message, /wrong TOTP code/);
});

Deno.test("createWebServer() serves a landing page with the cluster name", async () => {
  await using t = createHandlerWeb();
  for (const path of ["/"]) {
    const res = await t.fetch(path);
    assert.equal(res.status, 200);
    assertSecurityHeaders(res);
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    const html = await res.text();
    assert.match(html, /example/);
    assert.match(html.replace(/<[^>]+>/g, ""), /tsh login --proxy=proxy\.example\.com:3080 /);
  }
});

Deno.test("createWebServer() answers unknown paths with 404 and wrong methods with 405", async () => {
  await using t = createHandlerWeb();
  const res = await t.fetch("/webapi/nope");
  assert.equal(res.status, 404);
  assertSecurityHeaders(res);
  assert.deepEqual(await res.json(), { error: { message: "Cannot find /webapi/nope" } });
  const post = await t.fetchJson("/webapi/ping", {});
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  assert.match((await post.json()).error.message, /method POST is not allowed/);
  const get = await t.fetch("/webapi/ssh/certs");
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST");
  await get.body?.cancel();
});

Deno.test("createWebServer() never logs passwords, OTP codes or tokens", async () => {
  const auth = new FakeAuth();
  await using t = createHandlerWeb({ auth, loginRateLimit: { burst: 3, perMinute: 1 } });
  const login = () =>
    t.fetchJson("/webapi/ssh/certs", {
      user: "alice",
      password: PASSWORD,
      otp_token: "918273",
      ssh_pub_key: b64(SSH_KEY),
    });
  await (await login()).body?.cancel(); // success
  auth.loginOutcome = new AccessDeniedError("invalid user name, password or second factor");
  await (await login()).body?.cancel(); // refused by auth
  auth.loginOutcome = new Error("boom");
  await (await login()).body?.cancel(); // internal error
  await (await login()).body?.cancel(); // throttled
  await (await t.fetch(`/web/invite/${TOKEN}`)).body?.cancel();
  await (await t.fetch(`/webapi/users/password/token/${TOKEN}/x`)).body?.cancel();
  assert.ok(t.records.length > 0);
  const log = logText(t.records);
  assert.ok(!log.includes(PASSWORD), "the password reached the log");
  assert.ok(!log.includes("918273"), "the OTP code reached the log");
  assert.ok(!log.includes(TOKEN), "a token reached the log");
  assert.match(log, /alice/);
});

Deno.test("createWebServer() closes each connection after its response", async () => {
  await using t = await startTestWeb();
  const res = await t.fetch("/webapi/find");
  assert.equal(res.headers.get("connection"), "close");
  await res.body?.cancel();
  for (let i = 0; i < 5; i++) {
    const again = await t.fetch("/webapi/find");
    assert.equal(again.status, 200);
    await again.body?.cancel();
  }
});

Deno.test("WebServer.close() lets a request in flight finish and refuses new ones", async () => {
  await using t = await startTestWeb();
  const called = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  t.auth.loginOutcome = async () => {
    called.resolve();
    await release.promise;
    return {
      sshCert: "ssh-ed25519-cert-v01@openssh.com AAAA\n",
      tlsCaCerts: [],
      hostCaKeys: [],
      userCaKeys: [],
      expires: "2026-01-01T12:00:00.000Z",
    };
  };
  const idle = await Deno.connectTls({ hostname: "127.0.0.1", port: t.port, caCerts: [t.caPem] });
  await idle.handshake();
  const inflight = t.fetchJson("/webapi/ssh/certs", {
    user: "alice",
    password: PASSWORD,
    ssh_pub_key: b64(SSH_KEY),
  });
  await called.promise;
  assert.ok(t.web.connections >= 1);
  const closed = t.web.close();
  release.resolve();
  // The connection without a request is dropped (an error or EOF, never an answer).
  const read = await idle.read(new Uint8Array(16)).catch(() => null);
  assert.equal(read, null);
  idle.close();
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.equal(
    unb64((await res.json() as SshLoginResponse).cert!),
    "ssh-ed25519-cert-v01@openssh.com AAAA\n",
  );
  await closed;
  assert.equal(t.web.connections, 0);
  await assert.rejects(() => t.fetch("/webapi/find"));
});

Deno.test("createWebServer() closes a connection that sends no request in time", async () => {
  await using t = await startTestWeb({ extra: { headersTimeoutMs: 50 } });
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port: t.port, caCerts: [t.caPem] });
  await conn.write(new TextEncoder().encode("GET /webapi/ping HTTP/1.1\r\n"));
  assert.equal(await conn.read(new Uint8Array(16)).catch(() => null), null);
  conn.close();
});

Deno.test("createWebServer() answers malformed HTTP with 400", async () => {
  await using t = await startTestWeb();
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port: t.port, caCerts: [t.caPem] });
  await conn.write(new TextEncoder().encode("NOT HTTP AT ALL\r\n\r\n"));
  const buf = new Uint8Array(256);
  const n = await conn.read(buf);
  assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 400 /);
  conn.close();
});

Deno.test("createWebServer() limits ping, find and pages per address, and logs it once", async () => {
  await using t = createHandlerWeb({ extra: { publicRateLimit: { burst: 3, perMinute: 1 } } });
  for (const path of ["/webapi/ping", "/webapi/find", "/web"]) {
    const res = await t.fetch(path);
    assert.equal(res.status, 200, path);
    await res.body?.cancel();
  }
  for (let i = 0; i < 5; i++) {
    const res = await t.fetch("/webapi/ping");
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get("retry-after")) >= 1);
    await res.body?.cancel();
  }
  assert.equal(t.records.filter((r) => /Throttled/.test(r.message)).length, 1);
});

Deno.test("createWebServer() throttles the UI page but not its assets (one page load asks for many)", async () => {
  await using t = createHandlerWeb({ extra: { publicRateLimit: { burst: 1, perMinute: 1 } } });
  const page = await t.fetch("/web");
  assert.equal(page.status, 200);
  await page.body?.cancel();
  for (let i = 0; i < 30; i++) {
    const res = await t.fetch(
      ["/web/app/main.js", "/web/app/app.css", "/web/app/vendor/xterm.mjs"][i % 3]!,
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  const again = await t.fetch("/web/cluster/x/resources");
  assert.equal(again.status, 429);
  await again.body?.cancel();
  const unknown = await t.fetch("/web/app/nope.js");
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
});

Deno.test("createWebServer() answers /webapi/hostca with every trusted host CA key and certificate", async () => {
  const keys = ["ssh-ed25519 AAAAold", "ssh-ed25519 AAAAnew"];
  const certs = ["-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n"];
  await using t = createHandlerWeb({
    extra: { hostCertAuthority: () => Promise.resolve({ sshKeys: keys, tlsCerts: certs }) },
  });
  const res = await t.fetch("/webapi/hostca");
  assert.equal(res.status, 200);
  const body = await res.json() as {
    host_signers: Array<{ domain_name: string; checking_keys: string[]; tls_certs: string[] }>;
  };
  assert.equal(body.host_signers.length, 1);
  const decode = (s: string) => Buffer.from(s, "base64").toString("utf8");
  assert.deepEqual(body.host_signers[0]!.checking_keys.map(decode), keys);
  assert.deepEqual(body.host_signers[0]!.tls_certs.map(decode), certs);
  assert.equal(body.host_signers[0]!.domain_name, "example");

  await using bare = createHandlerWeb();
  const missing = await bare.fetch("/webapi/hostca");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});
