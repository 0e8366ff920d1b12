/**
 * Fuzz tests of the resource codecs: YAML text (tctl create -f) and decoded JSON values (the
 * auth API). Every input must give resources or a BadParameterError whose message names the
 * source; alias bombs and deep nesting must be refused quickly.
 */
import assert from "node:assert/strict";
import { expectKinds, fuzz, invariant, type Rng } from "../testing/mod.ts";
import {
  formatResourcesYaml,
  MAX_YAML_DEPTH,
  parseResources,
  parseResourceValue,
  RESOURCE_KINDS,
} from "./codec.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const utf8 = new TextDecoder();

const SAMPLES = [
  `kind: role
version: v7
metadata:
  name: dev
  labels: {env: staging}
  expires: 2030-01-01T00:00:00Z
spec:
  options: {max_session_ttl: 8h, port_forwarding: true, ssh_file_copy: false}
  allow:
    logins: ["{{internal.logins}}", ubuntu]
    node_labels:
      env: [staging, dev]
      "*": "*"
    rules:
      - resources: [node, user]
        verbs: [list, read]
  deny:
    logins: [root]
`,
  `kind: user
version: v2
metadata: {name: alice, description: "Alice"}
spec:
  roles: [dev, access]
  traits: {logins: [alice, root]}
  created_by: {time: "2026-01-01T00:00:00Z", user: admin}
`,
  `kind: token
version: v2
metadata: {name: 0123456789abcdef0123456789abcdef}
spec: {roles: [node, proxy], join_method: token}
`,
  `kind: cert_authority
version: v2
metadata: {name: example}
spec:
  cluster_name: example
  type: host
  active_keys:
    ssh: [{public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"}]
    tls: [{cert: "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"}]
`,
  `kind: node
version: v2
metadata: {name: 0b9e4b36-2f5e-4c8e-8d34-7e0f4c1a2b3c, labels: {env: prod}}
spec:
  addr: 127.0.0.1:3022
  hostname: node1
  use_tunnel: false
  host_cert: ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t
`,
  `kind: proxy
version: v2
metadata: {name: p1}
spec: {addr: "127.0.0.1:3023", hostname: proxy, public_addr: "proxy.example.com:443"}
---
kind: roles
metadata: {name: x}
`,
  `{"kind":"user","version":"v2","metadata":{"name":"bob"},"spec":{"roles":["dev"]}}`,
];

const YAML_DICTIONARY = [
  ": ",
  "- ",
  "&a ",
  "*a",
  "<<: ",
  "!!binary ",
  "!!timestamp ",
  "!!set ",
  "!!str ",
  "!foo ",
  "? ",
  "|\n",
  ">-\n",
  "---\n",
  "...\n",
  "{",
  "}",
  "[",
  "]",
  ", ",
  "# c\n",
  "'",
  '"',
  "\\u0000",
  "\n  ",
  "\t",
  "%YAML 1.1\n",
  "~",
  "null",
  "true",
  "0x1F",
  ".inf",
  "__proto__",
  "constructor",
  "kind: role\n",
  "metadata: {name: x}\n",
];

/** `a0: &a0 [x, x, …]`, then each level lists the previous alias `width` times. */
function aliasBomb(rng: Rng): Uint8Array {
  const width = 2 + rng.int(10);
  const levels = 1 + rng.int(10);
  const lines = [`a0: &a0 [${new Array(width).fill("x").join(", ")}]`];
  for (let i = 1; i <= levels; i++) {
    lines.push(`a${i}: &a${i} [${new Array(width).fill(`*a${i - 1}`).join(", ")}]`);
  }
  if (rng.chance(0.5)) lines.unshift("kind: role", "metadata: {name: x}");
  return enc(lines.join("\n") + "\n");
}

/** Flow or block nesting around the allowed depth, sometimes far past it. */
function deepNesting(rng: Rng): Uint8Array {
  const depth = rng.chance(0.7) ? MAX_YAML_DEPTH - 2 + rng.int(5) : 1 + rng.int(2000);
  switch (rng.int(3)) {
    case 0:
      return enc("[".repeat(depth) + "x" + "]".repeat(rng.chance(0.8) ? depth : 0));
    case 1:
      return enc("{a: ".repeat(depth) + "x" + "}".repeat(depth));
    default: {
      const lines = [];
      for (let i = 0; i < Math.min(depth, 2000); i++) lines.push(`${"  ".repeat(i)}k${i}:`);
      return enc(lines.join("\n") + " x\n");
    }
  }
}

/** A random JSON-ish value shaped like a resource, keys from the real schema. */
function resourceValue(rng: Rng, depth = 0): unknown {
  const keys = [
    "kind",
    "version",
    "metadata",
    "name",
    "labels",
    "expires",
    "spec",
    "allow",
    "deny",
    "logins",
    "node_labels",
    "rules",
    "roles",
    "traits",
    "hostname",
    "host_cert",
    "active_keys",
    "ssh",
    "created_by",
    "time",
  ];
  switch (rng.int(depth > 4 ? 4 : 6)) {
    case 0:
      return rng.pick([null, true, 0, -1, 1e400, "", "x"]);
    case 1:
      return rng.pick([
        ...Object.values(RESOURCE_KINDS).flat(),
        "2026-01-01T00:00:00Z",
        "8h",
        "not a time",
      ]);
    case 2:
      return utf8.decode(rng.bytes(rng.int(12)));
    case 3:
      return rng.pick(["node", "alice", "*", "{{internal.logins}}", "a".repeat(200)]);
    case 4:
      return Array.from({ length: rng.int(3) }, () => resourceValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(5); i > 0; i--) o[rng.pick(keys)] = resourceValue(rng, depth + 1);
      if (depth === 0 && rng.chance(0.8)) o.kind = rng.pick(Object.keys(RESOURCE_KINDS));
      return o;
    }
  }
}

// The yaml package needs about 0.3 ms for a small document: the 100k YAML texts take 30-60 s of
// a CI run, which the suite can afford; the network path, JSON values from the auth API, runs
// 100k below too.
Deno.test("parseResources() gives resources or a BadParameter naming the source for 100k texts", async () => {
  const kinds = Object.keys(RESOURCE_KINDS);
  let parsed = 0;
  await fuzz({
    name: "parseResources()",
    cases: 100_000,
    corpus: SAMPLES.map(enc),
    dictionary: YAML_DICTIONARY,
    maxLength: 64 * 1024,
    generators: [aliasBomb, deepNesting, (rng) => enc(JSON.stringify(resourceValue(rng)))],
    check(input) {
      const text = utf8.decode(input);
      let out;
      try {
        out = parseResources(text, "fuzz.yaml");
      } catch (err) {
        invariant((err as Error).name === "BadParameterError", `BadParameterError, got ${err}`);
        invariant(
          (err as Error).message.startsWith("Cannot parse resource in fuzz.yaml: "),
          `the message names the source: ${(err as Error).message}`,
        );
        return;
      }
      parsed++;
      invariant(out.length > 0 && out.every((r) => kinds.includes(r.kind)), "known kinds");
      assert.deepEqual(parseResources(formatResourcesYaml(out)), out);
    },
  });
  assert.ok(parsed > 400, `only ${parsed} inputs parsed`);
});

Deno.test("parseResourceValue() gives a resource or BadParameter for 100k JSON values", async () => {
  await fuzz({
    name: "parseResourceValue()",
    corpus: SAMPLES.map((s) => enc(JSON.stringify(parseResources(s)[0]))),
    dictionary: ['"', "{", "}", "[", "]", ":", ",", "null", "true", "1e999", '"__proto__"'],
    generators: [(rng) => enc(JSON.stringify(resourceValue(rng)))],
    check(input) {
      let value: unknown;
      try {
        value = JSON.parse(utf8.decode(input));
      } catch {
        return; // the listener answers 400 before the codec sees it
      }
      const r = expectKinds(["BadParameter"], () => parseResourceValue(value));
      if (r !== undefined) assert.deepEqual(parseResourceValue(JSON.parse(JSON.stringify(r))), r);
    },
  });
});

Deno.test("parseResources() refuses alias bombs, unresolved aliases and deep nesting clearly", () => {
  const bomb = [
    "kind: role",
    "metadata: {name: x}",
    "a: &a [x, x, x, x, x, x, x, x, x, x]",
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]",
  ].join("\n");
  assert.throws(() => parseResources(bomb, "bomb.yaml"), {
    name: "BadParameterError",
    message: /^Cannot parse resource in bomb\.yaml: aliases expand to too many values/,
  });
  assert.throws(() => parseResources("kind: *nowhere\n", "a.yaml"), {
    name: "BadParameterError",
    message: /^Cannot parse resource in a\.yaml: Unresolved alias/,
  });
  for (const deep of ["[".repeat(100_000), "{a: ".repeat(5000) + "}".repeat(5000)]) {
    assert.throws(() => parseResources(deep, "d.yaml"), {
      name: "BadParameterError",
      message: /^Cannot parse resource in d\.yaml: line 1: mappings and lists nest deeper than 32/,
    });
  }
  const block = Array.from({ length: 40 }, (_, i) => `${"  ".repeat(i)}k${i}:`).join("\n");
  assert.throws(() => parseResources(block, "b.yaml"), /b\.yaml: line 33: .*deeper than 32/);
  assert.throws(
    () => parseResources("? [a, b]\n: c\nkind: role\n", "k.yaml"),
    /k\.yaml: line 1: a mapping key must be a plain scalar/,
  );
  // Found by the fuzzer: created_by without a time parsed as "" and could not be read back.
  assert.throws(
    () => parseResources("kind: user\nmetadata: {name: a}\nspec: {created_by: {user: x}}\n"),
    /spec\.created_by\.time: is required/,
  );
  // Aliases that stay small still work.
  const [role] = parseResources(
    "kind: role\nmetadata: {name: x}\nspec:\n  allow: {logins: &l [a, b]}\n  deny: {logins: *l}\n",
  );
  assert.deepEqual(role?.kind === "role" && role.spec.deny.logins, ["a", "b"]);
});
