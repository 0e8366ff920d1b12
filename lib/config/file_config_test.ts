import assert from "node:assert/strict";
import { AccessDeniedError, BadParameterError, NotFoundError } from "../errors/mod.ts";
import { loadConfigFile, parseFileConfig } from "./mod.ts";

const PATH = "/etc/teleport.yaml";

/** Asserts that parsing fails with a one-line BadParameterError matching `re`. */
function assertBad(text: string, re: RegExp, secret?: string): string {
  let message = "";
  assert.throws(
    () => parseFileConfig(text, PATH),
    (e: unknown) => {
      assert.ok(e instanceof BadParameterError, `not a BadParameterError: ${e}`);
      message = e.message;
      return true;
    },
  );
  assert.match(message, re);
  assert.ok(message.startsWith(`Cannot load config ${PATH}: `), message);
  assert.ok(!message.includes("\n"), `multi-line message: ${message}`);
  if (secret !== undefined) assert.ok(!message.includes(secret), `secret leaked: ${message}`);
  return message;
}

Deno.test("parseFileConfig() returns an empty config when the file is empty or only comments", () => {
  for (const text of ["", "\n\n", "# nothing here\n"]) {
    const cfg = parseFileConfig(text, PATH);
    assert.equal(cfg.version, "v1");
    assert.equal(cfg.path, PATH);
    assert.equal(cfg.authService.enabled, true);
    assert.equal(cfg.authService.present, false);
    assert.equal(cfg.proxyService.enabled, true);
    assert.equal(cfg.sshService.enabled, true);
    assert.deepEqual(cfg.teleport.authServers, []);
  }
});

Deno.test("parseFileConfig() reads seed 003's proxy with two public_addr entries and tunnel_public_addr", () => {
  const cfg = parseFileConfig(
    `version: v3
teleport:
  proxy_server: internal_proxy.example.com:3024
proxy_service:
  enabled: true
  public_addr:
    - external_proxy.example.com:443
    - internal_proxy.example.com:443
  tunnel_public_addr: internal_proxy.example.com:3024
`,
    PATH,
  );
  assert.equal(cfg.version, "v3");
  assert.deepEqual(cfg.teleport.proxyServer, { host: "internal_proxy.example.com", port: 3024 });
  assert.deepEqual(cfg.proxyService.publicAddrs, [
    { host: "external_proxy.example.com", port: 443 },
    { host: "internal_proxy.example.com", port: 443 },
  ]);
  assert.deepEqual(cfg.proxyService.tunnelPublicAddrs, [
    { host: "internal_proxy.example.com", port: 3024 },
  ]);
  assert.equal(cfg.lines["proxy_service.public_addr[1]"], 8);
});

Deno.test("parseFileConfig() reads seed 002's proxy with enabled: yes and https_keypairs", () => {
  const cfg = parseFileConfig(
    `# This section configures the 'proxy service'
proxy_service:
    # Turns 'proxy' role on. Default is 'yes'
    enabled: yes

    public_addr: proxy.example.com:3080

    https_keypairs:
    - key_file: /var/lib/teleport/webproxy_key.pem
      cert_file: /var/lib/teleport/webproxy_cert.pem
`,
    PATH,
  );
  assert.equal(cfg.proxyService.enabled, true);
  assert.deepEqual(cfg.proxyService.publicAddrs, [{ host: "proxy.example.com", port: 3080 }]);
  assert.deepEqual(cfg.proxyService.httpsKeyPairs, [{
    keyFile: "/var/lib/teleport/webproxy_key.pem",
    certFile: "/var/lib/teleport/webproxy_cert.pem",
  }]);
});

Deno.test("parseFileConfig() reads seed 002's node config with auth_token, ca_pin and auth_servers", () => {
  const cfg = parseFileConfig(
    `teleport:
  auth_token: "1ac590d36493acdaa2387bc1c492db1a"
  ca_pin: "sha256:7e12c17c20d9cb504bbcb3f0236be3f446861f1396dcbb44425fe28ec1c108f1"
  auth_servers:
    - "10.12.0.6:3025"
`,
    PATH,
  );
  assert.equal(cfg.teleport.authToken, "1ac590d36493acdaa2387bc1c492db1a");
  assert.deepEqual(cfg.teleport.caPins, [
    "sha256:7e12c17c20d9cb504bbcb3f0236be3f446861f1396dcbb44425fe28ec1c108f1",
  ]);
  assert.deepEqual(cfg.teleport.authServers, [{ host: "10.12.0.6", port: 3025 }]);
});

Deno.test("parseFileConfig() accepts public_addr as a flow list (seed 000) and ca_pin as a list", () => {
  const cfg = parseFileConfig(
    `ssh_service:
  public_addr: ["service-one.example.com", "service-two.example.com"]
teleport:
  ca_pin: [ "sha256:aa", "sha256:bb" ]
  auth_server: auth.example.com
`,
    PATH,
  );
  assert.deepEqual(cfg.sshService.publicAddrs, [
    { host: "service-one.example.com", port: 3022 },
    { host: "service-two.example.com", port: 3022 },
  ]);
  assert.deepEqual(cfg.teleport.caPins, ["sha256:aa", "sha256:bb"]);
  assert.deepEqual(cfg.teleport.authServers, [{ host: "auth.example.com", port: 3025 }]);
});

Deno.test("parseFileConfig() reads every supported key of a full v3 config", () => {
  const cfg = parseFileConfig(
    `version: v3
teleport:
  nodename: node1
  data_dir: /srv/teleport
  pid_file: /run/teleport.pid
  log:
    output: STDOUT
    severity: warning
    format:
      output: JSON
      extra_fields: [level, timestamp]
  join_params:
    token_name: abc
    method: token
  diag_addr: 127.0.0.1
auth_service:
  enabled: "yes"
  listen_addr: 0.0.0.0:4025
  cluster_name: example.com
  public_addr: auth.example.com
  tokens:
    - "node:secret1"
    - "node, Proxy:abc:def"
  proxy_listener_mode: multiplex
  authentication:
    type: local
    second_factor: OTP
    webauthn:
      rp_id: example.com
proxy_service:
  enabled: no
  listen_addr: :4023
  web_listen_addr: "[::]:443"
  tunnel_listen_addr: 0.0.0.0
  ssh_public_addr: ssh.example.com
  https_key_file: /k.pem
  https_cert_file: /c.pem
  https_keypairs: []
ssh_service:
  enabled: false
  listen_addr: 10.0.0.1
  labels:
    env: prod
    tier: 1
    debug: true
    example.com/role: web
    empty:
`,
    PATH,
  );
  const t = cfg.teleport;
  assert.equal(t.nodeName, "node1");
  assert.equal(t.dataDir, "/srv/teleport");
  assert.equal(t.pidFile, "/run/teleport.pid");
  assert.deepEqual(t.log, {
    output: "stdout",
    severity: "WARN",
    format: "json",
    extraFields: ["level", "timestamp"],
  });
  assert.deepEqual(t.joinParams, { tokenName: "abc", method: "token" });
  assert.deepEqual(t.diagAddr, { host: "127.0.0.1", port: 3081 });
  const a = cfg.authService;
  assert.equal(a.enabled, true);
  assert.equal(a.present, true);
  assert.deepEqual(a.listenAddr, { host: "0.0.0.0", port: 4025 });
  assert.equal(a.clusterName, "example.com");
  assert.deepEqual(a.publicAddrs, [{ host: "auth.example.com", port: 3025 }]);
  assert.deepEqual(a.tokens, [
    { roles: ["node"], token: "secret1" },
    { roles: ["node", "proxy"], token: "abc:def" },
  ]);
  assert.equal(a.proxyListenerMode, "multiplex");
  assert.deepEqual(a.authentication, {
    type: "local",
    secondFactor: "otp",
    webauthnRpId: "example.com",
  });
  const p = cfg.proxyService;
  assert.equal(p.enabled, false);
  assert.deepEqual(p.listenAddr, { host: "0.0.0.0", port: 4023 });
  assert.deepEqual(p.webListenAddr, { host: "::", port: 443 });
  assert.deepEqual(p.tunnelListenAddr, { host: "0.0.0.0", port: 3024 });
  assert.deepEqual(p.sshPublicAddrs, [{ host: "ssh.example.com", port: 3023 }]);
  assert.deepEqual(p.httpsKeyPairs, [{ keyFile: "/k.pem", certFile: "/c.pem" }]);
  const s = cfg.sshService;
  assert.equal(s.enabled, false);
  assert.deepEqual(s.listenAddr, { host: "10.0.0.1", port: 3022 });
  assert.deepEqual(s.labels, {
    env: "prod",
    tier: "1",
    debug: "true",
    "example.com/role": "web",
    empty: "",
  });
  assert.equal(cfg.lines["auth_service.tokens[1]"], 23);
});

Deno.test("parseFileConfig() treats a present section without enabled as enabled", () => {
  const cfg = parseFileConfig("auth_service:\n  cluster_name: c\nssh_service:\n", PATH);
  assert.equal(cfg.authService.enabled, true);
  assert.equal(cfg.sshService.enabled, true);
  assert.equal(cfg.sshService.present, true);
  assert.equal(cfg.proxyService.present, false);
});

Deno.test("parseFileConfig() accepts v1, v2 and v3 and empty optional values", () => {
  for (const v of ["v1", "v2", "v3"]) {
    assert.equal(parseFileConfig(`version: ${v}\n`).version, v);
  }
  const cfg = parseFileConfig(`teleport:\n  ca_pin: ""\n  diag_addr: ""\n  nodename:\n`);
  assert.deepEqual(cfg.teleport.caPins, []);
  assert.equal(cfg.teleport.diagAddr, undefined);
  assert.equal(cfg.teleport.nodeName, undefined);
});

Deno.test("parseFileConfig() follows YAML anchors and aliases", () => {
  const cfg = parseFileConfig(
    `teleport:\n  nodename: &n node7\nauth_service:\n  cluster_name: *n\n`,
  );
  assert.equal(cfg.authService.clusterName, "node7");
});

Deno.test("parseFileConfig() ignores an unsupported service section when it is disabled", () => {
  const cfg = parseFileConfig("app_service:\n  enabled: no\n  apps: []\n");
  assert.equal(cfg.version, "v1");
  assertBad(
    "app_service:\n  enabled: yes\n",
    /line 1: "app_service" is a Teleport setting this program does not support/,
  );
});

Deno.test("parseFileConfig() names the key path and line when a key is unknown", () => {
  const msg = assertBad(
    `version: v3
teleport:
  nodename: x
auth_service:
  enabled: yes
  cluster_name: c
  listen_adr: 0.0.0.0:3025
`,
    /line 7: unknown key "auth_service.listen_adr" \(did you mean "listen_addr"\?\)$/,
  );
  assert.equal(
    msg,
    `Cannot load config ${PATH}: line 7: unknown key "auth_service.listen_adr" (did you mean "listen_addr"?)`,
  );
  assertBad(
    "teleportt:\n  nodename: x\n",
    /line 1: unknown key "teleportt" \(did you mean "teleport"\?\)/,
  );
  assertBad(
    "teleport:\n  log:\n    format:\n      colour: red\n",
    /line 4: unknown key "teleport.log.format.colour"$/,
  );
  assertBad(
    "proxy_service:\n  https_keypairs:\n    - key_file: a\n      cert: b\n",
    /line 4: unknown key "proxy_service.https_keypairs\[0\].cert" \(did you mean "cert_file"\?\)/,
  );
  assertBad(
    "ssh_service:\n  commands: []\n",
    /line 2: "ssh_service.commands" is a Teleport setting this program does not support/,
  );
  assertBad("constructor: 1\n", /unknown key "constructor"/);
  assertBad("teleport:\n  toString: x\n", /unknown key "teleport.toString"/);
});

Deno.test("parseFileConfig() rejects a wrong type with the key path and line", () => {
  assertBad("teleport: [a, b]\n", /line 1: "teleport" must be a mapping, not a list/);
  assertBad(
    "teleport:\n  nodename:\n    a: b\n",
    /line 3: "teleport.nodename" must be a string, not a mapping/,
  );
  assertBad(
    "auth_service:\n  enabled: maybe\n",
    /line 2: "auth_service.enabled" must be a boolean \(yes\/no, true\/false\), not "maybe"/,
  );
  assertBad("auth_service:\n  enabled: 1\n", /"auth_service.enabled" must be a boolean/);
  assertBad(
    "auth_service:\n  tokens: node:abc\n",
    /line 2: "auth_service.tokens" must be a list, not a string/,
  );
  assertBad(
    "proxy_service:\n  public_addr: {a: b}\n",
    /"proxy_service.public_addr" must be a string or a list, not a mapping/,
  );
  assertBad("ssh_service:\n  labels: [a]\n", /"ssh_service.labels" must be a mapping, not a list/);
  assertBad(
    "ssh_service:\n  labels:\n    env: [a]\n",
    /line 3: "ssh_service.labels.env" must be a string, not a list/,
  );
  assertBad(
    "teleport:\n  log:\n    severity: LOUD\n",
    /line 3: "teleport.log.severity" must be one of DEBUG, INFO, WARN, ERROR, not "LOUD"/,
  );
  assertBad(
    "teleport:\n  log:\n    format:\n      output: xml\n",
    /"teleport.log.format.output" must be one of text, json/,
  );
  assertBad(
    "teleport:\n  log:\n    format:\n      extra_fields: [level, color]\n",
    /"teleport.log.format.extra_fields\[1\]" must be one of level, timestamp, component, caller/,
  );
  assertBad("teleport:\n  log:\n    output: syslog\n", /syslog" is not supported/);
  assertBad(
    "auth_service:\n  proxy_listener_mode: mux\n",
    /must be one of multiplex, separate, not "mux"/,
  );
  assertBad(
    "auth_service:\n  authentication:\n    type: github\n",
    /"auth_service.authentication.type" must be one of local/,
  );
  assertBad(
    "auth_service:\n  authentication:\n    second_factor: sms\n",
    /must be one of off, otp, on, optional, not "sms"/,
  );
  for (const v of ["webauthn", "U2F"]) {
    assertBad(
      `auth_service:\n  authentication:\n    second_factor: ${v}\n`,
      new RegExp(
        `line 3: "auth_service.authentication.second_factor: ${v}" is not supported .*use one of off, otp, on, optional`,
      ),
    );
  }
  assertBad(
    "teleport:\n  join_params:\n    token_name: t\n    method: iam\n",
    /"teleport.join_params.method" must be one of token/,
  );
  assertBad(
    "teleport:\n  join_params:\n    method: token\n",
    /line 2: "teleport.join_params.token_name" is required/,
  );
  assertBad(
    "proxy_service:\n  https_keypairs:\n    - key_file: a\n",
    /"proxy_service.https_keypairs\[0\].cert_file" is required/,
  );
  assertBad(
    "teleport:\n  ca_pin: [a, [b]]\n",
    /"teleport.ca_pin\[1\]" must be a string, not a list/,
  );
  assertBad(
    "auth_service:\n  cluster_name: a/b\n",
    /line 2: invalid "auth_service.cluster_name" "a\/b"/,
  );
  assertBad(
    'ssh_service:\n  labels:\n    "bad key": x\n',
    /line 3: invalid label key "ssh_service.labels.bad key"/,
  );
});

Deno.test("parseFileConfig() rejects an unknown version", () => {
  assertBad("version: v4\n", /line 1: "version" must be one of v1, v2, v3, not "v4"/);
  assertBad("version: 3\n", /not "3"/);
});

Deno.test("parseFileConfig() rejects a bad address or port with the key path and line", () => {
  assertBad(
    "auth_service:\n  listen_addr: 999.1.1.1:3025\n",
    /line 2: .*auth_service\.listen_addr.*"999\.1\.1\.1" is not a valid IPv4 address/,
  );
  assertBad(
    "auth_service:\n  listen_addr: 0.0.0.0:99999\n",
    /line 2: invalid address for "auth_service.listen_addr": port "99999" is not a number between 0 and 65535/,
  );
  assertBad(
    'proxy_service:\n  web_listen_addr: "host:port"\n',
    /invalid address for "proxy_service.web_listen_addr": port "port"/,
  );
  assertBad(
    "teleport:\n  auth_server: a:b:c\n",
    /line 2: invalid address for "teleport.auth_server": too many colons/,
  );
  assertBad(
    'proxy_service:\n  public_addr:\n    - ok.example.com\n    - "bad host"\n',
    /line 4: invalid address for "proxy_service.public_addr\[1\]"/,
  );
  assertBad(
    'proxy_service:\n  public_addr:\n    - ""\n',
    /line 3: invalid address for "proxy_service.public_addr\[0\]": address is empty/,
  );
  assertBad(
    "ssh_service:\n  public_addr:\n    -\n",
    /line 3: "ssh_service.public_addr\[0\]" must not be empty/,
  );
});

Deno.test("parseFileConfig() rejects duplicate keys at any depth", () => {
  assertBad(
    "teleport:\n  nodename: a\nteleport:\n  nodename: b\n",
    /line 3: duplicate key "teleport"/,
  );
  assertBad(
    "auth_service:\n  listen_addr: :1\n  listen_addr: :2\n",
    /line 3: duplicate key "auth_service.listen_addr"/,
  );
  assertBad(
    "ssh_service:\n  labels:\n    a: 1\n    a: 2\n",
    /line 4: duplicate key "ssh_service.labels.a"/,
  );
});

Deno.test("parseFileConfig() rejects roots that are not mappings and invalid YAML", () => {
  assertBad("- a\n- b\n", /line 1: the top level must be a mapping of sections, not a list/);
  assertBad("just text\n", /the top level must be a mapping of sections, not a string/);
  assertBad("teleport:\n  nodename: [a\n", /line \d+: invalid YAML: /);
  assertBad("a: 1\n---\nb: 2\n", /invalid YAML: the file holds more than one YAML document/);
  assertBad("teleport:\n\tnodename: x\n", /invalid YAML/);
  assertBad("? [a]\n: b\n", /keys of "the top level" must be strings/);
  assertBad("teleport:\n  nodename: *nope\n", /line 2: invalid YAML: alias "\*nope" has no anchor/);
});

Deno.test("parseFileConfig() rejects both auth_server and auth_servers", () => {
  assertBad(
    "teleport:\n  auth_server: a:3025\n  auth_servers: [b:3025]\n",
    /line 3: "teleport.auth_server" and "teleport.auth_servers" cannot both be set/,
  );
  assertBad(
    "teleport:\n  auth_server: a\n  proxy_server: p\n",
    /line 3: "teleport.proxy_server" and "teleport.auth_server\(s\)" cannot both be set/,
  );
  assertBad(
    "teleport:\n  auth_token: x\n  join_params:\n    token_name: y\n",
    /line 3: "teleport.auth_token" and "teleport.join_params" cannot both be set/,
  );
});

Deno.test("parseFileConfig() requires https_key_file and https_cert_file together", () => {
  assertBad(
    "proxy_service:\n  https_key_file: /k.pem\n",
    /line 2: "proxy_service.https_key_file" is set without "proxy_service.https_cert_file"; give both or neither/,
  );
  assertBad(
    "proxy_service:\n  enabled: yes\n  https_cert_file: /c.pem\n",
    /line 3: "proxy_service.https_cert_file" is set without "proxy_service.https_key_file"/,
  );
  const cfg = parseFileConfig(
    "proxy_service:\n  https_keypairs:\n  - key_file: /a\n    cert_file: /b\n  https_key_file: /k\n  https_cert_file: /c\n",
  );
  assert.deepEqual(cfg.proxyService.httpsKeyPairs, [
    { keyFile: "/k", certFile: "/c" },
    { keyFile: "/a", certFile: "/b" },
  ]);
});

Deno.test("parseFileConfig() never prints the token value when a static token is bad", () => {
  const secret = "s3cr3t-t0ken-value";
  assertBad(
    `auth_service:\n  tokens:\n    - "${secret}"\n`,
    /line 3: "auth_service.tokens\[0\]" must look like "<roles>:<token>"/,
    secret,
  );
  assertBad(
    `auth_service:\n  tokens:\n    - "node:ok"\n    - "db:${secret}"\n`,
    /line 4: "auth_service.tokens\[1\]" has an unknown role; roles are auth, proxy, node/,
    secret,
  );
  assertBad(`auth_service:\n  tokens:\n    - "${secret}:node"\n`, /has an unknown role/, secret);
  assertBad(
    `auth_service:\n  tokens:\n    - "node:"\n`,
    /"auth_service.tokens\[0\]" has an empty token/,
  );
  assertBad(
    `auth_service:\n  tokens:\n    - {node: "${secret}"}\n`,
    /"auth_service.tokens\[0\]" must be a string, not a mapping/,
    secret,
  );
  assertBad(`auth_service:\n  tokens:\n    - 123456789\n`, /must look like/, "123456789");
  assertBad(
    `teleport:\n  auth_token: ["${secret}"]\n`,
    /"teleport.auth_token" must be a string, not a list/,
    secret,
  );
  assertBad(`teleport:\n  auth_token: ""\n`, /"teleport.auth_token" must not be empty/);
});

Deno.test("parseFileConfig() labels messages without a file name when no path is given", () => {
  assert.throws(
    () => parseFileConfig("nope: 1\n"),
    (e: unknown) =>
      e instanceof BadParameterError &&
      e.message === 'Cannot load config: line 1: unknown key "nope"',
  );
});

Deno.test("loadConfigFile() reads a file and names it in errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/good.yaml`;
    await Deno.writeTextFile(good, "version: v3\nteleport:\n  nodename: n1\n");
    const cfg = await loadConfigFile(good);
    assert.equal(cfg.teleport.nodeName, "n1");
    assert.equal(cfg.path, good);

    const bad = `${dir}/bad.yaml`;
    await Deno.writeTextFile(bad, "version: v3\nauth_service:\n  listen_adr: x\n");
    await assert.rejects(
      () => loadConfigFile(bad),
      (e: unknown) =>
        e instanceof BadParameterError &&
        e.message ===
          `Cannot load config ${bad}: line 3: unknown key "auth_service.listen_adr" (did you mean "listen_addr"?)`,
    );
    await assert.rejects(
      () => loadConfigFile(`${dir}/missing.yaml`),
      (e: unknown) =>
        e instanceof NotFoundError && e.message.includes(`${dir}/missing.yaml`) &&
        e.message.includes("does not exist"),
    );
    await assert.rejects(() => loadConfigFile(dir), BadParameterError);
    if (Deno.build.os !== "windows" && Deno.uid() !== 0) {
      const locked = `${dir}/locked.yaml`;
      await Deno.writeTextFile(locked, "");
      await Deno.chmod(locked, 0o000);
      await assert.rejects(() => loadConfigFile(locked), AccessDeniedError);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseFileConfig() reads teleport.connection_limits and refuses bad values", () => {
  const cfg = parseFileConfig(
    `teleport:
  connection_limits:
    max_connections: 20000
    max_pending_connections: 64
    max_total_connections: 30000
    handshake_timeout: 3s
    ssh_login_timeout: 1m
    descriptor_reserve: 500
    rates:
      - period: 1m
        average: 600
        burst: 50
      - period: 1s
        average: 100
`,
    PATH,
  );
  assert.deepEqual(cfg.teleport.connectionLimits, {
    maxConnections: 20000,
    maxPendingConnections: 64,
    maxTotalConnections: 30000,
    handshakeTimeoutMs: 3000,
    sshLoginTimeoutMs: 60_000,
    descriptorReserve: 500,
    unauthenticatedRate: { burst: 50, perMinute: 600 },
  });
  for (
    const [bad, why] of [
      ["max_connections: 0", /positive whole number/],
      ["max_pending_connections: lots", /positive whole number/],
      ["handshake_timeout: soon", /positive duration/],
      ["rates: [{ average: 5 }]", /needs "period" and "average"/],
      ["max_user: 5", /unknown key/],
    ] as const
  ) {
    assert.throws(
      () => parseFileConfig(`teleport:\n  connection_limits:\n    ${bad}\n`, PATH),
      (err: Error) => why.test(err.message),
      bad,
    );
  }
});

Deno.test("parseFileConfig() reads proxy_protocol on and off and leaves it unset otherwise", () => {
  assert.equal(
    parseFileConfig("proxy_service:\n  proxy_protocol: on\n").proxyService.proxyProtocol,
    "on",
  );
  assert.equal(
    parseFileConfig("proxy_service:\n  proxy_protocol: off\n").proxyService.proxyProtocol,
    "off",
  );
  assert.equal(
    parseFileConfig("proxy_service:\n  enabled: yes\n").proxyService.proxyProtocol,
    undefined,
  );
  for (const bad of ["yes", "true", "unspecified", "[on]"]) {
    assertBad(
      `proxy_service:\n  proxy_protocol: ${bad}\n`,
      /line 2: "proxy_service.proxy_protocol" must be "on" \(a load balancer sends PROXY headers\) or "off"/,
    );
  }
});

Deno.test("parseFileConfig() reads ssh_service.proxy_protocol on and off and refuses other values", () => {
  const read = (v: string) =>
    parseFileConfig(`ssh_service:\n  proxy_protocol: ${v}\n`).sshService.proxyProtocol;
  assert.equal(read("on"), "on");
  assert.equal(read("off"), "off");
  assert.equal(
    parseFileConfig("ssh_service:\n  enabled: yes\n").sshService.proxyProtocol,
    undefined,
  );
  assertBad(
    "ssh_service:\n  proxy_protocol: yes\n",
    /line 2: "ssh_service.proxy_protocol" must be "on" .* leave it out to refuse them/,
  );
});

Deno.test("parseFileConfig() reads https_keypairs_reload_interval with 0 as off and refuses junk", () => {
  const read = (v: string) =>
    parseFileConfig(`proxy_service:\n  https_keypairs_reload_interval: ${v}\n`).proxyService
      .httpsKeyPairsReloadIntervalMs;
  assert.equal(read("1h"), 3_600_000);
  assert.equal(read("30s"), 30_000);
  assert.equal(read("0"), 0);
  assert.equal(read("0s"), 0);
  assertBad(
    "proxy_service:\n  https_keypairs_reload_interval: soon\n",
    /line 2: "proxy_service.https_keypairs_reload_interval" must be a positive duration/,
  );
  assertBad(
    "proxy_service:\n  https_keypairs_reload_interval: -5s\n",
    /line 2: "proxy_service.https_keypairs_reload_interval" must be a positive duration/,
  );
});

Deno.test("parseFileConfig() reads teleport.storage for dir and postgresql", () => {
  assert.equal(parseFileConfig("teleport:\n  data_dir: /d\n", PATH).teleport.storage, undefined);
  assert.deepEqual(
    parseFileConfig("teleport:\n  storage:\n    type: dir\n    path: /srv/kv\n", PATH)
      .teleport.storage,
    { type: "dir", path: "/srv/kv" },
  );
  const pg = parseFileConfig(
    "teleport:\n  storage:\n    type: postgresql\n" +
      '    conn_string: "postgresql://teleport@db:5432/teleport?sslmode=verify-full&' +
      'sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem"\n' +
      "    password_file: /etc/teleport/pg-password\n",
    PATH,
  ).teleport.storage;
  assert.deepEqual(pg, {
    type: "postgresql",
    connString:
      "postgresql://teleport@db:5432/teleport?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem",
    passwordFile: "/etc/teleport/pg-password",
  });
});

Deno.test("parseFileConfig() rejects an incomplete or mixed teleport.storage", () => {
  assertBad(
    "teleport:\n  storage:\n    type: postgresql\n",
    /"teleport.storage.conn_string" is required with type postgresql/,
  );
  assertBad(
    "teleport:\n  storage:\n    type: dir\n    conn_string: postgresql://u:hunter2pw@db/t\n",
    /need type: postgresql/,
    "hunter2pw",
  );
  assertBad(
    "teleport:\n  storage:\n    type: postgresql\n    conn_string: mysql://u:hunter2pw@db/t\n",
    /"teleport.storage.conn_string" must be a postgresql:\/\/ URL/,
    "hunter2pw",
  );
  assertBad(
    "teleport:\n  storage:\n    type: etcd\n",
    /"teleport.storage.type" must be one of dir, postgresql, not "etcd"/,
  );
});

Deno.test("parseFileConfig() reads auth_service.audit_events_uri as a string or one-entry list", () => {
  const uri = "postgresql://teleport@db/teleport_audit#retention_period=720h";
  for (const value of [`"${uri}"`, `["${uri}"]`]) {
    const cfg = parseFileConfig(`auth_service:\n  audit_events_uri: ${value}\n`, PATH);
    assert.equal(cfg.authService.auditEventsUri, uri);
  }
  assert.equal(
    parseFileConfig("auth_service:\n  audit_events_uri: file:///var/log/tp\n", PATH)
      .authService.auditEventsUri,
    "file:///var/log/tp",
  );
  assertBad(
    `auth_service:\n  audit_events_uri: ["${uri}", "file:///x"]\n`,
    /"auth_service.audit_events_uri" takes one URI/,
  );
  assertBad(
    "auth_service:\n  audit_events_uri: dynamodb://events\n",
    /must be a postgresql:\/\/ or file:\/\/\/ URI/,
  );
});

Deno.test("parseFileConfig() reads auth_service.audit_sessions_uri", () => {
  for (const uri of ["postgresql://teleport@db/teleport_audit", "file:///mnt/shared/records"]) {
    const cfg = parseFileConfig(`auth_service:\n  audit_sessions_uri: "${uri}"\n`, PATH);
    assert.equal(cfg.authService.auditSessionsUri, uri);
  }
  assertBad(
    "auth_service:\n  audit_sessions_uri: s3://bucket/records\n",
    /must be a postgresql:\/\/ URI or an absolute file:\/\/\/ directory/,
  );
});
