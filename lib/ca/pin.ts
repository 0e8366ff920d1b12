/**
 * CA pins (DESIGN.md §5): `sha256:` + lowercase hex SHA-256 of a CA certificate's DER
 * SubjectPublicKeyInfo, the form Teleport's `--ca-pin` takes. A joining node fetches the CA
 * certificates unverified and trusts them only when every one matches a pin.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";
import { parseX509Certificate } from "./x509.ts";

const PIN_PREFIX = "sha256:";
const PIN_PATTERN = /^sha256:[0-9a-fA-F]{64}$/;

/** The pin of a PEM certificate: `sha256:<hex SHA-256 of its DER SubjectPublicKeyInfo>`. */
export function caPin(certPem: string): string {
  const { spkiDer } = parseX509Certificate(certPem);
  return PIN_PREFIX + createHash("sha256").update(spkiDer).digest("hex");
}

/** Checks a pin's format and returns its 32 digest bytes. */
function pinDigest(pin: string): Uint8Array {
  if (typeof pin !== "string" || !PIN_PATTERN.test(pin)) {
    const shown = typeof pin === "string" && pin.length > 20 ? pin.slice(0, 20) + "…" : pin;
    throw new BadParameterError(
      `Cannot parse CA pin ${JSON.stringify(shown)}: want "sha256:" followed by 64 hex digits`,
    );
  }
  return Uint8Array.from(pin.slice(PIN_PREFIX.length).match(/../g)!, (h) => parseInt(h, 16));
}

/**
 * Throws AccessDeniedError unless every certificate in `certPems` matches one of `pins`
 * (compared in constant time). A malformed pin throws BadParameterError naming the expected
 * format; an empty certificate list is denied.
 */
export function checkCaPins(pins: string[], certPems: string[]): void {
  const digests = pins.map(pinDigest);
  if (certPems.length === 0) {
    throw new AccessDeniedError("Cannot check CA pins: no CA certificates to check");
  }
  for (const pem of certPems) {
    const { spkiDer, subject } = parseX509Certificate(pem);
    const actual = createHash("sha256").update(spkiDer).digest();
    let matched = false;
    for (const d of digests) {
      // Check every pin, without early exit, so timing does not reveal which one matched.
      if (timingSafeEqual(actual, d)) matched = true;
    }
    if (!matched) {
      const name = subject.map(([oid, v]) => `${oid}=${v}`).join(",");
      throw new AccessDeniedError(
        `Cannot trust CA certificate ${JSON.stringify(name)}: it matches none of the CA pins ` +
          `(its pin is ${PIN_PREFIX}${actual.toString("hex")})`,
      );
    }
  }
}
