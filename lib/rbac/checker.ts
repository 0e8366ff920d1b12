/**
 * AccessChecker: what a set of roles (plus the user's traits) allows. Pure: no
 * I/O, no clock. Deny always wins over allow.
 */
import { AccessDeniedError } from "../errors/mod.ts";
import {
  parseDuration,
  type Role,
  type RoleConditions,
  type SessionParticipantMode,
} from "../resource/mod.ts";

/** Longest certificate anyone gets when no role sets max_session_ttl (Teleport: 30h). */
export const DEFAULT_MAX_SESSION_TTL_MS = 30 * 3_600_000;

const TEMPLATE_RE = /^\{\{\s*(internal|external)\.([A-Za-z0-9_-]+)\s*\}\}$/;

/**
 * Expands `{{internal.logins}}`-style templates against traits. A literal passes
 * through; a template expands to the trait's values (none if the trait is unset).
 */
export function expandTemplate(value: string, traits: Record<string, string[]>): string[] {
  const m = TEMPLATE_RE.exec(value);
  if (m === null) return value.includes("{{") ? [] : [value];
  return traits[m[2]!] ?? [];
}

function valueMatches(pattern: string, value: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("^") && pattern.endsWith("$")) {
    try {
      return new RegExp(pattern).test(value);
    } catch {
      return false;
    }
  }
  if (pattern.includes("*")) {
    const re = new RegExp(
      "^" + pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$",
    );
    return re.test(value);
  }
  return pattern === value;
}

/**
 * True when a node's labels satisfy a role's `node_labels`: every listed key
 * must be present with a matching value; `'*': '*'` matches every node; an
 * empty or absent selector matches nothing.
 */
export function matchLabels(
  selector: RoleConditions["node_labels"],
  labels: Record<string, string>,
): boolean {
  if (selector === undefined) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  return entries.every(([key, want]) => {
    const patterns = Array.isArray(want) ? want : [want];
    if (key === "*") return patterns.includes("*");
    const have = labels[key];
    return have !== undefined && patterns.some((p) => valueMatches(p, have));
  });
}

/** The node a login is checked against. */
export interface NodeTarget {
  name: string;
  labels: Record<string, string>;
}

/** Decisions for one identity (its roles and traits). */
export class AccessChecker {
  readonly #roles: readonly Role[];
  readonly #traits: Record<string, string[]>;

  constructor(roles: readonly Role[], traits: Record<string, string[]> = {}) {
    this.#roles = roles;
    this.#traits = traits;
  }

  /** Names of the roles this checker was built from. */
  get roleNames(): string[] {
    return this.#roles.map((r) => r.metadata.name);
  }

  #expand(list: readonly string[] | undefined): string[] {
    return (list ?? []).flatMap((v) => expandTemplate(v, this.#traits));
  }

  /** Logins allowed by some role and denied by none; these become SSH cert principals. */
  logins(): string[] {
    const denied = new Set(this.#roles.flatMap((r) => this.#expand(r.spec.deny.logins)));
    const out = new Set<string>();
    for (const r of this.#roles) {
      for (const l of this.#expand(r.spec.allow.logins)) if (!denied.has(l)) out.add(l);
    }
    return [...out];
  }

  /** Throws AccessDeniedError unless `login` on `node` is allowed and not denied. */
  checkLogin(login: string, node: NodeTarget): void {
    for (const r of this.#roles) {
      const deny = r.spec.deny;
      const denyAll = deny.node_labels === undefined || matchLabels(deny.node_labels, node.labels);
      if (denyAll && this.#expand(deny.logins).includes(login)) {
        throw new AccessDeniedError(
          `access to node "${node.name}" as "${login}" is denied by role "${r.metadata.name}"`,
        );
      }
    }
    const allowedByLogin = this.#roles.filter((r) =>
      this.#expand(r.spec.allow.logins).includes(login)
    );
    if (allowedByLogin.length === 0) {
      throw new AccessDeniedError(
        `login "${login}" is not allowed by any of your roles (${this.roleNames.join(", ")})`,
      );
    }
    if (!allowedByLogin.some((r) => matchLabels(r.spec.allow.node_labels, node.labels))) {
      throw new AccessDeniedError(
        `access to node "${node.name}" as "${login}" is denied: no role allowing "${login}" matches the node's labels`,
      );
    }
  }

  /** True when some role lets the holder see/access this node at all (for `ls`). */
  canSeeNode(node: NodeTarget): boolean {
    if (this.#roles.some((r) => matchLabels(r.spec.deny.node_labels, node.labels))) return false;
    return this.#roles.some((r) => matchLabels(r.spec.allow.node_labels, node.labels));
  }

  /** Throws AccessDeniedError unless a rule allows `verb` on `resource` and none denies it. */
  checkRule(resource: string, verb: string): void {
    const matches = (c: RoleConditions) =>
      (c.rules ?? []).some((rule) =>
        (rule.resources.includes("*") || rule.resources.includes(resource)) &&
        (rule.verbs.includes("*") || rule.verbs.includes(verb))
      );
    const denier = this.#roles.find((r) => matches(r.spec.deny));
    if (denier !== undefined) {
      throw new AccessDeniedError(
        `access denied to ${verb} ${resource}: denied by role "${denier.metadata.name}"`,
      );
    }
    if (!this.#roles.some((r) => matches(r.spec.allow))) {
      throw new AccessDeniedError(
        `access denied to ${verb} ${resource}: none of your roles (${
          this.roleNames.join(", ") || "none"
        }) allows it`,
      );
    }
  }

  /** The smallest max_session_ttl among the roles (30h when none sets it). */
  maxSessionTtlMs(): number {
    const ttls = this.#roles
      .map((r) => r.spec.options.max_session_ttl)
      .filter((t): t is string => t !== undefined)
      .map((t) => parseDuration(t));
    return ttls.length === 0 ? DEFAULT_MAX_SESSION_TTL_MS : Math.min(...ttls);
  }

  /**
   * Port forwarding is permitted unless a role turns it off: for one direction (`local` is
   * `ssh -L`, `remote` is `ssh -R`) a role's `ssh_port_forwarding.<direction>.enabled` decides
   * when set, else its `port_forwarding`. Without a direction: either direction is permitted.
   */
  canPortForward(direction?: "local" | "remote"): boolean {
    if (direction === undefined) {
      return this.canPortForward("local") || this.canPortForward("remote");
    }
    return this.#roles.every((r) => {
      const o = r.spec.options;
      return (o.ssh_port_forwarding?.[direction]?.enabled ?? o.port_forwarding) !== false;
    });
  }

  /** Agent forwarding is permitted when a role turns it on (`forward_agent`, as Teleport). */
  canForwardAgent(): boolean {
    return this.#roles.some((r) => r.spec.options.forward_agent === true);
  }

  /**
   * Whether the holder (user `self`) may join, in `mode`, a session of `kind` started by
   * `session.owner` holding `session.ownerRoles`. The session's own Teleport user always may;
   * anyone else needs a role whose `allow.join_sessions` lists the mode, the kind (or `*`) and
   * one of the owner's roles (or `*`).
   */
  canJoinSession(
    self: string,
    session: { owner: string; ownerRoles: readonly string[]; kind: string },
    mode: SessionParticipantMode,
  ): boolean {
    if (self === session.owner) return true;
    const any = (list: readonly string[], want: readonly string[]) =>
      list.includes("*") || list.some((x) => want.includes(x));
    return this.#roles.some((r) =>
      (r.spec.allow.join_sessions ?? []).some((p) =>
        p.modes.includes(mode) && any(p.kinds, [session.kind]) && any(p.roles, session.ownerRoles)
      )
    );
  }

  /** File copy (sftp, scp) is permitted unless a role turns it off. */
  canCopyFiles(): boolean {
    return this.#roles.every((r) => r.spec.options.ssh_file_copy !== false);
  }
}
