/**
 * Fuzz tests of the SSH parsers that read what peers send: the RFC 4251 wire reader, public key
 * blobs, authorized_keys lines, OpenSSH certificates (ours and ssh-keygen's), signatures and
 * OpenSSH private key files. Every input must give a value or a kinded error: BadParameter for
 * malformed data, AccessDenied from verification.
 */
import assert from "node:assert/strict";
import { expectKinds, expectKindsAsync, fuzz, invariant, type Rng } from "../testing/mod.ts";
import { base64Encode, encodePem } from "./_encoding.ts";
import { runOk, tempDir } from "./_testing.ts";
import { parseSshCertificate, signSshCertificate, verifySshCertificate } from "./ssh_cert.ts";
import {
  encodeSshPublicKey,
  formatAuthorizedKey,
  formatOpenSshPrivateKey,
  generateSshKeyPair,
  importSshPrivateKey,
  parseAuthorizedKey,
  parseSshPublicKey,
  sshBlobType,
  sshPublicKeyBlob,
} from "./ssh_key.ts";
import { parseSshSignature, signSsh, verifySshSignature } from "./ssh_signature.ts";
import { SshReader, SshWriter } from "./ssh_wire.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const latin1 = new TextDecoder("latin1");

/** Seeds: our own keys and certificates of every kind, and ssh-keygen's. */
const seeds = await (async () => {
  const ca = await generateSshKeyPair("ed25519");
  const ecCa = await generateSshKeyPair("ecdsa-p256");
  const ed = await generateSshKeyPair("ed25519");
  const ec = await generateSshKeyPair("ecdsa-p256");
  const rsa = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 1024,
      publicExponent: Uint8Array.of(1, 0, 1),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const p384 = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const keyBlobs = [
    ed.publicKeyBlob,
    ec.publicKeyBlob,
    await sshPublicKeyBlob(rsa.publicKey),
    await sshPublicKeyBlob(p384.publicKey),
  ];
  const now = Date.now();
  const certs: Uint8Array[] = [];
  for (const [i, publicKeyBlob] of keyBlobs.entries()) {
    const signer = i % 2 === 0 ? ca : ecCa;
    certs.push(
      (await signSshCertificate({
        signer,
        publicKeyBlob,
        certType: i % 2 === 0 ? "user" : "host",
        keyId: `key-${i}`,
        principals: ["alice", "root", "node.example.com"].slice(0, 1 + i),
        validAfter: new Date(now - 60_000),
        validBefore: i === 3 ? "forever" : new Date(now + 3_600_000),
        criticalOptions: i === 0 ? { "force-command": "/bin/true" } : {},
        extensions: { "permit-pty": "", "x-teleport-role": "node" },
      })).blob,
    );
  }
  // ssh-keygen's own certificates: RSA CA (rsa-sha2-512), options and a custom extension.
  await using dir = await tempDir();
  const keygen = (name: string, ...flags: string[]) =>
    runOk("ssh-keygen", [...flags, "-N", "", "-q", "-C", "", "-f", dir.file(name)]);
  await keygen("rsa_ca", "-t", "rsa", "-b", "1024");
  await keygen("user", "-t", "ecdsa", "-b", "521");
  await runOk("ssh-keygen", [
    "-s",
    dir.file("rsa_ca"),
    "-I",
    "keygen-cert",
    "-n",
    "alice,bob",
    "-V",
    "-5m:+1h",
    "-O",
    "source-address=127.0.0.1/32",
    "-O",
    "force-command=/usr/bin/id",
    "-O",
    "extension:x-teleport-authority@example=1",
    "-z",
    "42",
    dir.file("user.pub"),
  ]);
  const keygenCert = parseAuthorizedKey(await Deno.readTextFile(dir.file("user-cert.pub"))).blob;
  const rsaCaBlob = parseAuthorizedKey(await Deno.readTextFile(dir.file("rsa_ca.pub"))).blob;
  const userBlob = parseAuthorizedKey(await Deno.readTextFile(dir.file("user.pub"))).blob;
  const keygenPrivate = await Deno.readTextFile(dir.file("user"));
  const data = enc("signed data");
  const signatures = [
    await signSsh(ca.privateKey, data),
    await signSsh(ec.privateKey, data),
    await signSsh(rsa.privateKey, data),
  ];
  return {
    caBlobs: [ca.publicKeyBlob, ecCa.publicKeyBlob, rsaCaBlob],
    keyBlobs: [...keyBlobs, rsaCaBlob, userBlob],
    certs: [...certs, keygenCert],
    signatures,
    signers: [ca.publicKeyBlob, ec.publicKeyBlob, keyBlobs[2]!],
    data,
    privateKeys: [
      await formatOpenSshPrivateKey(ed, "ed comment"),
      await formatOpenSshPrivateKey(ec, ""),
      ed.privateKeyPem,
    ],
    keygenPrivate,
  };
})();

/** SSH wire tokens: common lengths, type names, option names. */
const SSH_DICTIONARY = [
  Uint8Array.of(0, 0, 0, 0),
  Uint8Array.of(0, 0, 0, 1),
  Uint8Array.of(0xff, 0xff, 0xff, 0xff),
  Uint8Array.of(0, 0, 0, 0x20),
  enc("ssh-ed25519"),
  enc("ecdsa-sha2-nistp256"),
  enc("nistp256"),
  enc("ssh-rsa"),
  enc("ssh-ed25519-cert-v01@openssh.com"),
  enc("force-command"),
  enc("permit-pty"),
];

/** A sequence of `string` fields built from random parts (a structured wire message). */
function wireMessage(rng: Rng): Uint8Array {
  const w = new SshWriter();
  for (let i = rng.int(12); i >= 0; i--) {
    switch (rng.int(4)) {
      case 0:
        w.string(rng.pick(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp384", "nistp384", ""]));
        break;
      case 1:
        w.string(rng.bytes(rng.length(80)));
        break;
      case 2:
        w.uint32(rng.u32());
        break;
      default:
        w.raw(rng.bytes(rng.int(9)));
    }
  }
  return w.bytes();
}

Deno.test("SshReader reads any byte string field by field or throws BadParameter", async () => {
  await fuzz({
    name: "SshReader",
    corpus: [...seeds.certs, ...seeds.keyBlobs],
    dictionary: SSH_DICTIONARY,
    generators: [wireMessage],
    check(input, rng) {
      const r = new SshReader(input, "fuzz input");
      expectKinds(["BadParameter"], () => {
        for (let i = 0; i < 40 && r.remaining > 0; i++) {
          const before = r.offset;
          switch (rng.int(9)) {
            case 0:
              r.byte();
              break;
            case 1:
              r.boolean();
              break;
            case 2:
              r.uint32();
              break;
            case 3:
              r.uint64();
              break;
            case 4:
              r.string();
              break;
            case 5:
              r.text();
              break;
            case 6:
              r.mpint();
              break;
            case 7:
              invariant(r.mpintBytes()[0] !== 0, "mpintBytes strips leading zeros");
              break;
            default:
              r.nameList();
          }
          invariant(r.offset > before && r.offset <= input.length, "the reader advances");
        }
        r.end();
      });
    },
  });
});

Deno.test("parseSshPublicKey() and sshBlobType() give a key or BadParameter", async () => {
  await fuzz({
    name: "parseSshPublicKey()",
    corpus: seeds.keyBlobs,
    dictionary: SSH_DICTIONARY,
    generators: [wireMessage],
    check(input) {
      expectKinds(["BadParameter"], () => sshBlobType(input));
      const key = expectKinds(["BadParameter"], () => parseSshPublicKey(input));
      if (key === undefined) return;
      // Encoding is canonical: what we parsed re-encodes to a blob that parses the same.
      assert.deepEqual(parseSshPublicKey(encodeSshPublicKey(key)), key);
    },
  });
});

Deno.test("parseSshCertificate() gives a certificate or BadParameter for 100k blobs", async () => {
  let parsed = 0;
  await fuzz({
    name: "parseSshCertificate()",
    corpus: seeds.certs,
    dictionary: SSH_DICTIONARY,
    check(input) {
      const cert = expectKinds(["BadParameter"], () => parseSshCertificate(input));
      if (cert === undefined) return;
      parsed++;
      invariant(cert.certType === "user" || cert.certType === "host", "cert type");
      invariant(!Number.isNaN(cert.validAfter.getTime()), "valid after is a time");
      invariant(
        cert.validBefore === "forever" || !Number.isNaN(cert.validBefore.getTime()),
        "valid before is a time",
      );
      invariant(cert.principals.every((p) => typeof p === "string"), "principals are text");
      invariant(cert.signedBytes.length < input.length, "the signature follows the signed part");
      parseSshPublicKey(cert.publicKeyBlob);
      for (const v of [...Object.values(cert.criticalOptions), ...Object.values(cert.extensions)]) {
        invariant(typeof v === "string", "option values are text");
      }
    },
  });
  assert.ok(parsed > 5_000, `only ${parsed} mutated certificates parsed`);
});

Deno.test("parseAuthorizedKey() and parseSshCertificate() read any line or throw BadParameter", async () => {
  const lines = [
    ...seeds.certs.map((c) => formatAuthorizedKey(c, "alice@laptop")),
    ...seeds.keyBlobs.map((k) => formatAuthorizedKey(k)),
    `cert-authority,principals="a b",from="10.0.0.0/8" ${formatAuthorizedKey(seeds.caBlobs[0]!)}`,
  ];
  await fuzz({
    name: "parseAuthorizedKey()",
    corpus: lines.map(enc),
    dictionary: [" ", "\t", '"', "\\", ",", "=", "#", "\n", "ssh-", "@openssh.com", "AAAA"],
    maxLength: 4096,
    generators: [(rng) => enc(`${rng.pick(["ssh-rsa", "x"])} ${base64Encode(wireMessage(rng))}`)],
    check(input) {
      const line = latin1.decode(input);
      const key = expectKinds(["BadParameter"], () => parseAuthorizedKey(line));
      if (key !== undefined) {
        invariant(sshBlobType(key.blob) === key.type, "the line's type matches the blob");
      }
      expectKinds(["BadParameter"], () => parseSshCertificate(line));
    },
  });
});

Deno.test("verifySshCertificate() and verifySshSignature() refuse mutated input with kinded errors", async () => {
  const now = new Date();
  await fuzz({
    name: "verifySshCertificate()",
    corpus: seeds.certs,
    dictionary: SSH_DICTIONARY,
    cases: 20_000,
    async check(input, rng) {
      const cert = expectKinds(["BadParameter"], () => parseSshCertificate(input));
      if (cert === undefined) return;
      // Trust the certificate's own (possibly mutated) CA key so verification reaches crypto.
      await expectKindsAsync(["BadParameter", "AccessDenied"], () =>
        verifySshCertificate(cert, {
          trustedCaKeys: [...seeds.caBlobs, cert.signatureKeyBlob],
          certType: rng.pick(["user", "host"]),
          principal: rng.pick(["alice", "root"]),
          now,
        }));
    },
  });
  await fuzz({
    name: "verifySshSignature()",
    corpus: [...seeds.signatures, ...seeds.signers],
    dictionary: SSH_DICTIONARY,
    cases: 20_000,
    async check(input, rng) {
      // Mutate either side: the signature with a real key, or the key with a real signature.
      const i = rng.int(seeds.signatures.length);
      const [key, sig] = rng.chance(0.5)
        ? [seeds.signers[i]!, input]
        : [input, seeds.signatures[i]!];
      const ok = await expectKindsAsync(
        ["BadParameter"],
        () => verifySshSignature(key, sig, seeds.data),
      );
      invariant(ok === undefined || typeof ok === "boolean", "a boolean");
      expectKinds(["BadParameter"], () => parseSshSignature(input));
    },
  });
});

Deno.test("importSshPrivateKey() loads a key or throws BadParameter for mutated key files", async () => {
  const blobOf = (pem: string) =>
    Uint8Array.from(
      atob(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "")),
      (c) => c.charCodeAt(0),
    );
  const binaries = [...seeds.privateKeys, seeds.keygenPrivate].map(blobOf);
  await fuzz({
    name: "importSshPrivateKey()",
    corpus: binaries,
    dictionary: [...SSH_DICTIONARY, enc("none"), enc("openssh-key-v1\0")],
    cases: 20_000,
    async check(input, rng) {
      const label = rng.chance(0.8) ? "OPENSSH PRIVATE KEY" : "PRIVATE KEY";
      const pem = encodePem(label, input);
      await expectKindsAsync(["BadParameter"], () => importSshPrivateKey(pem));
    },
  });
  // The seeds load (so mutations start from valid files); ssh-keygen's P-521 key is refused.
  for (const pem of seeds.privateKeys) await importSshPrivateKey(pem);
  await assert.rejects(() => importSshPrivateKey(seeds.keygenPrivate), {
    name: "BadParameterError",
    message: /unsupported key type "ecdsa-sha2-nistp521"/,
  });
});
