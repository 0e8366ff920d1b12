import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";
import { runOk, tempDir } from "./_testing.ts";
import {
  createX509Ca,
  generateTlsKeyPair,
  importTlsPrivateKey,
  issueX509Certificate,
  type IssueX509CertificateOptions,
  parseX509Certificate,
  splitPemCertificates,
  verifyX509Certificate,
  type X509Ca,
  type X509Name,
} from "./x509.ts";

const DAY = 86_400_000;
const clock = new FakeClock(new Date());

const SUBJECT: X509Name = [
  ["2.5.4.3", "alice"],
  ["2.5.4.10", "admins"],
  ["2.5.4.11", "dev"],
  ["2.5.4.11", "ops"],
  ["2.5.4.7", "Zürich"],
  ["2.5.4.9", "1 Main St"],
  ["2.5.4.17", "8000"],
  ["1.3.9999.1.7", "cluster-one"],
];

function newCa(commonName = "cluster-one", organization = "cluster-one"): Promise<X509Ca> {
  return createX509Ca({
    commonName,
    organization,
    notBefore: new Date(clock.now().getTime() - 60_000),
    notAfter: new Date(clock.now().getTime() + 365 * DAY),
  });
}

async function leafOptions(ca: X509Ca): Promise<IssueX509CertificateOptions> {
  const keys = await generateTlsKeyPair();
  return {
    ca,
    publicKeyPem: keys.publicKeyPem,
    subject: SUBJECT,
    dnsNames: ["localhost", "proxy.example.com"],
    ipAddresses: ["127.0.0.1", "::1"],
    extKeyUsage: ["serverAuth", "clientAuth"],
    notBefore: new Date(clock.now().getTime() - 60_000),
    notAfter: new Date(clock.now().getTime() + DAY),
  };
}

function denied(reason: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof AccessDeniedError, `want AccessDeniedError, got ${err}`);
    assert.ok(err.message.endsWith(reason), `"${err.message}" should end with "${reason}"`);
    return true;
  };
}

Deno.test("createX509Ca() makes a v3 CA with critical basicConstraints and key usage", async () => {
  await using dir = await tempDir();
  const ca = await newCa();
  const info = parseX509Certificate(ca.certPem);
  assert.equal(info.version, 3);
  assert.equal(info.isCa, true);
  assert.deepEqual(info.subject, [["2.5.4.3", "cluster-one"], ["2.5.4.10", "cluster-one"]]);
  assert.deepEqual(info.issuer, info.subject);
  assert.match(info.serialNumber, /^[0-7][0-9a-f]{31}$/);
  assert.match(ca.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  await Deno.writeTextFile(dir.file("ca.pem"), ca.certPem);
  const text = await runOk("openssl", ["x509", "-noout", "-text", "-in", dir.file("ca.pem")]);
  assert.match(text, /Version: 3 \(0x2\)/);
  assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:TRUE/);
  assert.match(
    text,
    /X509v3 Key Usage: critical\n\s+Digital Signature, Certificate Sign, CRL Sign/,
  );
  assert.match(text, /X509v3 Subject Key Identifier/);
  assert.match(text, /ecdsa-with-SHA256/);
});

Deno.test("issueX509Certificate() issues a leaf openssl verifies, with SANs, EKU and subject", async () => {
  await using dir = await tempDir();
  const ca = await newCa();
  const leafPem = await issueX509Certificate(await leafOptions(ca));
  await Deno.writeTextFile(dir.file("ca.pem"), ca.certPem);
  await Deno.writeTextFile(dir.file("leaf.pem"), leafPem);
  const verified = await runOk("openssl", [
    "verify",
    "-CAfile",
    dir.file("ca.pem"),
    dir.file("leaf.pem"),
  ]);
  assert.equal(verified.trim(), `${dir.file("leaf.pem")}: OK`);
  for (const purpose of ["sslserver", "sslclient"]) {
    await runOk("openssl", [
      "verify",
      "-purpose",
      purpose,
      "-CAfile",
      dir.file("ca.pem"),
      dir.file("leaf.pem"),
    ]);
  }
  const text = await runOk("openssl", ["x509", "-noout", "-text", "-in", dir.file("leaf.pem")]);
  assert.match(text, /Version: 3 \(0x2\)/);
  assert.match(
    text,
    /X509v3 Subject Alternative Name: \n\s+DNS:localhost, DNS:proxy.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1\n/,
  );
  assert.match(
    text,
    /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication, TLS Web Client Authentication\n/,
  );
  assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
  assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
  assert.match(text, /X509v3 Authority Key Identifier/);
  const subject = await runOk("openssl", [
    "x509",
    "-noout",
    "-subject",
    "-nameopt",
    "RFC2253,show_type,dump_nostr,-esc_msb,oid",
    "-in",
    dir.file("leaf.pem"),
  ]);
  // RFC 2253 order is reversed: the last RDN first. Every value is a UTF8STRING; openssl dumps
  // the private OID's value as DER hex, whose tag 0x0C is UTF8String.
  assert.equal(
    subject.trim(),
    "subject=1.3.9999.1.7=UTF8STRING:#0C0B636C75737465722D6F6E65,2.5.4.17=UTF8STRING:8000," +
      "2.5.4.9=UTF8STRING:1 Main St,2.5.4.7=UTF8STRING:Zürich,2.5.4.11=UTF8STRING:ops," +
      "2.5.4.11=UTF8STRING:dev,2.5.4.10=UTF8STRING:admins,2.5.4.3=UTF8STRING:alice",
  );
});

Deno.test("parseX509Certificate() returns ordered names, SANs, EKU and fingerprints", async () => {
  await using dir = await tempDir();
  const ca = await newCa();
  const leafPem = await issueX509Certificate(await leafOptions(ca));
  const info = parseX509Certificate(leafPem);
  assert.equal(info.version, 3);
  assert.equal(info.isCa, false);
  assert.deepEqual(info.subject, SUBJECT);
  assert.deepEqual(info.issuer, [["2.5.4.3", "cluster-one"], ["2.5.4.10", "cluster-one"]]);
  assert.deepEqual(info.dnsNames, ["localhost", "proxy.example.com"]);
  assert.deepEqual(info.ipAddresses, ["127.0.0.1", "::1"]);
  assert.deepEqual(info.extKeyUsage, ["serverAuth", "clientAuth"]);
  await Deno.writeTextFile(dir.file("leaf.pem"), leafPem);
  const fp = await runOk("openssl", [
    "x509",
    "-noout",
    "-fingerprint",
    "-sha256",
    "-in",
    dir.file("leaf.pem"),
  ]);
  assert.equal(fp.trim().split("=")[1]!.replaceAll(":", "").toLowerCase(), info.sha256Fingerprint);
  const serial = await runOk("openssl", ["x509", "-noout", "-serial", "-in", dir.file("leaf.pem")]);
  assert.equal(serial.trim().split("=")[1]!.toLowerCase(), info.serialNumber);
});

Deno.test("issueX509Certificate() omits SAN when no names are given and takes a CryptoKey", async () => {
  await using dir = await tempDir();
  const ca = await newCa();
  const keys = await generateTlsKeyPair();
  const opts = await leafOptions(ca);
  const pem = await issueX509Certificate({
    ...opts,
    publicKeyPem: undefined,
    publicKey: keys.publicKey,
    dnsNames: undefined,
    ipAddresses: [],
    extKeyUsage: ["clientAuth"],
  });
  const info = parseX509Certificate(pem);
  assert.deepEqual(info.dnsNames, []);
  assert.deepEqual(info.extKeyUsage, ["clientAuth"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  assert.deepEqual(info.spkiDer, spki);
  await Deno.writeTextFile(dir.file("leaf.pem"), pem);
  const text = await runOk("openssl", ["x509", "-noout", "-text", "-in", dir.file("leaf.pem")]);
  assert.doesNotMatch(text, /Subject Alternative Name/);
});

Deno.test("issueX509Certificate() rejects bad inputs with BadParameterError", async () => {
  const ca = await newCa();
  const opts = await leafOptions(ca);
  const keys = await generateTlsKeyPair();
  const bad: Array<Partial<IssueX509CertificateOptions>> = [
    { subject: [] },
    { subject: [["CN", "x"]] },
    { subject: [["2.5.4.3", ""]] },
    { ipAddresses: ["300.1.1.1"] },
    { dnsNames: ["bad name"] },
    { extKeyUsage: [] },
    { publicKey: keys.publicKey },
    { notAfter: opts.notBefore },
    { publicKeyPem: "not a pem" },
  ];
  for (const b of bad) {
    await assert.rejects(
      () => issueX509Certificate({ ...opts, ...b }),
      BadParameterError,
      JSON.stringify(b),
    );
  }
});

Deno.test("verifyX509Certificate() accepts a leaf from a trusted CA and rejects the rest", async () => {
  const ca = await newCa();
  const otherCa = await newCa("other");
  // Same name, different key: only a signature check tells it apart.
  const twinCa = await newCa();
  const opts = await leafOptions(ca);
  const leaf = await issueX509Certificate(opts);
  const now = clock.now();
  const info = await verifyX509Certificate(leaf, {
    trustedCaPems: [otherCa.certPem, ca.certPem],
    now,
  });
  assert.deepEqual(info.subject, SUBJECT);
  await verifyX509Certificate(leaf, {
    trustedCaPems: [ca.certPem + otherCa.certPem],
    now,
    extKeyUsage: "clientAuth",
  });
  await assert.rejects(
    () => verifyX509Certificate(leaf, { trustedCaPems: [otherCa.certPem, twinCa.certPem], now }),
    denied("certificate is not signed by a trusted authority"),
  );
  await assert.rejects(
    () => verifyX509Certificate(leaf, { trustedCaPems: [], now }),
    denied("certificate is not signed by a trusted authority"),
  );
  await assert.rejects(
    () =>
      verifyX509Certificate(leaf, {
        trustedCaPems: [ca.certPem],
        now: new Date(now.getTime() + 2 * DAY),
      }),
    denied("certificate is expired"),
  );
  await assert.rejects(
    () =>
      verifyX509Certificate(leaf, {
        trustedCaPems: [ca.certPem],
        now: new Date(now.getTime() - DAY),
      }),
    denied("certificate is not yet valid"),
  );
  const serverOnly = await issueX509Certificate({ ...opts, extKeyUsage: ["serverAuth"] });
  await assert.rejects(
    () =>
      verifyX509Certificate(serverOnly, {
        trustedCaPems: [ca.certPem],
        now,
        extKeyUsage: "clientAuth",
      }),
    denied("certificate extKeyUsage lacks clientAuth"),
  );
  // A leaf is not a CA: a cert "issued" by the leaf's key is not trusted through the leaf.
  await assert.rejects(
    () => verifyX509Certificate(leaf, { trustedCaPems: [leaf], now }),
    denied("certificate is not signed by a trusted authority"),
  );
});

Deno.test("verifyX509Certificate() rejects an X.509 v1 leaf and accepts an openssl v3 leaf", async () => {
  await using dir = await tempDir();
  const f = dir.file;
  await runOk("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.pem"),
    "-subj",
    "/CN=openssl-ca",
    "-days",
    "2",
  ]);
  await runOk("openssl", [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    f("leaf.key"),
    "-out",
    f("leaf.csr"),
    "-subj",
    "/CN=leaf",
  ]);
  // Without extensions `openssl x509 -req` writes a v1 certificate.
  await runOk("openssl", [
    "x509",
    "-req",
    "-in",
    f("leaf.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-out",
    f("v1.pem"),
    "-days",
    "1",
  ]);
  await Deno.writeTextFile(
    f("ext.cnf"),
    "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
  );
  await runOk("openssl", [
    "x509",
    "-req",
    "-in",
    f("leaf.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-out",
    f("v3.pem"),
    "-days",
    "1",
    "-extfile",
    f("ext.cnf"),
  ]);
  const caPem = await Deno.readTextFile(f("ca.pem"));
  const now = new Date();
  const v1 = await Deno.readTextFile(f("v1.pem"));
  assert.equal(parseX509Certificate(v1).version, 1);
  await assert.rejects(
    () => verifyX509Certificate(v1, { trustedCaPems: [caPem], now }),
    denied("certificate is X.509 v1, want v3"),
  );
  const v3 = await Deno.readTextFile(f("v3.pem"));
  const info = await verifyX509Certificate(v3, {
    trustedCaPems: [caPem],
    now,
    extKeyUsage: "clientAuth",
  });
  assert.deepEqual(info.subject, [["2.5.4.3", "leaf"]]);
});

Deno.test("importTlsPrivateKey() loads a CA key that can keep issuing", async () => {
  const ca = await newCa();
  const key = await importTlsPrivateKey(ca.privateKeyPem);
  const leaf = await issueX509Certificate({
    ...await leafOptions(ca),
    ca: { certPem: ca.certPem, privateKey: key },
  });
  await verifyX509Certificate(leaf, { trustedCaPems: [ca.certPem], now: clock.now() });
  await assert.rejects(
    () => importTlsPrivateKey("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    BadParameterError,
  );
});

Deno.test("splitPemCertificates() returns each certificate of a bundle in order", async () => {
  const a = await newCa("a");
  const b = await newCa("b");
  const bundle = `junk\n${a.certPem}${a.privateKeyPem}\n${b.certPem}`;
  const certs = splitPemCertificates(bundle);
  assert.equal(certs.length, 2);
  assert.deepEqual(parseX509Certificate(certs[0]!).subject[0], ["2.5.4.3", "a"]);
  assert.deepEqual(parseX509Certificate(certs[1]!).subject[0], ["2.5.4.3", "b"]);
  assert.equal(certs[0], a.certPem);
  assert.deepEqual(splitPemCertificates("nothing"), []);
  assert.throws(() => parseX509Certificate(a.privateKeyPem), BadParameterError);
});
