/**
 * The auth service in-process on port 0 (memory backend), driven through the
 * real mTLS listener by AuthClient: identities from client certificates,
 * unauthenticated calls, RBAC, error kinds across the wire, server trust.
 */
import assert from "node:assert/strict";
import { createX509Ca, generateTlsKeyPair, issueX509Certificate } from "../../lib/ca/mod.ts";
import { isKind } from "../../lib/errors/mod.ts";
import { identityToSubject } from "../../lib/identity/mod.ts";
import { startTestCluster } from "./_cluster.ts";

Deno.test("auth API identifies callers by client certificate over mTLS", async (t) => {
  await using c = await startTestCluster();
  const adminId = { certPem: c.admin.tlsCertPem, keyPem: c.admin.keyPem };

  await t.step("the admin identity can read status", async () => {
    using client = c.client({ identity: adminId });
    const status = await client.status();
    assert.equal(status.cluster_name, "example");
    assert.match(status.authorities[0]!.pins[0]!, /^sha256:[0-9a-f]{64}$/);
  });

  await t.step("without a certificate only ping and cacerts answer", async () => {
    using client = c.client();
    assert.equal((await client.ping()).cluster_name, "example");
    assert.equal((await client.caCerts()).length, 1);
    await assert.rejects(client.status(), (e) => isKind(e, "AccessDenied"));
    await assert.rejects(client.listResources("user"), (e) => isKind(e, "AccessDenied"));
  });

  await t.step("errors keep their kind across the wire", async () => {
    using client = c.client({ identity: adminId });
    await assert.rejects(client.getResource("user", "nobody"), (e) => isKind(e, "NotFound"));
    const role = {
      kind: "role" as const,
      version: "v7" as const,
      metadata: { name: "dev" },
      spec: { options: {}, allow: { logins: ["dev"] }, deny: {} },
    };
    await client.putResource(role, false);
    await assert.rejects(client.putResource(role, false), (e) => isKind(e, "AlreadyExists"));
    const got = await client.getResource("role", "dev");
    await client.putResource(got, true);
    await assert.rejects(client.putResource(got, true), (e) => isKind(e, "CompareFailed"));
    await assert.rejects(
      client.createToken({ roles: ["nope"], ttlMs: 1000 }),
      (e) => isKind(e, "BadParameter"),
    );
  });

  await t.step("a user certificate gets that user's role rules", async () => {
    using admin = c.client({ identity: adminId });
    await admin.createUser({
      kind: "user",
      version: "v2",
      metadata: { name: "audrey" },
      spec: { roles: ["auditor"], traits: {} },
    });
    const key = await generateTlsKeyPair();
    const certs = await admin.generateUserCerts({
      user: "audrey",
      tls_public_key: key.publicKeyPem,
      ttl_ms: 600_000,
    });
    using user = c.client({ identity: { certPem: certs.tlsCert!, keyPem: key.privateKeyPem } });
    await assert.rejects(
      user.createToken({ roles: ["node"], ttlMs: 60_000 }),
      (e) => isKind(e, "AccessDenied"),
    );
    await assert.rejects(user.listResources("user"), (e) => isKind(e, "AccessDenied"));
  });

  await t.step("a certificate from a foreign CA is not an identity", async () => {
    const now = new Date();
    const ca = await createX509Ca({
      commonName: "example",
      organization: "example host CA",
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 3_600_000),
    });
    const key = await generateTlsKeyPair();
    const forged = await issueX509Certificate({
      ca: { certPem: ca.certPem, privateKey: ca.privateKey },
      publicKeyPem: key.publicKeyPem,
      subject: identityToSubject({
        kind: "host",
        username: "x.example",
        clusterName: "example",
        roles: ["Admin"],
        logins: [],
        traits: {},
      }),
      extKeyUsage: ["clientAuth"],
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 3_600_000),
    });
    using client = c.client({ identity: { certPem: forged, keyPem: key.privateKeyPem } });
    await assert.rejects(
      client.status(),
      (e) => isKind(e, "AccessDenied") || isKind(e, "ConnectionProblem"),
    );
  });

  await t.step("the client refuses a server outside the trusted CA", async () => {
    const other = await createX509Ca({
      commonName: "other",
      organization: "other",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    });
    using client = c.client({ caCertPems: [other.certPem] });
    await assert.rejects(client.ping(), (e) => isKind(e, "ConnectionProblem"));
  });
});
