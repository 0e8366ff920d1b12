import assert from "node:assert/strict";
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";
import { runOk, tempDir } from "./_testing.ts";
import { caPin, checkCaPins } from "./pin.ts";
import { createX509Ca, type X509Ca } from "./x509.ts";

function newCa(commonName: string): Promise<X509Ca> {
  const now = Date.now();
  return createX509Ca({
    commonName,
    organization: commonName,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
  });
}

Deno.test("caPin() equals the SHA-256 openssl computes over the DER public key", async () => {
  await using dir = await tempDir();
  const ca = await newCa("cluster");
  await Deno.writeTextFile(dir.file("ca.pem"), ca.certPem);
  const spkiPem = await runOk("openssl", ["x509", "-pubkey", "-noout", "-in", dir.file("ca.pem")]);
  await Deno.writeTextFile(dir.file("pub.pem"), spkiPem);
  await runOk("openssl", [
    "pkey",
    "-pubin",
    "-in",
    dir.file("pub.pem"),
    "-outform",
    "DER",
    "-out",
    dir.file("pub.der"),
  ]);
  const sum = await runOk("sha256sum", [dir.file("pub.der")]);
  const pin = caPin(ca.certPem);
  assert.match(pin, /^sha256:[0-9a-f]{64}$/);
  assert.equal(pin, `sha256:${sum.split(" ")[0]}`);
});

Deno.test("checkCaPins() passes when every certificate matches some pin", async () => {
  const a = await newCa("a");
  const b = await newCa("b");
  const pins = [caPin(a.certPem), caPin(b.certPem)];
  checkCaPins(pins, [a.certPem, b.certPem]);
  checkCaPins([pins[1]!.toUpperCase().replace("SHA256:", "sha256:"), pins[0]!], [a.certPem]);
});

Deno.test("checkCaPins() denies when any certificate matches no pin", async () => {
  const a = await newCa("a");
  const b = await newCa("b");
  assert.throws(
    () => checkCaPins([caPin(a.certPem)], [a.certPem, b.certPem]),
    (err: unknown) =>
      err instanceof AccessDeniedError && /matches none of the CA pins/.test(err.message) &&
      err.message.includes(caPin(b.certPem)),
  );
  assert.throws(() => checkCaPins([], [a.certPem]), AccessDeniedError);
  assert.throws(() => checkCaPins([caPin(a.certPem)], []), /no CA certificates to check/);
});

Deno.test("checkCaPins() throws BadParameterError naming the format when a pin is malformed", async () => {
  const a = await newCa("a");
  const good = caPin(a.certPem);
  for (
    const bad of [
      "",
      "sha256:abc",
      "md5:" + "0".repeat(64),
      good + "0",
      good.slice(7),
      "sha256:" + "g".repeat(64),
    ]
  ) {
    assert.throws(
      () => checkCaPins([good, bad], [a.certPem]),
      (err: unknown) =>
        err instanceof BadParameterError &&
        err.message.startsWith("Cannot parse CA pin ") &&
        err.message.endsWith('want "sha256:" followed by 64 hex digits'),
      JSON.stringify(bad),
    );
  }
});
