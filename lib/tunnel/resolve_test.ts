import assert from "node:assert/strict";
import { parseHostPort, resolveTunnelAddr } from "./resolve.ts";

const proxyServer = { host: "proxy.example.com", port: 3080 };
const find = (ssh: Record<string, string>, tls: boolean) => ({
  proxy: { ssh, tls_routing_enabled: tls },
});

Deno.test("resolveTunnelAddr() lets TELEPORT_TUNNEL_PUBLIC_ADDR win", () => {
  const a = resolveTunnelAddr({
    find: find({ public_addr: "ext.example.com:443" }, true),
    proxyServer,
    envAddr: "internal.example.com:443",
  });
  assert.deepEqual(a, {
    host: "internal.example.com",
    port: 443,
    tls: true,
    source: "TELEPORT_TUNNEL_PUBLIC_ADDR",
  });
  const b = resolveTunnelAddr({ find: find({}, false), proxyServer, envAddr: "internal" });
  assert.equal(b.port, 3024);
  assert.throws(
    () => resolveTunnelAddr({ find: find({}, false), proxyServer, envAddr: "a:b:c/" }),
    {
      name: "BadParameterError",
    },
  );
});

Deno.test("resolveTunnelAddr() with TLS routing uses public_addr, then web_listen_addr", () => {
  assert.deepEqual(
    resolveTunnelAddr({
      find: find({ public_addr: "p.example.com:443", web_listen_addr: "0.0.0.0:3080" }, true),
      proxyServer,
    }),
    { host: "p.example.com", port: 443, tls: true, source: "find public_addr" },
  );
  assert.deepEqual(
    resolveTunnelAddr({ find: find({ web_listen_addr: "0.0.0.0:3080" }, true), proxyServer }),
    { host: "proxy.example.com", port: 3080, tls: true, source: "find web_listen_addr" },
  );
});

Deno.test("resolveTunnelAddr() without TLS routing follows Teleport's order and forces 3024", () => {
  const all = {
    ssh_tunnel_public_addr: "tun.example.com:4024",
    ssh_public_addr: "ssh.example.com:3023",
    public_addr: "web.example.com:443",
    tunnel_listen_addr: "0.0.0.0:3024",
    web_listen_addr: "0.0.0.0:3080",
  };
  const pick = (ssh: Record<string, string>) => {
    const a = resolveTunnelAddr({ find: find(ssh, false), proxyServer });
    return `${a.host}:${a.port}`;
  };
  assert.equal(pick(all), "tun.example.com:4024");
  const { ssh_tunnel_public_addr: _, ...noTunnel } = all;
  assert.equal(pick(noTunnel), "ssh.example.com:3024");
  const { ssh_public_addr: __, ...noSsh } = noTunnel;
  assert.equal(pick(noSsh), "web.example.com:3024");
  const { public_addr: ___, ...noPublic } = noSsh;
  assert.equal(pick(noPublic), "proxy.example.com:3024");
  assert.equal(pick({ web_listen_addr: "10.0.0.1:3080" }), "10.0.0.1:3080");
  assert.equal(
    pick({ ssh_tunnel_public_addr: "internal.example.com" }),
    "internal.example.com:3024",
  );
  assert.throws(() => pick({}), { name: "BadParameterError" });
});

Deno.test("parseHostPort() reads host:port, [v6]:port and bare hosts", () => {
  assert.deepEqual(parseHostPort("a.b:1", 9), { host: "a.b", port: 1 });
  assert.deepEqual(parseHostPort("a.b", 9), { host: "a.b", port: 9 });
  assert.deepEqual(parseHostPort("[::1]:22", 9), { host: "::1", port: 22 });
  assert.deepEqual(parseHostPort("fd00::1", 9), { host: "fd00::1", port: 9 });
  assert.equal(parseHostPort("a:0", 9), undefined);
  assert.equal(parseHostPort("a:x", 9), undefined);
  assert.equal(parseHostPort(":80", 9), undefined);
});
