/**
 * Shapes of the proxy's web API: what lib/web needs from the auth service ({@link WebAuthApi},
 * satisfied structurally by an AuthClient) and the JSON bodies it speaks, with Teleport's field
 * names (teleport-protocol-notes §3 and §6). Go `[]byte` fields travel as base64 strings and Go
 * durations as integer nanoseconds.
 */
import type {
  AuthenticateSshUserRequest,
  ChangePasswordWithTokenRequest,
  PingResponse,
  RegisterRequest,
  RegisterResponse,
  UserCerts,
  UserTokenDetails,
  WebSessionRecord,
} from "../authclient/mod.ts";
import type { Duplex } from "node:stream";
import type { SearchQuery, SearchResult } from "../events/mod.ts";
import type { CertifiedUser } from "../rbac/mod.ts";
import type { ServerResource, SessionTracker } from "../resource/mod.ts";

/** What auth's ping reports (`GET /v1/ping`). */
export type AuthPing = PingResponse;
export type {
  AuthenticateSshUserRequest,
  ChangePasswordWithTokenRequest,
  UserTokenDetails,
  WebSessionRecord,
};

/**
 * The calls the web API makes to the auth service. The integrator passes an AuthClient; errors
 * must be kinded errors from lib/errors (their kind picks the HTTP status).
 */
export interface WebAuthApi {
  ping(): Promise<AuthPing>;
  authenticateSshUser(req: AuthenticateSshUserRequest): Promise<UserCerts>;
  getUserTokenDetails(token: string): Promise<UserTokenDetails>;
  /** Returns the user name. */
  changePasswordWithToken(req: ChangePasswordWithTokenRequest): Promise<string>;
  register(req: RegisterRequest & { remote_addr?: string }): Promise<RegisterResponse>;
  /** Web sessions live in auth's backend (see sessions.ts). */
  upsertWebSession(session: WebSessionRecord): Promise<void>;
  getWebSession(id: string): Promise<WebSessionRecord>;
  deleteWebSession(id: string): Promise<void>;
}

/** The proxy's addresses as `/webapi/ping` and `/webapi/find` report them (Teleport's names). */
export interface ProxySettings {
  kube: { enabled: boolean; public_addr: string; listen_addr: string };
  ssh: {
    listen_addr: string;
    tunnel_listen_addr: string;
    web_listen_addr: string;
    public_addr: string;
    ssh_public_addr: string;
    ssh_tunnel_public_addr: string;
    /** Go duration: integer nanoseconds. */
    dial_timeout: number;
  };
  db: {
    postgres_listen_addr: string;
    postgres_public_addr: string;
    mysql_listen_addr: string;
    mysql_public_addr: string;
    mongo_listen_addr: string;
    mongo_public_addr: string;
  };
  tls_routing_enabled: boolean;
}

/** `auto_update` of ping and find (nothing is ever auto-updated here). */
export interface AutoUpdateSettings {
  tools_version: string;
  tools_auto_update: boolean;
  agent_version: string;
  agent_auto_update: boolean;
  agent_update_jitter_seconds: number;
}

/** `auth` of `GET /webapi/ping`. */
export interface PingAuthSettings {
  type: string;
  second_factor: string;
  preferred_local_mfa: string;
  allow_passwordless: boolean;
  allow_headless: boolean;
  local: { name: string };
  has_motd: boolean;
  load_all_cas: boolean;
  /** Go duration: integer nanoseconds. */
  default_session_ttl: number;
  signature_algorithm_suite: string;
  private_key_policy: string;
}

/** `GET /webapi/ping` (Teleport's PingResponse). */
export interface WebPingResponse {
  auth: PingAuthSettings;
  proxy: ProxySettings;
  server_version: string;
  min_client_version: string;
  cluster_name: string;
  automatic_upgrades: boolean;
  edition: string;
  fips: boolean;
  auto_update: AutoUpdateSettings;
}

/** `GET /webapi/find`: ping without most of `auth`. */
export interface WebFindResponse {
  auth: { signature_algorithm_suite: string };
  proxy: ProxySettings;
  server_version: string;
  min_client_version: string;
  cluster_name: string;
  edition: string;
  fips: boolean;
  auto_update: AutoUpdateSettings;
}

/** `POST /webapi/ssh/certs` response (Teleport's SSHLoginResponse). */
export interface SshLoginResponse {
  username: string;
  /** base64 of the SSH certificate's authorized_keys line; absent when no SSH key was sent. */
  cert?: string;
  /** base64 of the TLS certificate PEM; absent when no TLS key was sent. */
  tls_cert?: string;
  host_signers: Array<{
    domain_name: string;
    /** base64 of each host CA key's authorized_keys line. */
    checking_keys: string[];
    /** base64 of each host CA certificate PEM. */
    tls_certs: string[];
  }>;
}

/** `GET /webapi/users/password/token/<token>` response. */
export interface UserTokenResponse {
  user: string;
  kind: "invite" | "reset";
  expires: string;
  /** `otpauth://` URI to enroll an authenticator app. */
  otpauth_uri?: string;
  /** The same TOTP secret, base32, for typing in by hand. */
  otp_secret?: string;
  second_factor_required: boolean;
}

/** Calls to auth as the web session's user (their TLS certificate: auth applies their RBAC). */
export interface WebUserApi {
  listSessionTrackers(): Promise<SessionTracker[]>;
  searchEvents(q: SearchQuery): Promise<SearchResult>;
  listRecordings(): Promise<string[]>;
  /** The recording's gzip bytes. */
  downloadRecording(sid: string): Promise<Uint8Array>;
}

/**
 * What the web UI needs of the proxy around it: the node list and routing tsh gets (direct dial
 * or reverse tunnel), certificate checks, and auth calls as the user. The integrator
 * (lib/service) builds it from the SSH proxy, the tunnel server and auth.
 */
export interface WebClusterAccess {
  clusterName: string;
  /** The user a web session's SSH certificate certifies (as an SSH login to the proxy is). */
  certifyUser(sshCert: Uint8Array, remoteAddr: string): Promise<CertifiedUser>;
  /** Every registered node (RBAC is applied by the caller); the same array until it changes. */
  nodes(): Promise<readonly ServerResource[]>;
  /** True when node `name` has a reverse tunnel to this proxy now. */
  hasTunnel(name: string): boolean;
  /** Connects to node `serverId` for `user` (visible nodes only), as the proxy does for tsh. */
  dial(
    user: CertifiedUser & { login: string },
    serverId: string,
    addrs: { remoteAddr: string; remotePort?: number },
  ): Promise<{ node: ServerResource; socket: Duplex }>;
  /** Throws unless `presentedKey` is the node's host key, certified by the cluster's host CA. */
  verifyHostKey(node: ServerResource, presentedKey: Uint8Array): Promise<void>;
  /** Auth as the session's user. */
  userApi(session: WebSessionRecord): WebUserApi;
}
