/**
 * Time-based one-time passwords (RFC 6238) as authenticator apps make them: HMAC-SHA1,
 * 6 digits, 30 s steps, over a 20-byte random secret shared as base32. The HOTP
 * arithmetic (RFC 4226) comes from npm:otpauth; time is always passed in, never read here.
 */
import * as OTPAuth from "otpauth";

/** Length of a time step (RFC 6238 X), seconds. */
export const TOTP_PERIOD_SECONDS = 30;
/** Digits of a code. */
export const TOTP_DIGITS = 6;
/** Steps accepted either side of the current one (clock drift between phone and server). */
export const TOTP_WINDOW = 1;
/** Size of a new shared secret: 160 bits, the HMAC-SHA1 output size (RFC 4226 §4 R6). */
const SECRET_BYTES = 20;

/** A new random shared secret, base32 (RFC 4648, no padding). */
export function newTotpSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  return new OTPAuth.Secret({ buffer: bytes.buffer }).base32;
}

/**
 * The `otpauth://` key URI an authenticator app imports (usually from a QR code):
 * `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
 */
export function totpUri(issuer: string, account: string, secret: string): string {
  const e = encodeURIComponent;
  return `otpauth://totp/${e(issuer)}:${e(account)}?secret=${secret}&issuer=${
    e(issuer)
  }&algorithm=SHA1&digits=${TOTP_DIGITS}&period=${TOTP_PERIOD_SECONDS}`;
}

/** The RFC 6238 time step (T) at `now`. */
export function totpStep(now: Date): number {
  return Math.floor(now.getTime() / 1000 / TOTP_PERIOD_SECONDS);
}

/** The code for time `now` (tests and tools; servers only verify). */
export function generateTotpCode(secret: string, now: Date): string {
  return OTPAuth.HOTP.generate({
    secret: OTPAuth.Secret.fromBase32(secret),
    algorithm: "SHA1",
    digits: TOTP_DIGITS,
    counter: totpStep(now),
  });
}

/**
 * The time step whose code `code` is, within {@link TOTP_WINDOW} steps of `now` and after
 * `afterStep` (so a used code cannot be replayed), or undefined when it matches none.
 * Spaces in the code are ignored; anything but 6 digits never matches.
 */
export function matchTotpStep(
  o: { secret: string; code: string; now: Date; afterStep?: number },
): number | undefined {
  const code = o.code.replace(/\s+/g, "");
  if (!/^[0-9]{6}$/.test(code)) return undefined;
  let secret: OTPAuth.Secret;
  try {
    secret = OTPAuth.Secret.fromBase32(o.secret);
  } catch {
    return undefined;
  }
  const current = totpStep(o.now);
  let found: number | undefined;
  // Every candidate step is checked (constant-time comparisons inside otpauth), so the time
  // taken does not tell which step matched.
  for (let step = current - TOTP_WINDOW; step <= current + TOTP_WINDOW; step++) {
    const delta = OTPAuth.HOTP.validate({
      token: code,
      secret,
      algorithm: "SHA1",
      digits: TOTP_DIGITS,
      counter: step,
      window: 0,
    });
    if (delta === 0 && found === undefined && (o.afterStep === undefined || step > o.afterStep)) {
      found = step;
    }
  }
  return found;
}
