/**
 * Pure codecs of the web API's JSON bodies: Teleport's CreateSSHCertReq and SSHLoginResponse
 * (teleport-protocol-notes §6), the join request (§5) and the account-setup calls. Go `[]byte`
 * fields are base64 (standard alphabet, padded) and Go durations integer nanoseconds. Errors are
 * BadParameterError with messages that never repeat a password, token or key.
 */
import { Buffer } from "node:buffer";
import type { RegisterRequest, UserCerts } from "../authclient/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
import { DEFAULT_SESSION_TTL_MS } from "./ping.ts";
import type {
  AuthenticateSshUserRequest,
  ChangePasswordWithTokenRequest,
  HostSigner,
  SshLoginResponse,
  UserTokenDetails,
  UserTokenResponse,
} from "./types.ts";

/** A JSON object, or BadParameterError naming the action. */
export function jsonObject(value: unknown, action: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BadParameterError(`Cannot ${action}: the request body must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** `obj[name]` as a string; undefined when absent or null (unless required). */
function stringField(
  obj: Record<string, unknown>,
  name: string,
  action: string,
  required: boolean,
): string | undefined {
  const v = obj[name];
  if (v === undefined || v === null) {
    if (required) throw new BadParameterError(`Cannot ${action}: field "${name}" is required`);
    return undefined;
  }
  if (typeof v !== "string") {
    throw new BadParameterError(`Cannot ${action}: field "${name}" must be a string`);
  }
  return v;
}

function stringListField(
  obj: Record<string, unknown>,
  name: string,
  action: string,
): string[] | undefined {
  const v = obj[name];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new BadParameterError(`Cannot ${action}: field "${name}" must be a list of strings`);
  }
  return v;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Text of a Go `[]byte` JSON field (standard padded base64 of UTF-8), strictly decoded. */
export function decodeBase64Text(value: string, field: string, action: string): string {
  if (!BASE64.test(value)) {
    throw new BadParameterError(
      `Cannot ${action}: field "${field}" must be base64 (standard alphabet, padded)`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(value, "base64"));
  } catch {
    throw new BadParameterError(`Cannot ${action}: field "${field}" does not decode to text`);
  }
}

/** base64 of the UTF-8 bytes of `text` (how Go marshals a `[]byte`). */
export function encodeBase64Text(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/** A public key in authorized_keys form: one line, printable ASCII. */
function checkAuthorizedKey(line: string, field: string, action: string): string {
  const trimmed = line.trim();
  if (trimmed === "" || !/^[\x20-\x7e]+$/.test(trimmed) || !/^[a-z0-9@.-]+ \S+/.test(trimmed)) {
    throw new BadParameterError(
      `Cannot ${action}: field "${field}" must hold an SSH public key in authorized_keys form`,
    );
  }
  return trimmed;
}

function checkPem(text: string, field: string, action: string): string {
  if (!/^-----BEGIN [A-Z0-9 ]+-----\r?\n[\s\S]*-----END [A-Z0-9 ]+-----\s*$/.test(text.trim())) {
    throw new BadParameterError(`Cannot ${action}: field "${field}" must hold a PEM public key`);
  }
  return text;
}

const LOGIN = "log in";

/** Upper bound of a requested TTL: anything above is capped by auth anyway (30 h max). */
const MAX_TTL_NS = 1e18;
/** True when `s` holds a C0 control character or DEL (log-line forgery, terminal escapes). */
function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Longest user name accepted at login (Teleport's names fit well within it). */
const MAX_USER_CHARS = 255;

/**
 * The `user` field of a login body: present, not blank, at most {@link MAX_USER_CHARS}
 * printable characters. Checked before auth logs or audits the attempt; the message never
 * repeats the value.
 */
function loginUser(b: Record<string, unknown>): string {
  const user = stringField(b, "user", LOGIN, true)!;
  if (user.trim() === "") throw new BadParameterError(`Cannot log in: field "user" is empty`);
  if (user.length > MAX_USER_CHARS || hasControlCharacter(user)) {
    throw new BadParameterError(
      `Cannot log in: field "user" must be at most ${MAX_USER_CHARS} printable characters`,
    );
  }
  return user;
}

/**
 * Reads Teleport's CreateSSHCertReq: `{user, password, otp_token?, ssh_pub_key?, tls_pub_key?,
 * pub_key? (legacy, SSH only, not combined with the others), ttl? (ns; 0 or absent = 12 h)}`.
 * Returns the auth request with `remote_addr` set.
 */
export function parseCreateSshCertRequest(
  body: unknown,
  remoteAddr: string | undefined,
): AuthenticateSshUserRequest {
  const b = jsonObject(body, LOGIN);
  const user = loginUser(b);
  const password = stringField(b, "password", LOGIN, true)!;
  const otp = stringField(b, "otp_token", LOGIN, false);
  const headless = stringField(b, "headless_id", LOGIN, false);
  if (headless) throw new BadParameterError("Cannot log in: headless login is not supported");

  const sshB64 = stringField(b, "ssh_pub_key", LOGIN, false) || undefined;
  const tlsB64 = stringField(b, "tls_pub_key", LOGIN, false) || undefined;
  const legacyB64 = stringField(b, "pub_key", LOGIN, false) || undefined;
  if (legacyB64 !== undefined && (sshB64 !== undefined || tlsB64 !== undefined)) {
    throw new BadParameterError(
      `Cannot log in: field "pub_key" cannot be combined with "ssh_pub_key" or "tls_pub_key"`,
    );
  }
  const sshField = legacyB64 !== undefined ? "pub_key" : "ssh_pub_key";
  const sshText = legacyB64 ?? sshB64;
  const ssh = sshText === undefined
    ? undefined
    : checkAuthorizedKey(decodeBase64Text(sshText, sshField, LOGIN), sshField, LOGIN);
  const tls = tlsB64 === undefined
    ? undefined
    : checkPem(decodeBase64Text(tlsB64, "tls_pub_key", LOGIN), "tls_pub_key", LOGIN);
  if (ssh === undefined && tls === undefined) {
    throw new BadParameterError(
      `Cannot log in: give a public key to certify in "ssh_pub_key" or "tls_pub_key" (base64)`,
    );
  }

  const ttl = b.ttl ?? 0;
  if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL_NS) {
    throw new BadParameterError(
      `Cannot log in: field "ttl" must be a non-negative integer (nanoseconds)`,
    );
  }
  const ttlMs = ttl === 0 ? DEFAULT_SESSION_TTL_MS : Math.max(1, Math.floor(ttl / 1_000_000));

  return {
    user,
    password,
    ...(otp ? { otp_token: otp } : {}),
    ...(ssh === undefined ? {} : { ssh_public_key: ssh }),
    ...(tls === undefined ? {} : { tls_public_key: tls }),
    ttl_ms: ttlMs,
    ...(remoteAddr === undefined ? {} : { remote_addr: remoteAddr }),
  };
}

/**
 * Reads a browser login (Teleport's CreateSessionReq): `{user, pass, second_factor_token?}`.
 * The user name gets the same checks as a tsh login.
 */
export function parseWebLoginRequest(
  body: unknown,
): { user: string; password: string; otpToken?: string } {
  const b = jsonObject(body, LOGIN);
  const user = loginUser(b);
  const password = stringField(b, "pass", LOGIN, true)!;
  const otp = stringField(b, "second_factor_token", LOGIN, false);
  return { user, password, ...(otp ? { otpToken: otp.trim() } : {}) };
}

const CHANGE_PASSWORD = "change the password";

/** Reads `PUT /webapi/users/password`: `{old_password, new_password, second_factor_token?}`. */
export function parseWebPasswordChange(
  body: unknown,
): { old_password: string; new_password: string; second_factor_token?: string } {
  const b = jsonObject(body, CHANGE_PASSWORD);
  const oldPassword = stringField(b, "old_password", CHANGE_PASSWORD, true)!;
  const newPassword = stringField(b, "new_password", CHANGE_PASSWORD, true)!;
  const otp = stringField(b, "second_factor_token", CHANGE_PASSWORD, false);
  if (newPassword === oldPassword) {
    throw new BadParameterError(
      `Cannot ${CHANGE_PASSWORD}: the new password is the same as the current one`,
    );
  }
  return {
    old_password: oldPassword,
    new_password: newPassword,
    ...(otp ? { second_factor_token: otp.trim() } : {}),
  };
}

const REPLACE_OTP = "replace the OTP device";

/** Reads `POST /webapi/mfa/devices/totp/replace`: `{password, second_factor_token?}`. */
export function parseMfaReplaceRequest(
  body: unknown,
): { password: string; second_factor_token?: string } {
  const b = jsonObject(body, REPLACE_OTP);
  const password = stringField(b, "password", REPLACE_OTP, true)!;
  const otp = stringField(b, "second_factor_token", REPLACE_OTP, false);
  return { password, ...(otp ? { second_factor_token: otp.trim() } : {}) };
}

/** Reads `PUT /webapi/mfa/devices/totp`: `{second_factor_token}` (6 digits). */
export function parseMfaCode(body: unknown): string {
  const b = jsonObject(body, "add the OTP device");
  const code = stringField(b, "second_factor_token", "add the OTP device", true)!.trim();
  if (!/^\d{6}$/.test(code)) {
    throw new BadParameterError(
      `Cannot add the OTP device: field "second_factor_token" must be the 6-digit code the app shows`,
    );
  }
  return code;
}

/** Teleport's SSHLoginResponse for `certs` (every `[]byte` base64-encoded). */
export function formatSshLoginResponse(
  user: string,
  certs: UserCerts,
  clusterName: string,
): SshLoginResponse {
  return {
    username: user,
    ...(certs.sshCert === undefined ? {} : { cert: encodeBase64Text(certs.sshCert) }),
    ...(certs.tlsCert === undefined ? {} : { tls_cert: encodeBase64Text(certs.tlsCert) }),
    host_signers: [formatHostSigner(clusterName, certs.hostCaKeys, certs.tlsCaCerts)],
  };
}

/** One `host_signers` entry: the cluster's host CA keys and certificates, base64 each. */
export function formatHostSigner(
  clusterName: string,
  sshKeys: string[],
  tlsCerts: string[],
): HostSigner {
  return {
    domain_name: clusterName,
    checking_keys: sshKeys.map(encodeBase64Text),
    tls_certs: tlsCerts.map(encodeBase64Text),
  };
}

const JOIN = "join the cluster";

/**
 * A key field of the join request: plain text (our RegisterRequest), or base64 of it as Teleport's
 * Go `[]byte` sends it. The two never overlap: authorized_keys lines hold spaces and PEM holds
 * dashes, neither of which is base64.
 */
function keyText(value: string, field: string, looksRight: (text: string) => boolean): string {
  if (looksRight(value)) return value;
  if (BASE64.test(value) && value !== "") {
    const text = decodeBase64Text(value, field, JOIN);
    if (looksRight(text)) return text;
  }
  return value; // auth gives the precise error
}

/** Reads a join request (our RegisterRequest JSON; see the authclient types). */
export function parseRegisterRequest(body: unknown): RegisterRequest {
  const b = jsonObject(body, JOIN);
  const field = (name: string) => stringField(b, name, JOIN, true)!;
  const principals = stringListField(b, "additional_principals", JOIN);
  const dnsNames = stringListField(b, "dns_names", JOIN);
  return {
    token: field("token"),
    hostID: field("hostID"),
    node_name: field("node_name"),
    role: field("role"),
    ...(principals === undefined ? {} : { additional_principals: principals }),
    ...(dnsNames === undefined ? {} : { dns_names: dnsNames }),
    public_ssh_key: keyText(field("public_ssh_key"), "public_ssh_key", (t) => /\s/.test(t.trim())),
    public_tls_key: keyText(field("public_tls_key"), "public_tls_key", (t) => t.includes("-----")),
  };
}

/** Invite and reset tokens: 32 lowercase hex characters (Teleport's CryptoRandomHex(16)). */
const USER_TOKEN = /^[0-9a-f]{32}$/;

/** True when `token` has the form of an invite or reset token. */
export function isUserTokenFormat(token: string): boolean {
  return USER_TOKEN.test(token);
}

const SET_PASSWORD = "set password";

/** Throws BadParameterError unless `token` has the token form; never echoes it. */
export function checkUserToken(token: string, action: string): void {
  if (!isUserTokenFormat(token)) {
    throw new BadParameterError(
      `Cannot ${action}: the token is malformed (expected 32 hexadecimal characters); ` +
        "copy the whole link from the invitation",
    );
  }
}

/** Reads `PUT /webapi/users/password/token`: `{token, password, second_factor_token?}`. */
export function parseChangePasswordRequest(body: unknown): ChangePasswordWithTokenRequest {
  const b = jsonObject(body, SET_PASSWORD);
  const token = stringField(b, "token", SET_PASSWORD, true)!;
  checkUserToken(token, SET_PASSWORD);
  const password = stringField(b, "password", SET_PASSWORD, true)!;
  const code = stringField(b, "second_factor_token", SET_PASSWORD, false);
  return { token, password, ...(code ? { second_factor_token: code } : {}) };
}

/** What the account-setup page learns about its token. */
export function formatUserTokenResponse(details: UserTokenDetails): UserTokenResponse {
  return {
    user: details.user,
    kind: details.kind,
    expires: details.expires,
    ...(details.totp === undefined
      ? {}
      : { otpauth_uri: details.totp.uri, otp_secret: details.totp.secret }),
    second_factor_required: details.totp?.required ?? false,
  };
}
