/**
 * A host's credentials through CA rotations: the one owner of `<data_dir>/<role>.identity`
 * while a node or proxy runs.
 *
 * {@link HostCredentials.refresh} (run periodically) reads the host CA from auth and
 * 1. adopts the CA certificates and SSH keys it trusts now (both generations during a
 *    rotation), so the auth client and the host-CA checks accept servers of either;
 * 2. once the rotation reaches `update_servers` (or `rollback`, or its end), re-registers when
 *    the host certificate is not signed by the CA's active key: auth re-issues the SSH and TLS
 *    certificates for the same key and names, authenticated by the current certificate.
 *
 * Each change is written to the identity file and handed to `onChange`, which swaps it into
 * the running services (auth client, SSH server, tunnel agents) without a restart.
 */
import { createPublicKey } from "node:crypto";
import type { RegisterResponse } from "../authclient/mod.ts";
import { formatAuthorizedKey, importSshPrivateKey, parseSshCertificate } from "../ca/mod.ts";
import { bytesEqual, parseAuthorizedKey } from "../ca/mod.ts";
import { type IdentityFile, writeIdentityFile } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";
import { type CertAuthority, type Resource, rotationOf, trustedKeys } from "../resource/mod.ts";
import { hostCaKeyLines, type HostRenewRequest } from "./host_identity.ts";

/** What changed in a {@link HostCredentials.refresh}. */
export interface HostCredentialsChange {
  identity: IdentityFile;
  /** The trusted host CA certificates or keys changed. */
  trust: boolean;
  /** The certificates were re-issued (SSH and TLS). */
  certificates: boolean;
}

/** Inputs of {@link HostCredentials}. */
export interface HostCredentialsOptions {
  role: "node" | "proxy";
  /** The identity file this object owns from now on. */
  path: string;
  identity: IdentityFile;
  nodeName: string;
  additionalPrincipals: string[];
  /** Reads the host CA (public parts) from auth. */
  readHostCa: () => Promise<Resource>;
  /** Asks auth for new certificates, authenticated by `current`. */
  reRegister: (current: IdentityFile, req: HostRenewRequest) => Promise<RegisterResponse>;
  /** Told about every change (after it is written to the file). */
  onChange?: (change: HostCredentialsChange) => Promise<void> | void;
  logger: Logger;
}

/** Phases in which servers take certificates of the CA's active key. */
const SERVER_PHASES = new Set(["update_servers", "rollback", "standby"]);

/** The SPKI PEM of a PKCS#8 private key. */
function publicKeyPemOf(keyPem: string): string {
  return createPublicKey(keyPem).export({ type: "spki", format: "pem" }).toString();
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** The identity of a running host and its updates through CA rotations. */
export class HostCredentials {
  readonly #o: HostCredentialsOptions;
  #identity: IdentityFile;
  /** One refresh or user-CA update at a time: each writes the whole file. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: HostCredentialsOptions) {
    this.#o = o;
    this.#identity = o.identity;
  }

  /** The identity in use now. */
  get identity(): IdentityFile {
    return this.#identity;
  }

  /** Stores new user CA keys (a node's or proxy's refresh found them) in the identity file. */
  setUserCaKeys(keys: string[]): Promise<void> {
    return this.#serial(async () => {
      const hostKeys = hostCaKeyLines(this.#identity);
      this.#identity = {
        ...this.#identity,
        sshCaKeys: [...hostKeys, ...keys],
        sshUserCaKeys: keys,
      };
      await writeIdentityFile(this.#o.path, this.#identity);
    });
  }

  /** Follows the host CA: see the module doc. */
  refresh(): Promise<void> {
    return this.#serial(() => this.#refresh());
  }

  #serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(f, f);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #refresh(): Promise<void> {
    const o = this.#o;
    const res = await o.readHostCa();
    if (res.kind !== "cert_authority" || res.spec.type !== "host") return;
    const ca: CertAuthority = res;
    const trusted = trustedKeys(ca);
    if (trusted.tls.length === 0 || trusted.ssh.length === 0) return;
    let trust = false;
    let id = this.#identity;
    const user = id.sshUserCaKeys ?? [];
    if (!sameList(id.tlsCaCertPems, trusted.tls) || !sameList(hostCaKeyLines(id), trusted.ssh)) {
      id = { ...id, tlsCaCertPems: trusted.tls, sshCaKeys: [...trusted.ssh, ...user] };
      trust = true;
    }
    const phase = rotationOf(ca).phase;
    const active = ca.spec.active_keys.ssh[0]?.public_key;
    let certificates = false;
    if (
      SERVER_PHASES.has(phase) && active !== undefined && id.sshCert !== undefined &&
      !bytesEqual(parseSshCertificate(id.sshCert).signatureKeyBlob, parseAuthorizedKey(active).blob)
    ) {
      o.logger.info(
        "The host CA rotation is in phase {phase}: re-registering the {role} for certificates of the new CA key",
        { phase, role: o.role },
      );
      const key = await importSshPrivateKey(id.keyPem);
      const out = await o.reRegister(id, {
        node_name: o.nodeName,
        additional_principals: o.additionalPrincipals,
        public_ssh_key: formatAuthorizedKey(key.publicKeyBlob),
        public_tls_key: publicKeyPemOf(id.keyPem),
      });
      id = {
        keyPem: id.keyPem,
        tlsCertPem: out.tls_cert,
        sshCert: out.ssh_cert,
        // Trust what auth says now; keep the user CA keys the node's own refresh follows.
        tlsCaCertPems: out.tls_ca_certs,
        sshCaKeys: [...out.ssh_ca_keys.host, ...user],
        sshUserCaKeys: user,
      };
      certificates = true;
    }
    if (!trust && !certificates) return;
    this.#identity = id;
    await writeIdentityFile(o.path, id);
    if (trust) {
      o.logger.info("The {role} now trusts {count} host CA keys (rotation phase {phase})", {
        role: o.role,
        count: hostCaKeyLines(id).length,
        phase,
      });
    }
    await o.onChange?.({ identity: id, trust, certificates });
  }
}
