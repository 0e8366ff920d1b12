/**
 * Local login over the real auth API (in-process cluster, mTLS, port 0): a proxy host
 * completes an invite with TOTP enrollment and logs a user in with password + code; nodes
 * and users cannot call the login routes; proxies heartbeat and everyone lists them; a
 * client offering the auth ALPN id (as through a proxy's web port) still works.
 * Codes come from npm:otpauth, as an authenticator app computes them.
 */
import assert from "node:assert/strict";
import * as OTPAuth from "otpauth";
import { type AuthClient, joinWithToken } from "../../lib/authclient/mod.ts";
import type { IdentityFile } from "../../lib/identity/mod.ts";
import {
  generateSshKeyPair,
  generateTlsKeyPair,
  parseSshCertificate,
  parseX509Certificate,
} from "../../lib/ca/mod.ts";
import { isKind } from "../../lib/errors/mod.ts";
import { identityFromSubject } from "../../lib/identity/mod.ts";
import { getComponentLogger } from "../../lib/log/mod.ts";
import type { ProxyResource, ServerResource } from "../../lib/resource/mod.ts";
import { startTestCluster, type TestCluster } from "./_cluster.ts";

const PASSWORD = "correct horse battery staple";

/** The code an authenticator app shows `offsetMs` from now. */
function code(secret: string, offsetMs = 0): string {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) }).generate({
    timestamp: Date.now() + offsetMs,
  });
}

async function joinAs(c: TestCluster, admin: AuthClient, role: "node" | "proxy") {
  const token = (await admin.createToken({ roles: [role], ttlMs: 600_000 })).metadata.name;
  const hostId = crypto.randomUUID();
  const id = await joinWithToken({
    host: "127.0.0.1",
    port: c.ready.port,
    token,
    role,
    hostId,
    nodeName: `${role}-1`,
    caPins: [],
    logger: getComponentLogger("test:join"),
  });
  return { hostId, id };
}

function clientOf(c: TestCluster, id: IdentityFile | { tlsCertPem: string; keyPem: string }) {
  return c.client({ identity: { certPem: id.tlsCertPem, keyPem: id.keyPem } });
}

Deno.test("a proxy enrolls and logs in a local user with password and TOTP", async (t) => {
  await using c = await startTestCluster({
    configure: (config) => {
      config.auth.secondFactor = "otp";
    },
  });
  using admin = c.adminClient();
  const proxyHost = await joinAs(c, admin, "proxy");
  const nodeHost = await joinAs(c, admin, "node");
  using proxy = clientOf(c, proxyHost.id);
  using node = clientOf(c, nodeHost.id);
  const ssh = await generateSshKeyPair("ed25519");
  const tls = await generateTlsKeyPair();
  const { token } = await admin.createUser({
    kind: "user",
    version: "v2",
    metadata: { name: "alice" },
    spec: { roles: ["access"], traits: { logins: ["alice", "root"] } },
  });
  assert.equal("totp" in token, false);
  let secret = "";

  await t.step("only the proxy reads the invite and its TOTP key", async () => {
    using anonymous = c.client();
    await assert.rejects(
      anonymous.getUserTokenDetails(token.token),
      (e) => isKind(e, "AccessDenied"),
    );
    await assert.rejects(node.getUserTokenDetails(token.token), (e) => isKind(e, "AccessDenied"));
    const details = await proxy.getUserTokenDetails(token.token);
    assert.equal(details.user, "alice");
    assert.equal(details.kind, "invite");
    assert.equal(details.totp?.required, true);
    assert.match(
      details.totp!.uri,
      /^otpauth:\/\/totp\/example:alice\?secret=[A-Z2-7]+&issuer=example&algorithm=SHA1&digits=6&period=30$/,
    );
    secret = details.totp!.secret;
  });

  await t.step("a wrong code keeps the invite; the right one enrolls the device", async () => {
    await assert.rejects(
      proxy.changePasswordWithToken({
        token: token.token,
        password: PASSWORD,
        second_factor_token: code(secret, 10 * 60_000),
      }),
      (e) => isKind(e, "AccessDenied"),
    );
    await assert.rejects(
      node.changePasswordWithToken({
        token: token.token,
        password: PASSWORD,
        second_factor_token: code(secret),
      }),
      (e) => isKind(e, "AccessDenied"),
    );
    const user = await proxy.changePasswordWithToken({
      token: token.token,
      password: PASSWORD,
      second_factor_token: code(secret),
    });
    assert.equal(user, "alice");
    await assert.rejects(proxy.getUserTokenDetails(token.token), (e) => isKind(e, "AccessDenied"));
  });

  let userTls = "";
  await t.step("the proxy logs alice in; a replayed code is refused", async () => {
    // The enrollment used the current step; the next step's code is within the ±1 window.
    const otp = code(secret, 30_000);
    const req = {
      user: "alice",
      password: PASSWORD,
      otp_token: otp,
      ssh_public_key: ssh.authorizedKey,
      tls_public_key: tls.publicKeyPem,
      ttl_ms: 3_600_000,
      remote_addr: "203.0.113.10:51000",
    };
    await assert.rejects(node.authenticateSshUser(req), (e) => isKind(e, "AccessDenied"));
    const certs = await proxy.authenticateSshUser(req);
    const sshCert = parseSshCertificate(certs.sshCert!);
    assert.equal(sshCert.keyId, "alice");
    assert.deepEqual(sshCert.principals, ["alice", "root"]);
    const id = identityFromSubject(parseX509Certificate(certs.tlsCert!).subject);
    assert.equal(id.username, "alice");
    assert.deepEqual(id.roles, ["access"]);
    assert.ok(certs.tlsCaCerts.length > 0 && certs.hostCaKeys.length > 0);
    userTls = certs.tlsCert!;
    await assert.rejects(proxy.authenticateSshUser(req), (e) => {
      assert.ok(isKind(e, "AccessDenied"));
      assert.match((e as Error).message, /invalid user name, password or second factor/);
      return true;
    });
    await assert.rejects(
      proxy.authenticateSshUser({
        ...req,
        password: "not the password",
        otp_token: code(secret, 30_000),
      }),
      (e) =>
        isKind(e, "AccessDenied") && !/password\b.*wrong|wrong password/.test((e as Error).message),
    );
    const { events } = await admin.searchEvents({
      from: new Date(Date.now() - 3_600_000),
      to: new Date(Date.now() + 60_000),
      types: ["user.login"],
    });
    assert.deepEqual(events.map((e) => [e.code, e.user, e.method, e.success, e["addr.remote"]]), [
      ["T1000I", "alice", "local", true, "203.0.113.10:51000"],
      ["T1000W", "alice", "local", false, "203.0.113.10:51000"],
      ["T1000W", "alice", "local", false, "203.0.113.10:51000"],
    ]);
    const text = JSON.stringify(events);
    for (const s of [PASSWORD, otp, secret, "not the password"]) assert.ok(!text.includes(s), s);
  });

  await t.step("a user certificate cannot call the login routes", async () => {
    using user = clientOf(c, { tlsCertPem: userTls, keyPem: tls.privateKeyPem });
    await assert.rejects(
      user.authenticateSshUser({
        user: "alice",
        password: PASSWORD,
        ssh_public_key: ssh.authorizedKey,
        ttl_ms: 60_000,
      }),
      (e) => isKind(e, "AccessDenied"),
    );
    await assert.rejects(
      user.getUserTokenDetails("0123456789abcdef"),
      (e) => isKind(e, "AccessDenied"),
    );
  });

  await t.step("proxies heartbeat; users list proxies and the nodes they may see", async () => {
    const expires = new Date(Date.now() + 60_000).toISOString();
    const p: ProxyResource = {
      kind: "proxy",
      version: "v2",
      metadata: { name: proxyHost.hostId, expires },
      spec: {
        addr: "127.0.0.1:3080",
        hostname: "proxy-1",
        version: "0.1.0",
        public_addr: "proxy.example.com:3080",
        host_cert: proxyHost.id.sshCert!,
      },
    };
    await proxy.heartbeatProxy(p);
    await assert.rejects(
      node.heartbeatProxy({ ...p, metadata: { ...p.metadata, name: nodeHost.hostId } }),
      (e) => isKind(e, "AccessDenied"),
    );
    const n: ServerResource = {
      kind: "node",
      version: "v2",
      metadata: { name: nodeHost.hostId, expires, labels: { env: "dev" } },
      spec: {
        addr: "127.0.0.1:3022",
        hostname: "node-1",
        version: "0.1.0",
        host_cert: nodeHost.id.sshCert!,
      },
    };
    await node.heartbeatNode(n);
    using user = clientOf(c, { tlsCertPem: userTls, keyPem: tls.privateKeyPem });
    const proxies = await user.listProxies() as ProxyResource[];
    assert.deepEqual(proxies.map((x) => [x.metadata.name, x.spec.public_addr, x.spec.host_cert]), [
      [proxyHost.hostId, "proxy.example.com:3080", proxyHost.id.sshCert],
    ]);
    const nodes = await user.listResources("node") as ServerResource[];
    assert.deepEqual(nodes.map((x) => x.spec.host_cert), [nodeHost.id.sshCert]);
    assert.equal((await admin.listResources("proxy")).length, 1);
  });

  await t.step(
    "a client offering the auth ALPN id and another SNI still reaches auth",
    async () => {
      using viaAlpn = c.client({
        identity: { certPem: proxyHost.id.tlsCertPem, keyPem: proxyHost.id.keyPem },
        alpnProtocols: [
          `teleport-auth@${
            Array.from(new TextEncoder().encode("example"), (b) => b.toString(16).padStart(2, "0"))
              .join("")
          }.teleport.cluster.local`,
        ],
        servername: "6578616d706c65.teleport.cluster.local",
      });
      assert.equal((await viaAlpn.listProxies()).length, 1);
    },
  );
});
