/**
 * How hosts join the cluster: provision (join) tokens, dynamic and static, joining with one
 * (registerUsingToken), the names a host may claim (host_names.ts), and issuing a host's
 * identity: at its join, to services inside the auth process, and again when a joined host
 * re-registers for new names.
 */
import type { RegisterRequest, RegisterResponse } from "../authclient/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  isKind,
  messageOf,
  NotFoundError,
} from "../errors/mod.ts";
import { hostIdOf, type Identity } from "../identity/mod.ts";
import { maskSecret } from "../log/mod.ts";
import {
  parseSystemRole,
  type ProvisionToken,
  type SystemRole,
  validateName,
} from "../resource/mod.ts";
import { type AuthContext, randomHex } from "./_shared.ts";
import type { AuthCerts } from "./certs.ts";
import {
  assertNoNameConflict,
  type HostClaim,
  HostRegistry,
  validateHostNames,
} from "./host_names.ts";

/** A static join token from teleport.yaml (`"node:secret"`). Never expires. */
export interface StaticToken {
  roles: string[];
  token: string;
}

/** Inputs of {@link AuthJoin.createToken}. */
export interface CreateTokenRequest {
  /** System roles the token lets a host join as (node, proxy). */
  roles: string[];
  ttlMs: number;
  /** The token itself. @default {32 random hex characters} */
  token?: string;
}

/** Options of {@link AuthJoin}. */
export interface AuthJoinOptions {
  /** Tokens from the config file. @default {none} */
  staticTokens?: StaticToken[];
  /** Issues the host certificates (and reports the issuance). */
  certs: Pick<AuthCerts, "timeGenerate" | "signHostSshCert" | "generateHostTlsCert">;
}

/** Join tokens and host identities. */
export class AuthJoin {
  readonly #ctx: AuthContext;
  readonly #staticTokens: StaticToken[];
  readonly #certs: AuthJoinOptions["certs"];
  readonly #hostRegistry: HostRegistry;

  constructor(ctx: AuthContext, opts: AuthJoinOptions) {
    this.#ctx = ctx;
    this.#staticTokens = opts.staticTokens ?? [];
    this.#certs = opts.certs;
    this.#hostRegistry = new HostRegistry(ctx.backend);
    for (const t of this.#staticTokens) {
      for (const r of t.roles) parseSystemRole(r, "static token role");
    }
  }

  /** Creates a join token: 32 hex characters unless `token` is given. */
  async createToken(req: CreateTokenRequest, by?: string): Promise<ProvisionToken> {
    const ctx = this.#ctx;
    if (req.roles.length === 0) {
      throw new BadParameterError("Cannot create token: give at least one role (node, proxy)");
    }
    const roles = [...new Set(req.roles.map((r) => parseSystemRole(r, "token role")))];
    if (roles.includes("Admin")) {
      throw new BadParameterError("Cannot create token: role Admin cannot join");
    }
    if (!(req.ttlMs > 0)) {
      throw new BadParameterError("Cannot create token: the TTL must be positive");
    }
    // A TTL so long that the expiry is no longer a time (past year 275760) is a bad parameter,
    // not an internal error from toISOString().
    const expiresMs = ctx.clock.now().getTime() + req.ttlMs;
    if (Number.isNaN(new Date(expiresMs).getTime())) {
      throw new BadParameterError(
        `Cannot create token: a TTL of ${req.ttlMs} ms ends past the last representable time`,
      );
    }
    const name = req.token ?? randomHex(16);
    if (!/^[A-Za-z0-9_-]{8,128}$/.test(name)) {
      throw new BadParameterError(
        "Cannot create token: a token must be 8-128 letters, digits, - or _",
      );
    }
    const token: ProvisionToken = {
      kind: "token",
      version: "v2",
      metadata: {
        name,
        expires: new Date(expiresMs).toISOString(),
      },
      spec: { roles, join_method: "token" },
    };
    await ctx.tokens.create(token);
    ctx.log.info("Created join token {token} for roles {roles}", {
      token: maskSecret(name),
      roles: roles.join(","),
    });
    await ctx.emitAudit("join_token.create", {
      user: by ?? "",
      token_name: maskSecret(name),
      roles,
      join_method: "token",
      expires: token.metadata.expires,
    });
    return token;
  }

  /** Dynamic tokens plus static ones from the config (which never expire). */
  async listTokens(): Promise<ProvisionToken[]> {
    const dynamic = await this.#ctx.tokens.list();
    const statics: ProvisionToken[] = this.#staticTokens.map((t) => ({
      kind: "token",
      version: "v2",
      metadata: { name: t.token, description: "static token from the config file" },
      spec: { roles: t.roles.map((r) => parseSystemRole(r)), join_method: "token" },
    }));
    return [...dynamic, ...statics];
  }

  /** Deletes a dynamic token. Static tokens live in the config file. */
  async deleteToken(token: string): Promise<void> {
    if (this.#staticTokens.some((t) => t.token === token)) {
      throw new BadParameterError(
        `Cannot delete token ${
          maskSecret(token)
        }: it is a static token; remove it from auth_service.tokens in the config file`,
      );
    }
    try {
      await this.#ctx.tokens.delete(token);
    } catch (err) {
      if (isKind(err, "NotFound")) {
        throw new NotFoundError(`token ${maskSecret(token)} is not found`);
      }
      throw err;
    }
  }

  /**
   * Joins a host with a token: the token must exist, be unexpired and allow the
   * role; dynamic tokens are consumed (single use, even under concurrent joins).
   * Returns an SSH host certificate (no expiry, like Teleport's join path), a TLS
   * certificate and the CA material. Every refusal says the same thing, so a
   * caller cannot probe which tokens exist; the token never appears in logs.
   */
  async registerUsingToken(req: RegisterRequest, remoteAddr?: string): Promise<RegisterResponse> {
    const ctx = this.#ctx;
    const role = parseSystemRole(req.role, "role");
    const joinFields = {
      token_name: maskSecret(req.token),
      method: "token",
      role: role.toLowerCase(),
      host_id: req.hostID,
      node_name: req.node_name,
      "addr.remote": remoteAddr ?? "",
    };
    let stage: "request" | "token" | "names" | "issue" = "request";
    try {
      const claim = this.#validateJoin(req, role);
      stage = "token";
      const consumeToken = await this.#checkToken(req.token, role, req.node_name, remoteAddr);
      // Names are compared with other hosts' only for a valid token (no probing without one),
      // and before the token is used up (a host refused for its names can fix them and retry).
      stage = "names";
      await this.#checkHostNames(claim);
      stage = "token";
      await consumeToken();
      stage = "issue";
      const res = await this.#issueHostCredentials(req, remoteAddr);
      await ctx.emitAudit("instance.join", { ...joinFields, success: true });
      return res;
    } catch (err) {
      // Token refusals are logged where they are decided (with the token masked).
      if (stage !== "token") {
        ctx.log.warn("Refused join of {node} ({host}) as {role} from {addr}: {reason}", {
          node: req.node_name,
          host: req.hostID,
          role,
          addr: remoteAddr ?? "unknown",
          reason: messageOf(err),
        });
      }
      await ctx.emitAudit("instance.join", {
        ...joinFields,
        success: false,
        error: messageOf(err),
      }, { failure: true });
      throw err;
    }
  }

  /**
   * Issues a host identity without a token, for a service running inside the
   * auth process itself (`--roles=auth,node`): Teleport does the same for
   * local services. Never reachable over the API.
   */
  async issueLocalHostIdentity(req: Omit<RegisterRequest, "token">): Promise<RegisterResponse> {
    await this.#checkHostNames(this.#validateJoin(req, parseSystemRole(req.role, "role")));
    return await this.#issueHostCredentials(req, "local");
  }

  /**
   * Re-issues a joined host's credentials for the names its config asks for now (its
   * public_addr or listen hosts changed since it joined), authenticated by its current host
   * certificate: the host id and role are the certificate's, never the request's; the names
   * pass the same checks as a join. Teleport re-registers the same way.
   */
  async reRegisterHost(
    caller: Identity,
    req: Omit<RegisterRequest, "token" | "hostID" | "role">,
  ): Promise<RegisterResponse> {
    const role = caller.kind === "host"
      ? caller.roles.find((r) => r === "Node" || r === "Proxy")
      : undefined;
    if (role === undefined) {
      throw new AccessDeniedError(
        `Cannot re-register ${caller.username}: only node and proxy hosts renew their certificates`,
      );
    }
    const full = { ...req, hostID: hostIdOf(caller), role };
    await this.#checkHostNames(this.#validateJoin(full, role));
    const res = await this.#issueHostCredentials(full, "re-register");
    await this.#ctx.emitAudit("instance.join", {
      method: "reregister",
      role: role.toLowerCase(),
      host_id: full.hostID,
      node_name: full.node_name,
      success: true,
    });
    return res;
  }

  /** Checks a join request's fields and the form of its names; returns the host's claim. */
  #validateJoin(req: Omit<RegisterRequest, "token">, role: SystemRole): HostClaim {
    if (role !== "Node" && role !== "Proxy") {
      throw new BadParameterError(
        `Cannot join as ${role}: only node and proxy hosts join with a token`,
      );
    }
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(req.hostID)) {
      throw new BadParameterError("Cannot join: hostID must be a UUID");
    }
    validateName(req.node_name, "node");
    const claim: HostClaim = {
      hostId: req.hostID,
      role,
      nodeName: req.node_name,
      names: [...(req.additional_principals ?? []), ...(req.dns_names ?? [])],
    };
    validateHostNames(claim);
    return claim;
  }

  /**
   * Refuses names that belong to another host: one recorded at its join (even if offline now)
   * or one heartbeating now (hosts that joined before the registry existed).
   */
  async #checkHostNames(claim: HostClaim): Promise<void> {
    const ctx = this.#ctx;
    const others: HostClaim[] = await this.#hostRegistry.list();
    for (const n of await ctx.presence.listNodes()) {
      others.push({ hostId: n.metadata.name, role: "Node", nodeName: n.spec.hostname, names: [] });
    }
    for (const p of await ctx.presence.listProxies()) {
      others.push({ hostId: p.metadata.name, role: "Proxy", nodeName: p.spec.hostname, names: [] });
    }
    assertNoNameConflict(claim, others, ctx.clusterName);
  }

  #issueHostCredentials(
    req: Omit<RegisterRequest, "token">,
    remoteAddr: string | undefined,
  ): Promise<RegisterResponse> {
    return this.#certs.timeGenerate("host", () => this.#issueHostCredentialsNow(req, remoteAddr));
  }

  async #issueHostCredentialsNow(
    req: Omit<RegisterRequest, "token">,
    remoteAddr: string | undefined,
  ): Promise<RegisterResponse> {
    const ctx = this.#ctx;
    const role = parseSystemRole(req.role, "role");
    const claim = this.#validateJoin(req, role);
    const principals = req.additional_principals ?? [];
    const host = ctx.signer("host");
    const sshCert = await this.#certs.signHostSshCert({
      hostId: req.hostID,
      nodeName: req.node_name,
      role,
      publicSshKey: req.public_ssh_key,
      principals,
    });
    const tlsCert = await this.#certs.generateHostTlsCert({
      hostId: req.hostID,
      role,
      tlsPublicKeyPem: req.public_tls_key,
      names: [req.node_name, ...principals, ...(req.dns_names ?? [])],
    });
    await this.#hostRegistry.put(claim);
    ctx.log.info("Host {node} ({host}) joined as {role} from {addr}", {
      node: req.node_name,
      host: req.hostID,
      role,
      addr: remoteAddr ?? "unknown",
    });
    return {
      ssh_cert: sshCert,
      tls_cert: tlsCert,
      tls_ca_certs: host.tlsCertPems,
      ssh_ca_keys: { host: host.sshPublicKeys, user: ctx.signer("user").sshPublicKeys },
    };
  }

  /**
   * Checks that `token` exists, is unexpired and allows `role`; returns the step that uses it
   * up (dynamic tokens are single use: only one concurrent join can delete one).
   */
  async #checkToken(
    token: string,
    role: SystemRole,
    nodeName: string,
    remoteAddr: string | undefined,
  ): Promise<() => Promise<void>> {
    const ctx = this.#ctx;
    const refuse = (why: string) => {
      ctx.log.warn("Refused join of {node} as {role} from {addr} with token {token}: {why}", {
        node: nodeName,
        role,
        addr: remoteAddr ?? "unknown",
        token: maskSecret(token),
        why,
      });
      return new AccessDeniedError(
        `the join token is invalid, expired, already used, or does not allow role ${role.toLowerCase()}; create a new one with "tctl tokens add --type=${role.toLowerCase()}"`,
      );
    };
    const statics = this.#staticTokens.filter((t) => t.token === token);
    if (statics.length > 0) {
      if (!statics.some((t) => t.roles.some((r) => parseSystemRole(r) === role))) {
        throw refuse("static token does not allow the role");
      }
      return () => Promise.resolve();
    }
    let stored: ProvisionToken;
    try {
      stored = await ctx.tokens.get(token);
    } catch (err) {
      if (isKind(err, "NotFound")) throw refuse("no such token (or expired)");
      throw err;
    }
    if (!stored.spec.roles.includes(role)) throw refuse("token does not allow the role");
    return async () => {
      try {
        await ctx.tokens.delete(token);
      } catch (err) {
        if (isKind(err, "NotFound")) throw refuse("token already used");
        throw err;
      }
    };
  }
}
