import assert from "node:assert/strict";
import { parseSshCertificate, parseX509Certificate } from "../ca/mod.ts";
import { identityFromSubject } from "../identity/mod.ts";
import type { Role, User } from "../resource/mod.ts";
import { hashPassword, verifyPassword } from "./mod.ts";
import { newTestAuth } from "./_testing.ts";

const alice: User = {
  kind: "user",
  version: "v2",
  metadata: { name: "alice" },
  spec: { roles: ["access"], traits: { logins: ["alice", "root"] } },
};

Deno.test("AuthServer.init() creates both CAs and built-in roles once", async () => {
  await using t = await newTestAuth();
  const before = await t.auth.authorities();
  assert.deepEqual(before.map((a) => a.type), ["host", "user"]);
  for (const a of before) {
    assert.equal(a.sshPublicKeys.length, 1);
    assert.match(a.sshPublicKeys[0]!, /^ssh-ed25519 /);
    assert.match(a.pins[0]!, /^sha256:[0-9a-f]{64}$/);
    assert.equal(parseX509Certificate(a.tlsCertPems[0]!).isCa, true);
  }
  await t.auth.init();
  assert.deepEqual(await t.auth.authorities(), before);
  assert.deepEqual((await t.auth.roles.list()).map((r) => r.metadata.name).sort(), [
    "access",
    "auditor",
    "editor",
  ]);
});

Deno.test("AuthServer.createToken() makes 32-hex tokens that expire", async () => {
  await using t = await newTestAuth({
    staticTokens: [{ roles: ["node"], token: "static-secret" }],
  });
  const tok = await t.auth.createToken({ roles: ["node", "Proxy"], ttlMs: 30 * 60_000 });
  assert.match(tok.metadata.name, /^[0-9a-f]{32}$/);
  assert.deepEqual(tok.spec.roles, ["Node", "Proxy"]);
  const names = (await t.auth.listTokens()).map((x) => x.metadata.name);
  assert.deepEqual(names, [tok.metadata.name, "static-secret"]);
  t.clock.advance(30 * 60_000 + 1);
  assert.deepEqual((await t.auth.listTokens()).map((x) => x.metadata.name), ["static-secret"]);
  await assert.rejects(t.auth.createToken({ roles: ["bogus"], ttlMs: 1 }), /unknown system role/);
  await assert.rejects(t.auth.createToken({ roles: [], ttlMs: 1 }), /at least one role/);
});

Deno.test("AuthServer.deleteToken() never echoes the token in errors", async () => {
  await using t = await newTestAuth({
    staticTokens: [{ roles: ["node"], token: "static-secret-value" }],
  });
  await assert.rejects(t.auth.deleteToken("0123456789abcdef0123456789abcdef"), (err: Error) => {
    assert.ok(!err.message.includes("0123456789abcdef0123"), err.message);
    return /not found/.test(err.message);
  });
  await assert.rejects(t.auth.deleteToken("static-secret-value"), (err: Error) => {
    assert.ok(!err.message.includes("static-secret-value"), err.message);
    return /static token/.test(err.message);
  });
});

Deno.test("AuthServer.createUser() issues a single-use invite that sets the password", async () => {
  await using t = await newTestAuth();
  const { token } = await t.auth.createUser(alice, "admin");
  assert.match(token.token, /^[0-9a-f]{32}$/);
  assert.equal(token.kind, "invite");
  await assert.rejects(t.auth.changePasswordWithToken(token.token, "short"), /at least 12/);
  assert.equal(await t.auth.changePasswordWithToken(token.token, "correct horse battery"), "alice");
  const hash = await t.auth.users.getPasswordHash("alice");
  assert.match(hash, /^\$scrypt\$N=32768,r=8,p=1\$/);
  assert.ok(!hash.includes("correct horse"));
  assert.ok(await verifyPassword("correct horse battery", hash));
  await assert.rejects(
    t.auth.changePasswordWithToken(token.token, "another password!"),
    /invalid or has expired/,
  );
  const reset = await t.auth.resetUser("alice");
  t.clock.advance(3_600_001);
  await assert.rejects(t.auth.changePasswordWithToken(reset.token, "another password!"), /expired/);
  await assert.rejects(
    t.auth.createUser({ ...alice, spec: { ...alice.spec, roles: ["nope"] } }),
    /role "nope" is not found/,
  );
});

Deno.test("hashPassword() salts and verifyPassword() rejects wrong passwords", async () => {
  const a = await hashPassword("a long enough password", { N: 1024, r: 8, p: 1 });
  const b = await hashPassword("a long enough password", { N: 1024, r: 8, p: 1 });
  assert.notEqual(a, b);
  assert.ok(await verifyPassword("a long enough password", a));
  assert.ok(!(await verifyPassword("a long enough passworD", a)));
  assert.ok(!(await verifyPassword("x", "garbage")));
});

Deno.test("AuthServer.generateUserCerts() uses role logins and caps the TTL", async () => {
  await using t = await newTestAuth();
  const short: Role = {
    kind: "role",
    version: "v7",
    metadata: { name: "short" },
    spec: { options: { max_session_ttl: "1h" }, allow: { logins: ["ops"] }, deny: {} },
  };
  await t.auth.roles.create(short);
  await t.auth.createUser({ ...alice, spec: { ...alice.spec, roles: ["access", "short"] } });
  const { generateSshKeyPair, generateTlsKeyPair } = await import("../ca/mod.ts");
  const ssh = await generateSshKeyPair("ed25519");
  const tls = await generateTlsKeyPair();
  const certs = await t.auth.generateUserCerts({
    user: "alice",
    sshPublicKey: ssh.authorizedKey,
    tlsPublicKeyPem: tls.publicKeyPem,
    ttlMs: 12 * 3_600_000,
  });
  const cert = parseSshCertificate(certs.sshCert!);
  assert.equal(cert.certType, "user");
  assert.equal(cert.keyId, "alice");
  assert.deepEqual(cert.principals, ["alice", "root", "ops"]);
  assert.ok("permit-pty" in cert.extensions);
  const validBefore = cert.validBefore as Date;
  const ttl = validBefore.getTime() - t.clock.now().getTime();
  assert.ok(ttl > 3_599_000 && ttl <= 3_600_000, `ttl ${ttl}`); // SSH certs hold whole seconds
  const x509 = parseX509Certificate(certs.tlsCert!);
  const id = identityFromSubject(x509.subject);
  assert.equal(id.kind, "user");
  assert.equal(id.username, "alice");
  assert.deepEqual(id.roles, ["access", "short"]);
  assert.deepEqual(x509.extKeyUsage, ["clientAuth"]);
});
