/**
 * Joining with a token and CA pins against an in-process auth service: pins
 * checked before trust, single-use dynamic tokens, static tokens, role checks,
 * and the host certificate's principals and extensions.
 */
import assert from "node:assert/strict";
import { AuthClient, joinWithToken } from "../../lib/authclient/mod.ts";
import {
  parseSshCertificate,
  parseX509Certificate,
  verifySshCertificate,
} from "../../lib/ca/mod.ts";
import { isKind } from "../../lib/errors/mod.ts";
import { identityFromSubject } from "../../lib/identity/mod.ts";
import { getComponentLogger } from "../../lib/log/mod.ts";
import { parseAuthorizedKey } from "../../lib/ca/mod.ts";
import { startTestCluster } from "./_cluster.ts";

Deno.test("joinWithToken() joins with a pinned CA and a single-use token", async (t) => {
  await using c = await startTestCluster({
    configure: (config) => {
      config.auth.staticTokens = [{ roles: ["node"], token: "static-node-token" }];
    },
  });
  const ready = c.ready;
  using admin = c.adminClient();
  const status = await admin.status();
  const pin = status.authorities.find((a) => a.type === "host")!.pins[0]!;
  const hostCaKey =
    parseAuthorizedKey(status.authorities.find((a) => a.type === "host")!.sshPublicKeys[0]!).blob;
  const base = {
    host: "127.0.0.1",
    port: ready.port,
    role: "node",
    nodeName: "node-1",
    logger: getComponentLogger("test:join"),
  };
  const newToken = async (roles: string[]) =>
    (await admin.createToken({ roles, ttlMs: 600_000 })).metadata.name;

  await t.step("a pinned join returns a host identity", async () => {
    const hostId = crypto.randomUUID();
    const token = await newToken(["node"]);
    const id = await joinWithToken({
      ...base,
      token,
      hostId,
      caPins: [pin],
      additionalPrincipals: ["node1.example.com", "10.1.2.3"],
    });
    const cert = parseSshCertificate(id.sshCert!);
    assert.equal(cert.certType, "host");
    for (
      const p of [
        `${hostId}.example`,
        hostId,
        "node-1",
        "localhost",
        "127.0.0.1",
        "::1",
        "node1.example.com",
        "10.1.2.3",
      ]
    ) {
      assert.ok(cert.principals.includes(p), `principal ${p}`);
    }
    assert.equal(cert.extensions["x-teleport-role"], "Node");
    assert.equal(cert.extensions["x-teleport-authority"], "example");
    assert.equal(cert.validBefore, "forever");
    await verifySshCertificate(cert, {
      trustedCaKeys: [hostCaKey],
      certType: "host",
      principal: hostId,
      now: new Date(),
    });
    const tls = parseX509Certificate(id.tlsCertPem);
    const tlsId = identityFromSubject(tls.subject);
    assert.deepEqual([tlsId.kind, tlsId.username, tlsId.roles], ["host", `${hostId}.example`, [
      "Node",
    ]]);
    assert.ok(tls.dnsNames.includes("node1.example.com"));
    assert.ok(tls.ipAddresses.includes("10.1.2.3"));

    // The joined host can use the auth API as itself.
    using asNode = new AuthClient({
      host: "127.0.0.1",
      port: ready.port,
      caCertPems: id.tlsCaCertPems,
      identity: { certPem: id.tlsCertPem, keyPem: id.keyPem },
    });
    assert.equal((await asNode.listResources("cert_authority")).length, 2);
    await assert.rejects(asNode.listResources("user"), (e) => isKind(e, "AccessDenied"));

    await assert.rejects(
      joinWithToken({ ...base, token, hostId: crypto.randomUUID(), caPins: [pin] }),
      (e: Error) =>
        isKind(e, "AccessDenied") && /already used/.test(e.message) && !e.message.includes(token),
    );
  });

  await t.step("a wrong pin refuses to join and says why", async () => {
    const token = await newToken(["node"]);
    await assert.rejects(
      joinWithToken({
        ...base,
        token,
        hostId: crypto.randomUUID(),
        caPins: [`sha256:${"0".repeat(64)}`],
      }),
      (e: Error) =>
        isKind(e, "AccessDenied") && /tctl auth rotate/.test(e.message) &&
        /tctl status/.test(e.message),
    );
    // The token was not spent by the refused attempt.
    await joinWithToken({ ...base, token, hostId: crypto.randomUUID(), caPins: [pin] });
  });

  await t.step("role and token rules", async () => {
    const proxyOnly = await newToken(["proxy"]);
    await assert.rejects(
      joinWithToken({ ...base, token: proxyOnly, hostId: crypto.randomUUID(), caPins: [pin] }),
      (e) => isKind(e, "AccessDenied"),
    );
    await assert.rejects(
      joinWithToken({ ...base, token: "f".repeat(32), hostId: crypto.randomUUID(), caPins: [pin] }),
      (e) => isKind(e, "AccessDenied"),
    );
    await assert.rejects(
      joinWithToken({
        ...base,
        token: proxyOnly,
        hostId: "not-a-uuid",
        caPins: [pin],
        role: "proxy",
      }),
      (e) => isKind(e, "BadParameter"),
    );
    for (let i = 0; i < 2; i++) {
      await joinWithToken({
        ...base,
        token: "static-node-token",
        hostId: crypto.randomUUID(),
        caPins: [pin],
      });
    }
  });

  await t.step("no pin joins anyway", async () => {
    const token = await newToken(["node"]);
    const id = await joinWithToken({ ...base, token, hostId: crypto.randomUUID(), caPins: [] });
    assert.ok(id.sshCert);
  });
});

Deno.test("joinWithToken() refuses principals that are wildcards, invalid or another host's", async (t) => {
  await using c = await startTestCluster();
  using admin = c.adminClient();
  const status = await admin.status();
  const pin = status.authorities.find((a) => a.type === "host")!.pins[0]!;
  const newToken = async (roles: string[]) =>
    (await admin.createToken({ roles, ttlMs: 600_000 })).metadata.name;
  const join = (o: {
    token: string;
    hostId?: string;
    nodeName?: string;
    role?: string;
    additionalPrincipals?: string[];
  }) =>
    joinWithToken({
      host: "127.0.0.1",
      port: c.ready.port,
      role: o.role ?? "node",
      nodeName: o.nodeName ?? "plain-node",
      token: o.token,
      hostId: o.hostId ?? crypto.randomUUID(),
      caPins: [pin],
      additionalPrincipals: o.additionalPrincipals ?? [],
      logger: getComponentLogger("test:join"),
    });

  // Registered hosts whose names others try to take.
  const nodeA = crypto.randomUUID();
  await join({
    token: await newToken(["node"]),
    hostId: nodeA,
    nodeName: "node-a",
    additionalPrincipals: ["node-a.example.com"],
  });
  const proxy = crypto.randomUUID();
  await join({
    token: await newToken(["proxy"]),
    hostId: proxy,
    role: "proxy",
    nodeName: "proxy-1",
    additionalPrincipals: ["proxy.example.com", "127.0.0.1"],
  });

  await t.step("wildcards, globs and non-names are refused before the token is used", async () => {
    const token = await newToken(["node"]);
    for (
      const [name, why] of [
        ["*", /wildcard/],
        ["*.example", /wildcard/],
        ["node?.example.com", /wildcard/],
        ["[ab].example.com", /wildcard/],
        ["bad_name", /neither a DNS name nor an IP address/],
        ["-lead.example.com", /neither a DNS name nor an IP address/],
        ["teleport.cluster.local", /reserved for the auth service/],
        ["x.teleport.cluster.local", /reserved for the auth service/],
      ] as const
    ) {
      await assert.rejects(
        join({ token, additionalPrincipals: [name] }),
        (e: Error) => isKind(e, "BadParameter") && why.test(e.message) && e.message.includes(name),
        name,
      );
    }
    // None of those refusals spent the token.
    await join({ token, additionalPrincipals: ["ok.example.com", "10.9.8.7", "fd00::1"] });
  });

  await t.step("another host's id, host name or public name is refused", async () => {
    const token = await newToken(["node"]);
    for (
      const name of [
        nodeA,
        `${nodeA}.example`,
        "node-a",
        "node-a.example",
        "node-a.example.com",
        "proxy.example.com",
        "PROXY.example.com",
        crypto.randomUUID(),
      ]
    ) {
      await assert.rejects(
        join({ token, additionalPrincipals: [name] }),
        (e: Error) =>
          (isKind(e, "AccessDenied") || isKind(e, "BadParameter")) && e.message.includes(name) &&
          !e.message.includes(token),
        name,
      );
    }
    // A node may not take a proxy's public name as its node name either.
    await assert.rejects(
      join({ token, nodeName: "proxy.example.com" }),
      (e: Error) => isKind(e, "AccessDenied") && /another host \(a Proxy\)/.test(e.message),
    );
    // Shared names (IP of a co-located service, localhost) are fine; so is the token still.
    await join({ token, additionalPrincipals: ["127.0.0.1", "localhost"] });
  });

  await t.step("a second proxy may share the public name; a host re-registers", async () => {
    await join({
      token: await newToken(["proxy"]),
      role: "proxy",
      nodeName: "proxy-2",
      additionalPrincipals: ["proxy.example.com"],
    });
    const again = await join({
      token: await newToken(["node"]),
      hostId: nodeA,
      nodeName: "node-a",
      additionalPrincipals: ["node-a.example.com"],
    });
    assert.ok(parseSshCertificate(again.sshCert!).principals.includes("node-a.example.com"));
  });

  await t.step("refusals are audited without the token", async () => {
    const token = await newToken(["node"]);
    await assert.rejects(join({ token, additionalPrincipals: ["*"] }));
    const { events } = await c.proc.auth!.searchEvents({
      from: new Date(0),
      to: new Date(Date.now() + 60_000),
      types: ["instance.join"],
    });
    const refused = events.filter((e) => e.success === false);
    assert.ok(refused.some((e) => /wildcard/.test(String(e.error))));
    assert.ok(refused.some((e) => /proxy\.example\.com/.test(String(e.error))));
    for (const e of events) assert.ok(!JSON.stringify(e).includes(token));
  });
});
