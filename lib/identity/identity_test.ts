import assert from "node:assert/strict";
import {
  hostIdOf,
  type Identity,
  identityFromSubject,
  identityToSubject,
  OID,
  readIdentityFile,
  writeIdentityFile,
} from "./mod.ts";

Deno.test("identityToSubject() round-trips a user identity", () => {
  const id: Identity = {
    kind: "user",
    username: "alice",
    clusterName: "example",
    roles: ["access", "editor"],
    logins: ["alice", "root"],
    traits: { logins: ["alice", "root"] },
  };
  const subject = identityToSubject(id);
  assert.deepEqual(subject.filter(([o]) => o === OID.organization).map(([, v]) => v), [
    "access",
    "editor",
  ]);
  assert.deepEqual(identityFromSubject(subject), id);
});

Deno.test("identityFromSubject() tells hosts by their system roles", () => {
  const id: Identity = {
    kind: "host",
    username: "0b8e.example",
    clusterName: "example",
    roles: ["Node"],
    logins: [],
    traits: {},
  };
  const back = identityFromSubject(identityToSubject(id));
  assert.equal(back.kind, "host");
  assert.deepEqual(back.roles, ["Node"]);
  assert.equal(hostIdOf(back), "0b8e");
});

Deno.test("identityFromSubject() rejects subjects without CN or cluster", () => {
  assert.throws(() => identityFromSubject([[OID.teleportCluster, "c"]]), /exactly one CN/);
  assert.throws(() => identityFromSubject([[OID.commonName, "a"]]), /no cluster/);
});

Deno.test("writeIdentityFile() writes 0600 and reads back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/admin.identity`;
    const f = { keyPem: "K", tlsCertPem: "C", tlsCaCertPems: ["CA"], sshCaKeys: [] };
    await writeIdentityFile(path, f);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(await readIdentityFile(path), f);
    await assert.rejects(readIdentityFile(`${dir}/nope`), /does not exist/);
    await Deno.writeTextFile(`${dir}/bad`, "{}");
    await assert.rejects(readIdentityFile(`${dir}/bad`), /not a teleport identity file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
