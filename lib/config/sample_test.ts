import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import { formatSampleConfig, parseFileConfig, resolveProcessConfig } from "./mod.ts";

Deno.test("formatSampleConfig() loads back and resolves when no options are given", () => {
  const text = formatSampleConfig();
  const file = parseFileConfig(text, "sample.yaml");
  assert.equal(file.version, "v3");
  assert.equal(file.authService.proxyListenerMode, "multiplex");
  assert.ok(file.authService.present && file.proxyService.present && file.sshService.present);
  const cfg = resolveProcessConfig({ file, flags: {}, hostname: "h", env: {} });
  assert.deepEqual(cfg.roles, { auth: true, proxy: true, node: true });
  assert.equal(cfg.dataDir, "/var/lib/teleport");
  assert.equal(cfg.nodeName, "h");
  assert.equal(cfg.auth.clusterName, undefined);
  assert.deepEqual(cfg.proxy.tunnelListenAddr, cfg.proxy.webListenAddr);
});

Deno.test("formatSampleConfig() writes the given options when they are set", () => {
  const text = formatSampleConfig({
    clusterName: "teleport.example.com",
    nodeName: "node-1",
    dataDir: "/srv/teleport data",
    publicAddr: "proxy.example.com",
  });
  const file = parseFileConfig(text);
  const cfg = resolveProcessConfig({ file, flags: {}, hostname: "h", env: {} });
  assert.equal(cfg.auth.clusterName, "teleport.example.com");
  assert.equal(cfg.nodeName, "node-1");
  assert.equal(cfg.dataDir, "/srv/teleport data");
  assert.deepEqual(cfg.proxy.publicAddrs, [{ host: "proxy.example.com", port: 3080 }]);
  assert.equal(cfg.auth.proxyListenerMode, "multiplex");
});

Deno.test("formatSampleConfig() comments every section and shows the optional keys", () => {
  const text = formatSampleConfig();
  for (
    const key of [
      "teleport:",
      "auth_service:",
      "proxy_service:",
      "ssh_service:",
      "proxy_listener_mode: multiplex",
      "# auth_server:",
      "# proxy_server:",
      "# ca_pin:",
      "# tokens:",
      "# https_keypairs:",
      "# tunnel_public_addr:",
      "# labels:",
    ]
  ) {
    assert.ok(text.includes(key), key);
  }
  // Every uncommented key is preceded by a comment line or a section header.
  assert.ok(text.split("\n").filter((l) => l.trimStart().startsWith("#")).length > 40);
});

Deno.test("formatSampleConfig() throws when an option is invalid", () => {
  assert.throws(() => formatSampleConfig({ publicAddr: "bad host" }), BadParameterError);
  assert.throws(() => formatSampleConfig({ clusterName: "a b" }), BadParameterError);
});
