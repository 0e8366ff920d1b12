/**
 * The proxy's HTTPS key pairs: the configured `https_keypairs` (a certbot-style
 * fullchain is served whole), or else a self-signed pair generated once and
 * kept in the data dir (`webproxy_cert.pem` = leaf + its own small CA,
 * `webproxy_key.pem`), so clients that pinned it on first contact keep
 * trusting it across restarts.
 *
 * With `https_keypairs_reload_interval`, {@linkcode WebKeyPairReloader} re-reads the configured
 * files every interval; when they changed and every pair loads, the new set is served to new
 * handshakes; when any pair fails (a file missing, a key that does not match its certificate
 * because only one of the two files was replaced yet), the old set stays and the log says why.
 */
import {
  createX509Ca,
  generateTlsKeyPair,
  issueX509Certificate,
  splitPemCertificates,
} from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import type { KeyPair } from "../config/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";

/** A key pair as the TLS layer takes it. */
export interface PemKeyPair {
  /** Leaf first, then intermediates. */
  certPem: string;
  keyPem: string;
}

/** File names of the self-signed pair inside the data dir (Teleport's names). */
export const SELF_SIGNED_CERT_FILE = "webproxy_cert.pem";
export const SELF_SIGNED_KEY_FILE = "webproxy_key.pem";

/** How long a generated self-signed certificate lasts (Teleport: one year). */
const SELF_SIGNED_TTL_MS = 365 * 24 * 3_600_000;

async function readPair(p: KeyPair): Promise<PemKeyPair> {
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new BadParameterError(
        `Cannot read the proxy's HTTPS ${what} "${path}": ${
          err instanceof Error ? err.message : String(err)
        }; check proxy_service.https_keypairs`,
      );
    }
  };
  const certPem = await read(p.certFile, "certificate");
  const keyPem = await read(p.keyFile, "private key");
  if (splitPemCertificates(certPem).length === 0) {
    throw new BadParameterError(
      `Cannot use "${p.certFile}" as the proxy's HTTPS certificate: it holds no PEM certificate`,
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) {
    throw new BadParameterError(
      `Cannot use "${p.keyFile}" as the proxy's HTTPS key: it holds no PEM private key`,
    );
  }
  return { certPem, keyPem };
}

/** Inputs of {@link loadWebKeyPairs}. */
export interface WebKeyPairsOptions {
  configured: KeyPair[];
  dataDir: string;
  /** Names the self-signed certificate carries (host names and IPs). */
  names: string[];
  clock: Clock;
  logger: Logger;
}

/** The configured key pairs, or the self-signed one (created on first use). */
export async function loadWebKeyPairs(o: WebKeyPairsOptions): Promise<PemKeyPair[]> {
  if (o.configured.length > 0) return await Promise.all(o.configured.map(readPair));
  const certFile = `${o.dataDir}/${SELF_SIGNED_CERT_FILE}`;
  const keyFile = `${o.dataDir}/${SELF_SIGNED_KEY_FILE}`;
  try {
    return [await readPair({ certFile, keyFile })];
  } catch {
    // not there yet (or unreadable): make a new one below
  }
  const now = o.clock.now();
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + SELF_SIGNED_TTL_MS);
  const ca = await createX509Ca({
    commonName: `Teleport self-signed CA for ${o.names[0] ?? "localhost"}`,
    notBefore,
    notAfter,
  });
  const key = await generateTlsKeyPair();
  const isIp = (n: string) => /^[\d.]+$/.test(n) || n.includes(":");
  const names = [...new Set(o.names.filter((n) => n !== ""))];
  const leaf = await issueX509Certificate({
    ca: { certPem: ca.certPem, privateKey: ca.privateKey },
    publicKeyPem: key.publicKeyPem,
    subject: [["2.5.4.3", names[0] ?? "localhost"]],
    dnsNames: names.filter((n) => !isIp(n)),
    ipAddresses: names.filter(isIp),
    extKeyUsage: ["serverAuth"],
    notBefore,
    notAfter,
  });
  const pair = { certPem: leaf.trimEnd() + "\n" + ca.certPem, keyPem: key.privateKeyPem };
  await Deno.writeTextFile(keyFile, pair.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(certFile, pair.certPem, { mode: 0o600 });
  o.logger.warn(
    "No HTTPS certificate is configured: generated a self-signed one in {path}; clients need --insecure on first login (set proxy_service.https_keypairs for a real certificate)",
    { path: certFile },
  );
  return [pair];
}

/** Inputs of {@linkcode WebKeyPairReloader}. */
export interface WebKeyPairReloaderOptions {
  /** The configured files (`proxy_service.https_keypairs`). */
  configured: KeyPair[];
  /** The set served now (what {@linkcode loadWebKeyPairs} returned). */
  served: PemKeyPair[];
  /**
   * Serves a new set from the next handshake on; throws, keeping the old set, when a pair does
   * not load (`Multiplexer.setKeyPairs`).
   */
  apply: (pairs: PemKeyPair[]) => void;
  logger: Logger;
}

/** What one {@linkcode WebKeyPairReloader.check} did. */
export type ReloadResult = "unchanged" | "reloaded" | "failed";

function fingerprint(pairs: readonly PemKeyPair[]): string {
  return JSON.stringify(pairs.map((p) => [p.certPem, p.keyPem]));
}

/** Re-reads the configured HTTPS key pairs and serves them when they changed and all load. */
export class WebKeyPairReloader {
  #o: WebKeyPairReloaderOptions;
  #served: string;
  #lastFailure: string | undefined;

  constructor(o: WebKeyPairReloaderOptions) {
    this.#o = o;
    this.#served = fingerprint(o.served);
  }

  /** One pass: reads every file, and applies the set when it differs from the one served. */
  async check(): Promise<ReloadResult> {
    const files = this.#o.configured.map((p) => p.certFile).join(", ");
    let pairs: PemKeyPair[];
    try {
      pairs = await Promise.all(this.#o.configured.map(readPair));
      const next = fingerprint(pairs);
      if (next === this.#served) {
        this.#lastFailure = undefined;
        return "unchanged";
      }
      this.#o.apply(pairs);
      this.#served = next;
    } catch (err) {
      const reason = messageOf(err);
      // Once per distinct problem: a file left half-replaced is not logged every interval.
      if (reason !== this.#lastFailure) {
        this.#o.logger.warn(
          "Cannot reload the proxy's HTTPS key pairs ({files}): {reason}; still serving the previous ones",
          { files, reason },
        );
      }
      this.#lastFailure = reason;
      return "failed";
    }
    this.#lastFailure = undefined;
    this.#o.logger.info("Reloaded the proxy's HTTPS key pairs from {files}", { files });
    return "reloaded";
  }
}
