import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import { dialAddrOf, formatAddr, isUnspecifiedHost, parseAddr, tryParseAddr } from "./mod.ts";

Deno.test("parseAddr() accepts host, host:port, :port, [v6]:port and bare IPv6", () => {
  assert.deepEqual(parseAddr("proxy.example.com", 3080, "x"), {
    host: "proxy.example.com",
    port: 3080,
  });
  assert.deepEqual(parseAddr("10.12.0.6:3025", 3080, "x"), { host: "10.12.0.6", port: 3025 });
  assert.deepEqual(parseAddr(":3023", 3080, "x"), { host: "0.0.0.0", port: 3023 });
  assert.deepEqual(parseAddr("[::1]:3025", 1, "x"), { host: "::1", port: 3025 });
  assert.deepEqual(parseAddr("[fe80::1%eth0]", 3022, "x"), { host: "fe80::1%eth0", port: 3022 });
  assert.deepEqual(parseAddr("::1", 3022, "x"), { host: "::1", port: 3022 });
  assert.deepEqual(parseAddr("2001:db8::10", 443, "x"), { host: "2001:db8::10", port: 443 });
  assert.deepEqual(parseAddr("[::ffff:10.0.0.1]:22", 1, "x"), {
    host: "::ffff:10.0.0.1",
    port: 22,
  });
  assert.deepEqual(parseAddr("1:2:3:4:5:6:7:8", 1, "x"), { host: "1:2:3:4:5:6:7:8", port: 1 });
  assert.deepEqual(parseAddr("  external_proxy.example.com:443 ", 1, "x"), {
    host: "external_proxy.example.com",
    port: 443,
  });
  assert.deepEqual(parseAddr("localhost:0", 1, "x"), { host: "localhost", port: 0 });
});

Deno.test("parseAddr() strips tcp://, http:// and https:// schemes", () => {
  assert.deepEqual(parseAddr("tcp://auth:3025", 1, "x"), { host: "auth", port: 3025 });
  assert.deepEqual(parseAddr("https://proxy.example.com/", 3080, "x"), {
    host: "proxy.example.com",
    port: 3080,
  });
});

Deno.test("parseAddr() throws BadParameterError naming where when the text is bad", () => {
  const cases: [string, RegExp][] = [
    ["", /address is empty/],
    ["   ", /address is empty/],
    ["host:99999", /port "99999" is not a number between 0 and 65535/],
    ["host:-1", /port "-1"/],
    ["host:abc", /port "abc"/],
    ["host:", /port is empty/],
    ["a:b:c", /too many colons/],
    ["host:1:2", /too many colons/],
    ["[::1", /missing \]/],
    ["[::1]x", /unexpected "x"/],
    ["[nothex]:1", /not an IPv6 address/],
    ["bad host:1", /not a valid host name/],
    ["ftp://host:1", /scheme "ftp"/],
    ["host:1/path", /path/],
    ["999.1.1.1:3025", /"999\.1\.1\.1" is not a valid IPv4 address \(four numbers from 0 to 255/],
    ["10.0.0.300", /not a valid IPv4 address/],
    ["1.2.3", /not a valid IPv4 address/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseAddr(text, 3025, "--auth-server"),
      (e: unknown) =>
        e instanceof BadParameterError && e.message.startsWith("Cannot parse --auth-server ") &&
        re.test(e.message),
      text,
    );
  }
});

Deno.test("tryParseAddr() returns a problem instead of throwing when the text is bad", () => {
  const r = tryParseAddr("x:70000", 1);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.problem.includes("70000"));
});

Deno.test("formatAddr() brackets IPv6 hosts and round-trips with parseAddr()", () => {
  assert.equal(formatAddr({ host: "::1", port: 3025 }), "[::1]:3025");
  assert.equal(formatAddr({ host: "example.com", port: 443 }), "example.com:443");
  for (const text of ["[::1]:3025", "1.2.3.4:5", "h:0", "[2001:db8::1]:443"]) {
    assert.equal(formatAddr(parseAddr(text, 1, "x")), text);
  }
});

Deno.test("dialAddrOf() turns unspecified hosts into loopback when dialing a listener", () => {
  assert.deepEqual(dialAddrOf({ host: "0.0.0.0", port: 3025 }), { host: "127.0.0.1", port: 3025 });
  assert.deepEqual(dialAddrOf({ host: "::", port: 1 }), { host: "127.0.0.1", port: 1 });
  assert.deepEqual(dialAddrOf({ host: "auth", port: 1 }), { host: "auth", port: 1 });
  assert.ok(isUnspecifiedHost("0:0:0:0:0:0:0:0"));
  assert.ok(!isUnspecifiedHost("::1"));
});

Deno.test("parseAddr() keeps valid IPv4 addresses and numeric-looking host names", () => {
  assert.deepEqual(parseAddr("255.255.255.255:1", 3025, "x"), { host: "255.255.255.255", port: 1 });
  assert.deepEqual(parseAddr("10.0.0.1", 3025, "x"), { host: "10.0.0.1", port: 3025 });
  assert.deepEqual(parseAddr("host-1.example", 3025, "x"), { host: "host-1.example", port: 3025 });
});
