/**
 * Which names a joining host may have in its certificates. A host certificate's principals
 * (SSH) and names (TLS) are what clients check when they connect, so a host may only claim
 * exact DNS names or IP addresses that are its own: no wildcards (`*`, `*.cluster`), no other
 * host's id (`<uuid>`, `<uuid>.<cluster>`) or host name, no name another kind of host
 * (a proxy's public DNS name) already carries, and never the names reserved for the auth
 * service (`teleport.cluster.local`). Proxies may share extra names (one load-balanced public
 * address); IP addresses may be shared by anyone (services on one machine share its address,
 * and using one needs the address anyway); host names may repeat (nodes are told apart by
 * their UUID, as in Teleport), but never as another host's extra name.
 *
 * {@link HostRegistry} remembers what every host was issued, so the check also covers hosts
 * that are offline.
 *
 * @module
 */
import { isIP } from "node:net";
import type { Backend } from "../backend/mod.ts";
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";

/** What a host was (or asks to be) issued. */
export interface HostClaim {
  hostId: string;
  /** System role: Node, Proxy or Auth. */
  role: string;
  nodeName: string;
  /** Extra names (public_addr hosts, DNS names) beyond the generated ones. */
  names: string[];
}

/** Names every host certificate carries; never anyone's own. */
const SHARED_NAMES = new Set(["localhost", "127.0.0.1", "::1"]);

/** The auth service's cluster-local name and its subdomains. */
const RESERVED_SUFFIX = "teleport.cluster.local";

const UUID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\.|$)/i;
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** True for a DNS host name (letters, digits, `-`; labels of 1-63; at most 253 in all). */
export function isDnsName(name: string): boolean {
  return name.length >= 1 && name.length <= 253 &&
    name.split(".").every((label) => DNS_LABEL.test(label));
}

function isReserved(name: string): boolean {
  const n = name.toLowerCase();
  return n === RESERVED_SUFFIX || n.endsWith(`.${RESERVED_SUFFIX}`);
}

/**
 * Checks the form of a joining host's names: each extra name an exact DNS name or IP address,
 * none reserved, none naming another host's UUID; the node name not reserved and not another
 * host's UUID. Throws BadParameterError saying which name is wrong and why.
 */
export function validateHostNames(claim: HostClaim): void {
  const bad = (name: string, why: string) =>
    new BadParameterError(`Cannot join: principal "${name}" ${why}`);
  const checkUuid = (name: string) => {
    const m = UUID.exec(name);
    if (m !== null && m[1]!.toLowerCase() !== claim.hostId.toLowerCase()) {
      throw bad(name, "names another host's id; a host may only carry its own");
    }
  };
  for (const name of claim.names) {
    if (typeof name !== "string" || name === "") throw bad(String(name), "is empty");
    if (/[*?[\]{}]/.test(name)) {
      throw bad(name, "is a wildcard; list the exact host names or IP addresses of this host");
    }
    if (isIP(name) === 0 && !isDnsName(name)) {
      throw bad(
        name,
        "is neither a DNS name nor an IP address (letters, digits, - and dots; or an IP)",
      );
    }
    if (isReserved(name)) throw bad(name, "is reserved for the auth service");
    checkUuid(name);
  }
  if (isReserved(claim.nodeName)) {
    throw bad(claim.nodeName, "is reserved for the auth service and cannot be a node name");
  }
  checkUuid(claim.nodeName);
}

/** The names only this host may carry: its id, `<id>.<cluster>`, its node name forms. */
function identityNames(h: HostClaim, clusterName: string): string[] {
  return [h.hostId, `${h.hostId}.${clusterName}`, h.nodeName, `${h.nodeName}.${clusterName}`];
}

/**
 * The first name of `claim` that belongs to another host in `others` (same host id = the same
 * host re-registering, never a conflict), with the reason; undefined when there is none.
 */
export function findNameConflict(
  claim: HostClaim,
  others: HostClaim[],
  clusterName: string,
): { name: string; owner: HostClaim; why: string } | undefined {
  const mine = claim.names.filter((n) => !SHARED_NAMES.has(n.toLowerCase()));
  const myNodeName = claim.nodeName.toLowerCase();
  for (const other of others) {
    if (other.hostId.toLowerCase() === claim.hostId.toLowerCase()) continue;
    // Proxies share their load-balanced public name; anyone may share an IP address.
    const shareable = (name: string) =>
      isIP(name) !== 0 || (claim.role === "Proxy" && other.role === "Proxy");
    const theirIdentity = new Set(identityNames(other, clusterName).map((n) => n.toLowerCase()));
    const theirExtras = new Set(
      other.names.map((n) => n.toLowerCase()).filter((n) => !SHARED_NAMES.has(n)),
    );
    for (const name of mine) {
      if (theirIdentity.has(name.toLowerCase())) {
        return { name, owner: other, why: "is the id or host name of another host" };
      }
      if (theirExtras.has(name.toLowerCase()) && !shareable(name)) {
        return { name, owner: other, why: `is a name of another host (a ${other.role})` };
      }
    }
    if (theirExtras.has(myNodeName) && !shareable(myNodeName)) {
      return {
        name: claim.nodeName,
        owner: other,
        why: `is a name of another host (a ${other.role})`,
      };
    }
  }
  return undefined;
}

/** Throws AccessDeniedError when {@link findNameConflict} finds one. */
export function assertNoNameConflict(
  claim: HostClaim,
  others: HostClaim[],
  clusterName: string,
): void {
  const c = findNameConflict(claim, others, clusterName);
  if (c === undefined) return;
  throw new AccessDeniedError(
    `Cannot join: principal "${c.name}" ${c.why} (${c.owner.hostId}); choose this host's own names in public_addr, or remove the other host first`,
  );
}

const PREFIX = "host_registrations";

/** What was issued to each host (by host id), kept so later joins cannot take its names. */
export class HostRegistry {
  readonly #backend: Backend;
  constructor(backend: Backend) {
    this.#backend = backend;
  }

  /** Records (or replaces) what `claim.hostId` was issued; shared names are left out. */
  async put(claim: HostClaim): Promise<void> {
    const stored: HostClaim = {
      hostId: claim.hostId,
      role: claim.role,
      nodeName: claim.nodeName,
      names: [...new Set(claim.names.filter((n) => !SHARED_NAMES.has(n.toLowerCase())))],
    };
    await this.#backend.put({
      key: [PREFIX, claim.hostId],
      value: new TextEncoder().encode(JSON.stringify(stored)),
    });
  }

  /** Every recorded host. */
  async list(): Promise<HostClaim[]> {
    const items = await this.#backend.getRange({ prefix: [PREFIX] });
    return items.map((i) => JSON.parse(new TextDecoder().decode(i.value)) as HostClaim);
  }
}
