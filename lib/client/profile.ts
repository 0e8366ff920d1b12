/**
 * The tsh profile store: `~/.tsh`, or `$TELEPORT_HOME` when set (see {@link resolveTshHome}),
 * laid out like Teleport's keystore (teleport-protocol-notes §6):
 *
 * ```text
 * current-profile                               name of the active profile (its proxy host)
 * <proxy>.yaml                                  the profile, flat YAML (below)
 * known_hosts                                   @cert-authority <proxy>,*.<cluster> <host CA key>
 *                                               clusterName=<cluster> type=host
 * keys/<proxy>/<user>                           SSH private key, OpenSSH format (ssh -i reads it)
 * keys/<proxy>/<user>.pub                       its public key
 * keys/<proxy>/<user>-ssh/<cluster>-cert.pub    SSH user certificate
 * keys/<proxy>/<user>-tls.key                   TLS private key: PKCS#8 PEM, ECDSA P-256, kept
 *                                               apart from the SSH key (Ed25519)
 * keys/<proxy>/<user>-x509.pem                  TLS user certificate
 * keys/<proxy>/cas/<cluster>.pem                host CA TLS certificates (trust for the auth API)
 * keys/<proxy>/<user>-cache/<cluster>.json      node and proxy lists, kept a few minutes
 *                                               (list_cache.ts)
 * ```
 *
 * The profile file holds `web_proxy_addr`, `ssh_proxy_addr`, `user`, `cluster`,
 * `tls_routing_enabled`, `valid_until` (RFC 3339) and, after a `--insecure` login,
 * `web_cert_sha256` (hex SHA-256 of the proxy's web certificate, trusted from then on).
 *
 * Files are written 0600 and directories created 0700; every file is written under a temporary
 * name and renamed into place, so a crash never leaves half a key.
 */
import {
  formatAuthorizedKey,
  formatOpenSshPrivateKey,
  importSshPrivateKey,
  parseAuthorizedKey,
  splitPemCertificates,
  type SshKeyPair,
} from "../ca/mod.ts";
import { BadParameterError, NotFoundError } from "../errors/mod.ts";
import { type FlatValue, formatFlatYaml, parseFlatYaml } from "./_flat_yaml.ts";
import { formatHostPort, type HostPort, parseHostPort } from "./addr.ts";

/** A logged-in profile: where the proxy is and who the certificates speak for. */
export interface Profile {
  /** Profile name: the proxy's host; names the profile's files. */
  name: string;
  /** The proxy's web (HTTPS) address. */
  webProxyAddr: HostPort;
  /** The proxy's SSH address (the web address when TLS routing is on). */
  sshProxyAddr: HostPort;
  /** Teleport user name. */
  user: string;
  /** Cluster name. */
  cluster: string;
  /** Whether the proxy routes SSH by ALPN on the web port. */
  tlsRoutingEnabled: boolean;
  /** Hex SHA-256 of the proxy's web certificate, pinned by a `--insecure` login. */
  webCertSha256?: string;
  /** When the certificates expire. */
  validUntil: Date;
}

/** The key material of a profile. Private keys never leave this machine. */
export interface ProfileKeys {
  /** The SSH key pair the certificate certifies (Ed25519). */
  sshKey: SshKeyPair;
  /** SSH user certificate, authorized_keys line. */
  sshCert: string;
  /** TLS private key, PKCS#8 PEM. */
  tlsKeyPem: string;
  /** TLS user certificate, PEM. */
  tlsCertPem: string;
  /** The cluster's host CA TLS certificates, PEM each. */
  hostCaTlsCerts: string[];
  /** The cluster's host CA SSH public keys, authorized_keys lines. */
  hostCaKeys: string[];
}

/** Absolute paths of one profile's files. */
export interface ProfilePaths {
  home: string;
  currentProfile: string;
  profile: string;
  knownHosts: string;
  keysDir: string;
  sshKey: string;
  sshPublicKey: string;
  sshCert: string;
  tlsKey: string;
  tlsCert: string;
  hostCas: string;
  /** The node and proxy list cache (list_cache.ts). */
  listCache: string;
}

/**
 * The store's directory: `$TELEPORT_HOME` (made absolute against `cwd`) when set and not
 * empty, else `$HOME/.tsh`. Throws BadParameterError when neither is set.
 */
export function resolveTshHome(
  env: { TELEPORT_HOME?: string; HOME?: string },
  cwd: string,
): string {
  const th = env.TELEPORT_HOME;
  if (th !== undefined && th !== "") return th.startsWith("/") ? th : `${cwd}/${th}`;
  const home = env.HOME;
  if (home === undefined || home === "") {
    throw new BadParameterError(
      "Cannot find the tsh profile directory: HOME is not set; set TELEPORT_HOME to a directory",
    );
  }
  return `${home.replace(/\/+$/, "")}/.tsh`;
}

/** Checks a name that becomes a path component; returns it. */
function pathComponent(value: string, what: string): string {
  if (
    value === "" || value === "." || value === ".." || value.length > 255 ||
    /[/\\\0\r\n]/.test(value)
  ) {
    throw new BadParameterError(
      `Cannot use ${what} ${JSON.stringify(value)} in a file name: it is empty, too long, or ` +
        "holds a slash, a line break or a NUL",
    );
  }
  return value;
}

/**
 * Checks a cluster name: it is written into known_hosts host patterns and ssh_config `Host`
 * lines, so only letters, digits, dots, dashes and underscores are accepted.
 */
export function validateClusterName(cluster: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$/.test(cluster)) {
    throw new BadParameterError(
      `Cannot use cluster name ${JSON.stringify(cluster)}: tsh accepts letters, digits, ".", ` +
        `"-" and "_" only`,
    );
  }
  return cluster;
}

/** Marker comment fields of our known_hosts lines. */
function knownHostsTag(cluster: string): string {
  return `clusterName=${cluster}`;
}

/** Writes `data` to `path` atomically with `mode` (temp file in the same dir, then rename). */
async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(tmp, data, { mode, createNew: true });
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** Creates `path` (and parents) 0700 when missing; an existing directory is left as it is. */
async function ensurePrivateDir(path: string): Promise<void> {
  try {
    const st = await Deno.stat(path);
    if (!st.isDirectory) {
      throw new BadParameterError(`Cannot use ${path} as a directory: it is a file`);
    }
    return;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(path, { recursive: true, mode: 0o700 });
  await Deno.chmod(path, 0o700);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function readRequired(path: string, what: string): Promise<string> {
  const text = await readOptional(path);
  if (text === undefined) {
    throw new NotFoundError(
      `Cannot read ${what} at ${path}: the file is missing; run "tsh login" again`,
    );
  }
  return text;
}

/** The profile store in one directory. */
export class ProfileStore {
  readonly home: string;

  /** `home` is the store's directory (see {@link resolveTshHome}). */
  constructor(home: string) {
    if (home === "") throw new BadParameterError("Cannot open the tsh profile store: empty path");
    this.home = home.replace(/(.)\/+$/, "$1");
  }

  /** Paths of the files of profile `name` for `user` in `cluster`. */
  paths(name: string, user: string, cluster: string): ProfilePaths {
    pathComponent(name, "proxy host");
    pathComponent(user, "user name");
    pathComponent(cluster, "cluster name");
    const keysDir = `${this.home}/keys/${name}`;
    return {
      home: this.home,
      currentProfile: `${this.home}/current-profile`,
      profile: `${this.home}/${name}.yaml`,
      knownHosts: `${this.home}/known_hosts`,
      keysDir,
      sshKey: `${keysDir}/${user}`,
      sshPublicKey: `${keysDir}/${user}.pub`,
      sshCert: `${keysDir}/${user}-ssh/${cluster}-cert.pub`,
      tlsKey: `${keysDir}/${user}-tls.key`,
      tlsCert: `${keysDir}/${user}-x509.pem`,
      hostCas: `${keysDir}/cas/${cluster}.pem`,
      listCache: `${keysDir}/${user}-cache/${cluster}.json`,
    };
  }

  /** The name in `current-profile`, or undefined when there is none. */
  async currentName(): Promise<string | undefined> {
    const text = await readOptional(`${this.home}/current-profile`);
    const name = text?.trim();
    return name === undefined || name === "" ? undefined : pathComponent(name, "profile name");
  }

  /** Makes `name` the current profile. */
  async setCurrent(name: string): Promise<void> {
    pathComponent(name, "profile name");
    await ensurePrivateDir(this.home);
    await writeFileAtomic(`${this.home}/current-profile`, name + "\n");
  }

  /** Names of every stored profile. */
  async list(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(this.home)) {
        if (e.isFile && e.name.endsWith(".yaml")) names.push(e.name.slice(0, -".yaml".length));
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return names.sort();
  }

  /**
   * Reads profile `name` (default: the current one); undefined when there is no such profile.
   * A malformed file throws BadParameterError.
   */
  async load(name?: string): Promise<Profile | undefined> {
    const n = name ?? await this.currentName();
    if (n === undefined) return undefined;
    pathComponent(n, "profile name");
    const path = `${this.home}/${n}.yaml`;
    const text = await readOptional(path);
    if (text === undefined) return undefined;
    return decodeProfile(n, parseFlatYaml(text, path), path);
  }

  /** Reads the keys and CA material of `profile`; NotFoundError when a file is missing. */
  async loadKeys(profile: Profile): Promise<ProfileKeys> {
    const p = this.paths(profile.name, profile.user, profile.cluster);
    const [keyPem, sshCert, tlsKeyPem, tlsCertPem, cas, knownHosts] = await Promise.all([
      readRequired(p.sshKey, "the SSH private key"),
      readRequired(p.sshCert, "the SSH certificate"),
      readRequired(p.tlsKey, "the TLS private key"),
      readRequired(p.tlsCert, "the TLS certificate"),
      readRequired(p.hostCas, "the cluster's CA certificates"),
      readOptional(p.knownHosts),
    ]);
    const hostCaKeys = parseKnownHostsCaKeys(knownHosts ?? "", profile.cluster);
    if (hostCaKeys.length === 0) {
      throw new NotFoundError(
        `Cannot find the host CA keys of cluster ${profile.cluster} in ${p.knownHosts}; ` +
          'run "tsh login" again',
      );
    }
    return {
      sshKey: await importSshPrivateKey(keyPem),
      sshCert: sshCert.trim(),
      tlsKeyPem,
      tlsCertPem,
      hostCaTlsCerts: splitPemCertificates(cas),
      hostCaKeys,
    };
  }

  /** Writes `profile` and its `keys`, then makes it the current profile. */
  async save(profile: Profile, keys: ProfileKeys): Promise<ProfilePaths> {
    validateClusterName(profile.cluster);
    const p = this.paths(profile.name, profile.user, profile.cluster);
    await ensurePrivateDir(this.home);
    await ensurePrivateDir(p.keysDir);
    await ensurePrivateDir(`${p.keysDir}/${profile.user}-ssh`);
    await ensurePrivateDir(`${p.keysDir}/cas`);
    await writeFileAtomic(p.sshKey, await formatOpenSshPrivateKey(keys.sshKey, profile.user));
    await writeFileAtomic(
      p.sshPublicKey,
      formatAuthorizedKey(keys.sshKey.publicKeyBlob, profile.user) + "\n",
    );
    await writeFileAtomic(p.sshCert, keys.sshCert.trim() + "\n");
    await writeFileAtomic(p.tlsKey, keys.tlsKeyPem);
    await writeFileAtomic(p.tlsCert, keys.tlsCertPem);
    await writeFileAtomic(p.hostCas, keys.hostCaTlsCerts.map((c) => c.trim() + "\n").join(""));
    const known = await readOptional(p.knownHosts) ?? "";
    await writeFileAtomic(
      p.knownHosts,
      replaceKnownHostsCaKeys(known, profile.cluster, profile.name, keys.hostCaKeys),
    );
    await writeFileAtomic(p.profile, encodeProfile(profile));
    await this.setCurrent(profile.name);
    return p;
  }

  /**
   * Replaces the cluster's trusted host CAs of `profile` (its CA certificates file and its
   * known_hosts lines, which `tsh config` points OpenSSH at): a host CA rotation seen after login.
   */
  async saveHostCas(
    profile: Profile,
    cas: Pick<ProfileKeys, "hostCaKeys" | "hostCaTlsCerts">,
  ): Promise<void> {
    const p = this.paths(profile.name, profile.user, profile.cluster);
    await writeFileAtomic(p.hostCas, cas.hostCaTlsCerts.map((c) => c.trim() + "\n").join(""));
    const known = await readOptional(p.knownHosts) ?? "";
    await writeFileAtomic(
      p.knownHosts,
      replaceKnownHostsCaKeys(known, profile.cluster, profile.name, cas.hostCaKeys),
    );
  }

  /**
   * Removes profile `name`: its keys directory, its profile file, the cluster's known_hosts
   * lines (unless another profile uses that cluster) and `current-profile` when it names it.
   * Returns false when there was no such profile.
   */
  async remove(name: string): Promise<boolean> {
    const profile = await this.load(name).catch(() => undefined);
    pathComponent(name, "profile name");
    const yaml = `${this.home}/${name}.yaml`;
    let found = false;
    try {
      await Deno.remove(yaml);
      found = true;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    try {
      await Deno.remove(`${this.home}/keys/${name}`, { recursive: true });
      found = true;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (profile !== undefined) {
      const others = await Promise.all(
        (await this.list()).map((n) => this.load(n).catch(() => undefined)),
      );
      if (!others.some((o) => o?.cluster === profile.cluster)) {
        const kh = `${this.home}/known_hosts`;
        const known = await readOptional(kh);
        if (known !== undefined) {
          await writeFileAtomic(kh, replaceKnownHostsCaKeys(known, profile.cluster, name, []));
        }
      }
    }
    if (await this.currentName().catch(() => undefined) === name) {
      await Deno.remove(`${this.home}/current-profile`).catch(() => {});
    }
    return found;
  }
}

function encodeProfile(p: Profile): string {
  const fields: Record<string, FlatValue | undefined> = {
    web_proxy_addr: formatHostPort(p.webProxyAddr),
    ssh_proxy_addr: formatHostPort(p.sshProxyAddr),
    user: p.user,
    cluster: p.cluster,
    tls_routing_enabled: p.tlsRoutingEnabled,
    web_cert_sha256: p.webCertSha256,
    valid_until: p.validUntil.toISOString(),
  };
  return formatFlatYaml(fields);
}

function decodeProfile(
  name: string,
  f: Record<string, FlatValue | null>,
  path: string,
): Profile {
  const str = (key: string): string => {
    const v = f[key];
    if (typeof v !== "string" || v === "") {
      throw new BadParameterError(
        `Cannot read profile ${path}: "${key}" is missing; run "tsh login" again`,
      );
    }
    return v;
  };
  const validUntil = new Date(str("valid_until"));
  if (Number.isNaN(validUntil.getTime())) {
    throw new BadParameterError(`Cannot read profile ${path}: "valid_until" is not a time`);
  }
  const pin = f.web_cert_sha256;
  if (
    pin !== undefined && pin !== null && (typeof pin !== "string" || !/^[0-9a-f]{64}$/.test(pin))
  ) {
    throw new BadParameterError(
      `Cannot read profile ${path}: "web_cert_sha256" must be 64 lowercase hex digits`,
    );
  }
  return {
    name,
    webProxyAddr: parseHostPort(str("web_proxy_addr"), 3080, `web_proxy_addr in ${path}`),
    sshProxyAddr: parseHostPort(str("ssh_proxy_addr"), 3023, `ssh_proxy_addr in ${path}`),
    user: str("user"),
    cluster: str("cluster"),
    tlsRoutingEnabled: f.tls_routing_enabled === true,
    ...(typeof pin === "string" ? { webCertSha256: pin } : {}),
    validUntil,
  };
}

/** The host CA keys (authorized_keys form) our known_hosts lines hold for `cluster`. */
export function parseKnownHostsCaKeys(text: string, cluster: string): string[] {
  const tag = knownHostsTag(cluster);
  const keys: string[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== "@cert-authority" || fields.length < 4 || !fields.slice(4).includes(tag)) {
      continue;
    }
    try {
      keys.push(formatAuthorizedKey(parseAuthorizedKey(`${fields[2]} ${fields[3]}`).blob));
    } catch {
      // a hand-edited line that does not parse: skip it
    }
  }
  return keys;
}

/**
 * Replaces our `@cert-authority` lines for `cluster` in a known_hosts text with lines for
 * `caKeys`, matching `<proxyHost>` and `*.<cluster>`; other lines are kept as they are.
 */
export function replaceKnownHostsCaKeys(
  text: string,
  cluster: string,
  proxyHost: string,
  caKeys: string[],
): string {
  const tag = knownHostsTag(cluster);
  const kept = text.split("\n").filter((line) => {
    if (line.trim() === "") return false;
    const fields = line.trim().split(/\s+/);
    return !(fields[0] === "@cert-authority" && fields.slice(4).includes(tag));
  });
  const hosts = proxyHost === `*.${cluster}` ? proxyHost : `${proxyHost},*.${cluster}`;
  for (const key of caKeys) {
    const k = parseAuthorizedKey(key);
    kept.push(`@cert-authority ${hosts} ${formatAuthorizedKey(k.blob)} ${tag} type=host`);
  }
  return kept.length === 0 ? "" : kept.join("\n") + "\n";
}
