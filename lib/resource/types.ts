/**
 * Resource types, shaped like Teleport's (kind, version, metadata, spec) so that
 * YAML written for Teleport reads the same here.
 */

/** Labels and traits are plain string maps. */
export type Labels = Record<string, string>;

/** Common metadata. `expires` is an RFC 3339 time; `revision` is set by the store. */
export interface Metadata {
  name: string;
  description?: string;
  labels?: Labels;
  expires?: string;
  revision?: string;
}

/** Cluster-internal roles that hosts and tools act as. */
export type SystemRole = "Auth" | "Node" | "Proxy" | "Admin";

/** A rule allowing verbs on resource kinds, e.g. `{resources: ["user"], verbs: ["list","read"]}`. */
export interface Rule {
  resources: string[];
  verbs: string[];
}

/** One side (allow or deny) of a role. */
export interface RoleConditions {
  logins?: string[];
  /** Label name → value or values; `*` matches anything, `^…$` is a regular expression. */
  node_labels?: Record<string, string | string[]>;
  rules?: Rule[];
  /**
   * Sessions of other users the holder may join (`tsh join`), Teleport's `join_sessions`
   * (allow side only). A user may always join their own sessions.
   */
  join_sessions?: JoinSessionPolicy[];
}

/** A participant mode of a shared session: `peer` types into it, `observer` only watches. */
export type SessionParticipantMode = "peer" | "observer";

/**
 * One `join_sessions` entry: the holder may join, in one of `modes`, a session of `kinds`
 * started by a user who holds one of `roles` (`*` in roles or kinds matches any).
 */
export interface JoinSessionPolicy {
  name: string;
  roles: string[];
  kinds: string[];
  modes: SessionParticipantMode[];
}

/** Role options. */
export interface RoleOptions {
  /** Longest certificate a holder of this role may get (Go duration, e.g. "30h"). */
  max_session_ttl?: string;
  /** Whether SSH port forwarding is permitted (default true, like Teleport). */
  port_forwarding?: boolean;
  /** Whether file copy (the sftp subsystem, scp) is permitted (default true, like Teleport). */
  ssh_file_copy?: boolean;
  /** Whether SSH agent forwarding (`ssh -A`) is permitted (default false, like Teleport). */
  forward_agent?: boolean;
  /**
   * Per-direction port forwarding (Teleport's `ssh_port_forwarding`): `local` is `ssh -L`
   * (direct-tcpip), `remote` is `ssh -R` (tcpip-forward). A direction left out follows
   * `port_forwarding`.
   */
  ssh_port_forwarding?: {
    local?: { enabled?: boolean };
    remote?: { enabled?: boolean };
  };
}

/** A role (Teleport role v7 subset). */
export interface Role {
  kind: "role";
  version: "v7";
  metadata: Metadata;
  spec: { options: RoleOptions; allow: RoleConditions; deny: RoleConditions };
}

/** A local user. The password hash is stored separately and never part of the resource. */
export interface User {
  kind: "user";
  version: "v2";
  metadata: Metadata;
  spec: {
    roles: string[];
    /** Traits, e.g. `{logins: ["alice", "root"]}`. */
    traits: Record<string, string[]>;
    created_by?: { time: string; user?: string };
  };
}

/** A join token. metadata.name is the token value itself. */
export interface ProvisionToken {
  kind: "token";
  version: "v2";
  metadata: Metadata;
  spec: { roles: SystemRole[]; join_method: "token" };
}

/** A CA key pair as stored. Private parts are present only inside the auth service. */
export interface SshKeyPair {
  /** authorized_keys form. */
  public_key: string;
  /** PKCS#8 PEM. */
  private_key?: string;
}

/** An X.509 CA certificate and its key. */
export interface TlsKeyPair {
  cert: string;
  key?: string;
}

/** The keys of a CA: SSH key pairs and X.509 CA certificates. */
export interface CaKeySet {
  ssh: SshKeyPair[];
  tls: TlsKeyPair[];
}

/**
 * Phases of a CA rotation (Teleport's): `standby` (none running), `init` (new keys trusted,
 * not used), `update_clients` (new keys sign, old still trusted), `update_servers` (servers
 * take certificates of the new keys), `rollback` (old keys sign again, new still trusted).
 */
export type RotationPhase = "standby" | "init" | "update_clients" | "update_servers" | "rollback";

/** The phases, in the order `tctl auth rotate --phase` names them. */
export const ROTATION_PHASES: readonly RotationPhase[] = [
  "standby",
  "init",
  "update_clients",
  "update_servers",
  "rollback",
];

/** Where a CA's rotation stands. */
export interface CaRotation {
  /** `in_progress` from init until the final standby. */
  state: "standby" | "in_progress";
  phase: RotationPhase;
  /** `auto` (semi-automatic: auth moves the phases on by `schedule`) or `manual`. */
  mode?: "auto" | "manual";
  /** When the current (or last) rotation started, RFC 3339. */
  started?: string;
  /** Semi-automatic mode: the whole grace period (Go duration, e.g. "48h"). */
  grace_period?: string;
  /** Semi-automatic mode: when each phase begins, RFC 3339. */
  schedule?: { update_clients: string; update_servers: string; standby: string };
  /** When the last rotation finished (reached standby), RFC 3339. */
  last_rotated?: string;
}

/** A certificate authority of the cluster (host or user). metadata.name = type. */
export interface CertAuthority {
  kind: "cert_authority";
  version: "v2";
  metadata: Metadata;
  spec: {
    cluster_name: string;
    type: "host" | "user";
    /** The keys that sign. */
    active_keys: CaKeySet;
    /** Keys trusted besides the active ones while a rotation runs (the other generation). */
    additional_trusted_keys?: CaKeySet;
    rotation?: CaRotation;
  };
}

/** A registered SSH node (heartbeated with a TTL). metadata.name = host UUID. */
export interface ServerResource {
  kind: "node";
  version: "v2";
  metadata: Metadata;
  spec: {
    addr: string;
    hostname: string;
    version: string;
    use_tunnel?: boolean;
    /**
     * The node's SSH host certificate in authorized_keys form, so clients can check the
     * node against the host CA before they dial it.
     */
    host_cert?: string;
  };
}

/** A running proxy (heartbeated with a TTL). metadata.name = host UUID. */
export interface ProxyResource {
  kind: "proxy";
  version: "v2";
  metadata: Metadata;
  spec: {
    /** Web listener address (`host:port`). */
    addr: string;
    hostname: string;
    version: string;
    /** Public web address users and agents dial (`host:port`), when configured. */
    public_addr?: string;
    /** Public address of the proxy SSH listener, when configured. */
    ssh_public_addr?: string;
    /** Public address of the reverse tunnel listener, when configured. */
    tunnel_public_addr?: string;
    /** The proxy's SSH host certificate in authorized_keys form. */
    host_cert?: string;
  };
}

/** A user taking part in a shared session. */
export interface SessionParticipant {
  user: string;
  mode: SessionParticipantMode | "owner";
  /** RFC 3339. */
  joined: string;
}

/**
 * A running interactive session (Teleport's session tracker), kept alive by the node that
 * runs it with a TTL and deleted when it ends. metadata.name = session id.
 */
export interface SessionTracker {
  kind: "session_tracker";
  version: "v1";
  metadata: Metadata;
  spec: {
    session_id: string;
    /** Only `ssh` sessions are tracked. */
    kind: "ssh";
    state: "running";
    /** RFC 3339 start time. */
    created: string;
    /** The Teleport user who started the session. */
    user: string;
    /** OS login of the session. */
    login: string;
    /** Host UUID of the node running the session. */
    node_id: string;
    hostname: string;
    cluster_name: string;
    participants: SessionParticipant[];
  };
}

/** Every resource kind `tctl get/create/rm` knows. */
export type Resource =
  | Role
  | User
  | ProvisionToken
  | CertAuthority
  | ServerResource
  | ProxyResource
  | SessionTracker;

/** Kind names. */
export type ResourceKind = Resource["kind"];
