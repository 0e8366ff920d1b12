import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import {
  type FileConfig,
  GRACEFUL_SHUTDOWN_TIMEOUT_MS,
  loadConfigForStart,
  parseFileConfig,
  parseLabels,
  parseRoles,
  type ProcessConfig,
  resolveProcessConfig,
  type StartFlags,
} from "./mod.ts";

const PATH = "/etc/teleport.yaml";

function resolve(
  flags: StartFlags = {},
  yaml?: string,
  env: Record<string, string | undefined> = {},
): ProcessConfig {
  const file: FileConfig | undefined = yaml === undefined ? undefined : parseFileConfig(yaml, PATH);
  return resolveProcessConfig({ ...(file ? { file } : {}), flags, hostname: "host1", env });
}

function assertBad(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadParameterError, `not a BadParameterError: ${e}`);
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("resolveProcessConfig() gives an all-in-one local cluster when there is no file and no flags", () => {
  const cfg = resolve();
  assert.deepEqual(cfg, {
    nodeName: "host1",
    dataDir: "/var/lib/teleport",
    debug: false,
    log: {
      output: "stderr",
      severity: "INFO",
      format: "text",
      extraFields: ["level", "timestamp", "component", "caller"],
    },
    roles: { auth: true, proxy: true, node: true },
    caPins: [],
    authServers: [{ host: "127.0.0.1", port: 3025 }],
    insecure: false,
    drainTimeoutMs: 300000,
    caRefreshIntervalMs: 60_000,
    connectionLimits: {
      handshakeTimeoutMs: 5000,
      maxConnectionsPerIp: 15000,
      maxPendingPerIp: 512,
      sshLoginTimeoutMs: 30000,
    },
    auth: {
      listenAddr: { host: "0.0.0.0", port: 3025 },
      publicAddrs: [],
      staticTokens: [],
      proxyListenerMode: "separate",
      secondFactor: "otp",
    },
    proxy: {
      sshListenAddr: { host: "0.0.0.0", port: 3023 },
      webListenAddr: { host: "0.0.0.0", port: 3080 },
      tunnelListenAddr: { host: "0.0.0.0", port: 3024 },
      publicAddrs: [],
      sshPublicAddrs: [],
      tunnelPublicAddrs: [],
      httpsKeyPairs: [],
      httpsKeyPairsReloadIntervalMs: 0,
      proxyProtocol: "unspecified",
      disableTls: false,
    },
    ssh: {
      listenAddr: { host: "0.0.0.0", port: 3022 },
      publicAddrs: [],
      labels: {},
      proxyProtocol: "off",
    },
    proxyEnv: {},
  });
});

Deno.test("resolveProcessConfig() uses localhost as node name when the host name is empty", () => {
  const cfg = resolveProcessConfig({ flags: {}, hostname: "", env: {} });
  assert.equal(cfg.nodeName, "localhost");
});

Deno.test("resolveProcessConfig() runs exactly the --roles services when --roles is given", () => {
  const cfg = resolve(
    { roles: "proxy", authServer: "10.12.0.6" },
    "auth_service:\n  enabled: yes\nssh_service:\n  enabled: yes\n",
  );
  assert.deepEqual(cfg.roles, { auth: false, proxy: true, node: false });
  assert.deepEqual(cfg.authServers, [{ host: "10.12.0.6", port: 3025 }]);
  assert.deepEqual(resolve({ roles: " Node , auth,node" }).roles, {
    auth: true,
    proxy: false,
    node: true,
  });
});

Deno.test("resolveProcessConfig() rejects an unknown role and lists the valid roles", () => {
  assertBad(
    () => resolve({ roles: "auth,db" }),
    /^Cannot parse --roles "auth,db": unknown role "db"; valid roles are auth, proxy, node$/,
  );
  assertBad(() => resolve({ roles: " , " }), /--roles .*give at least one of auth, proxy, node/);
});

Deno.test("resolveProcessConfig() takes roles from the sections when a file is given", () => {
  const cfg = resolve(
    {},
    "auth_service:\n  enabled: no\nproxy_service:\n  enabled: false\nteleport:\n  auth_server: a\n",
  );
  assert.deepEqual(cfg.roles, { auth: false, proxy: false, node: true });
  assertBad(
    () =>
      resolve(
        {},
        "auth_service: {enabled: no}\nproxy_service: {enabled: no}\nssh_service: {enabled: no}\n",
      ),
    /^Cannot load config \/etc\/teleport.yaml: no service is enabled/,
  );
});

Deno.test("resolveProcessConfig() lets flags override the file", () => {
  const yaml = `version: v3
teleport:
  nodename: file-node
  data_dir: /file/dir
  pid_file: /file.pid
  auth_token: file-token
  ca_pin: sha256:file
  proxy_server: proxy.example.com:443
auth_service:
  cluster_name: file-cluster
ssh_service:
  labels:
    env: file
`;
  const fromFile = resolve({}, yaml);
  assert.equal(fromFile.nodeName, "file-node");
  assert.equal(fromFile.dataDir, "/file/dir");
  assert.equal(fromFile.pidFile, "/file.pid");
  assert.equal(fromFile.joinToken, "file-token");
  assert.deepEqual(fromFile.caPins, ["sha256:file"]);
  assert.deepEqual(fromFile.proxyServer, { host: "proxy.example.com", port: 443 });
  assert.deepEqual(fromFile.authServers, []);
  assert.equal(fromFile.auth.clusterName, "file-cluster");
  assert.deepEqual(fromFile.ssh.labels, { env: "file" });
  assert.equal(fromFile.configFile, PATH);

  const cfg = resolve({
    nodename: "flag-node",
    dataDir: "./.teleport",
    pidFile: "/flag.pid",
    token: "flag-token",
    caPins: ["sha256:a", "sha256:b"],
    authServer: "10.12.0.6:3025",
    clusterName: "flag-cluster",
    labels: "env=flag,team=core",
    insecure: true,
    debug: true,
  }, yaml);
  assert.equal(cfg.nodeName, "flag-node");
  assert.equal(cfg.dataDir, "./.teleport");
  assert.equal(cfg.pidFile, "/flag.pid");
  assert.equal(cfg.joinToken, "flag-token");
  assert.deepEqual(cfg.caPins, ["sha256:a", "sha256:b"]);
  assert.deepEqual(cfg.authServers, [{ host: "10.12.0.6", port: 3025 }]);
  assert.equal(cfg.proxyServer, undefined);
  assert.equal(cfg.auth.clusterName, "flag-cluster");
  assert.deepEqual(cfg.ssh.labels, { env: "flag", team: "core" });
  assert.equal(cfg.insecure, true);
  assert.equal(cfg.debug, true);
  assert.equal(cfg.log.severity, "DEBUG");
});

Deno.test("resolveProcessConfig() uses --proxy-server instead of the file's auth servers", () => {
  const cfg = resolve(
    { roles: "node", proxyServer: "proxy.example.com" },
    "teleport:\n  auth_server: a\n",
  );
  assert.deepEqual(cfg.proxyServer, { host: "proxy.example.com", port: 3080 });
  assert.deepEqual(cfg.authServers, []);
  assertBad(
    () => resolve({ authServer: "a", proxyServer: "b" }),
    /--auth-server and --proxy-server together/,
  );
});

Deno.test("resolveProcessConfig() reads the join token from join_params when auth_token is absent", () => {
  const cfg = resolve({}, "teleport:\n  join_params:\n    token_name: jp\n");
  assert.equal(cfg.joinToken, "jp");
});

Deno.test("resolveProcessConfig() names the flag when a flag value is bad", () => {
  assertBad(
    () => resolve({ authServer: "10.0.0.1:99999" }),
    /^Cannot parse --auth-server "10.0.0.1:99999": port/,
  );
  assertBad(() => resolve({ proxyServer: "a b" }), /^Cannot parse --proxy-server "a b"/);
  assertBad(
    () => resolve({ labels: "env" }),
    /^Cannot parse --labels "env": "env" is not key=value$/,
  );
  assertBad(() => resolve({ labels: "bad key=1" }), /--labels .*invalid label key "bad key"/);
  assertBad(() => resolve({ clusterName: "a/b" }), /^Cannot parse --cluster-name "a\/b"/);
  assertBad(
    () => resolve({}, undefined, { TELEPORT_TUNNEL_PUBLIC_ADDR: "x:y" }),
    /^Cannot parse TELEPORT_TUNNEL_PUBLIC_ADDR "x:y"/,
  );
});

Deno.test("resolveProcessConfig() requires an auth server when the auth role is off", () => {
  assertBad(() => resolve({ roles: "node" }), /--auth-server/);
  assertBad(() => resolve({}, "auth_service:\n  enabled: no\n"), /teleport.auth_server/);
});

Deno.test("resolveProcessConfig() dials the local auth listener when the auth role is on", () => {
  const cfg = resolve({}, "auth_service:\n  listen_addr: 10.1.2.3:4025\n");
  assert.deepEqual(cfg.authServers, [{ host: "10.1.2.3", port: 4025 }]);
  const v6 = resolve({}, 'auth_service:\n  listen_addr: "[::]:0"\n');
  assert.deepEqual(v6.authServers, [{ host: "127.0.0.1", port: 0 }]);
});

Deno.test("resolveProcessConfig() serves proxy SSH and tunnels on the web port in multiplex mode", () => {
  const cfg = resolve(
    {},
    "auth_service:\n  proxy_listener_mode: multiplex\nproxy_service:\n  web_listen_addr: 0.0.0.0:443\n",
  );
  assert.equal(cfg.auth.proxyListenerMode, "multiplex");
  assert.deepEqual(cfg.proxy.webListenAddr, { host: "0.0.0.0", port: 443 });
  assert.deepEqual(cfg.proxy.sshListenAddr, { host: "0.0.0.0", port: 443 });
  assert.deepEqual(cfg.proxy.tunnelListenAddr, { host: "0.0.0.0", port: 443 });
  const explicit = resolve(
    {},
    "auth_service:\n  proxy_listener_mode: multiplex\nproxy_service:\n  tunnel_listen_addr: :3024\n",
  );
  assert.deepEqual(explicit.proxy.tunnelListenAddr, { host: "0.0.0.0", port: 3024 });
  assert.deepEqual(explicit.proxy.sshListenAddr, { host: "0.0.0.0", port: 3080 });
});

Deno.test("resolveProcessConfig() reads proxy and debug settings from the environment", () => {
  const cfg = resolve({}, undefined, {
    https_proxy: "http://lower:1",
    HTTPS_PROXY: "http://proxy.example.com:8080/",
    http_proxy: "proxy.example.com:8080",
    no_proxy: "localhost,127.0.0.1",
    TELEPORT_TUNNEL_PUBLIC_ADDR: "internal_proxy.example.com:443",
    TELEPORT_DEBUG: "1",
  });
  assert.deepEqual(cfg.proxyEnv, {
    httpsProxy: "http://proxy.example.com:8080/",
    httpProxy: "proxy.example.com:8080",
    noProxy: "localhost,127.0.0.1",
  });
  assert.deepEqual(cfg.tunnelPublicAddr, { host: "internal_proxy.example.com", port: 443 });
  assert.equal(cfg.debug, true);
  assert.equal(resolve({ debug: false }, undefined, { TELEPORT_DEBUG: "1" }).debug, false);
});

Deno.test("resolveProcessConfig() carries the file's auth, proxy and ssh settings", () => {
  const cfg = resolve(
    {},
    `teleport:
  log:
    severity: error
    format:
      output: json
  diag_addr: 127.0.0.1:3000
auth_service:
  public_addr: [auth.example.com]
  tokens: ["proxy,node:abc"]
  authentication:
    second_factor: "off"
proxy_service:
  public_addr: proxy.example.com
  ssh_public_addr: proxy.example.com
  tunnel_public_addr: internal.example.com
ssh_service:
  public_addr: node.example.com
`,
  );
  assert.equal(cfg.log.severity, "ERROR");
  assert.equal(cfg.log.format, "json");
  assert.deepEqual(cfg.diagAddr, { host: "127.0.0.1", port: 3000 });
  assert.deepEqual(cfg.auth.publicAddrs, [{ host: "auth.example.com", port: 3025 }]);
  assert.deepEqual(cfg.auth.staticTokens, [{ roles: ["proxy", "node"], token: "abc" }]);
  assert.equal(cfg.auth.secondFactor, "off");
  assert.deepEqual(cfg.proxy.publicAddrs, [{ host: "proxy.example.com", port: 3080 }]);
  assert.deepEqual(cfg.proxy.sshPublicAddrs, [{ host: "proxy.example.com", port: 3023 }]);
  assert.deepEqual(cfg.proxy.tunnelPublicAddrs, [{ host: "internal.example.com", port: 3024 }]);
  assert.deepEqual(cfg.ssh.publicAddrs, [{ host: "node.example.com", port: 3022 }]);
});

Deno.test("parseLabels() parses key=value lists and rejects dynamic labels", () => {
  assert.deepEqual(parseLabels(""), {});
  assert.deepEqual(parseLabels("a=1, b=x=y ,c=,"), { a: "1", b: "x=y", c: "" });
  assert.deepEqual(Object.keys(parseLabels("__proto__=x")), ["__proto__"]);
  assertBad(() => parseLabels("cmd=[1h:uname]"), /dynamic label "cmd"/);
  assertBad(() => parseLabels("=v"), /invalid label key ""/);
});

Deno.test("parseRoles() names the source given as where", () => {
  assert.deepEqual(parseRoles("auth,proxy"), ["auth", "proxy"]);
  assertBad(() => parseRoles("x", "--roles flag"), /^Cannot parse --roles flag "x"/);
});

Deno.test("loadConfigForStart() prefers --config, then TELEPORT_CONFIG_FILE, then the default path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = `${dir}/a.yaml`;
    const b = `${dir}/b.yaml`;
    const d = `${dir}/default.yaml`;
    await Deno.writeTextFile(a, "teleport:\n  nodename: a\n");
    await Deno.writeTextFile(b, "teleport:\n  nodename: b\n");
    const env = { TELEPORT_CONFIG_FILE: b };
    assert.equal((await loadConfigForStart({ config: a }, env, d))?.teleport.nodeName, "a");
    assert.equal((await loadConfigForStart({}, env, d))?.teleport.nodeName, "b");
    assert.equal(await loadConfigForStart({}, {}, d), undefined);
    await Deno.writeTextFile(d, "teleport:\n  nodename: d\n");
    assert.equal((await loadConfigForStart({}, {}, d))?.teleport.nodeName, "d");
    await Deno.writeTextFile(d, "bogus: 1\n");
    await assert.rejects(() => loadConfigForStart({}, {}, d), BadParameterError);
    await assert.rejects(
      () => loadConfigForStart({ config: `${dir}/missing.yaml` }, {}, d),
      /does not exist/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveProcessConfig() reads teleport.drain_timeout and defaults it", () => {
  const base = resolveProcessConfig({ flags: {}, hostname: "h", env: {} });
  assert.equal(base.drainTimeoutMs, GRACEFUL_SHUTDOWN_TIMEOUT_MS);
  const file = parseFileConfig("version: v3\nteleport:\n  drain_timeout: 90s\n");
  const cfg = resolveProcessConfig({ file, flags: {}, hostname: "h", env: {} });
  assert.equal(cfg.drainTimeoutMs, 90_000);
});

Deno.test("resolveProcessConfig() takes proxy_protocol, the reload interval and --insecure-no-tls", () => {
  const plain = resolveProcessConfig({ flags: {}, hostname: "h", env: {} });
  assert.equal(plain.proxy.proxyProtocol, "unspecified");
  assert.equal(plain.proxy.httpsKeyPairsReloadIntervalMs, 0);
  assert.equal(plain.proxy.disableTls, false);
  assert.equal(plain.insecure, false);
  const file = parseFileConfig(
    "proxy_service:\n  proxy_protocol: on\n  https_keypairs_reload_interval: 1m\n",
  );
  const cfg = resolveProcessConfig({
    file,
    flags: { insecureNoTls: true },
    hostname: "h",
    env: {},
  });
  assert.equal(cfg.proxy.proxyProtocol, "on");
  assert.equal(cfg.proxy.httpsKeyPairsReloadIntervalMs, 60_000);
  assert.equal(cfg.proxy.disableTls, true);
  // --insecure-no-tls is not --insecure (skip verification).
  assert.equal(cfg.insecure, false);
});
