import assert from "node:assert/strict";
import { defaultClusterName, defaultNodeName, DEFAULTS, ROLES } from "./mod.ts";

Deno.test("DEFAULTS holds Teleport's default ports and TTLs", () => {
  assert.equal(DEFAULTS.webPort, 3080);
  assert.equal(DEFAULTS.nodeSshPort, 3022);
  assert.equal(DEFAULTS.proxySshPort, 3023);
  assert.equal(DEFAULTS.tunnelPort, 3024);
  assert.equal(DEFAULTS.authPort, 3025);
  assert.equal(DEFAULTS.peerPort, 3021);
  assert.equal(DEFAULTS.kubeProxyPort, 3026);
  assert.equal(DEFAULTS.desktopPort, 3028);
  assert.equal(DEFAULTS.mysqlPort, 3036);
  assert.equal(DEFAULTS.dataDir, "/var/lib/teleport");
  assert.equal(DEFAULTS.configPath, "/etc/teleport.yaml");
  assert.equal(DEFAULTS.tokenTtlMs, 30 * 60_000);
  assert.equal(DEFAULTS.userInviteTtlMs, 3_600_000);
  assert.equal(DEFAULTS.certTtlMs, 12 * 3_600_000);
  assert.equal(DEFAULTS.maxCertTtlMs, 30 * 3_600_000);
  assert.equal(DEFAULTS.minCertTtlMs, 60_000);
  assert.equal(DEFAULTS.proxyListenerMode, "separate");
  assert.equal(DEFAULTS.sampleProxyListenerMode, "multiplex");
  assert.equal(DEFAULTS.logSeverity, "INFO");
  assert.deepEqual([...DEFAULTS.roles], ["auth", "proxy", "node"]);
});

Deno.test("DEFAULTS is frozen, roles included, when code tries to change it", () => {
  assert.ok(Object.isFrozen(DEFAULTS));
  assert.ok(Object.isFrozen(ROLES));
  assert.throws(() => {
    (DEFAULTS as { webPort: number }).webPort = 1;
  }, TypeError);
});

Deno.test("defaultClusterName() uses the host name, or localhost when it is empty", () => {
  assert.equal(defaultClusterName("host1"), "host1");
  assert.equal(defaultClusterName(" "), "localhost");
  assert.equal(defaultNodeName(""), "localhost");
});
