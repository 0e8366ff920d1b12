/**
 * A service's host identity: read from the data dir when it was issued before
 * (a restart needs no token), otherwise obtained once — from the auth server in
 * this same process, or by joining a remote one with a token and CA pins — and
 * written to `<data_dir>/<role>.identity` (0600).
 *
 * When the stored certificate does not carry the names the config asks for now (public_addr
 * or listen hosts changed, or the node name), the host re-registers: the local auth server,
 * or the remote one authenticated by the stored identity, issues new certificates, and the
 * change is logged name by name.
 */
import type { AuthServer } from "../auth/mod.ts";
import {
  AuthClient,
  type AuthClientOptions,
  identityFromRegistration,
  joinWithToken,
  type RegisterRequest,
  type RegisterResponse,
} from "../authclient/mod.ts";
import {
  checkCaPins,
  formatAuthorizedKey,
  generateTlsKeyPair,
  parseSshCertificate,
  sshPublicKeyBlob,
} from "../ca/mod.ts";
import type { Addr } from "../config/mod.ts";
import {
  AccessDeniedError,
  BadParameterError,
  isKind,
  kindOf,
  messageOf,
  newError,
} from "../errors/mod.ts";
import { type IdentityFile, readIdentityFile, writeIdentityFile } from "../identity/mod.ts";
import type { Logger } from "../log/mod.ts";

/** Inputs of {@link loadOrObtainHostIdentity}. */
export interface HostIdentityOptions {
  dataDir: string;
  /** `node` or `proxy`. */
  role: "node" | "proxy";
  hostId: string;
  nodeName: string;
  /** Extra SSH principals / TLS names (public_addr hosts). */
  additionalPrincipals: string[];
  /** The auth server of this process, when the auth role runs here. */
  localAuth?: AuthServer;
  /** Remote auth server to join (when there is no local one). */
  authServer?: Addr;
  /**
   * Joins through a proxy's web API instead (`POST /webapi/host/credentials`), when there is no
   * auth server to join; `proxyAddr` names it in messages.
   */
  joinViaProxy?: (req: RegisterRequest) => Promise<RegisterResponse>;
  proxyAddr?: Addr;
  /** The join token, or the path of a file holding it. */
  joinToken?: string;
  caPins: string[];
  /**
   * Renews the certificates of a stored identity for new names (a remote auth server, reached
   * with that identity). Without it (and without `localAuth`) a stored identity is kept as is.
   */
  reRegister?: (stored: IdentityFile, req: HostRenewRequest) => Promise<RegisterResponse>;
  logger: Logger;
}

/** What a host asks for when it renews its certificates for new names. */
export type HostRenewRequest = Omit<RegisterRequest, "token" | "hostID" | "role">;

/** Names the config asks for that a stored certificate lacks, and names it has that are gone. */
export interface HostNamesChange {
  added: string[];
  removed: string[];
}

/** Principals every host certificate carries besides the configured names. */
function generatedPrincipals(hostId: string, nodeName: string, cluster: string): Set<string> {
  return new Set([
    `${hostId}.${cluster}`,
    hostId,
    nodeName,
    `${nodeName}.${cluster}`,
    "localhost",
    "127.0.0.1",
    "::1",
  ]);
}

/**
 * How the names of a stored host identity differ from what the config asks for: `undefined`
 * when the certificate already carries exactly the node name and extra principals wanted.
 */
export function hostNamesChange(
  identity: IdentityFile,
  want: { hostId: string; nodeName: string; additionalPrincipals: string[] },
): HostNamesChange | undefined {
  if (identity.sshCert === undefined) return undefined;
  const cert = parseSshCertificate(identity.sshCert);
  const cluster = cert.extensions["x-teleport-authority"] ?? "";
  const have = new Set(cert.principals);
  const generated = generatedPrincipals(want.hostId, want.nodeName, cluster);
  const wanted = new Set([want.nodeName, ...want.additionalPrincipals]);
  const added = [...wanted].filter((n) => !have.has(n));
  const removed = [...have].filter((n) => !wanted.has(n) && !generated.has(n));
  return added.length === 0 && removed.length === 0 ? undefined : { added, removed };
}

/**
 * Re-registers when the stored identity's names differ from the wanted ones (see
 * {@link hostNamesChange}); returns the identity to use (the new one is written to `path`).
 */
export async function renewHostIdentityIfNamesChanged(
  stored: IdentityFile,
  o: Pick<HostIdentityOptions, "role" | "hostId" | "nodeName" | "additionalPrincipals" | "logger">,
  path: string,
  renew: (req: HostRenewRequest) => Promise<RegisterResponse>,
): Promise<IdentityFile> {
  const change = hostNamesChange(stored, o);
  if (change === undefined) return stored;
  const list = (names: string[]) => names.length === 0 ? "none" : names.join(", ");
  o.logger.info(
    "The {role} certificate in {path} does not match the config (added: {added}; removed: {removed}); re-registering for new certificates",
    { role: o.role, path, added: list(change.added), removed: list(change.removed) },
  );
  const key = await generateTlsKeyPair();
  let res: RegisterResponse;
  try {
    res = await renew({
      node_name: o.nodeName,
      additional_principals: o.additionalPrincipals,
      public_ssh_key: formatAuthorizedKey(await sshPublicKeyBlob(key.publicKey)),
      public_tls_key: key.publicKeyPem,
    });
  } catch (err) {
    throw newError(
      kindOf(err) ?? "ConnectionProblem",
      `Cannot renew the ${o.role} certificate for its new names (added: ${
        list(change.added)
      }; removed: ${list(change.removed)}): ${
        messageOf(err)
      }; undo the public_addr change, or fix the cause and restart`,
      { cause: err },
    );
  }
  const identity = identityFromRegistration(key.privateKeyPem, res);
  await writeIdentityFile(path, identity);
  o.logger.info("The {role} certificate now names {names}", {
    role: o.role,
    names: parseSshCertificate(res.ssh_cert).principals.join(", "),
  });
  return identity;
}

/** The host CA keys (authorized_keys lines) of an identity: its CA keys that are not user CA keys. */
export function hostCaKeyLines(identity: IdentityFile): string[] {
  const user = new Set(identity.sshUserCaKeys ?? []);
  return (identity.sshCaKeys ?? []).filter((k) => !user.has(k));
}

/** Path of a role's identity file in the data dir. */
export function hostIdentityPath(dataDir: string, role: string): string {
  return `${dataDir}/${role}.identity`;
}

/**
 * {@link HostIdentityOptions.reRegister} against an auth server: it connects with the stored
 * identity (through `dial` when given, e.g. a reverse tunnel) and asks for new certificates.
 */
export function reRegisterWithAuth(
  authAddr: Addr,
  dial?: AuthClientOptions["dial"],
): (stored: IdentityFile, req: HostRenewRequest) => Promise<RegisterResponse> {
  return async (stored, req) => {
    const client = new AuthClient({
      host: authAddr.host,
      port: authAddr.port,
      caCertPems: stored.tlsCaCertPems,
      identity: { certPem: stored.tlsCertPem, keyPem: stored.keyPem },
      ...(dial === undefined ? {} : { dial }),
    });
    try {
      return await client.reRegister(req);
    } finally {
      client.close();
    }
  };
}

/** Reads a token given inline or as a path to a file (as `auth_token` allows). */
export async function resolveJoinToken(value: string): Promise<string> {
  if (!value.startsWith("/")) return value;
  try {
    const text = (await Deno.readTextFile(value)).trim();
    if (text === "") throw new BadParameterError(`Cannot read join token: file ${value} is empty`);
    return text;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new BadParameterError(
        `Cannot read join token: file ${value} does not exist (the token looks like a path)`,
      );
    }
    throw err;
  }
}

/** The stored identity, or a freshly obtained and stored one. */
export async function loadOrObtainHostIdentity(o: HostIdentityOptions): Promise<IdentityFile> {
  const path = hostIdentityPath(o.dataDir, o.role);
  try {
    const id = await readIdentityFile(path);
    o.logger.debug("Using the {role} identity stored in {path}", { role: o.role, path });
    const local = o.localAuth;
    if (local !== undefined) {
      return await renewHostIdentityIfNamesChanged(
        id,
        o,
        path,
        (req) => local.issueLocalHostIdentity({ ...req, hostID: o.hostId, role: o.role }),
      );
    }
    const renew = o.reRegister;
    if (renew !== undefined) {
      return await renewHostIdentityIfNamesChanged(id, o, path, (req) => renew(id, req));
    }
    return id;
  } catch (err) {
    if (!isKind(err, "NotFound")) throw err;
  }
  let identity: IdentityFile;
  if (o.localAuth !== undefined) {
    const key = await generateTlsKeyPair();
    const res = await o.localAuth.issueLocalHostIdentity({
      hostID: o.hostId,
      node_name: o.nodeName,
      role: o.role,
      additional_principals: o.additionalPrincipals,
      public_ssh_key: formatAuthorizedKey(await sshPublicKeyBlob(key.publicKey)),
      public_tls_key: key.publicKeyPem,
    });
    identity = identityFromRegistration(key.privateKeyPem, res);
  } else {
    if (o.joinToken === undefined || o.joinToken === "") {
      throw new BadParameterError(
        `Cannot start the ${o.role} service: it has not joined a cluster yet and no join token is set; pass --token=<token from "tctl tokens add --type=${o.role}"> (and --ca-pin, --auth-server)`,
      );
    }
    if (o.authServer === undefined && o.joinViaProxy !== undefined) {
      identity = await joinThroughProxy(o, o.joinViaProxy, await resolveJoinToken(o.joinToken));
      await writeIdentityFile(path, identity);
      return identity;
    }
    if (o.authServer === undefined) {
      throw new BadParameterError(
        `Cannot start the ${o.role} service: no auth server to join; pass --auth-server=HOST:3025`,
      );
    }
    identity = await joinWithToken({
      host: o.authServer.host,
      port: o.authServer.port,
      token: await resolveJoinToken(o.joinToken),
      role: o.role,
      hostId: o.hostId,
      nodeName: o.nodeName,
      caPins: o.caPins,
      additionalPrincipals: o.additionalPrincipals,
      logger: o.logger,
    });
    o.logger.info("Joined the cluster at {addr} as {role} {host}", {
      addr: `${o.authServer.host}:${o.authServer.port}`,
      role: o.role,
      host: o.hostId,
    });
  }
  await writeIdentityFile(path, identity);
  return identity;
}

/** Joins with a token through a proxy, then checks the CA it got against the pins. */
async function joinThroughProxy(
  o: HostIdentityOptions,
  join: (req: RegisterRequest) => Promise<RegisterResponse>,
  token: string,
): Promise<IdentityFile> {
  const where = o.proxyAddr === undefined
    ? "the proxy"
    : `proxy ${o.proxyAddr.host}:${o.proxyAddr.port}`;
  const key = await generateTlsKeyPair();
  const res = await join({
    token,
    hostID: o.hostId,
    node_name: o.nodeName,
    role: o.role,
    additional_principals: o.additionalPrincipals,
    public_ssh_key: formatAuthorizedKey(await sshPublicKeyBlob(key.publicKey)),
    public_tls_key: key.publicKeyPem,
  });
  if (o.caPins.length > 0) {
    try {
      checkCaPins(o.caPins, res.tls_ca_certs);
    } catch (err) {
      throw new AccessDeniedError(
        `Cannot join the cluster through ${where}: the CA it handed out does not match the CA pin (${
          messageOf(err)
        }); a man in the middle may be answering, or the pin is stale after "tctl auth rotate" (run "tctl status" on the auth server)`,
        { cause: err },
      );
    }
  } else {
    o.logger.warn(
      "Joined through {addr} without a CA pin: the cluster CA it handed out is not verified; pass --ca-pin (see tctl status)",
      { addr: where },
    );
  }
  o.logger.info("Joined the cluster through {addr} as {role} {host}", {
    addr: where,
    role: o.role,
    host: o.hostId,
  });
  return identityFromRegistration(key.privateKeyPem, res);
}
