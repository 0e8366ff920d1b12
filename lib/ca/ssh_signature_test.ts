import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { BadParameterError } from "../errors/mod.ts";
import { generateSshKeyPair, sshPublicKeyBlob } from "./ssh_key.ts";
import { parseSshSignature, signSsh, verifySshSignature } from "./ssh_signature.ts";
import { SshReader, SshWriter } from "./ssh_wire.ts";

const DATA = new TextEncoder().encode("exchange hash");

async function ecdsaPair(namedCurve: string): Promise<[CryptoKey, Uint8Array]> {
  const kp = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return [kp.privateKey, await sshPublicKeyBlob(kp.publicKey)];
}

Deno.test("signSsh() output verifies with verifySshSignature() for Ed25519 and ECDSA", async () => {
  const ed = await generateSshKeyPair("ed25519");
  const cases: Array<[string, CryptoKey, Uint8Array]> = [
    ["ssh-ed25519", ed.privateKey, ed.publicKeyBlob],
  ];
  for (
    const [curve, name] of [["P-256", "nistp256"], ["P-384", "nistp384"], ["P-521", "nistp521"]]
  ) {
    const [priv, blob] = await ecdsaPair(curve!);
    cases.push([`ecdsa-sha2-${name}`, priv, blob]);
  }
  for (const [format, priv, blob] of cases) {
    const sig = await signSsh(priv, DATA);
    assert.equal(parseSshSignature(sig).format, format);
    assert.equal(await verifySshSignature(blob, sig, DATA), true, format);
    assert.equal(await verifySshSignature(blob, sig, new Uint8Array([1, 2])), false, format);
  }
});

Deno.test("signSsh() wraps ECDSA r and s as two mpints in a string", async () => {
  const [priv] = await ecdsaPair("P-256");
  const sig = parseSshSignature(await signSsh(priv, DATA));
  const r = new SshReader(sig.signature);
  assert.ok(r.mpint() > 0n);
  assert.ok(r.mpint() > 0n);
  r.end();
});

Deno.test("verifySshSignature() returns false when the format does not fit the key", async () => {
  const [p256, p256Blob] = await ecdsaPair("P-256");
  const sig = parseSshSignature(await signSsh(p256, DATA));
  const relabeled = new SshWriter().string("ecdsa-sha2-nistp384").string(sig.signature).bytes();
  assert.equal(await verifySshSignature(p256Blob, relabeled, DATA), false);
  const ed = await generateSshKeyPair("ed25519");
  const edSig = await signSsh(ed.privateKey, DATA);
  assert.equal(await verifySshSignature(p256Blob, edSig, DATA), false);
});

Deno.test("verifySshSignature() returns false for malformed signature blobs", async () => {
  const ed = await generateSshKeyPair("ed25519");
  const sig = await signSsh(ed.privateKey, DATA);
  assert.equal(await verifySshSignature(ed.publicKeyBlob, sig.subarray(0, 10), DATA), false);
  assert.equal(
    await verifySshSignature(ed.publicKeyBlob, new Uint8Array([...sig, 0]), DATA),
    false,
  );
  const short = new SshWriter().string("ssh-ed25519").string(new Uint8Array(63)).bytes();
  assert.equal(await verifySshSignature(ed.publicKeyBlob, short, DATA), false);
  const [, p256Blob] = await ecdsaPair("P-256");
  const negative = new SshWriter().string("ecdsa-sha2-nistp256")
    .string(new SshWriter().mpint(-1n).mpint(1n).bytes()).bytes();
  assert.equal(await verifySshSignature(p256Blob, negative, DATA), false);
});

Deno.test("verifySshSignature() throws BadParameterError when the key blob is malformed", async () => {
  const ed = await generateSshKeyPair("ed25519");
  const sig = await signSsh(ed.privateKey, DATA);
  await assert.rejects(
    () => verifySshSignature(ed.publicKeyBlob.subarray(0, 12), sig, DATA),
    BadParameterError,
  );
});

Deno.test("verifySshSignature() accepts rsa-sha2-256, rsa-sha2-512 and ssh-rsa signatures", async () => {
  for (const hash of ["SHA-256", "SHA-512"]) {
    const kp = await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash,
      },
      true,
      ["sign", "verify"],
    ) as CryptoKeyPair;
    const blob = await sshPublicKeyBlob(kp.publicKey);
    const sig = await signSsh(kp.privateKey, DATA);
    assert.equal(
      parseSshSignature(sig).format,
      hash === "SHA-256" ? "rsa-sha2-256" : "rsa-sha2-512",
    );
    assert.equal(await verifySshSignature(blob, sig, DATA), true);
    assert.equal(await verifySshSignature(blob, sig, DATA.subarray(1)), false);
  }
  // ssh-rsa (SHA-1), signed with node:crypto since WebCrypto keys here carry SHA-256.
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" });
  const pubKey = await crypto.subtle.importKey(
    "jwk",
    jwk,
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    true,
    ["verify"],
  );
  const blob = await sshPublicKeyBlob(pubKey);
  const raw = nodeSign(
    "sha1",
    DATA,
    createPrivateKey(privateKey.export({ format: "pem", type: "pkcs8" })),
  );
  const sig = new SshWriter().string("ssh-rsa").string(raw).bytes();
  assert.equal(await verifySshSignature(blob, sig, DATA), true);
  const mislabeled = new SshWriter().string("rsa-sha2-256").string(raw).bytes();
  assert.equal(await verifySshSignature(blob, mislabeled, DATA), false);
});

Deno.test("verifySshSignature() refuses RSA keys shorter than 1024 bits", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 768 });
  const pubKey = await crypto.subtle.importKey(
    "jwk",
    publicKey.export({ format: "jwk" }),
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    true,
    ["verify"],
  );
  const blob = await sshPublicKeyBlob(pubKey);
  const sig = new SshWriter().string("rsa-sha2-256").string(nodeSign("sha256", DATA, privateKey))
    .bytes();
  assert.equal(await verifySshSignature(blob, sig, DATA), false);
});
