/**
 * What a user certificate grants, decided from the certificate alone plus the
 * roles it names: the checks every SSH server of the cluster (node and proxy)
 * runs before looking at logins or targets.
 *
 * Checks, in order (each refusal says which one failed):
 *  1. a user certificate signed by the cluster's user CA, valid now, and listing
 *     `principal` when one is required (lib/ca verifySshCertificate);
 *  2. `source-address` critical option, when present, matches the client IP;
 *  3. the certificate names Teleport roles (extension `teleport-roles`);
 *  4. the certificate lives no longer than the roles' `max_session_ttl`.
 */
import { parseSshCertificate, type SshCertificate, verifySshCertificate } from "../ca/mod.ts";
import { AccessDeniedError } from "../errors/mod.ts";
import type { Role } from "../resource/mod.ts";
import { AccessChecker } from "./checker.ts";

/** Slack for the certificate's backdated start (auth backdates by one minute). */
const TTL_SLACK_MS = 2 * 60_000;

/** The user behind a verified certificate. */
export interface CertifiedUser {
  /** Teleport user name (the certificate key id). */
  user: string;
  roles: string[];
  traits: Record<string, string[]>;
  checker: AccessChecker;
  certificate: SshCertificate;
}

/** Inputs of {@link verifyUserCertificate}. */
export interface VerifyUserCertificateOptions {
  /** The certificate blob (or parsed) the client authenticated with. */
  certificate: Uint8Array | SshCertificate;
  /** A principal the certificate must list (the node login); none for the proxy. */
  principal?: string;
  /** Client IP address (for `source-address`). */
  remoteAddr: string;
  /**
   * Client port. 0 marks an address taken from a PROXY header nobody vouched for
   * (`proxy_protocol` unset): a certificate pinned with `source-address` is refused then, since
   * anyone may have written that header. @default {unknown: no such refusal}
   */
  remotePort?: number;
  /** The user CA's public key blobs. */
  userCaKeys: Uint8Array[];
  now: Date;
  /** Resolves role names to roles (throws NotFound for a missing role). */
  roles: (names: string[]) => Promise<Role[]>;
}

function jsonExtension<T>(cert: SshCertificate, name: string, fallback: T): T {
  const raw = cert.extensions[name];
  if (raw === undefined || raw === "") return fallback;
  try {
    return JSON.parse(raw) as T;
  } catch {
    throw new AccessDeniedError(`certificate extension ${name} is not valid JSON`);
  }
}

/** Runs checks 1–4; AccessDeniedError names the one that failed. */
export async function verifyUserCertificate(
  o: VerifyUserCertificateOptions,
): Promise<CertifiedUser> {
  const cert = o.certificate instanceof Uint8Array
    ? parseSshCertificate(o.certificate)
    : o.certificate;
  await verifySshCertificate(cert, {
    trustedCaKeys: o.userCaKeys,
    certType: "user",
    ...(o.principal === undefined ? {} : { principal: o.principal }),
    now: o.now,
  });
  const sourceAddress = cert.criticalOptions["source-address"];
  if (sourceAddress !== undefined && o.remotePort === 0) {
    throw new AccessDeniedError(
      `certificate may be used only from ${sourceAddress}, and this connection's address ${o.remoteAddr} came from an unverified PROXY header (proxy_protocol is unset: set it to on behind a load balancer that sends headers, or off)`,
    );
  }
  if (sourceAddress !== undefined && !matchSourceAddress(sourceAddress, o.remoteAddr)) {
    throw new AccessDeniedError(
      `certificate may be used only from ${sourceAddress}, not from ${o.remoteAddr}`,
    );
  }
  const roleNames = jsonExtension<{ roles?: unknown }>(cert, "teleport-roles", {}).roles;
  if (
    !Array.isArray(roleNames) || roleNames.length === 0 ||
    !roleNames.every((r) => typeof r === "string")
  ) {
    throw new AccessDeniedError(
      "certificate names no Teleport roles (extension teleport-roles); issue it with tctl auth sign or tsh login",
    );
  }
  const traits = jsonExtension<Record<string, string[]>>(cert, "teleport-traits", {});
  const checker = new AccessChecker(await o.roles(roleNames as string[]), traits);
  if (cert.validBefore === "forever") {
    throw new AccessDeniedError("certificate never expires; user certificates must");
  }
  const lifetime = cert.validBefore.getTime() - cert.validAfter.getTime();
  if (lifetime > checker.maxSessionTtlMs() + TTL_SLACK_MS) {
    throw new AccessDeniedError(
      `certificate lifetime ${
        Math.round(lifetime / 60_000)
      } min exceeds max_session_ttl of your roles (${
        Math.round(checker.maxSessionTtlMs() / 60_000)
      } min)`,
    );
  }
  return { user: cert.keyId, roles: roleNames as string[], traits, checker, certificate: cert };
}

/** True when `ip` matches one of the comma-separated addresses/CIDRs. */
export function matchSourceAddress(list: string, ip: string): boolean {
  const addr = parseIp(stripZone(ip));
  if (addr === undefined) return false;
  return list.split(",").map((s) => s.trim()).filter((s) => s !== "").some((entry) => {
    const [base, bitsText] = entry.split("/");
    const net = parseIp(base ?? "");
    if (net === undefined || net.length !== addr.length) return false;
    const bits = bitsText === undefined ? net.length * 8 : Number(bitsText);
    if (!Number.isInteger(bits) || bits < 0 || bits > net.length * 8) return false;
    for (let i = 0; i < net.length; i++) {
      const take = Math.max(0, Math.min(8, bits - i * 8));
      const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
      if ((net[i]! & mask) !== (addr[i]! & mask)) return false;
    }
    return true;
  });
}

function stripZone(ip: string): string {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4mapped) return v4mapped[1]!;
  return ip.split("%")[0]!;
}

/** Parses an IPv4 or IPv6 literal into bytes. */
function parseIp(text: string): number[] | undefined {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(text)) {
    const parts = text.split(".").map(Number);
    return parts.every((p) => p >= 0 && p <= 255) ? parts : undefined;
  }
  if (!text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const group = (s: string) => s === "" ? [] : s.split(":");
  const head = group(halves[0]!);
  const tail = halves.length === 2 ? group(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  const words = [...head, ...Array(missing).fill("0"), ...tail];
  const out: number[] = [];
  for (const w of words) {
    if (!/^[0-9a-f]{1,4}$/i.test(w)) return undefined;
    const n = parseInt(w, 16);
    out.push(n >> 8, n & 0xff);
  }
  return out;
}
