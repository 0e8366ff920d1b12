/**
 * Identity files on disk: a private key, its TLS certificate (and optionally an
 * SSH certificate) and the CA material needed to talk to the cluster. Written
 * 0600; read by tctl (`--identity`) and by services on restart.
 */
import { BadParameterError, NotFoundError } from "../errors/mod.ts";

/** What an identity file holds. */
export interface IdentityFile {
  /** PKCS#8 PEM private key of the TLS certificate (and SSH certificate if any). */
  keyPem: string;
  /** X.509 certificate, PEM. */
  tlsCertPem: string;
  /** Trusted TLS CA certificates (host CA for servers), PEM each. */
  tlsCaCertPems: string[];
  /** SSH certificate in authorized_keys form, when one was issued. */
  sshCert?: string;
  /** SSH CA public keys (authorized_keys form). */
  sshCaKeys: string[];
  /**
   * The subset of {@link sshCaKeys} that signs user certificates: what an SSH
   * server of this host trusts for logins (kept so it works while auth is down).
   */
  sshUserCaKeys?: string[];
}

const FORMAT = "teleport-deno-identity-v1";

/** Writes an identity file with mode 0600 (atomically: temp file + rename). */
export async function writeIdentityFile(path: string, id: IdentityFile): Promise<void> {
  const text = JSON.stringify({ format: FORMAT, ...id }, null, 2) + "\n";
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, path);
}

/** Reads an identity file; NotFoundError if absent, BadParameterError if malformed. */
export async function readIdentityFile(path: string): Promise<IdentityFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new NotFoundError(`Cannot read identity file "${path}": it does not exist`);
    }
    throw err;
  }
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BadParameterError(`Cannot read identity file "${path}": not JSON`);
  }
  const isStrList = (x: unknown): x is string[] =>
    Array.isArray(x) && x.every((s) => typeof s === "string");
  if (
    v.format !== FORMAT || typeof v.keyPem !== "string" || typeof v.tlsCertPem !== "string" ||
    !isStrList(v.tlsCaCertPems) || !isStrList(v.sshCaKeys) ||
    (v.sshCert !== undefined && typeof v.sshCert !== "string") ||
    (v.sshUserCaKeys !== undefined && !isStrList(v.sshUserCaKeys))
  ) {
    throw new BadParameterError(
      `Cannot read identity file "${path}": not a teleport identity file (format ${FORMAT})`,
    );
  }
  const out: IdentityFile = {
    keyPem: v.keyPem,
    tlsCertPem: v.tlsCertPem,
    tlsCaCertPems: v.tlsCaCertPems,
    sshCaKeys: v.sshCaKeys,
  };
  if (typeof v.sshCert === "string") out.sshCert = v.sshCert;
  if (isStrList(v.sshUserCaKeys)) out.sshUserCaKeys = v.sshUserCaKeys;
  return out;
}
