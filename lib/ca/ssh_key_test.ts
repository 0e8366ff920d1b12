import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import { run, runOk, tempDir, writePrivate } from "./_testing.ts";
import {
  formatAuthorizedKey,
  formatOpenSshPrivateKey,
  generateSshKeyPair,
  importSshPrivateKey,
  parseAuthorizedKey,
  parseSshPublicKey,
  sshFingerprint,
  type SshKeyAlgorithm,
} from "./ssh_key.ts";
import { signSsh, verifySshSignature } from "./ssh_signature.ts";

const ALGS: Array<[SshKeyAlgorithm, string, string[]]> = [
  ["ed25519", "ssh-ed25519", ["-t", "ed25519"]],
  ["ecdsa-p256", "ecdsa-sha2-nistp256", ["-t", "ecdsa", "-b", "256"]],
];

Deno.test("generateSshKeyPair() returns matching blob, authorized key and PKCS#8 PEM", async () => {
  for (const [alg, type] of ALGS) {
    const kp = await generateSshKeyPair(alg);
    assert.equal(kp.algorithm, alg);
    assert.ok(kp.authorizedKey.startsWith(`${type} AAAA`), kp.authorizedKey);
    assert.equal(parseSshPublicKey(kp.publicKeyBlob).type, type);
    assert.match(kp.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const again = await importSshPrivateKey(kp.privateKeyPem);
    assert.deepEqual(again.publicKeyBlob, kp.publicKeyBlob);
    assert.equal(again.algorithm, alg);
  }
});

Deno.test("generateSshKeyPair() rejects an unknown algorithm", async () => {
  await assert.rejects(
    () => generateSshKeyPair("rsa" as SshKeyAlgorithm),
    BadParameterError,
  );
});

Deno.test("parseAuthorizedKey() reads options, type, blob and comment", async () => {
  const kp = await generateSshKeyPair("ed25519");
  const b64 = kp.authorizedKey.split(" ")[1];
  const line = `cert-authority,principals="a b,c" ssh-ed25519 ${b64} alice@laptop  `;
  const k = parseAuthorizedKey(line);
  assert.equal(k.type, "ssh-ed25519");
  assert.deepEqual(k.blob, kp.publicKeyBlob);
  assert.equal(k.comment, "alice@laptop");
  assert.equal(k.options, `cert-authority,principals="a b,c"`);
  const plain = parseAuthorizedKey(kp.authorizedKey);
  assert.equal(plain.comment, "");
  assert.equal(plain.options, "");
});

Deno.test("parseAuthorizedKey() rejects a type that does not match the blob", async () => {
  const kp = await generateSshKeyPair("ed25519");
  const b64 = kp.authorizedKey.split(" ")[1];
  assert.throws(() => parseAuthorizedKey(`ecdsa-sha2-nistp256 ${b64}`), /line says/);
  assert.throws(() => parseAuthorizedKey(`ssh-ed25519 !!!!`), /invalid base64/);
  assert.throws(() => parseAuthorizedKey(""), BadParameterError);
  assert.throws(() => parseAuthorizedKey("ssh-ed25519"), BadParameterError);
});

Deno.test("formatAuthorizedKey() round-trips with parseAuthorizedKey()", async () => {
  const kp = await generateSshKeyPair("ecdsa-p256");
  const line = formatAuthorizedKey(kp.publicKeyBlob, "bob@host");
  const k = parseAuthorizedKey(line);
  assert.deepEqual(k.blob, kp.publicKeyBlob);
  assert.equal(k.comment, "bob@host");
  assert.throws(() => formatAuthorizedKey(kp.publicKeyBlob, "a\nb"), BadParameterError);
});

Deno.test("parseSshPublicKey() rejects trailing data and unknown types", async () => {
  const kp = await generateSshKeyPair("ed25519");
  const extra = new Uint8Array([...kp.publicKeyBlob, 0]);
  assert.throws(() => parseSshPublicKey(extra), /trailing data/);
  assert.throws(() => parseSshPublicKey(kp.publicKeyBlob.subarray(0, 20)), /truncated/);
  const dsa = new Uint8Array([0, 0, 0, 7, ...new TextEncoder().encode("ssh-dss")]);
  assert.throws(() => parseSshPublicKey(dsa), /unsupported type "ssh-dss"/);
});

Deno.test("sshFingerprint() matches ssh-keygen -l when given the same key", async () => {
  await using dir = await tempDir();
  for (const [alg] of ALGS) {
    const kp = await generateSshKeyPair(alg);
    await Deno.writeTextFile(dir.file("k.pub"), kp.authorizedKey + "\n");
    const out = await runOk("ssh-keygen", ["-l", "-E", "sha256", "-f", dir.file("k.pub")]);
    assert.equal(out.split(" ")[1], sshFingerprint(kp.publicKeyBlob));
  }
});

Deno.test("formatOpenSshPrivateKey() writes a key ssh-keygen -y accepts", async () => {
  await using dir = await tempDir();
  for (const [alg] of ALGS) {
    const kp = await generateSshKeyPair(alg);
    const text = await formatOpenSshPrivateKey(kp, "test@ca");
    assert.match(text, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    await writePrivate(dir.file("id"), text);
    const out = await runOk("ssh-keygen", ["-y", "-f", dir.file("id")]);
    assert.deepEqual(parseAuthorizedKey(out).blob, kp.publicKeyBlob, `${alg}: ${out}`);
    // And our own reader takes it back, comment included.
    const back = await importSshPrivateKey(text);
    assert.deepEqual(back.publicKeyBlob, kp.publicKeyBlob);
    assert.equal(back.comment, "test@ca");
  }
});

Deno.test("importSshPrivateKey() loads ssh-keygen keys and their signatures verify", async () => {
  await using dir = await tempDir();
  for (const [alg, type, flags] of ALGS) {
    const path = dir.file(`id_${alg}`);
    await runOk("ssh-keygen", [...flags, "-N", "", "-C", "me@there", "-q", "-f", path]);
    const kp = await importSshPrivateKey(await Deno.readTextFile(path));
    const pub = parseAuthorizedKey(await Deno.readTextFile(path + ".pub"));
    assert.equal(kp.algorithm, alg);
    assert.equal(kp.comment, "me@there");
    assert.deepEqual(kp.publicKeyBlob, pub.blob);
    assert.equal(kp.authorizedKey.split(" ")[0], type);
    const data = new TextEncoder().encode("session id and stuff");
    const sig = await signSsh(kp.privateKey, data);
    assert.equal(await verifySshSignature(pub.blob, sig, data), true);
    // The PKCS#8 export loads again too.
    const again = await importSshPrivateKey(kp.privateKeyPem);
    assert.deepEqual(again.publicKeyBlob, pub.blob);
  }
});

Deno.test("importSshPrivateKey() loads an openssl PKCS#8 EC key that ssh-keygen agrees on", async () => {
  await using dir = await tempDir();
  const pem = await runOk("openssl", [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
  ]);
  await writePrivate(dir.file("k.pem"), pem);
  const kp = await importSshPrivateKey(pem);
  const out = await runOk("ssh-keygen", ["-y", "-f", dir.file("k.pem")]);
  assert.deepEqual(parseAuthorizedKey(out).blob, kp.publicKeyBlob);
});

Deno.test("importSshPrivateKey() rejects encrypted keys with a clear error", async () => {
  await using dir = await tempDir();
  const path = dir.file("enc");
  await runOk("ssh-keygen", ["-t", "ed25519", "-N", "secret-pass", "-q", "-f", path]);
  await assert.rejects(
    () => importSshPrivateKey(Deno.readTextFileSync(path)),
    /encrypted keys \(cipher aes256-ctr\) are not supported/,
  );
});

Deno.test("importSshPrivateKey() rejects a corrupted OpenSSH key", async () => {
  const kp = await generateSshKeyPair("ed25519");
  const text = await formatOpenSshPrivateKey(kp);
  const body = text.split("\n").slice(1, -2).join("");
  const der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  // Break the second check int (after magic, "none", "none", "", 1, pubkey, section length).
  const at = 15 + 8 + 8 + 4 + 4 + 4 + kp.publicKeyBlob.length + 4 + 4;
  der[at] = der[at]! ^ 0xff;
  const bad = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + btoa(String.fromCharCode(...der)) +
    "\n-----END OPENSSH PRIVATE KEY-----\n";
  await assert.rejects(() => importSshPrivateKey(bad), /check bytes differ/);
  await assert.rejects(() => importSshPrivateKey("no pem here"), BadParameterError);
});

Deno.test("importSshPrivateKey() rejects an unsupported ssh-keygen key type", async () => {
  await using dir = await tempDir();
  const path = dir.file("rsa");
  await runOk("ssh-keygen", ["-t", "rsa", "-b", "2048", "-N", "", "-q", "-f", path]);
  await assert.rejects(
    () => importSshPrivateKey(Deno.readTextFileSync(path)),
    /unsupported key type "ssh-rsa"/,
  );
  const r = await run("ssh-keygen", ["-y", "-f", path]);
  assert.equal(r.code, 0);
});

Deno.test("importSshPrivateKey() rejects an OpenSSH key whose private half does not match", async () => {
  const a = await generateSshKeyPair("ed25519");
  const b = await generateSshKeyPair("ed25519");
  const aJwk = await crypto.subtle.exportKey("jwk", a.privateKey);
  // b's public key with a's private seed: write it out as if it were one key.
  const mixed = await crypto.subtle.importKey(
    "jwk",
    { ...aJwk, x: (await crypto.subtle.exportKey("jwk", b.publicKey)).x },
    "Ed25519",
    true,
    ["sign"],
  );
  const text = await formatOpenSshPrivateKey({ privateKey: mixed, publicKeyBlob: b.publicKeyBlob });
  await assert.rejects(() => importSshPrivateKey(text), /private key does not match/);
});
