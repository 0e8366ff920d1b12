import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import { dnsNameMatches, loadKeyPairs, pickKeyPair } from "./_key_pairs.ts";
import { testPki } from "./_testing.ts";

Deno.test("dnsNameMatches() matches exact names and one-label wildcards", () => {
  assert.ok(dnsNameMatches("proxy.example.com", "proxy.example.com"));
  assert.ok(dnsNameMatches("*.example.com", "a.example.com"));
  assert.ok(!dnsNameMatches("*.example.com", "example.com"));
  assert.ok(!dnsNameMatches("*.example.com", "a.b.example.com"));
  assert.ok(!dnsNameMatches("*.example.com", ".example.com"));
  assert.ok(!dnsNameMatches("a.example.com", "b.example.com"));
});

Deno.test("pickKeyPair() prefers exact names, then wildcards, then the first pair", async () => {
  const pki = await testPki();
  const [proxy, wildcard] = loadKeyPairs([pki.proxy, pki.wildcard]);
  const pairs = [proxy!, wildcard!];
  assert.deepEqual(proxy!.dnsNames, ["localhost"]);
  assert.deepEqual(wildcard!.dnsNames, ["*.example.test"]);
  assert.equal(pickKeyPair(pairs, "localhost"), proxy);
  assert.equal(pickKeyPair(pairs, "Node1.Example.Test"), wildcard);
  assert.equal(pickKeyPair(pairs, "node1.example.test."), wildcard);
  assert.equal(pickKeyPair(pairs, "example.test"), proxy);
  assert.equal(pickKeyPair(pairs, "unknown.host"), proxy);
  assert.equal(pickKeyPair(pairs, undefined), proxy);
  // An exact name wins over an earlier wildcard.
  const [w2, p2] = loadKeyPairs([pki.wildcard, pki.proxy]);
  assert.equal(pickKeyPair([w2!, p2!], "localhost"), p2);
});

Deno.test("loadKeyPairs() throws BadParameterError without quoting keys", async () => {
  const pki = await testPki();
  const bad = [
    [],
    [{ certPem: "", keyPem: pki.proxy.keyPem }],
    [{
      certPem: pki.proxy.certPem,
      keyPem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    }],
    [{ certPem: pki.proxy.certPem, keyPem: pki.wildcard.keyPem }],
  ];
  for (const pairs of bad) {
    assert.throws(() => loadKeyPairs(pairs), (err: unknown) => {
      assert.ok(err instanceof BadParameterError);
      assert.match(err.message, /^Cannot load TLS key pair/);
      assert.ok(!err.message.includes("PRIVATE KEY"), err.message);
      return true;
    });
  }
});
