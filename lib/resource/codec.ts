/**
 * YAML/JSON codecs for resources. Parsing is strict: unknown fields, wrong types
 * and bad names are BadParameterErrors naming the document and field.
 */
import { Composer, isScalar, Parser, stringify, visit } from "yaml";
import type { CST } from "yaml";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import {
  bool,
  fail,
  isObj,
  type Obj,
  obj,
  onlyKeys,
  optStr,
  str,
  strList,
  strMap,
  time,
} from "./_check.ts";
import { parseDuration } from "./duration.ts";
import {
  type CaKeySet,
  type CaRotation,
  type CertAuthority,
  type JoinSessionPolicy,
  type Metadata,
  type ProvisionToken,
  type ProxyResource,
  type Resource,
  type ResourceKind,
  type Role,
  type RoleConditions,
  type RoleOptions,
  ROTATION_PHASES,
  type RotationPhase,
  type Rule,
  type ServerResource,
  type SessionParticipant,
  type SessionParticipantMode,
  type SessionTracker,
  type SystemRole,
  type User,
} from "./types.ts";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
const LABEL_KEY_RE = /^[A-Za-z0-9/.:_*-]{1,127}$/;

/** Kind names and the aliases tctl accepts for them (`users`, `cert_authorities`, …). */
export const RESOURCE_KINDS: Record<ResourceKind, readonly string[]> = {
  user: ["user", "users"],
  role: ["role", "roles"],
  token: ["token", "tokens"],
  cert_authority: ["cert_authority", "cert_authorities", "cert_authoritys", "ca", "cas"],
  node: ["node", "nodes"],
  proxy: ["proxy", "proxies"],
  session_tracker: ["session_tracker", "session_trackers"],
};

/** Resolves a kind name or alias; BadParameterError listing the kinds otherwise. */
export function resolveKind(name: string): ResourceKind {
  const lower = name.toLowerCase();
  for (const [kind, aliases] of Object.entries(RESOURCE_KINDS)) {
    if (aliases.includes(lower)) return kind as ResourceKind;
  }
  throw new BadParameterError(
    `Cannot use resource kind "${name}": unknown kind (known: ${
      Object.keys(RESOURCE_KINDS).join(", ")
    })`,
  );
}

/** Checks a user or role name; used before a name touches a key or a path. */
export function validateName(name: string, what: string): string {
  if (!NAME_RE.test(name)) {
    throw new BadParameterError(
      `Cannot use ${what} name "${name}": use 1-128 letters, digits and . _ @ + - (starting with a letter or digit)`,
    );
  }
  return name;
}

const SYSTEM_ROLES: readonly SystemRole[] = ["Auth", "Node", "Proxy", "Admin"];

/** Parses a system role name case-insensitively ("node" → "Node"). */
export function parseSystemRole(name: string, where = "role"): SystemRole {
  const found = SYSTEM_ROLES.find((r) => r.toLowerCase() === name.trim().toLowerCase());
  if (found === undefined) {
    throw new BadParameterError(
      `Cannot use ${where} "${name}": unknown system role (known: node, proxy, auth)`,
    );
  }
  return found;
}

function metadata(v: unknown, path: string): Metadata {
  const o = obj(v, path);
  onlyKeys(o, path, ["name", "description", "labels", "expires", "revision"]);
  const m: Metadata = { name: str(o.name, `${path}.name`) };
  const description = optStr(o.description, `${path}.description`);
  if (description !== undefined) m.description = description;
  if (o.labels !== undefined) {
    const labels = strMap(o.labels, `${path}.labels`);
    for (const k of Object.keys(labels)) {
      if (!LABEL_KEY_RE.test(k)) fail(`${path}.labels`, `invalid label key "${k}"`);
    }
    m.labels = labels;
  }
  const expires = time(o.expires, `${path}.expires`);
  if (expires !== undefined) m.expires = expires;
  const revision = optStr(o.revision, `${path}.revision`);
  if (revision !== undefined) m.revision = revision;
  return m;
}

const PARTICIPANT_MODES: readonly SessionParticipantMode[] = ["peer", "observer"];

/** `spec.allow.join_sessions`: `[{name, roles, kinds, modes}]`. */
function joinSessions(v: unknown, path: string): JoinSessionPolicy[] {
  if (!Array.isArray(v)) fail(path, "must be a list");
  return v.map((x, i): JoinSessionPolicy => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    onlyKeys(o, p, ["name", "roles", "kinds", "modes"]);
    const kinds = o.kinds === undefined ? ["ssh"] : strList(o.kinds, `${p}.kinds`);
    const modes = strList(o.modes, `${p}.modes`).map((m, j) => {
      if (!PARTICIPANT_MODES.includes(m as SessionParticipantMode)) {
        fail(`${p}.modes[${j}]`, `"${m}" is not a mode (use peer or observer)`);
      }
      return m as SessionParticipantMode;
    });
    if (modes.length === 0) fail(`${p}.modes`, "must list at least one mode (peer, observer)");
    const roles = strList(o.roles, `${p}.roles`);
    if (roles.length === 0) fail(`${p}.roles`, 'must list the session owners\' roles (or "*")');
    return { name: optStr(o.name, `${p}.name`) ?? "", roles, kinds, modes };
  });
}

function conditions(v: unknown, path: string): RoleConditions {
  const o = obj(v, path);
  const allow = path.endsWith(".allow");
  onlyKeys(o, path, ["logins", "node_labels", "rules", ...(allow ? ["join_sessions"] : [])]);
  const c: RoleConditions = {};
  if (o.logins !== undefined) c.logins = strList(o.logins, `${path}.logins`);
  if (o.node_labels !== undefined) {
    const labels = obj(o.node_labels, `${path}.node_labels`);
    c.node_labels = {};
    for (const [k, x] of Object.entries(labels)) {
      c.node_labels[k] = Array.isArray(x)
        ? strList(x, `${path}.node_labels.${k}`)
        : str(x, `${path}.node_labels.${k}`);
    }
  }
  if (o.rules !== undefined) {
    if (!Array.isArray(o.rules)) fail(`${path}.rules`, "must be a list");
    c.rules = o.rules.map((r, i): Rule => {
      const p = `${path}.rules[${i}]`;
      const ro = obj(r, p);
      onlyKeys(ro, p, ["resources", "verbs"]);
      return {
        resources: strList(ro.resources, `${p}.resources`),
        verbs: strList(ro.verbs, `${p}.verbs`),
      };
    });
  }
  if (o.join_sessions !== undefined && o.join_sessions !== null) {
    c.join_sessions = joinSessions(o.join_sessions, `${path}.join_sessions`);
  }
  return c;
}

function parseRole(o: Obj): Role {
  onlyKeys(o, "", ["kind", "version", "metadata", "spec"]);
  const metadataV = metadata(o.metadata, "metadata");
  validateName(metadataV.name, "role");
  const spec = obj(o.spec, "spec");
  onlyKeys(spec, "spec", ["options", "allow", "deny"]);
  const options = obj(spec.options, "spec.options");
  onlyKeys(options, "spec.options", [
    "max_session_ttl",
    "port_forwarding",
    "ssh_port_forwarding",
    "ssh_file_copy",
    "forward_agent",
  ]);
  const role: Role = {
    kind: "role",
    version: "v7",
    metadata: metadataV,
    spec: {
      options: {},
      allow: conditions(spec.allow, "spec.allow"),
      deny: conditions(spec.deny, "spec.deny"),
    },
  };
  const ttl = optStr(options.max_session_ttl, "spec.options.max_session_ttl");
  if (ttl !== undefined) {
    parseDuration(ttl, "spec.options.max_session_ttl");
    role.spec.options.max_session_ttl = ttl;
  }
  const pf = bool(options.port_forwarding, "spec.options.port_forwarding");
  if (pf !== undefined) role.spec.options.port_forwarding = pf;
  const fc = bool(options.ssh_file_copy, "spec.options.ssh_file_copy");
  if (fc !== undefined) role.spec.options.ssh_file_copy = fc;
  const fa = bool(options.forward_agent, "spec.options.forward_agent");
  if (fa !== undefined) role.spec.options.forward_agent = fa;
  const spf = sshPortForwarding(options.ssh_port_forwarding);
  if (spf !== undefined) role.spec.options.ssh_port_forwarding = spf;
  return role;
}

/** `spec.options.ssh_port_forwarding`: `{local: {enabled}, remote: {enabled}}`, both optional. */
function sshPortForwarding(v: unknown): RoleOptions["ssh_port_forwarding"] {
  if (v === undefined || v === null) return undefined;
  const path = "spec.options.ssh_port_forwarding";
  const o = obj(v, path);
  onlyKeys(o, path, ["local", "remote"]);
  const out: NonNullable<RoleOptions["ssh_port_forwarding"]> = {};
  for (const side of ["local", "remote"] as const) {
    if (o[side] === undefined || o[side] === null) continue;
    const s = obj(o[side], `${path}.${side}`);
    onlyKeys(s, `${path}.${side}`, ["enabled"]);
    const enabled = bool(s.enabled, `${path}.${side}.enabled`);
    out[side] = enabled === undefined ? {} : { enabled };
  }
  return out;
}

function parseUser(o: Obj): User {
  onlyKeys(o, "", ["kind", "version", "metadata", "spec"]);
  const metadataV = metadata(o.metadata, "metadata");
  validateName(metadataV.name, "user");
  const spec = obj(o.spec, "spec");
  onlyKeys(spec, "spec", ["roles", "traits", "created_by"]);
  const traitsO = obj(spec.traits, "spec.traits");
  const traits: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(traitsO)) traits[k] = strList(v, `spec.traits.${k}`);
  const user: User = {
    kind: "user",
    version: "v2",
    metadata: metadataV,
    spec: { roles: strList(spec.roles, "spec.roles"), traits },
  };
  if (spec.created_by !== undefined) {
    const cb = obj(spec.created_by, "spec.created_by");
    onlyKeys(cb, "spec.created_by", ["time", "user"]);
    const at = time(cb.time, "spec.created_by.time");
    if (at === undefined) fail("spec.created_by.time", "is required (an RFC 3339 time)");
    user.spec.created_by = { time: at };
    const by = optStr(cb.user, "spec.created_by.user");
    if (by !== undefined) user.spec.created_by.user = by;
  }
  return user;
}

function parseToken(o: Obj): ProvisionToken {
  onlyKeys(o, "", ["kind", "version", "metadata", "spec"]);
  const metadataV = metadata(o.metadata, "metadata");
  if (metadataV.name.length < 8) fail("metadata.name", "a token must be at least 8 characters");
  const spec = obj(o.spec, "spec");
  onlyKeys(spec, "spec", ["roles", "join_method"]);
  const method = optStr(spec.join_method, "spec.join_method") ?? "token";
  if (method !== "token") fail("spec.join_method", `"${method}" is not supported (use token)`);
  const roles = strList(spec.roles, "spec.roles").map((r, i) =>
    parseSystemRole(r, `spec.roles[${i}]`)
  );
  if (roles.length === 0) fail("spec.roles", "must list at least one role");
  return {
    kind: "token",
    version: "v2",
    metadata: metadataV,
    spec: { roles, join_method: "token" },
  };
}

function caKeySet(v: unknown, path: string): CaKeySet {
  const keys = obj(v, path);
  onlyKeys(keys, path, ["ssh", "tls"]);
  const list = (x: unknown, p: string): Obj[] => {
    if (x === undefined) return [];
    if (!Array.isArray(x)) fail(p, "must be a list");
    return x.map((e, i) => obj(e, `${p}[${i}]`));
  };
  return {
    ssh: list(keys.ssh, `${path}.ssh`).map((k, i) => {
      const p = `${path}.ssh[${i}]`;
      onlyKeys(k, p, ["public_key", "private_key"]);
      const pair: { public_key: string; private_key?: string } = {
        public_key: str(k.public_key, `${p}.public_key`),
      };
      const pk = optStr(k.private_key, `${p}.private_key`);
      if (pk !== undefined) pair.private_key = pk;
      return pair;
    }),
    tls: list(keys.tls, `${path}.tls`).map((k, i) => {
      const p = `${path}.tls[${i}]`;
      onlyKeys(k, p, ["cert", "key"]);
      const pair: { cert: string; key?: string } = { cert: str(k.cert, `${p}.cert`) };
      const key = optStr(k.key, `${p}.key`);
      if (key !== undefined) pair.key = key;
      return pair;
    }),
  };
}

function caRotation(v: unknown, path: string): CaRotation {
  const r = obj(v, path);
  onlyKeys(r, path, [
    "state",
    "phase",
    "mode",
    "started",
    "grace_period",
    "schedule",
    "last_rotated",
  ]);
  const state = str(r.state, `${path}.state`);
  if (state !== "standby" && state !== "in_progress") {
    fail(`${path}.state`, "must be standby or in_progress");
  }
  const phase = str(r.phase, `${path}.phase`);
  if (!(ROTATION_PHASES as readonly string[]).includes(phase)) {
    fail(`${path}.phase`, `must be one of ${ROTATION_PHASES.join(", ")}`);
  }
  const out: CaRotation = { state, phase: phase as RotationPhase };
  const mode = optStr(r.mode, `${path}.mode`);
  if (mode !== undefined) {
    if (mode !== "auto" && mode !== "manual") fail(`${path}.mode`, "must be auto or manual");
    out.mode = mode;
  }
  const started = time(r.started, `${path}.started`);
  if (started !== undefined) out.started = started;
  const grace = optStr(r.grace_period, `${path}.grace_period`);
  if (grace !== undefined) {
    parseDuration(grace, `${path}.grace_period`);
    out.grace_period = grace;
  }
  if (r.schedule !== undefined) {
    const sp = `${path}.schedule`;
    const sc = obj(r.schedule, sp);
    onlyKeys(sc, sp, ["update_clients", "update_servers", "standby"]);
    const at = (k: "update_clients" | "update_servers" | "standby") => {
      const t = time(sc[k], `${sp}.${k}`);
      if (t === undefined) fail(`${sp}.${k}`, "is required");
      return t;
    };
    out.schedule = {
      update_clients: at("update_clients"),
      update_servers: at("update_servers"),
      standby: at("standby"),
    };
  }
  const last = time(r.last_rotated, `${path}.last_rotated`);
  if (last !== undefined) out.last_rotated = last;
  return out;
}

function parseCertAuthority(o: Obj): CertAuthority {
  onlyKeys(o, "", ["kind", "version", "metadata", "spec"]);
  const metadataV = metadata(o.metadata, "metadata");
  const spec = obj(o.spec, "spec");
  onlyKeys(spec, "spec", [
    "cluster_name",
    "type",
    "active_keys",
    "additional_trusted_keys",
    "rotation",
  ]);
  const type = str(spec.type, "spec.type");
  if (type !== "host" && type !== "user") fail("spec.type", "must be host or user");
  const out: CertAuthority = {
    kind: "cert_authority",
    version: "v2",
    metadata: metadataV,
    spec: {
      cluster_name: str(spec.cluster_name, "spec.cluster_name"),
      type,
      active_keys: caKeySet(spec.active_keys, "spec.active_keys"),
    },
  };
  if (spec.additional_trusted_keys !== undefined) {
    out.spec.additional_trusted_keys = caKeySet(
      spec.additional_trusted_keys,
      "spec.additional_trusted_keys",
    );
  }
  if (spec.rotation !== undefined) out.spec.rotation = caRotation(spec.rotation, "spec.rotation");
  return out;
}

/** Largest `host_cert` accepted (an RSA-4096 certificate is about 3 KiB). */
const MAX_CERT_LINE = 16 * 1024;
const CERT_LINE_RE = /^([a-z0-9-]+-cert-v01@openssh\.com) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?$/;

/**
 * Checks the shape of an OpenSSH certificate in authorized_keys form: a `*-cert-v01@openssh.com`
 * type, base64 whose first field repeats that type. The auth service parses it fully.
 */
function sshCertLine(v: unknown, path: string): string | undefined {
  const line = optStr(v, path)?.trim();
  if (line === undefined) return undefined;
  if (line.length > MAX_CERT_LINE) fail(path, `must be at most ${MAX_CERT_LINE} characters`);
  const m = CERT_LINE_RE.exec(line);
  if (m === null) {
    fail(
      path,
      "must be an OpenSSH certificate in authorized_keys form (TYPE-cert-v01@openssh.com BASE64)",
    );
  }
  let blob: string;
  try {
    blob = atob(m[2]!);
  } catch {
    fail(path, "is not valid base64");
  }
  const len = blob.length < 4
    ? -1
    : ((blob.charCodeAt(0) << 24) | (blob.charCodeAt(1) << 16) | (blob.charCodeAt(2) << 8) |
      blob.charCodeAt(3)) >>> 0;
  if (blob.slice(4, 4 + len) !== m[1]) {
    fail(path, `the encoded certificate type does not match "${m[1]}"`);
  }
  return line;
}

function parseServer(o: Obj): ServerResource {
  onlyKeys(o, "", ["kind", "version", "metadata", "spec"]);
  const metadataV = metadata(o.metadata, "metadata");
  const spec = obj(o.spec, "spec");
  onlyKeys(spec, "spec", ["addr", "hostname", "version", "use_tunnel", "host_cert"]);
  const server: ServerResource = {
    kind: "node",
    version: "v2",
    metadata: metadataV,
    spec: {
      addr: optStr(spec.addr, "spec.addr") ?? "",
      hostname: str(spec.hostname, "spec.hostname"),
      version: optStr(spec.version, "spec.version") ?? "",
    },
  };
  const tunnel = bool(spec.use_tunnel, "spec.use_tunnel");
  if (tunnel !== undefined) server.spec.use_tunnel = tunnel;
  const hostCert = sshCertLine(spec.host_cert, "spec.host_cert");
  if (hostCert !== undefined) server.spec.host_cert = hostCert;
  return server;
}

function parseProxy(o: Obj): ProxyResource {
  onlyKeys(o, "", ["kind", "version", "metadata", "spec"]);
  const metadataV = metadata(o.metadata, "metadata");
  const spec = obj(o.spec, "spec");
  const optional = ["public_addr", "ssh_public_addr", "tunnel_public_addr"] as const;
  onlyKeys(spec, "spec", ["addr", "hostname", "version", ...optional, "host_cert"]);
  const proxy: ProxyResource = {
    kind: "proxy",
    version: "v2",
    metadata: metadataV,
    spec: {
      addr: optStr(spec.addr, "spec.addr") ?? "",
      hostname: str(spec.hostname, "spec.hostname"),
      version: optStr(spec.version, "spec.version") ?? "",
    },
  };
  for (const name of optional) {
    const v = optStr(spec[name], `spec.${name}`);
    if (v !== undefined) proxy.spec[name] = v;
  }
  const hostCert = sshCertLine(spec.host_cert, "spec.host_cert");
  if (hostCert !== undefined) proxy.spec.host_cert = hostCert;
  return proxy;
}

/** Session ids are UUIDs; this admits any short id of their characters. */
const SESSION_ID_RE = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

/** Longest participant list a tracker may carry. */
const MAX_PARTICIPANTS = 256;

function parseSessionTracker(o: Obj): SessionTracker {
  onlyKeys(o, "", ["kind", "version", "metadata", "spec"]);
  const metadataV = metadata(o.metadata, "metadata");
  const spec = obj(o.spec, "spec");
  onlyKeys(spec, "spec", [
    "session_id",
    "kind",
    "state",
    "created",
    "user",
    "login",
    "node_id",
    "hostname",
    "cluster_name",
    "participants",
  ]);
  const sid = str(spec.session_id, "spec.session_id");
  if (!SESSION_ID_RE.test(sid)) fail("spec.session_id", "must be a session id (a UUID)");
  if (sid !== metadataV.name) fail("spec.session_id", "must equal metadata.name");
  const kind = optStr(spec.kind, "spec.kind") ?? "ssh";
  if (kind !== "ssh") fail("spec.kind", `"${kind}" is not supported (use ssh)`);
  const state = optStr(spec.state, "spec.state") ?? "running";
  if (state !== "running") fail("spec.state", `"${state}" is not supported (use running)`);
  const created = time(spec.created, "spec.created");
  if (created === undefined) fail("spec.created", "is required (an RFC 3339 time)");
  const list = spec.participants ?? [];
  if (!Array.isArray(list)) fail("spec.participants", "must be a list");
  if (list.length > MAX_PARTICIPANTS) {
    fail("spec.participants", `has ${list.length} entries; the limit is ${MAX_PARTICIPANTS}`);
  }
  const participants = list.map((x, i): SessionParticipant => {
    const p = `spec.participants[${i}]`;
    const po = obj(x, p);
    onlyKeys(po, p, ["user", "mode", "joined"]);
    const mode = str(po.mode, `${p}.mode`);
    if (mode !== "owner" && !PARTICIPANT_MODES.includes(mode as SessionParticipantMode)) {
      fail(`${p}.mode`, `"${mode}" is not a mode (use owner, peer or observer)`);
    }
    const joined = time(po.joined, `${p}.joined`);
    if (joined === undefined) fail(`${p}.joined`, "is required (an RFC 3339 time)");
    return { user: str(po.user, `${p}.user`), mode: mode as SessionParticipant["mode"], joined };
  });
  return {
    kind: "session_tracker",
    version: "v1",
    metadata: metadataV,
    spec: {
      session_id: sid,
      kind: "ssh",
      state: "running",
      created,
      user: str(spec.user, "spec.user"),
      login: str(spec.login, "spec.login"),
      node_id: str(spec.node_id, "spec.node_id"),
      hostname: str(spec.hostname, "spec.hostname"),
      cluster_name: optStr(spec.cluster_name, "spec.cluster_name") ?? "",
      participants,
    },
  };
}

const PARSERS: Record<ResourceKind, (o: Obj) => Resource> = {
  role: parseRole,
  user: parseUser,
  token: parseToken,
  cert_authority: parseCertAuthority,
  node: parseServer,
  proxy: parseProxy,
  session_tracker: parseSessionTracker,
};

/** Validates a decoded value (from YAML, JSON or the wire) as a resource. */
export function parseResourceValue(value: unknown): Resource {
  if (!isObj(value)) {
    throw new BadParameterError("resource must be a mapping with kind, version, metadata and spec");
  }
  const kind = resolveKind(str(value.kind, "kind"));
  return PARSERS[kind](value);
}

/** Deepest nesting of mappings and lists a resource file may have (resources need about 6). */
export const MAX_YAML_DEPTH = 32;
/**
 * Bound on alias expansion per document (the yaml package's `maxAliasCount`, which weighs each
 * alias by the size of what it expands to), so `&a [*b, *b, …]` chains cannot blow up.
 */
export const MAX_YAML_ALIAS_COUNT = 100;

/** 1-based line of a character offset. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

interface CstNode {
  type?: string;
  offset?: number;
  value?: unknown;
  key?: unknown;
  items?: unknown[];
}

/**
 * The offset of the first collection nested deeper than {@link MAX_YAML_DEPTH} in yaml's
 * concrete syntax tree (its parser keeps an explicit stack, and so does this walk): the
 * composer and `toJS` recurse once per level and must never see deeper input.
 */
function tooDeepAt(tokens: readonly CST.Token[]): number | undefined {
  for (const root of tokens) {
    const stack: Array<[CstNode, number]> = [[root as CstNode, 0]];
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      const collection = node.type === "block-map" || node.type === "block-seq" ||
        node.type === "flow-collection";
      const d = collection ? depth + 1 : depth;
      if (d > MAX_YAML_DEPTH) return node.offset ?? 0;
      for (const child of [node.key, node.value, ...(node.items ?? [])]) {
        if (typeof child === "object" && child !== null) stack.push([child as CstNode, d]);
      }
    }
  }
  return undefined;
}

/**
 * Parses one or more YAML (or JSON) documents into resources. `source` (a file
 * name) prefixes errors: `Cannot parse resource in roles.yaml: document 2: spec.allow.logins: must be a list of strings`.
 */
export function parseResources(text: string, source = "input"): Resource[] {
  // Parse to the syntax tree, check its depth, then compose documents from the same tokens.
  const tokens = Array.from(new Parser().parse(text));
  const deep = tooDeepAt(tokens);
  if (deep !== undefined) {
    throw new BadParameterError(
      `Cannot parse resource in ${source}: line ${lineAt(text, deep)}: ` +
        `mappings and lists nest deeper than ${MAX_YAML_DEPTH} levels`,
    );
  }
  const composer = new Composer();
  const docs = [...composer.compose(tokens), ...composer.end()];
  const out: Resource[] = [];
  docs.forEach((doc, i) => {
    const where = docs.length > 1 ? `document ${i + 1}: ` : "";
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw new BadParameterError(
        `Cannot parse resource in ${source}: ${where}line ${lineAt(text, e.pos[0])}: ${
          e.message.split("\n")[0]
        }`,
      );
    }
    visit(doc, {
      Pair(_, pair) {
        // yaml would turn a list or mapping key into a string (and warn on stderr).
        if (pair.key !== null && !isScalar(pair.key)) {
          const at = (pair.key as { range?: [number] }).range?.[0] ?? 0;
          throw new BadParameterError(
            `Cannot parse resource in ${source}: ${where}line ${lineAt(text, at)}: ` +
              "a mapping key must be a plain scalar, not a list, mapping or alias",
          );
        }
      },
    });
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
    } catch (err) {
      // yaml throws (a ReferenceError) for an alias before its anchor and for alias bombs.
      const detail = /Excessive alias count/.test(messageOf(err))
        ? `aliases expand to too many values (limit ${MAX_YAML_ALIAS_COUNT}); write the values out`
        : messageOf(err);
      throw new BadParameterError(`Cannot parse resource in ${source}: ${where}${detail}`, {
        cause: err,
      });
    }
    if (value === null || value === undefined) return;
    try {
      out.push(parseResourceValue(value));
    } catch (err) {
      throw new BadParameterError(`Cannot parse resource in ${source}: ${where}${messageOf(err)}`, {
        cause: err,
      });
    }
  });
  if (out.length === 0) {
    throw new BadParameterError(`Cannot parse resource in ${source}: no resources found`);
  }
  return out;
}

/** Formats resources as YAML documents separated by `---`. */
export function formatResourcesYaml(resources: readonly Resource[]): string {
  return resources.map((r) => stringify(r, { lineWidth: 0 })).join("---\n");
}
