/**
 * The proxy's HTTPS key pairs: the configured `https_keypairs` (a certbot-style
 * fullchain is served whole), or else a self-signed pair generated once and
 * kept in the data dir (`webproxy_cert.pem` = leaf + its own small CA,
 * `webproxy_key.pem`), so clients that pinned it on first contact keep
 * trusting it across restarts.
 */
import {
  createX509Ca,
  generateTlsKeyPair,
  issueX509Certificate,
  splitPemCertificates,
} from "../ca/mod.ts";
import type { Clock } from "../clock/mod.ts";
import type { KeyPair } from "../config/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
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
