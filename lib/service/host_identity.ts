/**
 * A service's host identity: read from the data dir when it was issued before
 * (a restart needs no token), otherwise obtained once — from the auth server in
 * this same process, or by joining a remote one with a token and CA pins — and
 * written to `<data_dir>/<role>.identity` (0600).
 */
import type { AuthServer } from "../auth/mod.ts";
import {
  identityFromRegistration,
  joinWithToken,
  type RegisterRequest,
  type RegisterResponse,
} from "../authclient/mod.ts";
import {
  checkCaPins,
  formatAuthorizedKey,
  generateTlsKeyPair,
  sshPublicKeyBlob,
} from "../ca/mod.ts";
import type { Addr } from "../config/mod.ts";
import { AccessDeniedError, BadParameterError, isKind, messageOf } from "../errors/mod.ts";
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
  logger: Logger;
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
