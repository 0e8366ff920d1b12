/** Request and response shapes of the auth API, shared by server and client. */
import type { CaRotation } from "../resource/mod.ts";

/** `GET /v1/ping`. */
export interface PingResponse {
  cluster_name: string;
  server_version: string;
  auth_preference: { type: string; second_factor: string };
  /** Cluster networking: how proxies listen (absent from older auth servers). */
  proxy_listener_mode?: "separate" | "multiplex";
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
  /** Where the CA's rotation stands (absent from servers that predate rotation). */
  rotation?: CaRotation;
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

/**
 * `GET /v1/users/password/token/:token`: what an invite/reset link is for, and the TOTP
 * device to enroll with it (secret and `otpauth://` URI for a QR code).
 */
export interface UserTokenDetails {
  user: string;
  kind: "invite" | "reset";
  /** RFC 3339. */
  expires: string;
  totp?: {
    /** Base32 shared secret. */
    secret: string;
    /** `otpauth://totp/<issuer>:<user>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`. */
    uri: string;
    /** true: setting the password needs a code of it; false: enrolling is optional. */
    required: boolean;
  };
}

/** `PUT /v1/users/password/token` request: set the password (and enroll TOTP) with a token. */
export interface ChangePasswordWithTokenRequest {
  token: string;
  password: string;
  /** Current code of the token's TOTP device (required when `totp.required`). */
  second_factor_token?: string;
}

/**
 * `POST /v1/users/:user/ssh/authenticate` (the proxy, for `tsh login`): a local user's
 * password (+ TOTP) and public keys in, certificates out.
 */
export interface AuthenticateSshUserRequest {
  user: string;
  password: string;
  otp_token?: string;
  /** authorized_keys form. */
  ssh_public_key?: string;
  /** SPKI PEM. */
  tls_public_key?: string;
  ttl_ms: number;
  /** The user's address as the proxy saw it (audit). */
  remote_addr?: string;
  /** How the user logs in, for the audit event (`user.login` `method`). @default {"local"} */
  method?: "local" | "web";
}

/**
 * A web session as the proxy stores it in auth's backend (`PUT /v1/web/sessions/<id>`): the
 * user's key and certificates stay server side, the browser holds only the id (cookie) and
 * the bearer token (of which only the SHA-256 is stored).
 */
export interface WebSessionRecord {
  /** 32 random bytes, hex (the cookie value). */
  id: string;
  user: string;
  /** Hex SHA-256 of the bearer token. */
  bearer_sha256: string;
  /** The user's SSH certificate (authorized_keys line). */
  ssh_cert: string;
  /** The user's TLS certificate (PEM). */
  tls_cert: string;
  /** The private key of the SSH certificate (PKCS#8 PEM). */
  key_pem: string;
  /** The private key of the TLS certificate (PKCS#8 PEM). */
  tls_key_pem: string;
  /** RFC 3339 times: login, end of the idle period (renewed), end of the certificates. */
  created: string;
  expires: string;
  max_expires: string;
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
  /**
   * The joining host's address, when a proxy forwards the join (`/webapi/host/credentials`);
   * honoured only from a Proxy host identity.
   */
  remote_addr?: string;
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
