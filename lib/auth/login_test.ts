/**
 * Local login, invite/reset tokens with TOTP enrollment, lockout and audit, on an
 * AuthServer with a memory backend and a FakeClock. Codes come from npm:otpauth, as an
 * authenticator app would compute them from the enrollment secret.
 */
import assert from "node:assert/strict";
import * as OTPAuth from "otpauth";
import { generateSshKeyPair, parseSshCertificate } from "../ca/mod.ts";
import type { FakeClock } from "../clock/mod.ts";
import { isKind } from "../errors/mod.ts";
import type { AuditEvent } from "../events/mod.ts";
import { testLogger } from "../log/mod.ts";
import type { ProxyResource, ServerResource, User } from "../resource/mod.ts";
import {
  ACCOUNT_LOCK_INTERVAL_MS,
  type AuthServer,
  LOGIN_FAILED_MESSAGE,
  MAX_LOGIN_ATTEMPTS,
  MAX_USER_LOGIN_FAILURES,
  scryptHasher,
} from "./mod.ts";
import {
  newTestAuth,
  nodeIdentity,
  proxyIdentity,
  type TestAuth,
  userIdentity,
} from "./_testing.ts";

const PASSWORD = "correct horse battery staple";

const alice: User = {
  kind: "user",
  version: "v2",
  metadata: { name: "alice" },
  spec: { roles: ["access"], traits: { logins: ["alice", "root"] } },
};

/** The code an authenticator app shows at the clock's time (`steps` periods later). */
function codeAt(secret: string, clock: FakeClock, steps = 0): string {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) }).generate({
    timestamp: clock.now().getTime() + steps * 30_000,
  });
}

/** Moves the clock to 1 s into the next 30 s step, so steps are predictable. */
function nextStep(clock: FakeClock): void {
  clock.advance(30_000 - (clock.now().getTime() % 30_000) + 1_000);
}

/** Creates alice and completes her invite; returns her TOTP secret (if one was enrolled). */
async function enroll(t: TestAuth, user: User = alice): Promise<string | undefined> {
  const { token } = await t.auth.createUser(user);
  const details = await t.auth.getUserTokenDetails(token.token);
  const secret = details.totp?.secret;
  nextStep(t.clock);
  await t.auth.changePasswordWithToken(
    token.token,
    PASSWORD,
    secret === undefined ? undefined : codeAt(secret, t.clock),
  );
  nextStep(t.clock); // the enrollment code's step is used up
  return secret;
}

let sshKey: string | undefined;
async function login(
  auth: AuthServer,
  o: { user?: string; password?: string; otpToken?: string; remoteAddr?: string } = {},
) {
  sshKey ??= (await generateSshKeyPair("ed25519")).authorizedKey;
  return await auth.authenticateSshUser({
    user: o.user ?? "alice",
    password: o.password ?? PASSWORD,
    sshPublicKey: sshKey,
    ttlMs: 3_600_000,
    ...(o.otpToken === undefined ? {} : { otpToken: o.otpToken }),
    ...(o.remoteAddr === undefined ? {} : { remoteAddr: o.remoteAddr }),
  });
}

const refusedGenerically = (err: unknown) =>
  isKind(err, "AccessDenied") && (err as Error).message === LOGIN_FAILED_MESSAGE;
async function loginEvents(t: TestAuth): Promise<AuditEvent[]> {
  const { events } = await t.auth.searchEvents({
    from: new Date(0),
    to: new Date(t.clock.now().getTime() + 1),
    types: ["user.login"],
  });
  return events;
}

Deno.test("getUserTokenDetails() offers a required TOTP device when second_factor is otp", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const { token } = await t.auth.createUser(alice);
  assert.equal("totp" in token, false, "tctl never sees the TOTP secret");
  const details = await t.auth.getUserTokenDetails(token.token);
  assert.equal(details.user, "alice");
  assert.equal(details.kind, "invite");
  assert.equal(details.expires, token.expires);
  assert.equal(details.totp?.required, true);
  assert.match(details.totp!.secret, /^[A-Z2-7]{32}$/);
  assert.equal(
    details.totp!.uri,
    `otpauth://totp/example:alice?secret=${
      details.totp!.secret
    }&issuer=example&algorithm=SHA1&digits=6&period=30`,
  );
  const invalid = /: the invite or reset token is invalid or has expired$/;
  await assert.rejects(t.auth.getUserTokenDetails("0123456789abcdef0123456789abcdef"), invalid);
  await assert.rejects(t.auth.getUserTokenDetails("../../etc"), invalid);
  t.clock.advance(3_600_001);
  await assert.rejects(t.auth.getUserTokenDetails(token.token), invalid);
});

Deno.test("changePasswordWithToken() keeps the token when the TOTP code is missing or wrong", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const { token } = await t.auth.createUser(alice);
  const { totp } = await t.auth.getUserTokenDetails(token.token);
  const secret = totp!.secret;
  nextStep(t.clock);
  await assert.rejects(
    t.auth.changePasswordWithToken(token.token, PASSWORD),
    (e) => isKind(e, "AccessDenied") && /second factor is required/.test((e as Error).message),
  );
  await assert.rejects(
    t.auth.changePasswordWithToken(token.token, PASSWORD, codeAt(secret, t.clock, 3)),
    (e) => isKind(e, "AccessDenied") && /code is invalid/.test((e as Error).message),
  );
  await assert.rejects(
    t.auth.changePasswordWithToken(token.token, PASSWORD, "12345x"),
    (e) => isKind(e, "AccessDenied"),
  );
  // Still usable after the failures: the user can retry.
  assert.equal(
    await t.auth.changePasswordWithToken(token.token, PASSWORD, codeAt(secret, t.clock)),
    "alice",
  );
  const device = await t.auth.users.getTotpDevice("alice");
  assert.equal(device?.secret, secret);
  // Single use.
  await assert.rejects(
    t.auth.changePasswordWithToken(token.token, PASSWORD, codeAt(secret, t.clock)),
    /invalid or has expired/,
  );
  await assert.rejects(t.auth.getUserTokenDetails(token.token), /invalid or has expired/);
  // The enrollment code cannot be replayed to log in.
  await assert.rejects(login(t.auth, { otpToken: codeAt(secret, t.clock) }), refusedGenerically);
  nextStep(t.clock);
  const certs = await login(t.auth, { otpToken: codeAt(secret, t.clock) });
  assert.ok(certs.sshCert);
});

Deno.test("authenticateSshUser() issues user certificates for password and TOTP", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const secret = (await enroll(t))!;
  const certs = await login(t.auth, { otpToken: codeAt(secret, t.clock) });
  const cert = parseSshCertificate(certs.sshCert!);
  assert.equal(cert.certType, "user");
  assert.equal(cert.keyId, "alice");
  assert.deepEqual(cert.principals, ["alice", "root"]);
  assert.ok("permit-pty" in cert.extensions);
  assert.ok("teleport-roles" in cert.extensions);
  assert.equal(certs.tlsCaCerts.length, 1);
  assert.equal(certs.hostCaKeys.length, 1);
  assert.equal(certs.tlsCert, undefined);
});

Deno.test("authenticateSshUser() refuses a replayed code and accepts one step of drift", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const secret = (await enroll(t))!;
  const code = codeAt(secret, t.clock);
  await login(t.auth, { otpToken: code });
  await assert.rejects(login(t.auth, { otpToken: code }), refusedGenerically, "replay");
  // The previous step's code is within the window but older than the used one: refused.
  await assert.rejects(
    login(t.auth, { otpToken: codeAt(secret, t.clock, -1) }),
    refusedGenerically,
  );
  // The next step's code (phone clock 30 s ahead) is accepted once.
  const ahead = codeAt(secret, t.clock, 1);
  await login(t.auth, { otpToken: ahead });
  await assert.rejects(login(t.auth, { otpToken: ahead }), refusedGenerically);
  // Two steps ahead is outside the window.
  await assert.rejects(
    login(t.auth, { otpToken: codeAt(secret, t.clock, 3) }),
    refusedGenerically,
  );
  // A phone 30 s behind: once later steps are unused, the code of the step before now works.
  t.clock.advance(90_000);
  await login(t.auth, { otpToken: codeAt(secret, t.clock, -1) });
});

Deno.test("authenticateSshUser() gives one message for every wrong credential", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const secret = (await enroll(t))!;
  await t.auth.createUser({ ...alice, metadata: { name: "nopass" } });
  const good = () => codeAt(secret, t.clock);
  const cases: Array<[string, Parameters<typeof login>[1]]> = [
    ["wrong password", { password: "wrong password!!", otpToken: good() }],
    ["missing code", {}],
    ["wrong code", { otpToken: good() === "000000" ? "111111" : "000000" }],
    ["unknown user", { user: "nobody", otpToken: good() }],
    ["invalid user name", { user: "../x", otpToken: good() }],
    ["user without password", { user: "nopass", otpToken: good() }],
    ["over-long password", { password: PASSWORD + "x".repeat(2000), otpToken: good() }],
  ];
  for (const [what, o] of cases) {
    await assert.rejects(login(t.auth, o), refusedGenerically, what);
  }
  await assert.rejects(
    t.auth.authenticateSshUser({ user: "alice", password: PASSWORD, ttlMs: 60_000 }),
    (e) => isKind(e, "BadParameter"),
  );
});

Deno.test("authenticateSshUser() locks a source out after 5 failures, the user logs in elsewhere", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const secret = (await enroll(t))!;
  const attacker = "127.0.0.66:40000";
  const owner = "127.0.0.7:50000";
  for (let i = 1; i <= MAX_LOGIN_ATTEMPTS; i++) {
    await assert.rejects(
      login(t.auth, { password: "wrong password " + i, remoteAddr: attacker }),
      refusedGenerically,
    );
    t.clock.advance(60_000);
  }
  nextStep(t.clock);
  // The locked source is refused even with the right credentials, and the code is not used up…
  const code = codeAt(secret, t.clock);
  await assert.rejects(login(t.auth, { otpToken: code, remoteAddr: attacker }), refusedGenerically);
  const locked = await t.auth.users.getLoginAttempts("alice");
  assert.ok(locked?.sources?.["127.0.0.66"]?.locked_until);
  assert.equal(locked?.locked_until, undefined, "the user as a whole is not locked");
  // …while the owner, from another address, logs in with that very code.
  await login(t.auth, { otpToken: code, remoteAddr: owner });
  nextStep(t.clock);
  t.clock.advance(ACCOUNT_LOCK_INTERVAL_MS - 10 * 60_000);
  await assert.rejects(
    login(t.auth, { otpToken: codeAt(secret, t.clock), remoteAddr: attacker }),
    refusedGenerically,
  );
  t.clock.advance(10 * 60_000);
  await login(t.auth, { otpToken: codeAt(secret, t.clock), remoteAddr: attacker });
  const after = await t.auth.users.getLoginAttempts("alice");
  assert.equal(after?.sources?.["127.0.0.66"], undefined, "the lock is gone");

  const events = await loginEvents(t);
  const setLock = events.find((e) => e.lock_started === true);
  assert.equal(setLock?.lock_scope, "source");
  assert.equal(setLock?.source, "127.0.0.66");
  assert.ok(events.some((e) => e.lock_started === false && e.success === false));
  assert.ok(events.every((e) => typeof e.source === "string"));
});

Deno.test("authenticateSshUser() answers locked, unknown and wrong-password alike after one hash", async () => {
  const verified: string[] = [];
  const cheap = scryptHasher({ N: 1024, r: 8, p: 1 });
  await using t = await newTestAuth({
    secondFactor: "off",
    passwordHasher: {
      hash: cheap.hash,
      verify: (password, encoded) => {
        verified.push(encoded);
        return cheap.verify(password, encoded);
      },
    },
  });
  await enroll(t);
  const from = "127.0.0.9:1234";
  for (let i = 0; i < MAX_LOGIN_ATTEMPTS; i++) {
    await assert.rejects(login(t.auth, { password: "not the password", remoteAddr: from }));
  }
  const cases: Array<[string, Parameters<typeof login>[1]]> = [
    ["locked", { remoteAddr: from }],
    ["unknown", { user: "nobody", remoteAddr: "127.0.0.10:1" }],
    ["wrong password", { password: "not the password", remoteAddr: "127.0.0.11:1" }],
  ];
  for (const [what, o] of cases) {
    verified.length = 0;
    const err = await login(t.auth, o).then(() => undefined, (e) => e);
    assert.ok(refusedGenerically(err), `${what}: ${err}`);
    assert.equal(verified.length, 1, `${what}: exactly one password hash verified`);
    assert.match(verified[0]!, /^\$scrypt\$N=1024,r=8,p=1\$/, `${what}: a hash of the same cost`);
    if (what === "locked") {
      // Checked against the dummy hash, not alice's: nothing is learnt while locked.
      assert.notEqual(verified[0], await t.auth.users.getPasswordHash("alice"));
    }
  }
});

Deno.test("authenticateSshUser() locks the user everywhere at the ceiling over many sources", async () => {
  const { logger, records } = testLogger();
  await using t = await newTestAuth({
    secondFactor: "off",
    logger,
    passwordHasher: scryptHasher({ N: 1024, r: 8, p: 1 }),
  });
  await enroll(t);
  // Four failures each (one short of a source lock) from many addresses.
  const perSource = MAX_LOGIN_ATTEMPTS - 1;
  let n = 0;
  for (let s = 0; n < MAX_USER_LOGIN_FAILURES; s++) {
    for (let i = 0; i < perSource && n < MAX_USER_LOGIN_FAILURES; i++, n++) {
      await assert.rejects(
        login(t.auth, { password: "not the password", remoteAddr: `127.0.1.${s}:${1000 + i}` }),
        refusedGenerically,
      );
    }
  }
  // A fresh address with the right password is refused now, with the same message.
  await assert.rejects(login(t.auth, { remoteAddr: "127.0.2.1:1" }), refusedGenerically);
  const state = await t.auth.users.getLoginAttempts("alice");
  assert.ok(state?.locked_until);
  const warning = records.find((r) => r.level === "warn" && /from every address/.test(r.message));
  assert.ok(warning, "the ceiling is logged as a warning");
  const events = await loginEvents(t);
  const ceiling = events.find((e) => e.lock_started === true && e.lock_scope === "user");
  assert.ok(ceiling, "the ceiling is audited");
  assert.equal(ceiling.user, "alice");
  t.clock.advance(ACCOUNT_LOCK_INTERVAL_MS);
  await login(t.auth, { remoteAddr: "127.0.2.1:1" });
});

Deno.test("authenticateSshUser() counts only consecutive failures within 30 minutes", async () => {
  await using t = await newTestAuth({ secondFactor: "off" });
  await enroll(t);
  const fail = () =>
    assert.rejects(login(t.auth, { password: "not the password" }), refusedGenerically);
  for (let i = 0; i < MAX_LOGIN_ATTEMPTS - 1; i++) await fail();
  await login(t.auth); // a success resets the count
  for (let i = 0; i < MAX_LOGIN_ATTEMPTS - 1; i++) await fail();
  t.clock.advance(31 * 60_000); // old failures age out
  for (let i = 0; i < MAX_LOGIN_ATTEMPTS - 1; i++) await fail();
  await login(t.auth);
});

Deno.test("resetUser() unlocks the user, removes the password and re-enrolls TOTP", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const oldSecret = (await enroll(t))!;
  for (let i = 1; i < MAX_LOGIN_ATTEMPTS; i++) {
    await assert.rejects(login(t.auth, { password: "wrong password " + i }), refusedGenerically);
  }
  await assert.rejects(login(t.auth, { password: "wrong password 5" }), refusedGenerically);
  assert.ok((await t.auth.users.getLoginAttempts("alice"))?.sources?.unknown?.locked_until);
  const reset = await t.auth.resetUser("alice");
  assert.equal(reset.kind, "reset");
  assert.equal("totp" in reset, false);
  assert.equal(await t.auth.users.getLoginAttempts("alice"), undefined);
  assert.equal(await t.auth.users.getTotpDevice("alice"), undefined);
  // The old password no longer works (and the failure does not say why).
  await assert.rejects(login(t.auth, { otpToken: codeAt(oldSecret, t.clock) }), refusedGenerically);
  const details = await t.auth.getUserTokenDetails(reset.token);
  assert.equal(details.kind, "reset");
  const secret = details.totp!.secret;
  assert.notEqual(secret, oldSecret);
  nextStep(t.clock);
  await t.auth.changePasswordWithToken(
    reset.token,
    "a brand new password",
    codeAt(secret, t.clock),
  );
  nextStep(t.clock);
  await assert.rejects(
    login(t.auth, { password: "a brand new password", otpToken: codeAt(oldSecret, t.clock) }),
    refusedGenerically,
  );
  await login(t.auth, { password: "a brand new password", otpToken: codeAt(secret, t.clock) });
  // A second reset replaces the first token.
  const r1 = await t.auth.resetUser("alice");
  const r2 = await t.auth.resetUser("alice");
  await assert.rejects(t.auth.getUserTokenDetails(r1.token), /invalid or has expired/);
  await t.auth.getUserTokenDetails(r2.token);
});

Deno.test("second_factor optional: enrolling is a choice, an enrolled device is required", async () => {
  await using t = await newTestAuth({ secondFactor: "optional" });
  // Alice skips TOTP: password alone works.
  const { token } = await t.auth.createUser(alice);
  assert.equal((await t.auth.getUserTokenDetails(token.token)).totp?.required, false);
  await t.auth.changePasswordWithToken(token.token, PASSWORD);
  assert.equal(await t.auth.users.getTotpDevice("alice"), undefined);
  await login(t.auth);
  // Bob enrolls: from then on his logins need a code.
  const bob: User = { ...alice, metadata: { name: "bob" } };
  const secret = (await enroll(t, bob))!;
  await assert.rejects(login(t.auth, { user: "bob" }), refusedGenerically);
  await login(t.auth, { user: "bob", otpToken: codeAt(secret, t.clock) });
  // A wrong code while enrolling optionally is refused, not silently skipped.
  const carol = await t.auth.createUser({ ...alice, metadata: { name: "carol" } });
  await assert.rejects(
    t.auth.changePasswordWithToken(carol.token.token, PASSWORD, "000000x"),
    (e) => isKind(e, "AccessDenied"),
  );
});

Deno.test("second_factor off: no TOTP is offered and the password suffices", async () => {
  await using t = await newTestAuth({ secondFactor: "off" });
  const { token } = await t.auth.createUser(alice);
  assert.equal((await t.auth.getUserTokenDetails(token.token)).totp, undefined);
  await t.auth.changePasswordWithToken(token.token, PASSWORD, "123456");
  await login(t.auth, { otpToken: "123456" });
});

Deno.test("second_factor on/otp: a user without a device cannot log in with a password only", async () => {
  await using t = await newTestAuth({ secondFactor: "off" });
  await enroll(t);
  await login(t.auth);
  // Same backend, now with second_factor on (e.g. after a config change).
  const { AuthServer } = await import("./mod.ts");
  const { getComponentLogger } = await import("../log/mod.ts");
  const strict = new AuthServer({
    backend: t.backend,
    clock: t.clock,
    logger: getComponentLogger("auth:test"),
    clusterName: "example",
    version: "0.0.0-test",
    userTokenTtlMs: 3_600_000,
    secondFactor: "on",
  });
  await strict.init();
  await assert.rejects(login(strict), refusedGenerically);
  await assert.rejects(login(strict, { otpToken: "123456" }), refusedGenerically);
});

Deno.test("authenticateSshUser() audits each attempt without secrets", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const secret = (await enroll(t))!;
  const badCode = codeAt(secret, t.clock, 5);
  await assert.rejects(
    login(t.auth, { password: "wrong password!", otpToken: badCode, remoteAddr: "10.0.0.9:5555" }),
  );
  const goodCode = codeAt(secret, t.clock);
  await login(t.auth, { otpToken: goodCode, remoteAddr: "10.0.0.9:5556" });
  await assert.rejects(login(t.auth, { user: "nobody", otpToken: goodCode }));
  const events = await loginEvents(t);
  assert.equal(events.length, 3);
  const [failed, ok, unknown] = events as [AuditEvent, AuditEvent, AuditEvent];
  assert.equal(failed.code, "T1000W");
  assert.equal(failed.event, "user.login");
  assert.equal(failed.user, "alice");
  assert.equal(failed.method, "local");
  assert.equal(failed.success, false);
  assert.equal(failed.error, LOGIN_FAILED_MESSAGE);
  assert.equal(failed["addr.remote"], "10.0.0.9:5555");
  assert.equal(failed.cluster_name, "example");
  assert.equal(ok.code, "T1000I");
  assert.equal(ok.success, true);
  assert.equal(ok["addr.remote"], "10.0.0.9:5556");
  assert.equal(ok.error, undefined);
  assert.equal(unknown.user, "nobody");
  assert.equal("addr.remote" in unknown, false);
  const text = JSON.stringify(events);
  for (const secretText of [PASSWORD, "wrong password!", badCode, goodCode, secret]) {
    assert.ok(!text.includes(secretText), `audit log contains ${secretText}`);
  }
});

Deno.test("upsertProxyHeartbeat() stores a proxy's own entry until it expires", async () => {
  await using t = await newTestAuth();
  const proxyId = proxyIdentity();
  const id = proxyId.username.replace(/\.example$/, "");
  const host = await t.auth.issueLocalHostIdentity({
    hostID: id,
    node_name: "proxy1",
    role: "Proxy",
    public_ssh_key: (await generateSshKeyPair("ed25519")).authorizedKey,
    public_tls_key: (await (await import("../ca/mod.ts")).generateTlsKeyPair()).publicKeyPem,
  });
  const proxy = (expiresInMs: number, name = id): ProxyResource => ({
    kind: "proxy",
    version: "v2",
    metadata: {
      name,
      expires: new Date(t.clock.now().getTime() + expiresInMs).toISOString(),
    },
    spec: {
      addr: "0.0.0.0:3080",
      hostname: "proxy1",
      version: "0.0.0-test",
      public_addr: "proxy.example.com:443",
      host_cert: host.ssh_cert,
    },
  });
  await t.auth.upsertProxyHeartbeat(proxyId, proxy(60_000));
  assert.deepEqual((await t.auth.listResources("proxy")).map((p) => p.metadata.name), [id]);
  assert.equal((await t.auth.getResource("proxy", id)).kind, "proxy");
  await assert.rejects(
    t.auth.upsertProxyHeartbeat(proxyId, proxy(60_000, "00000000-0000-4000-8000-000000000000")),
    (e) => isKind(e, "AccessDenied"),
  );
  await assert.rejects(
    t.auth.upsertProxyHeartbeat(nodeIdentity(id), proxy(60_000)),
    (e) => isKind(e, "AccessDenied"),
  );
  await assert.rejects(
    t.auth.upsertProxyHeartbeat(userIdentity(id, ["access"]), proxy(60_000)),
    (e) => isKind(e, "AccessDenied"),
  );
  await assert.rejects(
    t.auth.upsertProxyHeartbeat(proxyId, proxy(2 * 3_600_000)),
    /within the next hour/,
  );
  await assert.rejects(
    t.auth.upsertProxyHeartbeat(proxyId, {
      ...proxy(60_000),
      spec: {
        ...proxy(60_000).spec,
        host_cert: host.ssh_cert.replace(/ [A-Za-z0-9+/]{8}/, " AAAAAAAA"),
      },
    }),
    /host_cert/,
  );
  await assert.rejects(
    t.auth.putResource(proxy(60_000), true),
    (e) => isKind(e, "BadParameter"),
  );
  t.clock.advance(60_001);
  assert.deepEqual(await t.auth.listResources("proxy"), []);
  await t.auth.upsertProxyHeartbeat(proxyId, proxy(60_000));
  await t.auth.deleteResource("proxy", id);
  assert.deepEqual(await t.auth.presence.listProxies(), []);
});

Deno.test("upsertNodeHeartbeat() keeps a host certificate and refuses a user certificate", async () => {
  await using t = await newTestAuth({ secondFactor: "off" });
  const node = nodeIdentity();
  const id = node.username.replace(/\.example$/, "");
  const { generateTlsKeyPair } = await import("../ca/mod.ts");
  const host = await t.auth.issueLocalHostIdentity({
    hostID: id,
    node_name: "node1",
    role: "Node",
    public_ssh_key: (await generateSshKeyPair("ed25519")).authorizedKey,
    public_tls_key: (await generateTlsKeyPair()).publicKeyPem,
  });
  const server = (hostCert: string): ServerResource => ({
    kind: "node",
    version: "v2",
    metadata: { name: id, expires: new Date(t.clock.now().getTime() + 60_000).toISOString() },
    spec: { addr: "127.0.0.1:3022", hostname: "node1", version: "0", host_cert: hostCert },
  });
  await t.auth.upsertNodeHeartbeat(node, server(host.ssh_cert));
  assert.equal(
    ((await t.auth.getResource("node", id)) as ServerResource).spec.host_cert,
    host.ssh_cert,
  );
  await enroll(t);
  const userCert = (await login(t.auth)).sshCert!;
  await assert.rejects(t.auth.upsertNodeHeartbeat(node, server(userCert)), /host certificate/);
});

Deno.test("listVisibleNodes() shows a user only the nodes their roles allow", async () => {
  await using t = await newTestAuth();
  await t.auth.roles.create({
    kind: "role",
    version: "v7",
    metadata: { name: "dev-only" },
    spec: {
      options: {},
      allow: { logins: ["dev"], node_labels: { env: "dev" } },
      deny: { node_labels: { secret: "yes" } },
    },
  });
  const expires = new Date(t.clock.now().getTime() + 60_000).toISOString();
  const mk = (name: string, labels: Record<string, string>): ServerResource => ({
    kind: "node",
    version: "v2",
    metadata: { name, labels, expires },
    spec: { addr: "", hostname: name, version: "0" },
  });
  for (
    const n of [
      mk("dev1", { env: "dev" }),
      mk("prod1", { env: "prod" }),
      mk("dev-secret", { env: "dev", secret: "yes" }),
    ]
  ) {
    await t.auth.presence.upsertNode(n);
  }
  const names = async (roles: string[]) =>
    (await t.auth.listVisibleNodes(userIdentity("u", roles))).map((n) => n.metadata.name).sort();
  assert.deepEqual(await names(["dev-only"]), ["dev1"]);
  assert.deepEqual(await names(["access"]), ["dev-secret", "dev1", "prod1"]);
  assert.deepEqual(await names(["access", "dev-only"]), ["dev1", "prod1"]);
  assert.deepEqual(await names(["auditor"]), []);
  await t.auth.getVisibleNode(userIdentity("u", ["dev-only"]), "dev1");
  await assert.rejects(
    t.auth.getVisibleNode(userIdentity("u", ["dev-only"]), "prod1"),
    (e) => isKind(e, "NotFound"),
  );
  assert.equal((await t.auth.listVisibleNodes(nodeIdentity())).length, 3);
});
