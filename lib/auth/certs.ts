/**
 * Certificate issuance of the auth server: user certificates (SSH and X.509, TTL capped by the
 * roles), host certificates (the SSH host certificate and X.509 certificate of a joining or
 * renewing host, and TLS certificates of cluster members), and the issuance metrics
 * (`auth_generate_requests_total`, `auth_generate_seconds`).
 */
import type { UserCerts } from "../authclient/mod.ts";
import { issueX509Certificate, parseAuthorizedKey, signSshCertificate } from "../ca/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
import { type Identity, identityToSubject } from "../identity/mod.ts";
import type { Counter, Histogram, MetricsRegistry } from "../metrics/mod.ts";
import type { SystemRole } from "../resource/mod.ts";
import type { AuthContext } from "./_shared.ts";

/** Shortest and longest user certificate the server issues (Teleport: 1 min, 30 h). */
export const MIN_CERT_TTL_MS = 60_000;
export const MAX_CERT_TTL_MS = 30 * 3_600_000;
/** Host certificates for cluster members (auth itself, admin identity) live this long. */
const HOST_CERT_TTL_MS = 365 * 24 * 3_600_000;
/** Backdating, so a freshly issued cert is valid on peers with a slightly slow clock. */
const BACKDATE_MS = 60_000;

/** Options of {@link AuthCerts}. */
export interface AuthCertsOptions {
  /** Where certificate issuance is reported. @default {not reported} */
  metrics?: MetricsRegistry;
}

/** Inputs of {@link AuthCerts.generateUserCerts}. */
export interface UserCertsRequest {
  user: string;
  sshPublicKey?: string;
  tlsPublicKeyPem?: string;
  ttlMs: number;
}

/** Inputs of {@link AuthCerts.generateHostTlsCert}. */
export interface HostTlsCertRequest {
  hostId: string;
  role: SystemRole;
  tlsPublicKeyPem: string;
  /** Host names and IP addresses for the SANs (split into DNS and IP here). */
  names?: string[];
  ttlMs?: number;
}

/** Inputs of {@link AuthCerts.signHostSshCert}. */
export interface HostSshCertRequest {
  hostId: string;
  nodeName: string;
  role: SystemRole;
  /** The host's public key, authorized_keys form. */
  publicSshKey: string;
  /** Extra principals the host asked for (already checked). */
  principals: string[];
}

/** Issues the cluster's certificates with the loaded CAs. */
export class AuthCerts {
  readonly #ctx: AuthContext;
  readonly #generated?: { requests: Counter; seconds: Histogram };

  constructor(ctx: AuthContext, opts: AuthCertsOptions = {}) {
    this.#ctx = ctx;
    if (opts.metrics !== undefined) {
      this.#generated = {
        requests: opts.metrics.counter({
          name: "auth_generate_requests_total",
          help: "Certificate issuance requests (user: login, host: join and renewal)",
          labelNames: ["kind"],
        }),
        seconds: opts.metrics.histogram({
          name: "auth_generate_seconds",
          help: "Latency of certificate issuance in seconds",
          labelNames: ["kind"],
        }),
      };
    }
  }

  /**
   * Issues certificates for a user: SSH (principals = allowed logins, key id =
   * user) and/or TLS (identity in the subject), with a TTL capped by the roles.
   */
  generateUserCerts(req: UserCertsRequest): Promise<UserCerts> {
    return this.timeGenerate("user", () => this.#generateUserCerts(req));
  }

  /** Runs one certificate issuance and reports it (when metrics are given). */
  async timeGenerate<T>(kind: "user" | "host", issue: () => Promise<T>): Promise<T> {
    const m = this.#generated;
    if (m === undefined) return await issue();
    m.requests.inc({ kind });
    const start = performance.now();
    try {
      return await issue();
    } finally {
      m.seconds.observe((performance.now() - start) / 1000, { kind });
    }
  }

  async #generateUserCerts(req: UserCertsRequest): Promise<UserCerts> {
    if (req.sshPublicKey === undefined && req.tlsPublicKeyPem === undefined) {
      throw new BadParameterError("Cannot sign user certificates: give an SSH or TLS public key");
    }
    const ctx = this.#ctx;
    const user = await ctx.users.get(req.user);
    const checker = await ctx.checkerFor({
      kind: "user",
      username: user.metadata.name,
      clusterName: ctx.clusterName,
      roles: user.spec.roles,
      logins: [],
      traits: user.spec.traits,
    });
    const ttl = Math.max(
      MIN_CERT_TTL_MS,
      Math.min(req.ttlMs, checker.maxSessionTtlMs(), MAX_CERT_TTL_MS),
    );
    const now = ctx.clock.now().getTime();
    const validAfter = new Date(now - BACKDATE_MS);
    const expires = new Date(now + ttl);
    let logins = checker.logins();
    if (logins.length === 0) logins = [`-teleport-nologin-${crypto.randomUUID()}`];
    const out: UserCerts = {
      tlsCaCerts: ctx.signer("host").tlsCertPems,
      hostCaKeys: ctx.signer("host").sshPublicKeys,
      userCaKeys: ctx.signer("user").sshPublicKeys,
      expires: expires.toISOString(),
    };
    if (req.sshPublicKey !== undefined) {
      const extensions: Record<string, string> = {
        "permit-pty": "",
        "teleport-roles": JSON.stringify({ roles: user.spec.roles }),
        "teleport-traits": JSON.stringify(user.spec.traits),
      };
      if (checker.canPortForward()) extensions["permit-port-forwarding"] = "";
      if (checker.canForwardAgent()) extensions["permit-agent-forwarding"] = "";
      const signer = ctx.signer("user");
      const cert = await signSshCertificate({
        signer: { privateKey: signer.ssh.privateKey, publicKeyBlob: signer.ssh.publicKeyBlob },
        publicKeyBlob: parseAuthorizedKey(req.sshPublicKey).blob,
        certType: "user",
        keyId: user.metadata.name,
        principals: logins,
        validAfter,
        validBefore: expires,
        extensions,
      });
      out.sshCert = cert.authorizedKey;
    }
    if (req.tlsPublicKeyPem !== undefined) {
      const id: Identity = {
        kind: "user",
        username: user.metadata.name,
        clusterName: ctx.clusterName,
        roles: user.spec.roles,
        logins,
        traits: user.spec.traits,
      };
      out.tlsCert = await this.#issueTls("user", id, req.tlsPublicKeyPem, {
        notBefore: validAfter,
        notAfter: expires,
        extKeyUsage: ["clientAuth"],
      });
    }
    ctx.log.info("Issued user certificates for {user}, valid until {expires}", {
      user: user.metadata.name,
      expires: out.expires,
    });
    return out;
  }

  /**
   * Signs a host's SSH host certificate with the host CA: principals are its id (bare and
   * cluster-qualified), its node name (likewise), the loopback names and the extra principals;
   * no expiry, like Teleport's join path. Returns the authorized_keys form.
   */
  async signHostSshCert(req: HostSshCertRequest): Promise<string> {
    const ctx = this.#ctx;
    const now = ctx.clock.now().getTime();
    const host = ctx.signer("host");
    const sshPrincipals = [
      ...new Set([
        `${req.hostId}.${ctx.clusterName}`,
        req.hostId,
        req.nodeName,
        `${req.nodeName}.${ctx.clusterName}`,
        "localhost",
        "127.0.0.1",
        "::1",
        ...req.principals,
      ]),
    ];
    const sshCert = await signSshCertificate({
      signer: { privateKey: host.ssh.privateKey, publicKeyBlob: host.ssh.publicKeyBlob },
      publicKeyBlob: parseAuthorizedKey(req.publicSshKey).blob,
      certType: "host",
      keyId: `${req.hostId}.${ctx.clusterName}`,
      principals: sshPrincipals,
      validAfter: new Date(now - BACKDATE_MS),
      validBefore: "forever",
      extensions: { "x-teleport-role": req.role, "x-teleport-authority": ctx.clusterName },
    });
    return sshCert.authorizedKey;
  }

  /**
   * Issues a TLS certificate for a cluster member (auth server, admin tool, nodes and
   * proxies) signed by the host CA.
   */
  async generateHostTlsCert(req: HostTlsCertRequest): Promise<string> {
    const ctx = this.#ctx;
    const names = [...new Set(req.names ?? [])];
    const now = ctx.clock.now().getTime();
    const id: Identity = {
      kind: "host",
      username: `${req.hostId}.${ctx.clusterName}`,
      clusterName: ctx.clusterName,
      roles: [req.role],
      logins: [],
      traits: {},
    };
    return await this.#issueTls("host", id, req.tlsPublicKeyPem, {
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + (req.ttlMs ?? HOST_CERT_TTL_MS)),
      extKeyUsage: ["serverAuth", "clientAuth"],
      dnsNames: names.filter((n) => !isIpAddress(n)),
      ipAddresses: names.filter(isIpAddress),
    });
  }

  async #issueTls(
    caType: "host" | "user",
    id: Identity,
    publicKeyPem: string,
    o: {
      notBefore: Date;
      notAfter: Date;
      extKeyUsage: ("serverAuth" | "clientAuth")[];
      dnsNames?: string[];
      ipAddresses?: string[];
    },
  ): Promise<string> {
    const signer = this.#ctx.signer(caType);
    return await issueX509Certificate({
      ca: { certPem: signer.tls.certPem, privateKey: signer.tls.privateKey },
      publicKeyPem,
      subject: identityToSubject(id),
      extKeyUsage: o.extKeyUsage,
      notBefore: o.notBefore,
      notAfter: o.notAfter,
      ...(o.dnsNames && o.dnsNames.length > 0 ? { dnsNames: o.dnsNames } : {}),
      ...(o.ipAddresses && o.ipAddresses.length > 0 ? { ipAddresses: o.ipAddresses } : {}),
    });
  }
}

/** True for an IPv4 or IPv6 literal (SAN type IP rather than DNS). */
function isIpAddress(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}
