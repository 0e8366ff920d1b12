import assert from "node:assert/strict";
import { resolveProcessConfig } from "../config/mod.ts";
import { checkListenAddrs, listenAddrsOf, TeleportProcess } from "./process.ts";

Deno.test("TeleportProcess.start() names the config key of a busy port and creates nothing", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
  const port = (busy.addr as Deno.NetAddr).port;
  const dataDir = await Deno.makeTempDir({ prefix: "tp-bind-" });
  try {
    const config = resolveProcessConfig({
      flags: { roles: "auth", dataDir, clusterName: "example" },
      hostname: "testhost",
      env: {},
    });
    config.auth.listenAddr = { host: "127.0.0.1", port };
    await assert.rejects(
      TeleportProcess.start({ config, hostname: "testhost" }),
      new RegExp(
        `^BadParameterError: Cannot listen on auth_service\\.listen_addr 127\\.0\\.0\\.1:${port}: the port is in use .*change auth_service\\.listen_addr$`,
      ),
    );
    // No backend, no CAs, no admin identity were created.
    assert.deepEqual([...Deno.readDirSync(dataDir)].map((e) => e.name), []);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("checkListenAddrs() names the key of an address no interface has", () => {
  assert.throws(
    () =>
      checkListenAddrs([{
        key: "ssh_service.listen_addr",
        addr: { host: "192.0.2.1", port: 3022 },
      }]),
    /^BadParameterError: Cannot listen on ssh_service\.listen_addr 192\.0\.2\.1:3022: no network interface of this machine has address 192\.0\.2\.1; change ssh_service\.listen_addr$/,
  );
});

Deno.test("listenAddrsOf() lists each fixed port once with its key", () => {
  const config = resolveProcessConfig({
    flags: { roles: "auth,proxy,node" },
    hostname: "testhost",
    env: {},
  });
  config.ssh.listenAddr = { host: "0.0.0.0", port: 0 };
  // Multiplex: SSH and tunnels share the web port.
  config.auth.proxyListenerMode = "multiplex";
  assert.deepEqual(listenAddrsOf(config).map((a) => a.key), [
    "auth_service.listen_addr",
    "proxy_service.web_listen_addr",
  ]);
  config.auth.proxyListenerMode = "separate";
  config.proxy.sshListenAddr = config.proxy.webListenAddr;
  assert.deepEqual(listenAddrsOf(config).map((a) => a.key), [
    "auth_service.listen_addr",
    "proxy_service.web_listen_addr",
    "proxy_service.tunnel_listen_addr",
  ]);
});
