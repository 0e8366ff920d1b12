/**
 * Password hashing with scrypt (memory-hard) from node:crypto, which Deno
 * implements natively. Encoded as `$scrypt$N=…,r=…,p=…$<salt b64>$<hash b64>`
 * so parameters can be raised later without breaking old hashes.
 */
import { scrypt, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import { BadParameterError } from "../errors/mod.ts";

/** scrypt cost parameters. N=2^15, r=8 needs 32 MiB per hash. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** Production scrypt cost: N=2^15, r=8, p=1. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { N: 32768, r: 8, p: 1 };
const KEY_LEN = 32;

/** Shortest password accepted (Teleport: 12 for local users). */
export const MIN_PASSWORD_LENGTH = 12;

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      password.normalize("NFKC"),
      salt,
      KEY_LEN,
      { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 },
      (err, key) => err ? reject(err) : resolve(key),
    );
  });
}

/** Hashes a password; BadParameterError when it is too short or too long. */
export async function hashPassword(
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<string> {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new BadParameterError(
      `Cannot set password: it must be at least ${MIN_PASSWORD_LENGTH} characters long`,
    );
  }
  if (password.length > 1024) {
    throw new BadParameterError("Cannot set password: it must be at most 1024 characters long");
  }
  const salt = Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
  const key = await derive(password, salt, params);
  return `$scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString("base64")}$${
    key.toString("base64")
  }`;
}

/** True when `password` matches `encoded` (constant-time comparison). */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const m = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(
    encoded,
  );
  if (m === null) return false;
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const want = Buffer.from(m[5]!, "base64");
  const got = await derive(password, Buffer.from(m[4]!, "base64"), params);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * Hashes and checks passwords; the auth server takes one so tests can use a cheaper (but
 * otherwise identical) scrypt cost. Every hash it makes must cost the same to verify.
 */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, encoded: string): Promise<boolean>;
}

/** scrypt with the given cost, {@link DEFAULT_SCRYPT_PARAMS} unless told otherwise. */
export function scryptHasher(params: ScryptParams = DEFAULT_SCRYPT_PARAMS): PasswordHasher {
  return {
    hash: (password) => hashPassword(password, params),
    verify: verifyPassword,
  };
}
