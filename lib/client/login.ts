/**
 * `tsh login` for local users (teleport-protocol-notes §6):
 *
 * 1. `GET /webapi/ping`: cluster name, second factor, SSH proxy address, TLS routing.
 * 2. Ask for the password (and the OTP code when the cluster uses one) through the injected
 *    prompt.
 * 3. Generate an Ed25519 SSH key and an ECDSA P-256 TLS key here; only public keys leave.
 * 4. `POST /webapi/ssh/certs`; check that both certificates are for our keys and that the
 *    cluster's host CA came with them.
 * 5. Store everything (see profile.ts) and make the profile current. After an `--insecure`
 *    login the proxy's web certificate is pinned in the profile.
 */
import type { Clock } from "../clock/mod.ts";
import { RealClock } from "../clock/mod.ts";
import {
  bytesEqual,
  formatAuthorizedKey,
  generateSshKeyPair,
  generateTlsKeyPair,
  parseSshCertificate,
  parseX509Certificate,
  type SshCertificate,
} from "../ca/mod.ts";
import { AccessDeniedError, BadParameterError, NotImplementedError } from "../errors/mod.ts";
import { formatHostPort, type HostPort, isUnspecifiedHost, parseHostPort } from "./addr.ts";
import {
  type Profile,
  type ProfileKeys,
  type ProfilePaths,
  type ProfileStore,
  validateClusterName,
} from "./profile.ts";
import { hostCasOf } from "./host_ca.ts";
import { WebClient, type WebPingResponse, type WebTrust } from "./web.ts";

/** The proxy's SSH port when ping names none (Teleport's default). */
export const DEFAULT_PROXY_SSH_PORT = 3023;
/** Certificate validity asked for when none is given: 12 h, Teleport's default. */
export const DEFAULT_CERT_TTL_MS = 12 * 3_600_000;

/** Asks the user a question; `secret` answers are read without echo. */
export type Prompt = (question: string, options: { secret: boolean }) => Promise<string>;

/** Options for {@link login}. */
export interface LoginOptions {
  /** Where the profile is stored. */
  store: ProfileStore;
  /** The proxy's web address. */
  proxy: HostPort;
  /** Teleport user name. */
  user: string;
  /** Requested certificate validity in ms (the cluster may shorten it). @default {DEFAULT_CERT_TTL_MS} */
  ttlMs?: number;
  /** Trust for the proxy's web certificate. */
  trust: WebTrust;
  /** Asks for the password and OTP code. */
  prompt: Prompt;
  /** @default {new RealClock()} */
  clock?: Clock;
  /** Per-request time limit in ms. @default {30000} */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What a login stored. */
export interface LoginResult {
  profile: Profile;
  keys: ProfileKeys;
  paths: ProfilePaths;
  ping: WebPingResponse;
  /** Hex SHA-256 of the proxy's web certificate (pinned in the profile when insecure). */
  webCertSha256: string;
}

/**
 * The proxy's SSH address from ping: the web address under TLS routing, else
 * `ssh_public_addr`, else `listen_addr` (an unspecified host means the proxy's host), else the
 * proxy's host on {@link DEFAULT_PROXY_SSH_PORT}.
 */
export function sshProxyAddrOf(ping: WebPingResponse, proxy: HostPort): HostPort {
  if (ping.proxy?.tls_routing_enabled === true) return proxy;
  const ssh = ping.proxy?.ssh ?? {};
  for (const text of [ssh.ssh_public_addr, ssh.listen_addr]) {
    if (typeof text !== "string" || text.trim() === "") continue;
    const addr = parseHostPort(text, DEFAULT_PROXY_SSH_PORT, "the proxy's SSH address");
    return isUnspecifiedHost(addr.host) ? { host: proxy.host, port: addr.port } : addr;
  }
  return { host: proxy.host, port: DEFAULT_PROXY_SSH_PORT };
}

/** Whether ping's `auth.second_factor` asks for an OTP code (otp, on, optional). */
export function wantsOtp(ping: WebPingResponse): boolean {
  const sf = String(ping.auth?.second_factor ?? "off").toLowerCase();
  if (sf === "webauthn" || sf === "u2f") {
    throw new NotImplementedError(
      `Cannot log in: the cluster requires second factor "${sf}", which this tsh does not ` +
        "support; ask your administrator to allow OTP",
    );
  }
  return sf === "otp" || sf === "on" || sf === "optional";
}

/** Logs in; see the module doc. */
export async function login(o: LoginOptions): Promise<LoginResult> {
  if (o.user === "") throw new BadParameterError("Cannot log in: the user name is empty");
  const ttlMs = o.ttlMs ?? DEFAULT_CERT_TTL_MS;
  if (!Number.isFinite(ttlMs) || ttlMs < 60_000) {
    throw new BadParameterError("Cannot log in: --ttl must be at least 1m");
  }
  const web = new WebClient({ addr: o.proxy, trust: o.trust, timeoutMs: o.timeoutMs });
  const keyGen = Promise.all([generateSshKeyPair("ed25519"), generateTlsKeyPair()]);
  keyGen.catch(() => {});
  const ping = await web.ping(o.signal);
  if (typeof ping.cluster_name !== "string" || ping.cluster_name === "") {
    throw new BadParameterError(
      `Cannot log in: proxy ${formatHostPort(o.proxy)} names no cluster (is this a proxy?)`,
    );
  }
  const cluster = validateClusterName(ping.cluster_name);
  const otp = wantsOtp(ping);
  const password = await o.prompt(`Enter password for Teleport user ${o.user}:`, { secret: true });
  const otpToken = otp ? (await o.prompt("Enter your OTP token:", { secret: true })).trim() : "";
  const [sshKey, tlsKey] = await keyGen;
  const resp = await web.createSshCerts({
    user: o.user,
    password,
    ...(otp ? { otp_token: otpToken } : {}),
    ssh_pub_key: btoa(sshKey.authorizedKey),
    tls_pub_key: btoa(tlsKey.publicKeyPem),
    ttl: Math.round(ttlMs) * 1_000_000,
  }, o.signal);

  // Check what came back before storing anything.
  const bad = (why: string): never => {
    throw new AccessDeniedError(`Cannot log in: the proxy's answer ${why}`);
  };
  let sshCert: SshCertificate;
  try {
    sshCert = parseSshCertificate(decodeText(resp.cert, "ssh-"));
  } catch {
    return bad("holds no valid SSH certificate");
  }
  if (sshCert.certType !== "user" || !bytesEqual(sshCert.publicKeyBlob, sshKey.publicKeyBlob)) {
    bad("holds an SSH certificate that is not a user certificate for our key");
  }
  const tlsCertPem = decodeText(resp.tls_cert, "-----BEGIN");
  let tlsNotAfter: Date;
  try {
    const info = parseX509Certificate(tlsCertPem);
    const ours = new Uint8Array(await crypto.subtle.exportKey("spki", tlsKey.publicKey));
    if (!bytesEqual(info.spkiDer, ours)) bad("holds a TLS certificate for another key");
    tlsNotAfter = info.notAfter;
  } catch (err) {
    if (err instanceof AccessDeniedError) throw err;
    return bad("holds no valid TLS certificate");
  }
  const { hostCaKeys, hostCaTlsCerts } = hostCasOf(resp.host_signers, cluster, "log in");

  const sshUntil = sshCert.validBefore === "forever" ? tlsNotAfter : sshCert.validBefore;
  const validUntil = new Date(Math.min(sshUntil.getTime(), tlsNotAfter.getTime()));
  const now = (o.clock ?? new RealClock()).now();
  if (validUntil.getTime() <= now.getTime()) {
    bad(
      `holds certificates that expired at ${validUntil.toISOString()} (is this machine's clock right?)`,
    );
  }
  const webCertSha256 = web.certSha256!;
  const pinned = o.trust.pinnedSha256 ?? (o.trust.insecure === true ? webCertSha256 : undefined);
  const profile: Profile = {
    name: o.proxy.host,
    webProxyAddr: o.proxy,
    sshProxyAddr: sshProxyAddrOf(ping, o.proxy),
    user: o.user,
    cluster,
    tlsRoutingEnabled: ping.proxy?.tls_routing_enabled === true,
    ...(pinned === undefined ? {} : { webCertSha256: pinned }),
    validUntil,
  };
  const keys: ProfileKeys = {
    sshKey,
    sshCert: sshCert.blob.length > 0 ? formatAuthorizedKey(sshCert.blob) : "",
    tlsKeyPem: tlsKey.privateKeyPem,
    tlsCertPem,
    hostCaTlsCerts,
    hostCaKeys,
  };
  const paths = await o.store.save(profile, keys);
  return { profile, keys, paths, ping, webCertSha256 };
}

/**
 * Go marshals `[]byte` as base64; accept the decoded text too when it already starts with
 * `plainPrefix` (a lenient server).
 */
function decodeText(value: unknown, plainPrefix: string): string {
  if (typeof value !== "string") {
    throw new BadParameterError("Cannot log in: the proxy's answer lacks a field");
  }
  if (plainPrefix !== "" && value.startsWith(plainPrefix)) return value;
  if (plainPrefix === "" && /^(ssh-|ecdsa-)/.test(value)) return value;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.fromBase64(value));
  } catch {
    throw new BadParameterError("Cannot log in: the proxy's answer has a field that is not base64");
  }
}
