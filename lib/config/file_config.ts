/**
 * teleport.yaml: the file schema (a subset of Teleport's config v1–v3) and a
 * strict parser. Unknown keys, wrong types, bad addresses and duplicate keys
 * are errors naming the full key path and the line:
 *
 *     Cannot load config /etc/teleport.yaml: line 7: unknown key "auth_service.listen_adr" (did you mean "listen_addr"?)
 *
 * Messages never include secret values (join tokens, static tokens).
 */
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node as YamlNode,
  parseDocument,
} from "yaml";
import { AccessDeniedError, BadParameterError, NotFoundError } from "../errors/mod.ts";
import { parseDuration } from "../resource/mod.ts";
import { type Addr, tryParseAddr } from "./addr.ts";
import {
  AUTH_PORT,
  CONFIG_VERSION,
  DIAG_PORT,
  NODE_SSH_PORT,
  PROXY_SSH_PORT,
  TUNNEL_PORT,
  WEB_PORT,
} from "./defaults.ts";

/** Log severities, as stored after case-insensitive parsing. */
export type LogSeverity = "DEBUG" | "INFO" | "WARN" | "ERROR";
/** `auth_service.proxy_listener_mode`. */
export type ProxyListenerMode = "multiplex" | "separate";
/** Roles a process (and a static token) can have. */
export type Role = "auth" | "proxy" | "node";
/**
 * `auth_service.authentication.second_factor` values this version supports (`on` = OTP
 * required); `webauthn` and `u2f` (hardware keys) are refused when the config loads.
 */
export type SecondFactor = "off" | "otp" | "on" | "optional";
/** Config file versions; all three are read the same way. */
export type ConfigVersion = "v1" | "v2" | "v3";

/** All roles, in the order used in messages. */
export const VALID_ROLES: readonly Role[] = Object.freeze(["auth", "proxy", "node"]);

/** A static join token from `auth_service.tokens` (`"node,proxy:value"`). Never expires. */
export interface StaticToken {
  roles: Role[];
  token: string;
}

/** A TLS key pair for the proxy's web listener. */
export interface KeyPair {
  keyFile: string;
  certFile: string;
}

/** The `teleport:` section. Absent keys are `undefined` (lists: empty). */
export interface TeleportSection {
  nodeName?: string;
  dataDir?: string;
  pidFile?: string;
  log: {
    output?: string;
    severity?: LogSeverity;
    format?: "text" | "json";
    extraFields?: string[];
  };
  /** `auth_token`: a token, or a path to a file holding one (kept as written). */
  authToken?: string;
  joinParams?: { tokenName: string; method: "token" };
  /** `ca_pin` as a list (a single string becomes one entry, `""` none). */
  caPins: string[];
  /** `auth_server` (v3) or `auth_servers` (legacy), default port 3025. */
  authServers: Addr[];
  /** `proxy_server`, default port 3080. */
  proxyServer?: Addr;
  diagAddr?: Addr;
  /** `drain_timeout`: upper bound of a graceful stop (SIGQUIT), in ms. */
  drainTimeoutMs?: number;
  /** `connection_limits` (see {@link ConnectionLimitsSection}). */
  connectionLimits: ConnectionLimitsSection;
  /** `storage`: where auth keeps cluster state; absent = Deno KV in the data dir. */
  storage?: StorageSection;
}

/**
 * `teleport.storage` (Teleport's keys): `type: dir` (Deno KV file, default `path`
 * `<data_dir>/backend`) or `type: postgresql` with `conn_string` and optional
 * `password_file`.
 */
export type StorageSection =
  | { type: "dir"; path?: string }
  | { type: "postgresql"; connString: string; passwordFile?: string };

/**
 * `teleport.connection_limits`: admission control shared by every listener of the process.
 * `max_connections` keeps Teleport's meaning (per client IP); the other keys are ours.
 */
export interface ConnectionLimitsSection {
  /** `max_connections`: connections from one client IP. */
  maxConnections?: number;
  /** `max_pending_connections`: connections from one client IP still in their handshake. */
  maxPendingConnections?: number;
  /** `max_total_connections`: connections of the whole process, all addresses together. */
  maxTotalConnections?: number;
  /** `handshake_timeout`: TLS handshake plus first request (web, auth, tunnel TLS), in ms. */
  handshakeTimeoutMs?: number;
  /** `ssh_login_timeout`: time for an SSH client to authenticate, in ms. */
  sshLoginTimeoutMs?: number;
  /** `descriptor_reserve`: descriptors never used for accepted connections. */
  descriptorReserve?: number;
  /**
   * `rates` (Teleport's shape: `period`, `average`, `burst`): the per-address limit of calls
   * made without credentials (the strictest entry wins), as burst and per-minute rate.
   */
  unauthenticatedRate?: { burst: number; perMinute: number };
}

/**
 * Common to every `*_service` section. `enabled` follows Teleport: a section
 * that is absent, or present without `enabled`, counts as enabled; only
 * `enabled: false` (or `no`, `off`) turns the service off.
 */
export interface ServiceSection {
  enabled: boolean;
  /** True when the section appears in the file. */
  present: boolean;
}

/** The `auth_service:` section. */
export interface AuthServiceSection extends ServiceSection {
  listenAddr?: Addr;
  clusterName?: string;
  publicAddrs: Addr[];
  tokens: StaticToken[];
  proxyListenerMode?: ProxyListenerMode;
  authentication: { type?: "local"; secondFactor?: SecondFactor; webauthnRpId?: string };
  /** `audit_events_uri`: one `postgresql://…` or `file:///dir` URI (a one-entry list too). */
  auditEventsUri?: string;
  /** `audit_sessions_uri`: recordings in `postgresql://…` or a shared `file:///dir`. */
  auditSessionsUri?: string;
}

/** The `proxy_service:` section. `https_key_file`/`https_cert_file` become the first key pair. */
export interface ProxyServiceSection extends ServiceSection {
  listenAddr?: Addr;
  webListenAddr?: Addr;
  tunnelListenAddr?: Addr;
  publicAddrs: Addr[];
  sshPublicAddrs: Addr[];
  tunnelPublicAddrs: Addr[];
  httpsKeyPairs: KeyPair[];
  /** `https_keypairs_reload_interval`, in ms; 0 (the default) never re-reads the files. */
  httpsKeyPairsReloadIntervalMs?: number;
  /**
   * `proxy_protocol`: `on` requires a PROXY header from the load balancer on every connection,
   * `off` refuses headers; unset, headers are accepted but the source port is zeroed and logged.
   */
  proxyProtocol?: ProxyProtocolMode;
}

/** `proxy_service.proxy_protocol` (Teleport's values; absent means `unspecified`). */
export type ProxyProtocolMode = "on" | "off" | "unspecified";

/** The `ssh_service:` section. */
export interface SshServiceSection extends ServiceSection {
  listenAddr?: Addr;
  /**
   * `proxy_protocol` (ours: Teleport documents the key for the auth and proxy services only):
   * `on` requires a load balancer's PROXY header on the node's SSH port, `off` refuses unsigned
   * headers; unset means `off`, since nodes are not expected behind a load balancer. Headers
   * signed by the cluster's proxies are accepted in every mode.
   */
  proxyProtocol?: "on" | "off";
  publicAddrs: Addr[];
  labels: Record<string, string>;
}

/** A parsed and validated teleport.yaml. Defaults are not applied here (see resolveProcessConfig). */
export interface FileConfig {
  /** Where the file was read from, when it came from a file. */
  path?: string;
  version: ConfigVersion;
  teleport: TeleportSection;
  authService: AuthServiceSection;
  proxyService: ProxyServiceSection;
  sshService: SshServiceSection;
  /** 1-based line of every key present, by key path (`auth_service.tokens[1]`). */
  lines: Record<string, number>;
}

/** Label keys: letters, digits and `.`, `-`, `_`, `/`, `:` (Teleport's rule without `*`). */
export const LABEL_KEY = /^[A-Za-z0-9._/:-]+$/;

/** Cluster names: letters, digits and `.`, `_`, `-`, `:` (they become parts of keys and SNI). */
export const CLUSTER_NAME = /^[A-Za-z0-9._:-]+$/;

type Handler = (node: YamlNode, path: string, keyLine: number) => void;

interface Entry {
  key: string;
  keyPath: string;
  keyLine: number;
  value: YamlNode | null;
}

const STORAGE_TYPES: readonly ("dir" | "postgresql")[] = ["dir", "postgresql"];

const SECRET_HINT = "(value not shown)";

/**
 * Teleport settings this program does not implement. Naming them gives a
 * clearer error than "unknown key" and keeps unimplemented security settings
 * from being ignored silently.
 */
const UNSUPPORTED: Record<string, readonly string[]> = {
  "": [
    "app_service",
    "db_service",
    "kubernetes_service",
    "windows_desktop_service",
    "discovery_service",
    "jamf_service",
    "okta_service",
    "metrics_service",
    "tracing_service",
    "debug_service",
    "plugins",
  ],
  teleport: [
    "advertise_ip",
    "cache",
    "ciphersuites",
    "ciphers",
    "kex_algos",
    "mac_algos",
    "ca_signature_algo",
    "cert_file",
    "key_file",
  ],
  "auth_service": [
    "tunnel_strategy",
    "proxy_ping_interval",
    "ssh_dial_timeout",
    "session_recording",
    "keep_alive_interval",
    "keep_alive_count_max",
    "client_idle_timeout",
    "disconnect_expired_cert",
    "proxy_protocol",
    "license_file",
    "message_of_the_day",
    "routing_strategy",
    "web_idle_timeout",
    "authorities",
  ],
  "auth_service.authentication": [
    "connector_name",
    "local_auth",
    "u2f",
    "device_trust",
    "passwordless",
    "require_session_mfa",
    "locking_mode",
  ],
  "proxy_service": [
    "peer_listen_addr",
    "peer_public_addr",
    "kube_listen_addr",
    "kube_public_addr",
    "kubernetes",
    "mysql_listen_addr",
    "mysql_public_addr",
    "postgres_listen_addr",
    "postgres_public_addr",
    "mongo_listen_addr",
    "mongo_public_addr",
    "acme",
    "trust_x_forwarded_for",
    "ui",
    "idp",
  ],
  "ssh_service": [
    "commands",
    "pam",
    "permit_user_env",
    "enhanced_recording",
    "x11",
    "disable_create_host_user",
    "restricted_session",
    "ssh_file_copy",
    "port_forwarding",
    "bpf",
  ],
};

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

function suggest(key: string, known: string[]): string | undefined {
  const norm = key.toLowerCase().replaceAll("-", "_");
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(norm, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3))) return best;
  const longer = known.filter((k) => norm.length >= 3 && k.startsWith(`${norm}_`));
  return longer.length === 1 ? longer[0] : undefined;
}

function kindOfNode(node: YamlNode | null): string {
  if (node === null) return "empty";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return "empty";
    if (typeof v === "boolean") return "a boolean";
    if (typeof v === "number" || typeof v === "bigint") return "a number";
    return "a string";
  }
  return "an unsupported value";
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Walks the YAML tree with positions; every failure throws a BadParameterError. */
class Walker {
  readonly lines: Record<string, number> = {};

  constructor(
    readonly doc: Document.Parsed,
    readonly lc: LineCounter,
    readonly where: string,
  ) {}

  fail(line: number | undefined, detail: string): never {
    const src = this.where === "" ? "" : ` ${this.where}`;
    const at = line === undefined ? "" : ` line ${line}:`;
    throw new BadParameterError(`Cannot load config${src}:${at} ${detail}`);
  }

  lineOf(node: YamlNode | null | undefined, fallback?: number): number | undefined {
    const offset = node?.range?.[0];
    if (offset === undefined) return fallback;
    if (isScalar(node) && node.value === null) return fallback ?? this.lc.linePos(offset).line;
    return this.lc.linePos(offset).line;
  }

  /** Follows aliases; returns null for an empty/null value. */
  deref(node: unknown): YamlNode | null {
    let n = node as YamlNode | null | undefined;
    for (let i = 0; n && isAlias(n); i++) {
      const target = i < 100 ? n.resolve(this.doc) as YamlNode | undefined : undefined;
      if (!target) this.fail(this.lineOf(n), `invalid YAML: alias "*${n.source}" has no anchor`);
      n = target;
    }
    if (!n) return null;
    if (isScalar(n) && n.value === null) return null;
    return n;
  }

  /**
   * The entries of a mapping, checking that keys are strings and unique.
   * `value` is null for an empty value (`key:`).
   */
  entries(node: YamlNode, path: string, line?: number): Entry[] {
    if (!isMap(node)) {
      this.fail(this.lineOf(node, line), `"${path}" must be a mapping, not ${kindOfNode(node)}`);
    }
    const seen = new Set<string>();
    return node.items.map((pair) => {
      const keyNode = this.deref(pair.key);
      const keyLine = this.lineOf(pair.key as YamlNode, this.lineOf(node, line))!;
      if (!keyNode || !isScalar(keyNode)) {
        this.fail(keyLine, `keys of "${path || "the top level"}" must be strings`);
      }
      const key = scalarText(keyNode);
      const keyPath = join(path, key);
      if (seen.has(key)) this.fail(keyLine, `duplicate key "${keyPath}"`);
      seen.add(key);
      return { key, keyPath, keyLine, value: this.deref(pair.value) };
    });
  }

  /**
   * Reads a mapping with a fixed set of keys: reports unknown keys (with a
   * suggestion) and calls the handler of every present, non-empty key.
   */
  map(node: YamlNode, path: string, handlers: Record<string, Handler>, line?: number): void {
    const known = Object.keys(handlers);
    for (const { key, keyPath, keyLine, value } of this.entries(node, path, line)) {
      const handler = Object.hasOwn(handlers, key) ? handlers[key] : undefined;
      if (!handler) {
        if (Object.hasOwn(UNSUPPORTED, path) && UNSUPPORTED[path]!.includes(key)) {
          if (path === "" && key.endsWith("_service") && this.isDisabledSection(value)) continue;
          this.fail(keyLine, `"${keyPath}" is a Teleport setting this program does not support`);
        }
        const hint = suggest(key, known);
        this.fail(keyLine, `unknown key "${keyPath}"${hint ? ` (did you mean "${hint}"?)` : ""}`);
      }
      this.lines[keyPath] = keyLine;
      if (value !== null) handler(value, keyPath, keyLine);
    }
  }

  private isDisabledSection(value: YamlNode | null): boolean {
    if (!value || !isMap(value)) return false;
    const enabled = value.items.find((p) => {
      const k = this.deref(p.key);
      return k !== null && isScalar(k) && scalarText(k) === "enabled";
    });
    const ev = enabled ? this.deref(enabled.value) : null;
    return ev !== null && isScalar(ev) && toBool(ev.value) === false;
  }

  str(node: YamlNode, path: string, line: number, opts: { secret?: boolean } = {}): string {
    if (!isScalar(node)) {
      this.fail(this.lineOf(node, line), `"${path}" must be a string, not ${kindOfNode(node)}`);
    }
    const text = scalarText(node);
    if (opts.secret && text.trim() === "") this.fail(line, `"${path}" must not be empty`);
    return text;
  }

  bool(node: YamlNode, path: string, line: number): boolean {
    const b = isScalar(node) ? toBool(node.value) : undefined;
    if (b === undefined) {
      const got = isScalar(node) ? `"${scalarText(node)}"` : kindOfNode(node);
      this.fail(
        this.lineOf(node, line),
        `"${path}" must be a boolean (yes/no, true/false), not ${got}`,
      );
    }
    return b;
  }

  oneOf<T extends string>(
    node: YamlNode,
    path: string,
    line: number,
    allowed: readonly T[],
    aliases: Record<string, T> = {},
  ): T {
    const text = this.str(node, path, line);
    const norm = text.trim().toLowerCase();
    const hit = allowed.find((a) => a.toLowerCase() === norm) ??
      (Object.hasOwn(aliases, norm) ? aliases[norm] : undefined);
    if (hit === undefined) {
      this.fail(
        this.lineOf(node, line),
        `"${path}" must be one of ${allowed.join(", ")}, not "${text}"`,
      );
    }
    return hit;
  }

  list(node: YamlNode, path: string, line: number, opts: { orSingle?: boolean } = {}): YamlNode[] {
    if (isSeq(node)) {
      return node.items.map((item, i) => {
        const n = this.deref(item);
        const offset = (item as YamlNode | null)?.range?.[0];
        const itemLine = offset === undefined ? line : this.lc.linePos(offset).line;
        this.lines[`${path}[${i}]`] = itemLine;
        if (n === null) this.fail(itemLine, `"${path}[${i}]" must not be empty`);
        return n;
      });
    }
    if (opts.orSingle && isScalar(node)) return [node];
    const want = opts.orSingle ? "a string or a list" : "a list";
    this.fail(this.lineOf(node, line), `"${path}" must be ${want}, not ${kindOfNode(node)}`);
  }

  strList(node: YamlNode, path: string, line: number, opts: { orSingle?: boolean } = {}): string[] {
    const single = !isSeq(node);
    return this.list(node, path, line, opts).map((n, i) => {
      const p = single ? path : `${path}[${i}]`;
      return this.str(n, p, this.lineOf(n, line)!);
    });
  }

  positiveInt(node: YamlNode, path: string, line: number): number {
    const text = this.str(node, path, line).trim();
    const n = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n <= 0) {
      this.fail(
        this.lineOf(node, line),
        `"${path}" must be a positive whole number, not "${text}"`,
      );
    }
    return n;
  }

  /** A Go-style duration (`5s`, `1m30s`), in milliseconds; must be positive. */
  duration(node: YamlNode, path: string, line: number): number {
    const text = this.str(node, path, line).trim();
    let ms: number | undefined;
    try {
      ms = parseDuration(text);
    } catch {
      ms = undefined;
    }
    if (ms === undefined || !(ms > 0)) {
      this.fail(
        this.lineOf(node, line),
        `"${path}" must be a positive duration such as 5s or 1m30s, not "${text}"`,
      );
    }
    return ms;
  }

  addr(node: YamlNode, path: string, line: number, defaultPort: number): Addr | undefined {
    const text = this.str(node, path, line);
    if (text.trim() === "") return undefined;
    const r = tryParseAddr(text, defaultPort);
    if (!r.ok) this.fail(this.lineOf(node, line), `invalid address for "${path}": ${r.problem}`);
    return r.addr;
  }

  addrList(node: YamlNode, path: string, line: number, defaultPort: number): Addr[] {
    const single = !isSeq(node);
    const out: Addr[] = [];
    this.list(node, path, line, { orSingle: true }).forEach((n, i) => {
      const p = single ? path : `${path}[${i}]`;
      const a = this.addr(n, p, this.lineOf(n, line)!, defaultPort);
      if (a) out.push(a);
      else if (!single) {
        this.fail(this.lineOf(n, line), `invalid address for "${p}": address is empty`);
      }
    });
    return out;
  }
}

function scalarText(node: { value: unknown; source?: string }): string {
  const v = node.value;
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  // Numbers and booleans keep their spelling (`0700`, `1.10`, `yes`).
  return typeof node.source === "string" && node.source !== "" ? node.source : String(v);
}

function toBool(v: unknown): boolean | undefined {
  if (typeof v === "boolean") return v;
  if (typeof v !== "string") return undefined;
  switch (v.trim().toLowerCase()) {
    case "yes":
    case "y":
    case "true":
    case "on":
      return true;
    case "no":
    case "n":
    case "false":
    case "off":
      return false;
  }
  return undefined;
}

function emptyConfig(path?: string): FileConfig {
  const base = { enabled: true, present: false };
  return {
    ...(path === undefined ? {} : { path }),
    version: CONFIG_VERSION,
    teleport: { log: {}, caPins: [], authServers: [], connectionLimits: {} },
    authService: { ...base, publicAddrs: [], tokens: [], authentication: {} },
    proxyService: {
      ...base,
      publicAddrs: [],
      sshPublicAddrs: [],
      tunnelPublicAddrs: [],
      httpsKeyPairs: [],
    },
    sshService: { ...base, publicAddrs: [], labels: {} },
    lines: {},
  };
}

const LOG_SEVERITIES = ["DEBUG", "INFO", "WARN", "ERROR"] as const;
const SEVERITY_ALIASES: Record<string, LogSeverity> = {
  warning: "WARN",
  err: "ERROR",
};
const EXTRA_FIELDS = ["level", "timestamp", "component", "caller"] as const;
const SECOND_FACTORS = ["off", "otp", "on", "optional"] as const;
/** Teleport values this version does not implement: refused with the supported ones. */
const UNSUPPORTED_SECOND_FACTORS = ["webauthn", "u2f"];

function parseStaticToken(w: Walker, node: YamlNode, path: string, line: number): StaticToken {
  const text = w.str(node, path, line);
  const i = text.indexOf(":");
  if (i < 0) {
    w.fail(
      line,
      `"${path}" must look like "<roles>:<token>", e.g. "node,proxy:<token>" ${SECRET_HINT}`,
    );
  }
  const roleNames = text.slice(0, i).split(",").map((r) => r.trim().toLowerCase());
  const token = text.slice(i + 1).trim();
  const roles: Role[] = [];
  for (const r of roleNames) {
    if (!(VALID_ROLES as readonly string[]).includes(r)) {
      w.fail(
        line,
        `"${path}" has an unknown role; roles are ${VALID_ROLES.join(", ")} ${SECRET_HINT}`,
      );
    }
    if (!roles.includes(r as Role)) roles.push(r as Role);
  }
  if (token === "") w.fail(line, `"${path}" has an empty token after the roles`);
  return { roles, token };
}

/**
 * Parses the text of a teleport.yaml. `path` only labels messages and is
 * stored in the result. An empty file (or only comments) is an empty config.
 * Throws BadParameterError with `file: line N: detail` on any problem.
 */
export function parseFileConfig(text: string, path?: string): FileConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lc,
    keepSourceTokens: true,
    uniqueKeys: false,
    prettyErrors: false,
  });
  const w: Walker = new Walker(doc, lc, path ?? "");
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const pos = problem.linePos?.[0]?.line ?? lc.linePos(problem.pos[0]).line;
    const detail = problem.code === "MULTIPLE_DOCS"
      ? "the file holds more than one YAML document"
      : (problem.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    w.fail(pos, `invalid YAML: ${detail}`);
  }
  const cfg = emptyConfig(path);
  const root = w.deref(doc.contents);
  if (root === null) return cfg;
  if (!isMap(root)) {
    w.fail(w.lineOf(root), `the top level must be a mapping of sections, not ${kindOfNode(root)}`);
  }

  const t = cfg.teleport;
  const auth = cfg.authService;
  const proxy = cfg.proxyService;
  const ssh = cfg.sshService;
  let httpsKeyFile: [string, number] | undefined;
  let httpsCertFile: [string, number] | undefined;
  // Teleport accepts exactly "on" and "off"; absent is each service's default.
  const proxyProtocolOf = (
    n: YamlNode | null,
    p: string,
    l: number,
    unset: string,
  ): "on" | "off" => {
    if (!isScalar(n) || !["on", "off"].includes(scalarText(n).trim())) {
      const got = isScalar(n) ? `"${scalarText(n)}"` : kindOfNode(n);
      w.fail(
        w.lineOf(n, l),
        `"${p}" must be "on" (a load balancer sends PROXY headers) or "off" (none may), not ${got}; leave it out ${unset}`,
      );
    }
    return scalarText(n).trim() as "on" | "off";
  };

  w.map(root, "", {
    version: (n, p, l) => {
      cfg.version = w.oneOf(n, p, l, ["v1", "v2", "v3"]);
    },
    teleport: (n, p, l) =>
      w.map(n, p, {
        nodename: (n, p, l) => {
          t.nodeName = w.str(n, p, l).trim() || undefined;
        },
        data_dir: (n, p, l) => {
          t.dataDir = w.str(n, p, l).trim() || undefined;
        },
        pid_file: (n, p, l) => {
          t.pidFile = w.str(n, p, l).trim() || undefined;
        },
        log: (n, p, l) =>
          w.map(n, p, {
            output: (n, p, l) => {
              const out = w.str(n, p, l).trim();
              if (out.toLowerCase() === "syslog") {
                w.fail(l, `"${p}: syslog" is not supported; use stderr, stdout or a file path`);
              }
              t.log.output = out === ""
                ? undefined
                : ["stderr", "stdout"].includes(out.toLowerCase())
                ? out.toLowerCase()
                : out;
            },
            severity: (n, p, l) => {
              t.log.severity = w.oneOf(n, p, l, LOG_SEVERITIES, SEVERITY_ALIASES);
            },
            format: (n, p, l) =>
              w.map(n, p, {
                output: (n, p, l) => {
                  t.log.format = w.oneOf(n, p, l, ["text", "json"] as const);
                },
                extra_fields: (n, p, l) => {
                  t.log.extraFields = w.list(n, p, l).map((item, i) =>
                    w.oneOf(item, `${p}[${i}]`, w.lineOf(item, l)!, EXTRA_FIELDS)
                  );
                },
              }, l),
          }, l),
        auth_token: (n, p, l) => {
          t.authToken = w.str(n, p, l, { secret: true }).trim();
        },
        join_params: (n, p, l) => {
          let tokenName: string | undefined;
          let method: "token" | undefined;
          w.map(n, p, {
            token_name: (n, p, l) => {
              tokenName = w.str(n, p, l, { secret: true }).trim();
            },
            method: (n, p, l) => {
              method = w.oneOf(n, p, l, ["token"] as const);
            },
          }, l);
          if (tokenName === undefined) w.fail(l, `"${p}.token_name" is required`);
          t.joinParams = { tokenName, method: method ?? "token" };
        },
        ca_pin: (n, p, l) => {
          t.caPins = w.strList(n, p, l, { orSingle: true }).map((s) => s.trim()).filter((s) =>
            s !== ""
          );
        },
        auth_server: (n, p, l) => {
          const a = w.addr(n, p, l, AUTH_PORT);
          if (a) t.authServers = [a];
        },
        auth_servers: (n, p, l) => {
          t.authServers = w.addrList(n, p, l, AUTH_PORT);
        },
        proxy_server: (n, p, l) => {
          t.proxyServer = w.addr(n, p, l, WEB_PORT);
        },
        diag_addr: (n, p, l) => {
          t.diagAddr = w.addr(n, p, l, DIAG_PORT);
        },
        drain_timeout: (n, p, l) => {
          t.drainTimeoutMs = w.duration(n, p, l);
        },
        storage: (n, p, l) => {
          let type: "dir" | "postgresql" | undefined;
          let path: string | undefined;
          let connString: string | undefined;
          let passwordFile: string | undefined;
          w.map(n, p, {
            type: (n, p, l) => {
              type = w.oneOf<"dir" | "postgresql">(n, p, l, STORAGE_TYPES, {
                postgres: "postgresql",
              });
            },
            path: (n, p, l) => {
              path = w.str(n, p, l).trim() || undefined;
            },
            conn_string: (n, p, l) => {
              connString = w.str(n, p, l, { secret: true }).trim();
              if (!/^postgres(ql)?:\/\//.test(connString)) {
                w.fail(l, `"${p}" must be a postgresql:// URL`);
              }
            },
            password_file: (n, p, l) => {
              passwordFile = w.str(n, p, l).trim() || undefined;
            },
          }, l);
          if (type === "postgresql") {
            if (connString === undefined) {
              w.fail(l, `"${p}.conn_string" is required with type postgresql`);
            }
            if (path !== undefined) w.fail(l, `"${p}.path" is for type dir only`);
            t.storage = passwordFile === undefined
              ? { type, connString }
              : { type, connString, passwordFile };
          } else {
            if (connString !== undefined || passwordFile !== undefined) {
              w.fail(l, `"${p}.conn_string" and "${p}.password_file" need type: postgresql`);
            }
            t.storage = path === undefined ? { type: "dir" } : { type: "dir", path };
          }
        },
        connection_limits: (n, p, l) =>
          w.map(n, p, {
            max_connections: (n, p, l) => {
              t.connectionLimits.maxConnections = w.positiveInt(n, p, l);
            },
            max_pending_connections: (n, p, l) => {
              t.connectionLimits.maxPendingConnections = w.positiveInt(n, p, l);
            },
            max_total_connections: (n, p, l) => {
              t.connectionLimits.maxTotalConnections = w.positiveInt(n, p, l);
            },
            handshake_timeout: (n, p, l) => {
              t.connectionLimits.handshakeTimeoutMs = w.duration(n, p, l);
            },
            ssh_login_timeout: (n, p, l) => {
              t.connectionLimits.sshLoginTimeoutMs = w.duration(n, p, l);
            },
            descriptor_reserve: (n, p, l) => {
              t.connectionLimits.descriptorReserve = w.positiveInt(n, p, l);
            },
            rates: (n, p, l) => {
              const rates = w.list(n, p, l).map((item, i) => {
                const ip = `${p}[${i}]`;
                const il = w.lineOf(item, l)!;
                const r: { period?: number; average?: number; burst?: number } = {};
                w.map(item, ip, {
                  period: (n, p, l) => {
                    r.period = w.duration(n, p, l);
                  },
                  average: (n, p, l) => {
                    r.average = w.positiveInt(n, p, l);
                  },
                  burst: (n, p, l) => {
                    r.burst = w.positiveInt(n, p, l);
                  },
                }, il);
                if (r.period === undefined || r.average === undefined) {
                  w.fail(il, `"${ip}" needs "period" and "average" (and may set "burst")`);
                }
                const perMinute = (r.average * 60_000) / r.period;
                return { burst: r.burst ?? Math.max(1, Math.ceil(perMinute)), perMinute };
              });
              const strictest = rates.sort((a, b) => a.perMinute - b.perMinute)[0];
              if (strictest !== undefined) t.connectionLimits.unauthenticatedRate = strictest;
            },
            max_users: (_n, p, l) => {
              w.fail(l, `"${p}" is not supported; remove the key`);
            },
          }, l),
      }, l),
    auth_service: (n, p, l) => {
      w.map(n, p, {
        enabled: (n, p, l) => {
          auth.enabled = w.bool(n, p, l);
        },
        listen_addr: (n, p, l) => {
          auth.listenAddr = w.addr(n, p, l, AUTH_PORT);
        },
        audit_sessions_uri: (n, p, l) => {
          const uri = w.str(n, p, l).trim();
          if (uri !== "" && !/^(postgres(ql)?:\/\/|file:\/\/\/)/.test(uri)) {
            w.fail(l, `"${p}" must be a postgresql:// URI or an absolute file:/// directory`);
          }
          auth.auditSessionsUri = uri || undefined;
        },
        audit_events_uri: (n, p, l) => {
          const uris = w.strList(n, p, l, { orSingle: true }).map((u) => u.trim()).filter((u) =>
            u !== ""
          );
          if (uris.length > 1) {
            w.fail(l, `"${p}" takes one URI; several audit destinations are not supported`);
          }
          const uri = uris[0];
          if (uri !== undefined && !/^(postgres(ql)?|file):\/\//.test(uri)) {
            w.fail(l, `"${p}" must be a postgresql:// or file:/// URI`);
          }
          if (uri !== undefined && uri.startsWith("file://") && !uri.startsWith("file:///")) {
            w.fail(l, `"${p}" must name an absolute directory, as in file:///var/lib/teleport/log`);
          }
          auth.auditEventsUri = uri;
        },
        cluster_name: (n, p, l) => {
          const name = w.str(n, p, l).trim();
          if (name !== "" && !CLUSTER_NAME.test(name)) {
            w.fail(l, `invalid "${p}" "${name}": use letters, digits and . _ - : only`);
          }
          auth.clusterName = name || undefined;
        },
        public_addr: (n, p, l) => {
          auth.publicAddrs = w.addrList(n, p, l, AUTH_PORT);
        },
        tokens: (n, p, l) => {
          auth.tokens = w.list(n, p, l).map((item, i) =>
            parseStaticToken(w, item, `${p}[${i}]`, w.lineOf(item, l)!)
          );
        },
        proxy_listener_mode: (n, p, l) => {
          auth.proxyListenerMode = w.oneOf(n, p, l, ["multiplex", "separate"] as const);
        },
        authentication: (n, p, l) =>
          w.map(n, p, {
            type: (n, p, l) => {
              auth.authentication.type = w.oneOf(n, p, l, ["local"] as const);
            },
            second_factor: (n, p, l) => {
              const text = w.str(n, p, l).trim();
              if (UNSUPPORTED_SECOND_FACTORS.includes(text.toLowerCase())) {
                // Accepting it would start a cluster nobody can log in to.
                w.fail(
                  w.lineOf(n, l),
                  `"${p}: ${text}" is not supported (no hardware keys in this version); use one of ${
                    SECOND_FACTORS.join(", ")
                  } (on = OTP required)`,
                );
              }
              auth.authentication.secondFactor = w.oneOf(n, p, l, SECOND_FACTORS);
            },
            webauthn: (n, p, l) =>
              w.map(n, p, {
                rp_id: (n, p, l) => {
                  auth.authentication.webauthnRpId = w.str(n, p, l).trim() || undefined;
                },
              }, l),
          }, l),
      }, l);
    },
    proxy_service: (n, p, l) => {
      w.map(n, p, {
        enabled: (n, p, l) => {
          proxy.enabled = w.bool(n, p, l);
        },
        listen_addr: (n, p, l) => {
          proxy.listenAddr = w.addr(n, p, l, PROXY_SSH_PORT);
        },
        web_listen_addr: (n, p, l) => {
          proxy.webListenAddr = w.addr(n, p, l, WEB_PORT);
        },
        tunnel_listen_addr: (n, p, l) => {
          proxy.tunnelListenAddr = w.addr(n, p, l, TUNNEL_PORT);
        },
        public_addr: (n, p, l) => {
          proxy.publicAddrs = w.addrList(n, p, l, WEB_PORT);
        },
        ssh_public_addr: (n, p, l) => {
          proxy.sshPublicAddrs = w.addrList(n, p, l, PROXY_SSH_PORT);
        },
        tunnel_public_addr: (n, p, l) => {
          proxy.tunnelPublicAddrs = w.addrList(n, p, l, TUNNEL_PORT);
        },
        https_keypairs: (n, p, l) => {
          proxy.httpsKeyPairs = w.list(n, p, l).map((item, i) => {
            const ip = `${p}[${i}]`;
            const il = w.lineOf(item, l)!;
            let keyFile: string | undefined;
            let certFile: string | undefined;
            w.map(item, ip, {
              key_file: (n, p, l) => {
                keyFile = w.str(n, p, l).trim() || undefined;
              },
              cert_file: (n, p, l) => {
                certFile = w.str(n, p, l).trim() || undefined;
              },
            }, il);
            if (keyFile === undefined) w.fail(il, `"${ip}.key_file" is required`);
            if (certFile === undefined) w.fail(il, `"${ip}.cert_file" is required`);
            return { keyFile, certFile };
          });
        },
        https_keypairs_reload_interval: (n, p, l) => {
          // Teleport: 0 (the default) disables the periodic reload.
          const text = w.str(n, p, l).trim();
          proxy.httpsKeyPairsReloadIntervalMs = /^0+(?:ms|s|m|h)?$/.test(text)
            ? 0
            : w.duration(n, p, l);
        },
        proxy_protocol: (n, p, l) => {
          proxy.proxyProtocol = proxyProtocolOf(
            n,
            p,
            l,
            "to accept headers with the source port zeroed",
          );
        },
        https_key_file: (n, p, l) => {
          const v = w.str(n, p, l).trim();
          if (v !== "") httpsKeyFile = [v, l];
        },
        https_cert_file: (n, p, l) => {
          const v = w.str(n, p, l).trim();
          if (v !== "") httpsCertFile = [v, l];
        },
      }, l);
    },
    ssh_service: (n, p, l) => {
      w.map(n, p, {
        enabled: (n, p, l) => {
          ssh.enabled = w.bool(n, p, l);
        },
        listen_addr: (n, p, l) => {
          ssh.listenAddr = w.addr(n, p, l, NODE_SSH_PORT);
        },
        public_addr: (n, p, l) => {
          ssh.publicAddrs = w.addrList(n, p, l, NODE_SSH_PORT);
        },
        proxy_protocol: (n, p, l) => {
          ssh.proxyProtocol = proxyProtocolOf(n, p, l, "to refuse them");
        },
        labels: (n, p, l) => {
          const labels: [string, string][] = [];
          for (const { key, keyPath, keyLine, value } of w.entries(n, p, l)) {
            w.lines[keyPath] = keyLine;
            if (!LABEL_KEY.test(key)) {
              w.fail(
                keyLine,
                `invalid label key "${keyPath}": use letters, digits and . - _ / : only`,
              );
            }
            // Numbers and booleans become their text (`tier: 1` → "1"); empty is "".
            labels.push([key, value === null ? "" : w.str(value, keyPath, keyLine)]);
          }
          ssh.labels = Object.fromEntries(labels);
        },
      }, l);
    },
  });

  cfg.lines = w.lines;
  auth.present = "auth_service" in w.lines;
  proxy.present = "proxy_service" in w.lines;
  ssh.present = "ssh_service" in w.lines;

  // Cross-key rules.
  const ln = (key: string) => w.lines[key];
  if (w.lines["teleport.auth_server"] && w.lines["teleport.auth_servers"]) {
    w.fail(
      ln("teleport.auth_servers"),
      `"teleport.auth_server" and "teleport.auth_servers" cannot both be set; use auth_server`,
    );
  }
  if (t.proxyServer !== undefined && t.authServers.length > 0) {
    w.fail(
      ln("teleport.proxy_server"),
      `"teleport.proxy_server" and "teleport.auth_server(s)" cannot both be set; agents join through one of them`,
    );
  }
  if (t.authToken !== undefined && t.joinParams !== undefined) {
    w.fail(
      ln("teleport.join_params"),
      `"teleport.auth_token" and "teleport.join_params" cannot both be set`,
    );
  }
  if ((httpsKeyFile === undefined) !== (httpsCertFile === undefined)) {
    const [given, missing, line] = httpsKeyFile
      ? ["https_key_file", "https_cert_file", httpsKeyFile[1]]
      : ["https_cert_file", "https_key_file", httpsCertFile![1]];
    w.fail(
      line,
      `"proxy_service.${given}" is set without "proxy_service.${missing}"; give both or neither`,
    );
  }
  if (httpsKeyFile && httpsCertFile) {
    proxy.httpsKeyPairs.unshift({ keyFile: httpsKeyFile[0], certFile: httpsCertFile[0] });
  }
  return cfg;
}

/**
 * Reads and parses a config file. A missing file is a NotFoundError, an
 * unreadable one an AccessDeniedError, a bad one a BadParameterError; all
 * start with `Cannot load config <path>:`.
 */
export async function loadConfigFile(path: string): Promise<FileConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new NotFoundError(`Cannot load config ${path}: the file does not exist`, {
        cause: err,
      });
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new AccessDeniedError(`Cannot load config ${path}: permission denied`, { cause: err });
    }
    const detail = err instanceof Error ? err.message : String(err);
    throw new BadParameterError(`Cannot load config ${path}: ${detail}`, { cause: err });
  }
  return parseFileConfig(text, path);
}
