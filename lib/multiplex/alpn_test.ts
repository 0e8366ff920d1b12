import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import {
  ALPN_ACME,
  ALPN_AUTH_PREFIX,
  ALPN_H2,
  ALPN_HTTP1,
  ALPN_PROXY_SSH,
  ALPN_REVERSE_TUNNEL,
  ALPN_REVERSE_TUNNEL_V2,
  ALPN_ROUTES,
  authAlpn,
  parseAuthAlpn,
  routeForAlpn,
} from "./alpn.ts";

Deno.test("ALPN constants carry Teleport's wire names", () => {
  assert.equal(ALPN_PROXY_SSH, "teleport-proxy-ssh");
  assert.equal(ALPN_REVERSE_TUNNEL, "teleport-reversetunnel");
  assert.equal(ALPN_REVERSE_TUNNEL_V2, "teleport-reversetunnelv2");
  assert.equal(ALPN_AUTH_PREFIX, "teleport-auth@");
  assert.equal(ALPN_HTTP1, "http/1.1");
  assert.equal(ALPN_H2, "h2");
  assert.equal(ALPN_ACME, "acme-tls/1");
});

Deno.test("ALPN_ROUTES has a rule for every ALPN constant", () => {
  const values = ALPN_ROUTES.map((r) => r.value);
  for (
    const id of [
      ALPN_PROXY_SSH,
      ALPN_REVERSE_TUNNEL,
      ALPN_REVERSE_TUNNEL_V2,
      ALPN_AUTH_PREFIX,
      ALPN_HTTP1,
      ALPN_H2,
      ALPN_ACME,
    ]
  ) {
    assert.ok(values.includes(id), id);
  }
  assert.equal(new Set(values).size, values.length);
});

Deno.test("authAlpn() hex-encodes the UTF-8 cluster name", () => {
  assert.equal(authAlpn("c1"), "teleport-auth@6331.teleport.cluster.local");
  assert.equal(authAlpn("é"), "teleport-auth@c3a9.teleport.cluster.local");
  for (const name of ["c1", "example.com", "root-cluster_1", "日本"]) {
    assert.equal(parseAuthAlpn(authAlpn(name)), name);
  }
});

Deno.test("authAlpn() throws BadParameterError for an empty or too long name", () => {
  assert.throws(() => authAlpn(""), BadParameterError);
  const longest = "a".repeat(109);
  assert.equal(authAlpn(longest).length, 255);
  assert.throws(() => authAlpn(longest + "a"), (err: unknown) => {
    assert.ok(err instanceof BadParameterError);
    assert.match(err.message, /^Cannot build auth ALPN value: .* longer than 109 bytes$/);
    return true;
  });
});

Deno.test("parseAuthAlpn() returns undefined for values that are not auth ALPN", () => {
  for (
    const v of [
      "teleport-auth@",
      "teleport-auth@.teleport.cluster.local",
      "teleport-auth@633.teleport.cluster.local",
      "teleport-auth@zz.teleport.cluster.local",
      "teleport-auth@6331.example.com",
      "teleport-auth@ff.teleport.cluster.local", // not UTF-8
      "teleport-proxy-ssh",
      "6331.teleport.cluster.local",
    ]
  ) {
    assert.equal(parseAuthAlpn(v), undefined, v);
  }
  assert.equal(parseAuthAlpn("teleport-auth@6331.teleport.cluster.local"), "c1");
  assert.equal(parseAuthAlpn("teleport-auth@6A6B.teleport.cluster.local"), "jk");
});

Deno.test("routeForAlpn() routes each Teleport protocol", () => {
  assert.deepEqual(routeForAlpn(["teleport-proxy-ssh"]), {
    route: "proxy-ssh",
    terminate: true,
    protocol: "teleport-proxy-ssh",
    matched: "teleport-proxy-ssh",
  });
  assert.deepEqual(routeForAlpn(["teleport-reversetunnel"]), {
    route: "reverse-tunnel",
    terminate: true,
    protocol: "teleport-reversetunnel",
    matched: "teleport-reversetunnel",
  });
  assert.deepEqual(routeForAlpn([authAlpn("c1")]), {
    route: "auth",
    terminate: false,
    matched: "teleport-auth@6331.teleport.cluster.local",
    clusterName: "c1",
  });
  assert.deepEqual(routeForAlpn(["teleport-auth@zz"]), {
    route: "auth",
    terminate: false,
    matched: "teleport-auth@zz",
  });
});

Deno.test("routeForAlpn() maps teleport-reversetunnelv2 to the reverse tunnel", () => {
  assert.deepEqual(routeForAlpn(["teleport-reversetunnelv2", "teleport-reversetunnel"]), {
    route: "reverse-tunnel",
    terminate: true,
    protocol: "teleport-reversetunnel",
    matched: "teleport-reversetunnelv2",
  });
  assert.equal(routeForAlpn(["teleport-reversetunnelv2"])?.protocol, "teleport-reversetunnelv2");
});

Deno.test("routeForAlpn() sends web protocols and no ALPN to the web handler", () => {
  assert.deepEqual(routeForAlpn([]), { route: "web", terminate: true });
  assert.deepEqual(routeForAlpn(["h2", "http/1.1"]), {
    route: "web",
    terminate: true,
    protocol: "http/1.1",
    matched: "h2",
  });
  assert.equal(routeForAlpn(["http/1.1"])?.protocol, "http/1.1");
  // h2 or acme-tls/1 alone: web, no ALPN selected (we speak HTTP/1.1 only).
  assert.deepEqual(routeForAlpn(["h2"]), { route: "web", terminate: true, matched: "h2" });
  assert.deepEqual(routeForAlpn(["acme-tls/1"]), {
    route: "web",
    terminate: true,
    matched: "acme-tls/1",
  });
});

Deno.test("routeForAlpn() takes the first of the client's values that matches", () => {
  assert.equal(routeForAlpn(["foo", "teleport-proxy-ssh", "http/1.1"])?.route, "proxy-ssh");
  assert.equal(routeForAlpn(["http/1.1", "teleport-proxy-ssh"])?.route, "web");
  assert.equal(routeForAlpn(["spdy/3", authAlpn("c1"), "h2"])?.route, "auth");
});

Deno.test("routeForAlpn() refuses lists without a known protocol", () => {
  assert.equal(routeForAlpn(["foo"]), undefined);
  assert.equal(routeForAlpn(["teleport-postgres", "teleport-tcp"]), undefined);
  assert.equal(routeForAlpn(["HTTP/1.1"]), undefined);
  assert.equal(routeForAlpn(["teleport-proxy-ssh-grpc"]), undefined);
});
