import assert from "node:assert/strict";
import { generateSshKeyPair, signSshCertificate, type SshKeyPair } from "../ca/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import { isKind } from "../errors/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import type { Role } from "../resource/mod.ts";
import { ACCESS_ROLE } from "../rbac/mod.ts";
import { authorizeUserCertificate } from "./authorize.ts";
import { matchSourceAddress, RoleCache, verifyUserCertificate } from "../rbac/mod.ts";

const NOW = new Date(Date.UTC(2026, 10, 21, 12));
const HOUR = 3_600_000;

const DEV_ONLY: Role = {
  kind: "role",
  version: "v7",
  metadata: { name: "dev" },
  spec: {
    options: { max_session_ttl: "1h", port_forwarding: false, ssh_file_copy: false },
    allow: { logins: ["dev"], node_labels: { env: "dev" } },
    deny: { logins: ["root"] },
  },
};

async function userCert(ca: SshKeyPair, o: {
  principals?: string[];
  roles?: string[];
  traits?: Record<string, string[]>;
  ttlMs?: number;
  critical?: Record<string, string>;
}) {
  const key = await generateSshKeyPair("ed25519");
  const cert = await signSshCertificate({
    signer: ca,
    publicKeyBlob: key.publicKeyBlob,
    certType: "user",
    keyId: "alice",
    principals: o.principals ?? ["alice"],
    validAfter: new Date(NOW.getTime() - 60_000),
    validBefore: new Date(NOW.getTime() + (o.ttlMs ?? HOUR)),
    extensions: {
      "permit-pty": "",
      "teleport-roles": JSON.stringify({ roles: o.roles ?? ["access"] }),
      "teleport-traits": JSON.stringify(o.traits ?? { logins: ["alice"] }),
    },
    ...(o.critical ? { criticalOptions: o.critical } : {}),
  });
  return cert.blob;
}

const ROLES: Record<string, Role> = { access: ACCESS_ROLE, dev: DEV_ONLY };
const lookup = (names: string[]) => Promise.resolve(names.flatMap((n) => ROLES[n] ?? []));

async function denied(p: Promise<unknown>, re: RegExp) {
  await assert.rejects(p, (err) => isKind(err, "AccessDenied") && re.test(String(err)));
}

Deno.test("authorizeUserCertificate() accepts a login allowed by the roles and traits", async () => {
  const ca = await generateSshKeyPair("ed25519");
  const access = await authorizeUserCertificate({
    certificate: await userCert(ca, {}),
    login: "alice",
    remoteAddr: "127.0.0.1",
    userCaKeys: [ca.publicKeyBlob],
    now: NOW,
    roles: lookup,
    node: { name: "n1", labels: {} },
  });
  assert.equal(access.user, "alice");
  assert.equal(access.permitPty, true);
  assert.equal(access.permitPortForwarding, true);
  assert.equal(access.permitRemotePortForwarding, true);
  assert.equal(access.permitAgentForwarding, true);
  assert.equal(access.permitFileCopy, true);
  assert.deepEqual(access.roles, ["access"]);
});

Deno.test("authorizeUserCertificate() refuses each failed check with its reason", async () => {
  const ca = await generateSshKeyPair("ed25519");
  const other = await generateSshKeyPair("ed25519");
  const base = {
    login: "alice",
    remoteAddr: "10.0.0.5",
    userCaKeys: [ca.publicKeyBlob],
    now: NOW,
    roles: lookup,
    node: { name: "n1", labels: { env: "prod" } },
  };
  await denied(
    authorizeUserCertificate({ ...base, certificate: await userCert(other, {}) }),
    /trusted authority/,
  );
  await denied(
    authorizeUserCertificate({ ...base, login: "root", certificate: await userCert(ca, {}) }),
    /principal/,
  );
  await denied(
    authorizeUserCertificate({
      ...base,
      now: new Date(NOW.getTime() + 2 * HOUR),
      certificate: await userCert(ca, {}),
    }),
    /expired|valid/,
  );
  await denied(
    authorizeUserCertificate({
      ...base,
      certificate: await userCert(ca, { critical: { "source-address": "192.168.0.0/16" } }),
    }),
    /only from 192\.168\.0\.0\/16/,
  );
  // dev role: 1h max TTL, login dev only on env=dev nodes.
  await denied(
    authorizeUserCertificate({
      ...base,
      login: "dev",
      certificate: await userCert(ca, { principals: ["dev"], roles: ["dev"], ttlMs: 5 * HOUR }),
    }),
    /max_session_ttl/,
  );
  await denied(
    authorizeUserCertificate({
      ...base,
      login: "dev",
      certificate: await userCert(ca, { principals: ["dev"], roles: ["dev"] }),
    }),
    /labels/,
  );
  await denied(
    authorizeUserCertificate({
      ...base,
      login: "root",
      certificate: await userCert(ca, {
        principals: ["root"],
        roles: ["access", "dev"],
        traits: { logins: ["root"] },
      }),
    }),
    /denied by role "dev"/,
  );
  await denied(
    authorizeUserCertificate({
      ...base,
      certificate: await userCert(ca, { roles: [] }),
    }),
    /no Teleport roles/,
  );
  const ok = await authorizeUserCertificate({
    ...base,
    login: "dev",
    node: { name: "n2", labels: { env: "dev" } },
    certificate: await userCert(ca, {
      principals: ["dev"],
      roles: ["dev"],
      critical: { "source-address": "10.0.0.0/8,::1" },
    }),
  });
  assert.equal(ok.permitPortForwarding, false);
  assert.equal(ok.permitAgentForwarding, false);
  assert.equal(ok.permitFileCopy, false);
});

Deno.test("verifyUserCertificate() refuses a source-address pinned certificate when the port is 0 (unverified PROXY header)", async () => {
  const ca = await generateSshKeyPair("ed25519");
  const pinned = await userCert(ca, { critical: { "source-address": "10.0.0.0/8" } });
  const base = { userCaKeys: [ca.publicKeyBlob], now: NOW, roles: lookup, remoteAddr: "10.0.0.5" };
  await denied(
    verifyUserCertificate({ ...base, certificate: pinned, remotePort: 0 }),
    /came from an unverified PROXY header/,
  );
  assert.equal(
    (await verifyUserCertificate({ ...base, certificate: pinned, remotePort: 4000 })).user,
    "alice",
  );
  // Without a pin, port 0 changes nothing.
  const plain = await userCert(ca, {});
  assert.equal(
    (await verifyUserCertificate({ ...base, certificate: plain, remotePort: 0 })).user,
    "alice",
  );
});

Deno.test("matchSourceAddress() matches IPv4, IPv6 and mapped addresses by CIDR", () => {
  assert.equal(matchSourceAddress("10.0.0.0/8", "10.1.2.3"), true);
  assert.equal(matchSourceAddress("10.0.0.0/8", "11.1.2.3"), false);
  assert.equal(matchSourceAddress("127.0.0.1", "::ffff:127.0.0.1"), true);
  assert.equal(matchSourceAddress("fd00::/8", "fd12::1"), true);
  assert.equal(matchSourceAddress("fd00::/8", "fe80::1%eth0"), false);
  assert.equal(matchSourceAddress("::1/128", "::1"), true);
  assert.equal(matchSourceAddress("bogus, 10.0.0.0/40", "10.0.0.1"), false);
});

Deno.test("RoleCache serves cached roles when auth is unreachable", async () => {
  const clock = new FakeClock(NOW);
  let up = true;
  let calls = 0;
  const cache = new RoleCache({
    clock,
    logger: getComponentLogger("node:test"),
    ttlMs: 1000,
    fetch: (name) => {
      calls++;
      if (!up) return Promise.reject(new Error("connection refused"));
      const r = ROLES[name];
      return r ? Promise.resolve(r) : Promise.reject(Object.assign(new Error("nf"), {}));
    },
  });
  assert.deepEqual((await cache.get(["access"])).map((r) => r.metadata.name), ["access"]);
  await cache.get(["access"]);
  assert.equal(calls, 1);
  up = false;
  clock.advance(5000);
  assert.deepEqual((await cache.get(["access"])).map((r) => r.metadata.name), ["access"]);
  await assert.rejects(cache.get(["dev"]), /connection refused/);
});

Deno.test("RoleCache asks a failing auth again only after a backoff, and a hanging one briefly", async () => {
  const clock = new FakeClock(NOW);
  let calls = 0;
  let mode: "up" | "down" | "hang" = "up";
  let hang: PromiseWithResolvers<never> | undefined;
  const cache = new RoleCache({
    clock,
    logger: getComponentLogger("node:test"),
    ttlMs: 1000,
    staleWaitMs: 2000,
    random: () => 0.999999,
    fetch: (name) => {
      calls++;
      if (mode === "down") return Promise.reject(new Error("connection refused"));
      if (mode === "hang") return (hang = Promise.withResolvers<never>()).promise;
      return Promise.resolve(ROLES[name]!);
    },
  });
  const names = async () => (await cache.get(["access"])).map((r) => r.metadata.name);
  await names();
  mode = "down";
  clock.advance(5000);
  assert.deepEqual(await names(), ["access"]);
  assert.equal(calls, 2);
  // Logins during the outage: no request to auth until the backoff (1 s) passes.
  for (let i = 0; i < 10; i++) assert.deepEqual(await names(), ["access"]);
  assert.equal(calls, 2);
  clock.advance(1000);
  mode = "hang";
  const waiting = names();
  await new Promise((r) => setTimeout(r, 0));
  // Concurrent logins share the one request that hangs…
  const second = names();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(calls, 3);
  // …and both get the cached role once staleWaitMs passes.
  clock.advance(2000);
  assert.deepEqual(await waiting, ["access"]);
  assert.deepEqual(await second, ["access"]);
  hang!.reject(new Error("timed out"));
});
