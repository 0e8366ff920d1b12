import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";
import { runOk, tempDir } from "./_testing.ts";
import {
  parseSshCertificate,
  signSshCertificate,
  type SignSshCertificateOptions,
  type SshCertType,
  verifySshCertificate,
} from "./ssh_cert.ts";
import {
  generateSshKeyPair,
  parseAuthorizedKey,
  sshFingerprint,
  type SshKeyAlgorithm,
  type SshKeyPair,
} from "./ssh_key.ts";
import { SshReader, SshWriter } from "./ssh_wire.ts";

const HOUR = 3_600_000;
const MINUTE = 60_000;

function userCertOptions(
  ca: SshKeyPair,
  subject: Uint8Array,
  clock: FakeClock,
): SignSshCertificateOptions {
  return {
    signer: ca,
    publicKeyBlob: subject,
    certType: "user",
    keyId: "alice",
    principals: ["alice", "root"],
    validAfter: new Date(clock.now().getTime() - MINUTE),
    validBefore: new Date(clock.now().getTime() + HOUR),
    serial: 7n,
    criticalOptions: { "force-command": "/bin/true" },
    extensions: { "x-teleport-role": "admin", "permit-pty": "" },
  };
}

function assertDenied(reason: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof AccessDeniedError, `want AccessDeniedError, got ${err}`);
    assert.ok(err.message.endsWith(reason), `"${err.message}" should end with "${reason}"`);
    return true;
  };
}

/** Normalizes `ssh-keygen -L` output: trimmed lines joined by "\n". */
function normalize(text: string): string {
  return text.split("\n").map((l) => l.trim()).join("\n");
}

Deno.test("signSshCertificate() produces a certificate parseSshCertificate() reads back", async () => {
  const clock = new FakeClock();
  const ca = await generateSshKeyPair("ed25519");
  const user = await generateSshKeyPair("ecdsa-p256");
  const opts = userCertOptions(ca, user.publicKeyBlob, clock);
  const signed = await signSshCertificate(opts);
  assert.ok(signed.authorizedKey.startsWith("ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA"));
  const cert = parseSshCertificate(signed.authorizedKey);
  assert.equal(cert.type, "ecdsa-sha2-nistp256-cert-v01@openssh.com");
  assert.equal(cert.nonce.length, 32);
  assert.deepEqual(cert.publicKeyBlob, user.publicKeyBlob);
  assert.equal(cert.serial, 7n);
  assert.equal(cert.certType, "user");
  assert.equal(cert.keyId, "alice");
  assert.deepEqual(cert.principals, ["alice", "root"]);
  assert.equal(cert.validAfter.getTime(), opts.validAfter.getTime());
  assert.deepEqual(cert.validBefore, opts.validBefore);
  assert.deepEqual(cert.criticalOptions, { "force-command": "/bin/true" });
  // Sorted by name on the wire, so parse order is sorted.
  assert.deepEqual(Object.keys(cert.extensions), ["permit-pty", "x-teleport-role"]);
  assert.deepEqual(cert.extensions, { "permit-pty": "", "x-teleport-role": "admin" });
  assert.deepEqual(cert.signatureKeyBlob, ca.publicKeyBlob);
  assert.deepEqual(cert.blob, signed.blob);
  assert.deepEqual(parseSshCertificate(signed.blob), cert);
});

Deno.test("signSshCertificate() wraps non-empty option values in a string and leaves flags empty", async () => {
  const clock = new FakeClock();
  const ca = await generateSshKeyPair("ed25519");
  const user = await generateSshKeyPair("ed25519");
  const cert = parseSshCertificate(
    (await signSshCertificate(userCertOptions(ca, user.publicKeyBlob, clock))).blob,
  );
  // Re-read the extensions field raw: skip to it the way the spec lays it out.
  const r = new SshReader(cert.blob);
  r.text(); // type
  r.string(); // nonce
  r.string(); // pk
  r.uint64(); // serial
  r.uint32(); // type
  r.string(); // key id
  r.string(); // principals
  r.uint64(); // valid after
  r.uint64(); // valid before
  r.string(); // critical options
  const ext = new SshReader(r.string());
  assert.equal(ext.text(), "permit-pty");
  assert.equal(ext.string().length, 0);
  assert.equal(ext.text(), "x-teleport-role");
  assert.deepEqual(ext.string(), new SshWriter().string("admin").bytes());
  ext.end();
});

Deno.test("signSshCertificate() encodes validBefore forever as 0xFFFFFFFFFFFFFFFF", async () => {
  const ca = await generateSshKeyPair("ecdsa-p256");
  const host = await generateSshKeyPair("ed25519");
  const signed = await signSshCertificate({
    signer: ca,
    publicKeyBlob: host.publicKeyBlob,
    certType: "host",
    keyId: "node",
    principals: ["node.example.com"],
    validAfter: new Date(0),
    validBefore: "forever",
  });
  const cert = parseSshCertificate(signed.blob);
  assert.equal(cert.validBefore, "forever");
  assert.equal(cert.serial, 0n);
  const tail = cert.signedBytes.length - 4 - cert.signatureKeyBlob.length - 4 * 3 - 8;
  assert.deepEqual(cert.signedBytes.subarray(tail, tail + 8), new Uint8Array(8).fill(0xff));
  await verifySshCertificate(cert, {
    trustedCaKeys: [ca.publicKeyBlob],
    certType: "host",
    principal: "node.example.com",
    now: new Date(Date.UTC(2200, 0, 1)),
  });
});

Deno.test("signSshCertificate() rejects bad inputs with BadParameterError", async () => {
  const clock = new FakeClock();
  const ca = await generateSshKeyPair("ed25519");
  const other = await generateSshKeyPair("ed25519");
  const user = await generateSshKeyPair("ed25519");
  const base = userCertOptions(ca, user.publicKeyBlob, clock);
  await assert.rejects(
    () => signSshCertificate({ ...base, signer: { ...ca, publicKeyBlob: other.publicKeyBlob } }),
    /private key does not match/,
  );
  await assert.rejects(
    () => signSshCertificate({ ...base, validBefore: base.validAfter }),
    BadParameterError,
  );
  await assert.rejects(
    () => signSshCertificate({ ...base, certType: "admin" as SshCertType }),
    BadParameterError,
  );
  await assert.rejects(
    () => signSshCertificate({ ...base, publicKeyBlob: user.publicKeyBlob.subarray(1) }),
    BadParameterError,
  );
  await assert.rejects(() => signSshCertificate({ ...base, principals: [""] }), BadParameterError);
});

Deno.test("parseSshCertificate() rejects truncated, trailing and unknown-type data", async () => {
  const clock = new FakeClock();
  const ca = await generateSshKeyPair("ed25519");
  const user = await generateSshKeyPair("ed25519");
  const { blob } = await signSshCertificate(userCertOptions(ca, user.publicKeyBlob, clock));
  assert.throws(() => parseSshCertificate(blob.subarray(0, blob.length - 1)), /truncated/);
  assert.throws(() => parseSshCertificate(new Uint8Array([...blob, 0])), /trailing data/);
  const r = new SshReader(blob);
  r.text();
  const rest = blob.subarray(r.offset);
  const dss = new SshWriter().string("ssh-dss-cert-v01@openssh.com").raw(rest).bytes();
  assert.throws(() => parseSshCertificate(dss), /unknown certificate type/);
  assert.throws(
    () => parseSshCertificate(user.authorizedKey),
    /unknown certificate type "ssh-ed25519"/,
  );
  // Cert type 3 is neither user nor host: it sits after type, nonce, pk, serial.
  const bad = blob.slice();
  const at = 4 + 32 + 4 + 32 + 4 + 32 + 8 + 3;
  bad[at] = 3;
  assert.throws(() => parseSshCertificate(bad), /unknown cert type 3/);
});

Deno.test("verifySshCertificate() rejects each failed check with a precise reason", async () => {
  const clock = new FakeClock();
  const ca = await generateSshKeyPair("ed25519");
  const otherCa = await generateSshKeyPair("ecdsa-p256");
  const user = await generateSshKeyPair("ed25519");
  const opts = userCertOptions(ca, user.publicKeyBlob, clock);
  const cert = parseSshCertificate((await signSshCertificate(opts)).blob);
  const check = { trustedCaKeys: [ca.publicKeyBlob], certType: "user" as const, now: clock.now() };
  await verifySshCertificate(cert, { ...check, principal: "root" });
  await assert.rejects(
    () => verifySshCertificate(cert, { ...check, trustedCaKeys: [otherCa.publicKeyBlob] }),
    assertDenied("certificate is not signed by a trusted authority"),
  );
  await assert.rejects(
    () => verifySshCertificate(cert, { ...check, certType: "host" }),
    assertDenied("certificate type is user, want host"),
  );
  await assert.rejects(
    () => verifySshCertificate(cert, { ...check, principal: "bob" }),
    assertDenied('principal "bob" is not in the certificate'),
  );
  // Validity is [validAfter, validBefore).
  await verifySshCertificate(cert, { ...check, now: opts.validAfter });
  await assert.rejects(
    () => verifySshCertificate(cert, { ...check, now: new Date(opts.validAfter.getTime() - 1000) }),
    assertDenied("certificate is not yet valid"),
  );
  clock.advance(HOUR);
  await assert.rejects(
    () => verifySshCertificate(cert, { ...check, now: clock.now() }),
    assertDenied("certificate is expired"),
  );
  const tampered = cert.blob.slice();
  tampered[4 + 32 + 4] = tampered[4 + 32 + 4]! ^ 1; // first nonce byte
  await assert.rejects(
    () => verifySshCertificate(tampered, check),
    assertDenied("certificate signature is invalid"),
  );
});

Deno.test("verifySshCertificate() rejects unknown critical options but allows source-address", async () => {
  const clock = new FakeClock();
  const ca = await generateSshKeyPair("ed25519");
  const user = await generateSshKeyPair("ed25519");
  const base = userCertOptions(ca, user.publicKeyBlob, clock);
  const check = { trustedCaKeys: [ca.publicKeyBlob], certType: "user" as const, now: clock.now() };
  const ok = await signSshCertificate({
    ...base,
    criticalOptions: { "source-address": "10.0.0.0/8", "force-command": "ls" },
  });
  await verifySshCertificate(ok.blob, check);
  const bad = await signSshCertificate({ ...base, criticalOptions: { "verify-required": "" } });
  await assert.rejects(
    () => verifySshCertificate(bad.blob, check),
    assertDenied('certificate has unsupported critical option "verify-required"'),
  );
});

// ---------------------------------------------------------------------------------------------
// Interop with OpenSSH's ssh-keygen in both directions.

const CA_ALGS: SshKeyAlgorithm[] = ["ed25519", "ecdsa-p256"];

Deno.test("signSshCertificate() output is read correctly by ssh-keygen -L for every kind", async () => {
  await using dir = await tempDir();
  await runOk("ssh-keygen", ["-t", "rsa", "-b", "2048", "-N", "", "-q", "-f", dir.file("rsa")]);
  const rsaBlob = parseAuthorizedKey(await Deno.readTextFile(dir.file("rsa.pub"))).blob;
  const ed = await generateSshKeyPair("ed25519");
  const ec = await generateSshKeyPair("ecdsa-p256");
  const subjects: Array<[string, string, Uint8Array]> = [
    ["ssh-ed25519-cert-v01@openssh.com", "ED25519-CERT", ed.publicKeyBlob],
    ["ecdsa-sha2-nistp256-cert-v01@openssh.com", "ECDSA-CERT", ec.publicKeyBlob],
    ["ssh-rsa-cert-v01@openssh.com", "RSA-CERT", rsaBlob],
  ];
  const validAfter = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const validBefore = new Date(Date.UTC(2026, 0, 2, 15, 4, 5));
  let n = 0;
  for (const caAlg of CA_ALGS) {
    const ca = await generateSshKeyPair(caAlg);
    const [caLabel, caSig] = caAlg === "ed25519"
      ? ["ED25519", "ssh-ed25519"]
      : ["ECDSA", "ecdsa-sha2-nistp256"];
    for (const certType of ["user", "host"] as const) {
      for (const [typeName, keyLabel, blob] of subjects) {
        const user = certType === "user";
        const signed = await signSshCertificate({
          signer: ca,
          publicKeyBlob: blob,
          certType,
          keyId: `id-${n}`,
          principals: user ? ["alice", "root"] : ["uuid.cluster", "node1", "127.0.0.1"],
          validAfter,
          validBefore: n % 2 === 0 ? validBefore : "forever",
          serial: BigInt(n),
          criticalOptions: user ? { "force-command": "/bin/true" } : {},
          extensions: user
            ? { "permit-pty": "", "permit-port-forwarding": "", "x-teleport-role": "admin" }
            : { "x-teleport-role": "node", "x-teleport-authority": "cluster" },
        });
        const path = dir.file(`c${n}-cert.pub`);
        await Deno.writeTextFile(path, signed.authorizedKey + "\n");
        const out = normalize(await runOk("ssh-keygen", ["-L", "-f", path]));
        const hex = (s: string) =>
          Array.from(new SshWriter().string(s).bytes(), (b) => b.toString(16).padStart(2, "0"))
            .join("");
        const want = [
          `Type: ${typeName} ${certType} certificate`,
          `Public key: ${keyLabel} ${sshFingerprint(blob)}`,
          `Signing CA: ${caLabel} ${sshFingerprint(ca.publicKeyBlob)} (using ${caSig})`,
          `Key ID: "id-${n}"`,
          `Serial: ${n}`,
          n % 2 === 0
            ? "Valid: from 2026-01-02T03:04:05 to 2026-01-02T15:04:05"
            : "Valid: after 2026-01-02T03:04:05",
          user
            ? "Principals:\nalice\nroot\nCritical Options:\nforce-command /bin/true\n" +
              "Extensions:\npermit-port-forwarding\npermit-pty\n" +
              `x-teleport-role UNKNOWN OPTION: ${hex("admin")} (len 9)`
            : "Principals:\nuuid.cluster\nnode1\n127.0.0.1\nCritical Options: (none)\n" +
              `Extensions:\nx-teleport-authority UNKNOWN OPTION: ${hex("cluster")} (len 11)\n` +
              `x-teleport-role UNKNOWN OPTION: ${hex("node")} (len 8)`,
        ];
        for (const w of want) {
          assert.ok(out.includes(w), `${caAlg}/${certType}/${typeName}: want\n${w}\nin\n${out}`);
        }
        n++;
      }
    }
  }
  assert.equal(n, 12);
});

Deno.test("verifySshCertificate() accepts ssh-keygen -s certificates and rejects bad ones", async () => {
  await using dir = await tempDir();
  const keygen = (name: string, flags: string[]) =>
    runOk("ssh-keygen", [...flags, "-N", "", "-q", "-C", "", "-f", dir.file(name)]);
  const pub = async (name: string) =>
    parseAuthorizedKey(await Deno.readTextFile(dir.file(`${name}.pub`))).blob;
  await Promise.all([
    keygen("ca_ed25519", ["-t", "ed25519"]),
    keygen("ca_ecdsa", ["-t", "ecdsa", "-b", "256"]),
    keygen("ca_rsa", ["-t", "rsa", "-b", "2048"]),
    keygen("other_ca", ["-t", "ed25519"]),
    keygen("key_ed25519", ["-t", "ed25519"]),
    keygen("key_ecdsa", ["-t", "ecdsa", "-b", "256"]),
    keygen("key_rsa", ["-t", "rsa", "-b", "2048"]),
  ]);
  const otherCa = await pub("other_ca");
  let count = 0;
  for (const caName of ["ca_ed25519", "ca_ecdsa", "ca_rsa"]) {
    const caBlob = await pub(caName);
    for (const keyName of ["key_ed25519", "key_ecdsa", "key_rsa"]) {
      for (const certType of ["user", "host"] as const) {
        const now = new Date();
        await runOk("ssh-keygen", [
          "-q",
          "-s",
          dir.file(caName),
          "-I",
          `${keyName}-${certType}`,
          "-n",
          "p1,p2",
          "-V",
          "-1m:+1h",
          ...(certType === "host" ? ["-h"] : []),
          dir.file(`${keyName}.pub`),
        ]);
        const cert = parseSshCertificate(await Deno.readTextFile(dir.file(`${keyName}-cert.pub`)));
        const what = `${caName}/${keyName}/${certType}`;
        assert.equal(cert.keyId, `${keyName}-${certType}`, what);
        assert.equal(cert.certType, certType);
        assert.deepEqual(cert.principals, ["p1", "p2"]);
        assert.deepEqual(cert.publicKeyBlob, await pub(keyName));
        assert.deepEqual(cert.signatureKeyBlob, caBlob);
        assert.ok(Math.abs(cert.validAfter.getTime() - (now.getTime() - MINUTE)) < 5000, what);
        if (certType === "user") assert.equal(cert.extensions["permit-pty"], "");

        const check = { trustedCaKeys: [otherCa, caBlob], certType, principal: "p2", now };
        await verifySshCertificate(cert, check);
        const tampered = cert.blob.slice();
        const nonceAt = 4 + new TextEncoder().encode(cert.type).length + 4;
        tampered[nonceAt + 5] = tampered[nonceAt + 5]! ^ 0x40;
        await assert.rejects(
          () => verifySshCertificate(tampered, check),
          assertDenied("certificate signature is invalid"),
          what,
        );
        await assert.rejects(
          () => verifySshCertificate(cert, { ...check, trustedCaKeys: [otherCa] }),
          assertDenied("certificate is not signed by a trusted authority"),
        );
        const wrong = certType === "user" ? "host" : "user";
        await assert.rejects(
          () => verifySshCertificate(cert, { ...check, certType: wrong }),
          assertDenied(`certificate type is ${certType}, want ${wrong}`),
        );
        await assert.rejects(
          () => verifySshCertificate(cert, { ...check, now: new Date(now.getTime() + 2 * HOUR) }),
          assertDenied("certificate is expired"),
        );
        await assert.rejects(
          () => verifySshCertificate(cert, { ...check, now: new Date(now.getTime() - HOUR) }),
          assertDenied("certificate is not yet valid"),
        );
        await assert.rejects(
          () => verifySshCertificate(cert, { ...check, principal: "p3" }),
          assertDenied('principal "p3" is not in the certificate'),
        );
        count++;
      }
    }
  }
  assert.equal(count, 18);
});

Deno.test("parseSshCertificate() reads ssh-keygen critical options and custom extensions", async () => {
  await using dir = await tempDir();
  await runOk("ssh-keygen", ["-t", "ed25519", "-N", "", "-q", "-f", dir.file("ca")]);
  await runOk("ssh-keygen", ["-t", "ed25519", "-N", "", "-q", "-f", dir.file("k")]);
  const sign = async (extra: string[]) => {
    await runOk("ssh-keygen", [
      "-q",
      "-s",
      dir.file("ca"),
      "-I",
      "id",
      "-n",
      "alice",
      "-V",
      "-1m:+1h",
      ...extra,
      dir.file("k.pub"),
    ]);
    return parseSshCertificate(await Deno.readTextFile(dir.file("k-cert.pub")));
  };
  const caBlob = parseAuthorizedKey(await Deno.readTextFile(dir.file("ca.pub"))).blob;
  const check = { trustedCaKeys: [caBlob], certType: "user" as const, now: new Date() };

  const withOptions = await sign([
    "-O",
    "clear",
    "-O",
    "force-command=/usr/bin/id",
    "-O",
    "source-address=127.0.0.1/32",
    "-O",
    "extension:x-teleport-role=editor",
  ]);
  assert.deepEqual(withOptions.criticalOptions, {
    "force-command": "/usr/bin/id",
    "source-address": "127.0.0.1/32",
  });
  assert.deepEqual(withOptions.extensions, { "x-teleport-role": "editor" });
  await verifySshCertificate(withOptions, check);

  const unknown = await sign(["-O", "critical:x-mystery=1"]);
  assert.equal(unknown.criticalOptions["x-mystery"], "1");
  await assert.rejects(
    () => verifySshCertificate(unknown, check),
    assertDenied('certificate has unsupported critical option "x-mystery"'),
  );
});

Deno.test("verifySshCertificate() refuses ssh-rsa (SHA-1) CA signatures unless allowed", async () => {
  await using dir = await tempDir();
  await runOk("ssh-keygen", ["-t", "rsa", "-b", "2048", "-N", "", "-q", "-f", dir.file("ca")]);
  await runOk("ssh-keygen", ["-t", "ed25519", "-N", "", "-q", "-f", dir.file("k")]);
  await runOk("ssh-keygen", [
    "-q",
    "-s",
    dir.file("ca"),
    "-t",
    "ssh-rsa",
    "-I",
    "id",
    "-n",
    "alice",
    "-V",
    "-1m:+1h",
    dir.file("k.pub"),
  ]);
  const cert = parseSshCertificate(await Deno.readTextFile(dir.file("k-cert.pub")));
  const caBlob = parseAuthorizedKey(await Deno.readTextFile(dir.file("ca.pub"))).blob;
  const check = { trustedCaKeys: [caBlob], certType: "user" as const, now: new Date() };
  await assert.rejects(
    () => verifySshCertificate(cert, check),
    assertDenied("certificate signature algorithm ssh-rsa (SHA-1) is not allowed"),
  );
  await verifySshCertificate(cert, { ...check, allowSha1Signatures: true });
});

Deno.test("verifySshCertificate() denies a requested principal when the certificate lists none", async () => {
  const clock = new FakeClock();
  const ca = await generateSshKeyPair("ed25519");
  const host = await generateSshKeyPair("ed25519");
  const signed = await signSshCertificate({
    ...userCertOptions(ca, host.publicKeyBlob, clock),
    certType: "host",
    principals: [],
    criticalOptions: {},
  });
  const check = { trustedCaKeys: [ca.publicKeyBlob], certType: "host" as const, now: clock.now() };
  await verifySshCertificate(signed.authorizedKey, check);
  await assert.rejects(
    () => verifySshCertificate(signed.authorizedKey, { ...check, principal: "node1" }),
    assertDenied('principal "node1" is not in the certificate'),
  );
});
