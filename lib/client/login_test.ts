import assert from "node:assert/strict";
import { isKind } from "../errors/mod.ts";
import { startFakeWebProxy, testCluster, webCertificate } from "./_testing.ts";
import { login, sshProxyAddrOf, wantsOtp } from "./login.ts";
import { ProfileStore } from "./profile.ts";
import { profileStatus } from "./status.ts";
import type { WebPingResponse } from "./web.ts";

function answers(...list: string[]) {
  const asked: string[] = [];
  return {
    asked,
    prompt: (q: string) => {
      asked.push(q);
      const a = list.shift();
      return a === undefined ? Promise.reject(new Error("no more answers")) : Promise.resolve(a);
    },
  };
}

async function withHome(fn: (store: ProfileStore) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "tsh_login_test_" });
  try {
    await fn(new ProfileStore(home));
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

Deno.test("login() stores a profile from a proxy trusted by its CA, asking for password and OTP", async () => {
  const cluster = await testCluster("c1");
  const tls = await webCertificate();
  await using web = await startFakeWebProxy({
    cluster,
    tls,
    password: "pw",
    secondFactor: "otp",
    otp: "123456",
    roles: ["access", "dev"],
    logins: ["alice", "root"],
  });
  await withHome(async (store) => {
    const a = answers("pw", "123456");
    const result = await login({
      store,
      proxy: { host: "127.0.0.1", port: web.port },
      user: "alice",
      ttlMs: 3_600_000,
      trust: { caCertPems: [tls.caPem] },
      prompt: a.prompt,
    });
    assert.deepEqual(a.asked, ["Enter password for Teleport user alice:", "Enter your OTP token:"]);
    const body = web.requests.find((r) => r.path === "/webapi/ssh/certs")!.body!;
    assert.equal(body.ttl, 3_600_000_000_000);
    assert.equal(body.otp_token, "123456");
    assert.match(atob(body.ssh_pub_key as string), /^ssh-ed25519 /);
    assert.match(atob(body.tls_pub_key as string), /^-----BEGIN PUBLIC KEY-----/);
    assert.equal(result.profile.webCertSha256, undefined);
    assert.equal(result.profile.cluster, "c1");
    assert.deepEqual(result.profile.sshProxyAddr, { host: "127.0.0.1", port: 3023 });
    const loaded = await store.load();
    assert.deepEqual(loaded, result.profile);
    const status = profileStatus(loaded!, await store.loadKeys(loaded!), new Date());
    assert.deepEqual(status.roles, ["access", "dev"]);
    assert.deepEqual(status.logins, ["alice", "root"]);
    assert.equal(status.expired, false);
  });
});

Deno.test("login() refuses a self-signed proxy unless --insecure, then pins its certificate", async () => {
  const cluster = await testCluster("c1");
  const tls = await webCertificate();
  await using web = await startFakeWebProxy({ cluster, tls, password: "pw" });
  await withHome(async (store) => {
    const proxy = { host: "127.0.0.1", port: web.port };
    await assert.rejects(
      login({ store, proxy, user: "alice", trust: {}, prompt: answers("pw").prompt }),
      /its certificate is not trusted .*log in with --insecure/,
    );
    assert.equal(web.requests.length, 0); // nothing, not even ping, was sent
    const result = await login({
      store,
      proxy,
      user: "alice",
      trust: { insecure: true },
      prompt: answers("pw").prompt,
    });
    assert.match(result.webCertSha256, /^[0-9a-f]{64}$/);
    assert.equal((await store.load())!.webCertSha256, result.webCertSha256);
    // A later login that trusts only the pinned certificate works without --insecure.
    await login({
      store,
      proxy,
      user: "alice",
      trust: { pinnedSha256: result.webCertSha256 },
      prompt: answers("pw").prompt,
    });
  });
});

Deno.test("login() fails clearly when the pinned certificate changed", async () => {
  const cluster = await testCluster("c1");
  await using web = await startFakeWebProxy({
    cluster,
    tls: await webCertificate(),
    password: "pw",
  });
  await withHome(async (store) => {
    await assert.rejects(
      login({
        store,
        proxy: { host: "127.0.0.1", port: web.port },
        user: "alice",
        trust: { insecure: true, pinnedSha256: "00".repeat(32) },
        prompt: answers("pw").prompt,
      }),
      (err: Error) =>
        isKind(err, "AccessDenied") &&
        /its certificate changed since you logged in with --insecure .*tsh logout.*tsh login --insecure/
          .test(err.message),
    );
    assert.equal(web.requests.length, 0);
    assert.equal(await store.load(), undefined);
  });
});

Deno.test("login() reports a wrong password as access denied and stores nothing", async () => {
  const cluster = await testCluster("c1");
  await using web = await startFakeWebProxy({
    cluster,
    tls: await webCertificate(),
    password: "pw",
  });
  await withHome(async (store) => {
    await assert.rejects(
      login({
        store,
        proxy: { host: "127.0.0.1", port: web.port },
        user: "alice",
        trust: { insecure: true },
        prompt: answers("wrong").prompt,
      }),
      (err: Error) => isKind(err, "AccessDenied") && err.message === "invalid credentials",
    );
    assert.equal(await store.load(), undefined);
  });
});

Deno.test("sshProxyAddrOf() follows TLS routing, then ssh_public_addr, then listen_addr", () => {
  const proxy = { host: "p.example.com", port: 443 };
  const ping = (proxySettings: WebPingResponse["proxy"]): WebPingResponse => ({
    auth: {},
    proxy: proxySettings,
    cluster_name: "c1",
    server_version: "1",
  });
  assert.deepEqual(sshProxyAddrOf(ping({ tls_routing_enabled: true }), proxy), proxy);
  assert.deepEqual(
    sshProxyAddrOf(
      ping({ ssh: { ssh_public_addr: "ssh.example.com", listen_addr: "0.0.0.0:3023" } }),
      proxy,
    ),
    { host: "ssh.example.com", port: 3023 },
  );
  assert.deepEqual(sshProxyAddrOf(ping({ ssh: { listen_addr: "0.0.0.0:4023" } }), proxy), {
    host: "p.example.com",
    port: 4023,
  });
  assert.deepEqual(sshProxyAddrOf(ping({}), proxy), { host: "p.example.com", port: 3023 });
});

Deno.test("wantsOtp() asks for OTP codes when the second factor is otp, on or optional", () => {
  const ping = (sf: string): WebPingResponse => ({
    auth: { second_factor: sf },
    proxy: {},
    cluster_name: "c1",
    server_version: "1",
  });
  assert.equal(wantsOtp(ping("off")), false);
  assert.equal(wantsOtp(ping("otp")), true);
  assert.equal(wantsOtp(ping("on")), true);
  assert.equal(wantsOtp(ping("optional")), true);
  assert.throws(() => wantsOtp(ping("webauthn")), /second factor "webauthn"/);
});
