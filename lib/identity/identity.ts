/**
 * Identity ↔ X.509 subject. Layout follows Teleport (lib/tlsca): CN user name,
 * O roles, L logins, POSTALCODE traits JSON, and private-arc OIDs for the
 * cluster (1.3.9999.1.7) and system roles (1.3.9999.2.11). A host identity is
 * one that carries system roles; its CN is `<host uuid>.<cluster>`.
 */
import { X509_OIDS } from "../ca/mod.ts";
import { BadParameterError } from "../errors/mod.ts";

/** OIDs used in identity subjects: the X.520 ones plus Teleport's private arc. */
export const OID = {
  ...X509_OIDS,
  teleportCluster: "1.3.9999.1.7",
  systemRoles: "1.3.9999.2.11",
} as const;

/** Who a certificate speaks for. */
export interface Identity {
  /** `user` for people and tools signed by the user CA, `host` for cluster members. */
  kind: "user" | "host";
  /** User name, or `<host uuid>.<cluster>` for hosts. */
  username: string;
  /** Cluster that issued the identity. */
  clusterName: string;
  /** Role names: user roles, or system roles (Auth, Node, Proxy, Admin) for hosts. */
  roles: string[];
  /** OS logins (SSH principals) for users. */
  logins: string[];
  /** User traits (e.g. logins). */
  traits: Record<string, string[]>;
  /** Route-to-cluster (STREET), empty when unset. */
  routeToCluster?: string;
}

/** Encodes an identity as an ordered subject (repeated attributes allowed). */
export function identityToSubject(id: Identity): Array<[string, string]> {
  if (id.username === "") throw new BadParameterError("Cannot encode identity: empty user name");
  const subject: Array<[string, string]> = [[OID.commonName, id.username]];
  for (const r of id.roles) subject.push([OID.organization, r]);
  for (const l of id.logins) subject.push([OID.locality, l]);
  if (id.routeToCluster) subject.push([OID.street, id.routeToCluster]);
  if (Object.keys(id.traits).length > 0) {
    subject.push([OID.postalCode, JSON.stringify(id.traits)]);
  }
  subject.push([OID.teleportCluster, id.clusterName]);
  if (id.kind === "host") {
    for (const r of id.roles) subject.push([OID.systemRoles, r]);
  }
  return subject;
}

/** Decodes a subject written by {@link identityToSubject}. */
export function identityFromSubject(subject: ReadonlyArray<readonly [string, string]>): Identity {
  const all = (oid: string) => subject.filter(([o]) => o === oid).map(([, v]) => v);
  const cn = all(OID.commonName);
  const cluster = all(OID.teleportCluster);
  if (cn.length !== 1 || cn[0] === "") {
    throw new BadParameterError("Cannot decode identity: certificate subject needs exactly one CN");
  }
  if (cluster.length !== 1) {
    throw new BadParameterError("Cannot decode identity: certificate names no cluster");
  }
  const systemRoles = all(OID.systemRoles);
  let traits: Record<string, string[]> = {};
  const traitsJson = all(OID.postalCode)[0];
  if (traitsJson !== undefined) {
    try {
      const parsed = JSON.parse(traitsJson);
      if (typeof parsed === "object" && parsed !== null) traits = parsed;
    } catch {
      throw new BadParameterError("Cannot decode identity: traits are not valid JSON");
    }
  }
  const id: Identity = {
    kind: systemRoles.length > 0 ? "host" : "user",
    username: cn[0]!,
    clusterName: cluster[0]!,
    roles: systemRoles.length > 0 ? systemRoles : all(OID.organization),
    logins: all(OID.locality),
    traits,
  };
  const route = all(OID.street)[0];
  if (route !== undefined) id.routeToCluster = route;
  return id;
}

/** The host UUID of a host identity (`<uuid>.<cluster>` → `<uuid>`). */
export function hostIdOf(id: Identity): string {
  const suffix = `.${id.clusterName}`;
  return id.username.endsWith(suffix) ? id.username.slice(0, -suffix.length) : id.username;
}
