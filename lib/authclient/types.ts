/** Request and response shapes of the auth API, shared by server and client. */

/** `GET /v1/ping`. */
export interface PingResponse {
  cluster_name: string;
  server_version: string;
  auth_preference: { type: string; second_factor: string };
}

/** Public facts about one CA (`GET /v1/status`). */
export interface AuthorityInfo {
  type: "host" | "user";
  clusterName: string;
  sshPublicKeys: string[];
  sshFingerprints: string[];
  tlsCertPems: string[];
  tlsFingerprints: string[];
  pins: string[];
}

/** `GET /v1/status`. */
export interface StatusResponse {
  cluster_name: string;
  server_version: string;
  authorities: AuthorityInfo[];
}

/** An invite or reset token for a local user. */
export interface UserTokenInfo {
  token: string;
  user: string;
  kind: "invite" | "reset";
  expires: string;
}

/** `POST /v1/certs/user` request. */
export interface UserCertsRequest {
  user: string;
  ssh_public_key?: string;
  tls_public_key?: string;
  ttl_ms: number;
}

/** Certificates for a user plus the CA material to trust the cluster. */
export interface UserCerts {
  sshCert?: string;
  tlsCert?: string;
  tlsCaCerts: string[];
  hostCaKeys: string[];
  userCaKeys: string[];
  expires: string;
}

/** Error body of every failed call. */
export interface ErrorBody {
  error: { kind: string; message: string };
}

/**
 * `POST /v1/register`: join with a token (Teleport's RegisterUsingTokenRequest;
 * field names kept, including the camel-case `hostID`).
 */
export interface RegisterRequest {
  token: string;
  hostID: string;
  node_name: string;
  /** System role to join as: Node or Proxy. */
  role: string;
  /** Extra SSH principals and TLS names (public_addr hosts). */
  additional_principals?: string[];
  dns_names?: string[];
  /** authorized_keys form. */
  public_ssh_key: string;
  /** SPKI PEM. */
  public_tls_key: string;
}

/** What a joining host receives. */
export interface RegisterResponse {
  ssh_cert: string;
  tls_cert: string;
  /** Host CA certificates (trust for the auth API). */
  tls_ca_certs: string[];
  /** SSH CA keys: `host` to trust peers' host certs, `user` to check user certs. */
  ssh_ca_keys: { host: string[]; user: string[] };
}
