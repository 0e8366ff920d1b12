import assert from "node:assert/strict";
import { generateSshKeyPair, parseSshCertificate, parseX509Certificate } from "../ca/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import { isKind } from "../errors/mod.ts";
import type { CaKeySet, CertAuthority, RotationPhase, User } from "../resource/mod.ts";
import { trustedKeys } from "../resource/mod.ts";
import { newCaKeySet } from "./authority.ts";
import { dueAutoPhase, rotateAuthority } from "./rotation.ts";
import { newTestAuth } from "./_testing.ts";

const clock = new FakeClock(Date.parse("2026-01-01T00:00:00Z"));
let generation = 0;
/** Fake key sets: the rotation logic only moves them around. */
function keys(): Promise<CaKeySet> {
  generation++;
  return Promise.resolve({
    ssh: [{ public_key: `ssh-ed25519 KEY${generation}`, private_key: `priv${generation}` }],
    tls: [{ cert: `CERT${generation}`, key: `tlskey${generation}` }],
  });
}

async function freshCa(): Promise<CertAuthority> {
  return {
    kind: "cert_authority",
    version: "v2",
    metadata: { name: "host" },
    spec: { cluster_name: "example", type: "host", active_keys: await keys() },
  };
}

const step = (ca: CertAuthority, phase?: RotationPhase, gracePeriodMs?: number) =>
  rotateAuthority(ca, {
    ...(phase === undefined ? {} : { phase }),
    ...(gracePeriodMs === undefined ? {} : { gracePeriodMs }),
    now: clock.now(),
    generateKeys: keys,
  });

Deno.test("rotateAuthority() moves keys through init, update_clients, update_servers and standby", async () => {
  const ca0 = await freshCa();
  const old = ca0.spec.active_keys.ssh[0]!.public_key;
  const init = await step(ca0, "init");
  assert.equal(init.spec.rotation?.state, "in_progress");
  assert.equal(init.spec.rotation?.mode, "manual");
  assert.equal(init.spec.active_keys.ssh[0]!.public_key, old, "init does not sign with new keys");
  const fresh = init.spec.additional_trusted_keys!.ssh[0]!.public_key;
  assert.deepEqual(trustedKeys(init).ssh, [old, fresh]);
  const clients = await step(init, "update_clients");
  assert.equal(clients.spec.active_keys.ssh[0]!.public_key, fresh, "update_clients signs with new");
  assert.deepEqual(trustedKeys(clients).ssh, [fresh, old]);
  const servers = await step(clients, "update_servers");
  assert.deepEqual(trustedKeys(servers).ssh, [fresh, old]);
  const done = await step(servers, "standby");
  assert.deepEqual(trustedKeys(done).ssh, [fresh]);
  assert.equal(done.spec.additional_trusted_keys, undefined);
  assert.equal(done.spec.rotation?.state, "standby");
  assert.equal(done.spec.rotation?.last_rotated, clock.now().toISOString());
});

Deno.test("rotateAuthority() rollback restores the old keys and keeps the new ones trusted until standby", async () => {
  const ca0 = await freshCa();
  const old = ca0.spec.active_keys.ssh[0]!.public_key;
  const clients = await step(await step(ca0, "init"), "update_clients");
  const fresh = clients.spec.active_keys.ssh[0]!.public_key;
  const back = await step(clients, "rollback");
  assert.deepEqual(trustedKeys(back).ssh, [old, fresh]);
  const done = await step(back, "standby");
  assert.deepEqual(trustedKeys(done).ssh, [old]);
  assert.equal(done.spec.rotation?.last_rotated, undefined, "a rollback is not a rotation");
  // From init nothing was swapped: rollback keeps the old keys active.
  const early = await step(await step(await freshCa(), "init"), "rollback");
  assert.equal(early.spec.rotation?.phase, "rollback");
});

Deno.test("rotateAuthority() refuses a phase that cannot follow and names the ones that can", async () => {
  const ca0 = await freshCa();
  await assert.rejects(
    step(ca0, "update_servers"),
    (e) =>
      isKind(e, "BadParameter") &&
      /Cannot rotate the host CA to phase update_servers: it is in phase standby, which only init can follow/
        .test(String(e)),
  );
  const init = await step(ca0, "init");
  await assert.rejects(step(init, "standby"), /which only update_clients or rollback can follow/);
  await assert.rejects(step(init), /one is in phase init already/);
});

Deno.test("dueAutoPhase() follows the semi-automatic schedule that splits the grace period in three", async () => {
  const t0 = clock.now().getTime();
  const auto = await step(await freshCa(), undefined, 3 * 3_600_000);
  assert.equal(auto.spec.rotation?.mode, "auto");
  assert.equal(auto.spec.rotation?.grace_period, "3h");
  assert.equal(dueAutoPhase(auto, new Date(t0 + 3_599_000)), undefined);
  assert.equal(dueAutoPhase(auto, new Date(t0 + 3_600_000)), "update_clients");
  const clients = await step(auto, "update_clients");
  assert.equal(dueAutoPhase(clients, new Date(t0 + 7_199_000)), undefined);
  assert.equal(dueAutoPhase(clients, new Date(t0 + 7_200_000)), "update_servers");
  const servers = await step(clients, "update_servers");
  assert.equal(dueAutoPhase(servers, new Date(t0 + 10_800_000)), "standby");
});

const alice: User = {
  kind: "user",
  version: "v2",
  metadata: { name: "alice" },
  spec: { roles: ["access"], traits: { logins: ["alice"] } },
};

Deno.test("AuthServer.rotateCertAuthority() signs with the new user CA from update_clients and trusts both until standby", async () => {
  await using t = await newTestAuth();
  await t.auth.users.create(alice);
  const changes: string[] = [];
  t.auth.watchAuthorities((type) => changes.push(`${type}:${t.auth.rotationPhase(type)}`));
  const userKey = (await generateSshKeyPair("ed25519")).authorizedKey;
  const signerOf = async () =>
    parseSshCertificate(
      (await t.auth.generateUserCerts({ user: "alice", sshPublicKey: userKey, ttlMs: 3_600_000 }))
        .sshCert!,
    ).signatureKeyBlob;
  const [before] = (await t.auth.authorities()).filter((a) => a.type === "user");
  const oldSigner = await signerOf();

  await t.auth.rotateCertAuthority("user", { phase: "init" });
  assert.deepEqual(await signerOf(), oldSigner, "init keeps signing with the old key");
  const [during] = (await t.auth.authorities()).filter((a) => a.type === "user");
  assert.equal(during!.sshPublicKeys.length, 2);
  assert.equal(during!.pins.length, 2);
  assert.equal(during!.rotation?.phase, "init");

  const ca = await t.auth.rotateCertAuthority("user", { phase: "update_clients" });
  assert.equal(ca.spec.active_keys.ssh[0]!.private_key, undefined, "no private keys handed out");
  assert.equal(ca.spec.additional_trusted_keys!.ssh[0]!.private_key, undefined);
  assert.notDeepEqual(await signerOf(), oldSigner);
  assert.equal(t.auth.clientCaCertPems().user.length, 2);

  await t.auth.rotateCertAuthority("user", { phase: "update_servers" });
  await t.auth.rotateCertAuthority("user", { phase: "standby" });
  const [after] = (await t.auth.authorities()).filter((a) => a.type === "user");
  assert.equal(after!.sshPublicKeys.length, 1);
  assert.notEqual(after!.sshPublicKeys[0], before!.sshPublicKeys[0]);
  assert.equal(t.auth.clientCaCertPems().user.length, 1);
  assert.deepEqual(changes, [
    "user:init",
    "user:update_clients",
    "user:update_servers",
    "user:standby",
  ]);
});

Deno.test("AuthServer.advanceRotations() moves a semi-automatic host rotation on by its schedule", async () => {
  await using t = await newTestAuth();
  const hostTls = () => parseX509Certificate(t.auth.hostCaCertPems()[0]!).sha256Fingerprint;
  const first = hostTls();
  await t.auth.rotateCertAuthority("host", { gracePeriodMs: 3 * 60_000 });
  assert.equal(t.auth.rotationPhase("host"), "init");
  await t.auth.advanceRotations();
  assert.equal(t.auth.rotationPhase("host"), "init", "nothing is due yet");
  t.clock.advance(60_000);
  await t.auth.advanceRotations();
  assert.equal(t.auth.rotationPhase("host"), "update_clients");
  assert.notEqual(hostTls(), first);
  t.clock.advance(60_000);
  await t.auth.advanceRotations();
  assert.equal(t.auth.rotationPhase("host"), "update_servers");
  t.clock.advance(60_000);
  await t.auth.advanceRotations();
  assert.equal(t.auth.rotationPhase("host"), "standby");
  assert.equal(t.auth.hostCaCertPems().length, 1);
});

Deno.test("AuthServer.rotateCertAuthority() refuses a CA changed meanwhile by another writer", async () => {
  await using t = await newTestAuth();
  const stale = await t.auth.cas.get("host", "example");
  await t.auth.rotateCertAuthority("host", { phase: "init" });
  const next = {
    ...stale,
    spec: { ...stale.spec, active_keys: await newCaKeySet("host", "example", t.clock) },
  };
  await assert.rejects(t.auth.cas.compareAndSwap(next), (e) => isKind(e, "CompareFailed"));
});
