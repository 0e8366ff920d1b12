import assert from "node:assert/strict";
import { isKind } from "../errors/mod.ts";
import {
  type HttpProxySettings,
  parseProxyUrl,
  proxyFor,
  proxySettingsFromEnv,
  resolveRoute,
} from "./mod.ts";

const PROXY = "http://proxy.corp:3128";

Deno.test("proxySettingsFromEnv() prefers upper case names and skips empty values", () => {
  const env = (vars: Record<string, string>) => ({ get: (name: string) => vars[name] });
  const cases: Array<[Record<string, string>, HttpProxySettings]> = [
    [{}, {}],
    [{ HTTPS_PROXY: "a:1", https_proxy: "b:1" }, { httpsProxy: "a:1" }],
    [{ https_proxy: "b:1" }, { httpsProxy: "b:1" }],
    [{ HTTPS_PROXY: "", https_proxy: "b:1" }, { httpsProxy: "b:1" }],
    [{ HTTP_PROXY: "c:1", http_proxy: "d:1" }, { httpProxy: "c:1" }],
    [{ http_proxy: "d:1" }, { httpProxy: "d:1" }],
    [{ NO_PROXY: "a.com", no_proxy: "b.com" }, { noProxy: "a.com" }],
    [{ NO_PROXY: "", no_proxy: "b.com" }, { noProxy: "b.com" }],
    [{ HTTPS_PROXY: "", HTTP_PROXY: "", NO_PROXY: "" }, {}],
  ];
  for (const [vars, want] of cases) {
    assert.deepEqual(proxySettingsFromEnv(env(vars)), want, JSON.stringify(vars));
  }
});

Deno.test("parseProxyUrl() reads scheme, userinfo, host and port like x/net httpproxy", () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ["proxy.example.com:8080", {
      scheme: "http",
      host: "proxy.example.com",
      port: 8080,
      display: "http://proxy.example.com:8080",
    }],
    ["10.0.0.5:3128", { scheme: "http", host: "10.0.0.5", port: 3128 }],
    ["http://proxy", { scheme: "http", host: "proxy", port: 80, display: "http://proxy:80" }],
    ["https://proxy", { scheme: "https", host: "proxy", port: 443 }],
    ["HTTP://Proxy.Example.COM:3128/", { scheme: "http", host: "proxy.example.com", port: 3128 }],
    ["http://user:p%40ss@10.0.0.5:3128", {
      host: "10.0.0.5",
      username: "user",
      password: "p@ss",
      display: "http://10.0.0.5:3128",
    }],
    ["user:pass@10.0.0.5:3128", { scheme: "http", username: "user", password: "pass" }],
    ["http://user:a:b@c@h:1", { username: "user", password: "a:b@c", host: "h" }],
    ["http://user@h:1", { username: "user", password: undefined }],
    ["http://:secret@h:1", { username: "", password: "secret" }],
    ["http://h:1", { username: undefined, password: undefined }],
    ["http://[FD00::1]:3128", { host: "fd00::1", port: 3128, display: "http://[fd00::1]:3128" }],
    ["http://127.0.0.1:3128", { host: "127.0.0.1", port: 3128 }],
  ];
  for (const [value, want] of cases) {
    const got = parseProxyUrl(value) as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(want)) assert.equal(got[k], v, `${value} ${k}`);
  }
});

Deno.test("parseProxyUrl() refuses bad values naming the variable, with the password masked", () => {
  const cases: Array<[string, RegExp]> = [
    ["socks5://h:1080", /SOCKS proxies are not supported/],
    ["ftp://h:21", /scheme "ftp" is not supported/],
    ["http://h:99999", /"99999" is not a port/],
    ["http://h:abc", /"abc" is not a port/],
    ["http://:3128", /names no host/],
    ["http://[fd00::1:3128", /closing bracket/],
    ["http://fd00::1:3128", /IPv6 address in brackets/],
    ["http://h a:1", /is not a host name/],
    ["   ", /it is empty/],
    ["http://alice:hunter2@h:abc", /"http:\/\/alice:\*\*\*\*@h:abc"/],
  ];
  for (const [value, want] of cases) {
    assert.throws(() => parseProxyUrl(value, "HTTPS_PROXY"), (e: Error) => {
      assert.ok(isKind(e, "BadParameter"), value);
      assert.match(e.message, /^Cannot use HTTPS_PROXY /);
      assert.match(e.message, want);
      assert.ok(!e.message.includes("hunter2"), e.message);
      return true;
    });
  }
});

Deno.test("proxyFor() picks the https proxy, then the http one, else none", () => {
  assert.equal(proxyFor({}, "example.com", 443), undefined);
  assert.equal(proxyFor({ httpsProxy: "a:1" }, "example.com", 443)?.display, "http://a:1");
  assert.equal(proxyFor({ httpProxy: "b:1" }, "example.com", 443)?.display, "http://b:1");
  assert.equal(
    proxyFor({ httpsProxy: "https://a:1", httpProxy: "b:1" }, "example.com", 443)?.display,
    "https://a:1",
  );
  assert.deepEqual(resolveRoute({ httpProxy: "b:1" }, "example.com", 443), {
    proxy: parseProxyUrl("b:1"),
    variable: "HTTP_PROXY",
  });
  assert.throws(() => proxyFor({ httpsProxy: "socks5://s:1" }, "example.com", 443), (e) => {
    return isKind(e, "BadParameter") && /HTTPS_PROXY/.test((e as Error).message);
  });
});

Deno.test("proxyFor() dials loopback destinations directly, even without NO_PROXY", () => {
  for (
    const host of [
      "localhost",
      "LOCALHOST",
      "app.localhost",
      "127.0.0.1",
      "127.1.2.3",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
      "::ffff:127.0.0.1",
    ]
  ) {
    assert.deepEqual(resolveRoute({ httpsProxy: PROXY }, host, 3080), {
      direct: "loopback destination",
    }, host);
  }
  for (const host of ["localhost.example.com", "128.0.0.1", "::2", "mylocalhost"]) {
    assert.equal(proxyFor({ httpsProxy: PROXY }, host, 3080)?.display, PROXY, host);
  }
  // A loopback proxy (cntlm, px) is fine: the rule is about destinations.
  assert.equal(
    proxyFor({ httpsProxy: "http://127.0.0.1:3128" }, "example.com", 443)?.host,
    "127.0.0.1",
  );
});

Deno.test("proxyFor() follows NO_PROXY entries: *, domains, IPs, CIDRs and ports", () => {
  // [NO_PROXY, host, port, dialled directly?]
  const cases: Array<[string, string, number, boolean]> = [
    ["*", "example.com", 443, true],
    ["a.com, *", "10.1.2.3", 22, true],
    // Seed 001: only the tunnel port goes direct.
    ["teleportproxy.example.com:3024", "teleportproxy.example.com", 3024, true],
    ["teleportproxy.example.com:3024", "teleportproxy.example.com", 3080, false],
    // A bare domain matches itself and its subdomains.
    ["example.com", "example.com", 443, true],
    ["example.com", "a.b.example.com", 443, true],
    ["example.com", "notexample.com", 443, false],
    ["example.com", "example.com.evil.net", 443, false],
    // `.d` and `*.d` match subdomains only.
    [".example.com", "a.example.com", 443, true],
    [".example.com", "example.com", 443, false],
    ["*.example.com", "a.example.com", 443, true],
    ["*.example.com", "example.com", 443, false],
    ["*.example.com:3024", "a.example.com", 3080, false],
    // Case-insensitive, comma or space separated.
    ["EXAMPLE.COM", "Api.Example.com", 443, true],
    ["a.com b.com", "x.b.com", 443, true],
    [" a.com ,  b.com ", "b.com", 443, true],
    ["a.com,,b.com", "c.com", 443, false],
    // IP addresses, with or without a port.
    ["192.168.1.10", "192.168.1.10", 22, true],
    ["192.168.1.10", "192.168.1.11", 22, false],
    ["192.168.1.10:22", "192.168.1.10", 22, true],
    ["192.168.1.10:22", "192.168.1.10", 23, false],
    ["fd00::1", "fd00::1", 3024, true],
    ["fd00::1", "FD00:0:0::1", 3024, true],
    ["[fd00::1]:3024", "fd00::1", 3024, true],
    ["[fd00::1]:3024", "fd00::1", 3080, false],
    ["[fd00::1]", "fd00::1", 3080, true],
    ["10.0.0.1", "::ffff:10.0.0.1", 3080, true],
    // CIDR blocks.
    ["10.0.0.0/8", "10.1.2.3", 443, true],
    ["10.0.0.0/8", "11.0.0.1", 443, false],
    ["10.0.0.0/8", "ten.example.com", 443, false],
    ["192.168.0.0/23", "192.168.1.200", 443, true],
    ["192.168.0.0/23", "192.168.2.1", 443, false],
    ["fd00::/8", "fd12:3456::1", 443, true],
    ["fd00::/8", "fe80::1", 443, false],
    ["0.0.0.0/0", "203.0.113.9", 443, true],
    // Malformed entries are ignored, the rest still count.
    ["10.0.0.0/99, [fd00::1, :22, b.com", "10.0.0.1", 443, false],
    ["10.0.0.0/99, [fd00::1, :22, b.com", "b.com", 443, true],
  ];
  for (const [noProxy, host, port, direct] of cases) {
    const route = resolveRoute({ httpsProxy: PROXY, noProxy }, host, port);
    assert.equal(
      route.proxy === undefined,
      direct,
      `NO_PROXY=${JSON.stringify(noProxy)} ${host}:${port}`,
    );
    if (direct) assert.deepEqual(route, { direct: "NO_PROXY match" });
  }
});

Deno.test("resolveRoute() proxies loopback destinations only when TELEPORT_PROXY_LOOPBACK says so", () => {
  const env = (vars: Record<string, string>) => ({ get: (n: string) => vars[n] });
  const plain = proxySettingsFromEnv(env({ HTTPS_PROXY: "127.0.0.1:3128" }));
  assert.deepEqual(resolveRoute(plain, "127.0.0.1", 443), { direct: "loopback destination" });
  const tests = proxySettingsFromEnv(
    env({ HTTPS_PROXY: "127.0.0.1:3128", TELEPORT_PROXY_LOOPBACK: "yes" }),
  );
  assert.equal(tests.proxyLoopback, true);
  assert.equal(resolveRoute(tests, "localhost", 443).proxy?.port, 3128);
  // NO_PROXY still wins.
  assert.deepEqual(resolveRoute({ ...tests, noProxy: "127.0.0.1" }, "127.0.0.1", 443), {
    direct: "NO_PROXY match",
  });
});
