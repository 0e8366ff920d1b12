import assert from "node:assert/strict";
import * as OTPAuth from "otpauth";
import { generateTotpCode, matchTotpStep, newTotpSecret, totpStep, totpUri } from "./mod.ts";

// RFC 6238 Appendix B: the SHA1 seed "12345678901234567890", 8-digit codes; our 6-digit
// codes are their last 6 digits (dynamic truncation mod 10^6).
const RFC_SECRET = new OTPAuth.Secret({
  buffer: new TextEncoder().encode("12345678901234567890").buffer,
}).base32;

Deno.test("generateTotpCode() matches the RFC 6238 test vectors", () => {
  const vectors: Array<[number, string]> = [
    [59, "94287082"],
    [1111111109, "07081804"],
    [1111111111, "14050471"],
    [1234567890, "89005924"],
    [2000000000, "69279037"],
  ];
  for (const [seconds, code8] of vectors) {
    assert.equal(generateTotpCode(RFC_SECRET, new Date(seconds * 1000)), code8.slice(2));
  }
});

Deno.test("newTotpSecret() makes 160-bit base32 secrets that otpauth agrees on", () => {
  const a = newTotpSecret();
  assert.match(a, /^[A-Z2-7]{32}$/);
  assert.notEqual(a, newTotpSecret());
  const now = new Date(1_700_000_000_000);
  const theirs = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(a) }).generate({
    timestamp: now.getTime(),
  });
  assert.equal(generateTotpCode(a, now), theirs);
});

Deno.test("matchTotpStep() accepts one step of drift either way and nothing beyond", () => {
  const secret = newTotpSecret();
  const t0 = new Date(1_700_000_010_000);
  const step = totpStep(t0);
  const at = (steps: number) => new Date(t0.getTime() + steps * 30_000);
  const code = generateTotpCode(secret, t0);
  assert.equal(matchTotpStep({ secret, code, now: t0 }), step);
  assert.equal(matchTotpStep({ secret, code, now: at(1) }), step);
  assert.equal(matchTotpStep({ secret, code, now: at(-1) }), step);
  assert.equal(
    matchTotpStep({ secret, code: generateTotpCode(secret, at(2)), now: t0 }),
    undefined,
  );
  assert.equal(matchTotpStep({ secret, code, now: at(2) }), undefined);
  assert.equal(
    matchTotpStep({ secret, code: code.slice(0, 3) + " " + code.slice(3), now: t0 }),
    step,
  );
});

Deno.test("matchTotpStep() refuses used steps and malformed codes", () => {
  const secret = newTotpSecret();
  const now = new Date(1_700_000_010_000);
  const code = generateTotpCode(secret, now);
  assert.equal(matchTotpStep({ secret, code, now, afterStep: totpStep(now) }), undefined);
  assert.equal(matchTotpStep({ secret, code, now, afterStep: totpStep(now) - 1 }), totpStep(now));
  for (const bad of ["", "12345", "1234567", "abcdef", "12345a"]) {
    assert.equal(matchTotpStep({ secret, code: bad, now }), undefined, bad);
  }
  assert.equal(matchTotpStep({ secret: "not base32!", code, now }), undefined);
});

Deno.test("totpUri() is a key URI authenticator apps read", () => {
  const uri = totpUri("my cluster", "alice@example.com", "JBSWY3DPEHPK3PXP");
  assert.equal(
    uri,
    "otpauth://totp/my%20cluster:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=my%20cluster&algorithm=SHA1&digits=6&period=30",
  );
  const parsed = OTPAuth.URI.parse(uri) as OTPAuth.TOTP;
  assert.equal(parsed.issuer, "my cluster");
  assert.equal(parsed.label, "alice@example.com");
  assert.equal(parsed.secret.base32, "JBSWY3DPEHPK3PXP");
  assert.equal(parsed.period, 30);
});
