import assert from "node:assert/strict";
import { formatAuthorizedKey, generateSshKeyPair, generateTlsKeyPair } from "../ca/mod.ts";
import { parseFlatYaml } from "./_flat_yaml.ts";
import { testCluster } from "./_testing.ts";
import {
  parseKnownHostsCaKeys,
  type Profile,
  type ProfileKeys,
  ProfileStore,
  replaceKnownHostsCaKeys,
  resolveTshHome,
} from "./profile.ts";

async function sampleProfile(): Promise<{ profile: Profile; keys: ProfileKeys }> {
  const cluster = await testCluster("c1");
  const sshKey = await generateSshKeyPair("ed25519");
  const tls = await generateTlsKeyPair();
  const profile: Profile = {
    name: "proxy.example.com",
    webProxyAddr: { host: "proxy.example.com", port: 3080 },
    sshProxyAddr: { host: "proxy.example.com", port: 3023 },
    user: "alice",
    cluster: "c1",
    tlsRoutingEnabled: true,
    webCertSha256: "ab".repeat(32),
    validUntil: new Date(Date.UTC(2030, 0, 1, 12)),
  };
  const keys: ProfileKeys = {
    sshKey,
    sshCert: await cluster.userCert(sshKey.publicKeyBlob, "alice", ["alice", "root"]),
    tlsKeyPem: tls.privateKeyPem,
    tlsCertPem: cluster.tlsCa.certPem, // any PEM will do for the store
    hostCaTlsCerts: [cluster.tlsCa.certPem],
    hostCaKeys: [cluster.hostCaLine],
  };
  return { profile, keys };
}

Deno.test("ProfileStore save() then load() round-trips a profile and its keys", async () => {
  const home = await Deno.makeTempDir({ prefix: "tsh_profile_test_" });
  try {
    const store = new ProfileStore(`${home}/.tsh`);
    const { profile, keys } = await sampleProfile();
    await store.save(profile, keys);
    assert.equal(await store.currentName(), "proxy.example.com");
    const loaded = await store.load();
    assert.deepEqual(loaded, profile);
    const k = await store.loadKeys(loaded!);
    assert.equal(k.sshCert, keys.sshCert);
    assert.equal(k.tlsKeyPem, keys.tlsKeyPem);
    assert.deepEqual(k.hostCaKeys, keys.hostCaKeys);
    assert.equal(k.hostCaTlsCerts.length, 1);
    assert.deepEqual(k.sshKey.publicKeyBlob, keys.sshKey.publicKeyBlob);
    assert.deepEqual(await store.list(), ["proxy.example.com"]);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("ProfileStore save() writes Teleport's layout with files 0600 and dirs 0700", async () => {
  const home = await Deno.makeTempDir({ prefix: "tsh_profile_test_" });
  try {
    const store = new ProfileStore(`${home}/.tsh`);
    const { profile, keys } = await sampleProfile();
    const paths = await store.save(profile, keys);
    const t = `${home}/.tsh`;
    const k = `${t}/keys/proxy.example.com`;
    assert.equal(paths.sshKey, `${k}/alice`);
    assert.equal(paths.sshCert, `${k}/alice-ssh/c1-cert.pub`);
    assert.equal(paths.tlsCert, `${k}/alice-x509.pem`);
    assert.equal(paths.tlsKey, `${k}/alice-tls.key`);
    assert.equal(paths.hostCas, `${k}/cas/c1.pem`);
    for (
      const f of [
        paths.sshKey,
        paths.sshPublicKey,
        paths.sshCert,
        paths.tlsKey,
        paths.tlsCert,
        paths.hostCas,
        paths.knownHosts,
        paths.profile,
        paths.currentProfile,
      ]
    ) {
      assert.equal((await Deno.stat(f)).mode! & 0o777, 0o600, f);
    }
    for (const d of [t, k, `${k}/alice-ssh`, `${k}/cas`]) {
      assert.equal((await Deno.stat(d)).mode! & 0o777, 0o700, d);
    }
    const key = await Deno.readTextFile(paths.sshKey);
    assert.match(key, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    // Stock OpenSSH reads the key (ssh -i uses the same loader as ssh-keygen -y).
    const out = await new Deno.Command("ssh-keygen", { args: ["-y", "-f", paths.sshKey] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(
      new TextDecoder().decode(out.stdout).trim().split(" ").slice(0, 2).join(" "),
      formatAuthorizedKey(keys.sshKey.publicKeyBlob),
    );
    const yaml = await Deno.readTextFile(paths.profile);
    assert.match(yaml, /^web_proxy_addr: "proxy.example.com:3080"$/m);
    assert.match(yaml, /^tls_routing_enabled: true$/m);
    assert.doesNotMatch(yaml, /^\{/); // YAML, not JSON
    const known = await Deno.readTextFile(paths.knownHosts);
    assert.equal(
      known,
      `@cert-authority proxy.example.com,*.c1 ${keys.hostCaKeys[0]} clusterName=c1 type=host\n`,
    );
    // Nothing temporary is left behind.
    for await (const e of Deno.readDir(t)) assert.doesNotMatch(e.name, /\.tmp-/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("ProfileStore remove() deletes the keys, profile, current-profile and CA lines", async () => {
  const home = await Deno.makeTempDir({ prefix: "tsh_profile_test_" });
  try {
    const store = new ProfileStore(home + "/t");
    const { profile, keys } = await sampleProfile();
    const paths = await store.save(profile, keys);
    await Deno.writeTextFile(paths.knownHosts, "other.host ssh-ed25519 AAAA\n", { append: true });
    assert.equal(await store.remove("proxy.example.com"), true);
    assert.equal(await store.load(), undefined);
    assert.equal(await store.currentName(), undefined);
    await assert.rejects(Deno.stat(paths.keysDir), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(paths.knownHosts), "other.host ssh-ed25519 AAAA\n");
    assert.equal(await store.remove("proxy.example.com"), false);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("ProfileStore paths() refuses names that would leave the store", () => {
  const store = new ProfileStore("/tmp/x");
  assert.throws(() => store.paths("proxy", "../etc", "c1"), /Cannot use user name/);
  assert.throws(() => store.paths("..", "alice", "c1"), /Cannot use proxy host/);
  assert.throws(() => store.paths("proxy", "alice", "a/b"), /Cannot use cluster name/);
});

Deno.test("ProfileStore load() reports a malformed profile clearly", async () => {
  const home = await Deno.makeTempDir({ prefix: "tsh_profile_test_" });
  try {
    await Deno.writeTextFile(`${home}/p.yaml`, "user: alice\n");
    await assert.rejects(new ProfileStore(home).load("p"), /"valid_until" is missing/);
    assert.equal(await new ProfileStore(home).load("nope"), undefined);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("resolveTshHome() prefers TELEPORT_HOME, made absolute, then ~/.tsh", () => {
  assert.equal(resolveTshHome({ TELEPORT_HOME: "/a/b", HOME: "/h" }, "/cwd"), "/a/b");
  assert.equal(resolveTshHome({ TELEPORT_HOME: "rel", HOME: "/h" }, "/cwd"), "/cwd/rel");
  assert.equal(resolveTshHome({ HOME: "/h/" }, "/cwd"), "/h/.tsh");
  assert.throws(() => resolveTshHome({}, "/cwd"), /HOME is not set/);
});

Deno.test("replaceKnownHostsCaKeys() keeps other lines and replaces the cluster's", async () => {
  const a = formatAuthorizedKey((await generateSshKeyPair("ed25519")).publicKeyBlob);
  const b = formatAuthorizedKey((await generateSshKeyPair("ed25519")).publicKeyBlob);
  let text = "host1 ssh-ed25519 AAAAC3Nza\n";
  text = replaceKnownHostsCaKeys(text, "c1", "proxy", [a]);
  text = replaceKnownHostsCaKeys(text, "c2", "proxy2", [a]);
  text = replaceKnownHostsCaKeys(text, "c1", "proxy", [b]);
  assert.deepEqual(parseKnownHostsCaKeys(text, "c1"), [b]);
  assert.deepEqual(parseKnownHostsCaKeys(text, "c2"), [a]);
  assert.match(text, /^host1 ssh-ed25519 AAAAC3Nza$/m);
});

Deno.test("parseFlatYaml() reads quoted, plain and boolean scalars and rejects the rest", () => {
  assert.deepEqual(
    parseFlatYaml("# c\na: \"x\\\"y\"\nb: plain # note\nc: true\nd: 12\ne: 'it''s'\nf:\n", "f"),
    { a: 'x"y', b: "plain", c: true, d: 12, e: "it's", f: null },
  );
  assert.throws(() => parseFlatYaml("a: [1, 2]\n", "f"), /line 1 holds a YAML value/);
  assert.throws(() => parseFlatYaml("a: 1\na: 2\n", "f"), /repeats the key a/);
  assert.throws(() => parseFlatYaml("  - x\n", "f"), /not a "key: value" line/);
});
