import assert from "node:assert/strict";
import { formatResourcesYaml, parseResources, resolveKind } from "./mod.ts";

const ROLE = `kind: role
version: v7
metadata:
  name: dev
spec:
  options:
    max_session_ttl: 8h
  allow:
    logins: ["{{internal.logins}}", ubuntu]
    node_labels:
      env: [staging, dev]
  deny:
    logins: [root]
`;

Deno.test("parseResources() reads a role and round-trips through YAML", () => {
  const [role] = parseResources(ROLE, "dev.yaml");
  assert.equal(role?.kind, "role");
  if (role?.kind !== "role") return;
  assert.deepEqual(role.spec.allow.logins, ["{{internal.logins}}", "ubuntu"]);
  assert.deepEqual(role.spec.allow.node_labels, { env: ["staging", "dev"] });
  assert.equal(role.spec.options.max_session_ttl, "8h");
  assert.deepEqual(parseResources(formatResourcesYaml([role])), [role]);
});

Deno.test("parseResources() reads several documents", () => {
  const text = `${ROLE}---
kind: user
version: v2
metadata: {name: alice}
spec: {roles: [dev], traits: {logins: [alice]}}
`;
  const out = parseResources(text);
  assert.deepEqual(out.map((r) => r.kind), ["role", "user"]);
});

Deno.test("parseResources() names the document and field of an error", () => {
  assert.throws(
    () =>
      parseResources(
        `${ROLE}---\nkind: role\nversion: v7\nmetadata: {name: x}\nspec: {allow: {logins: 5}}\n`,
        "r.yaml",
      ),
    /Cannot parse resource in r\.yaml: document 2: spec\.allow\.logins: must be a list of strings/,
  );
  assert.throws(
    () => parseResources("kind: role\nmetadata: {name: x}\nspec: {allow: {loginz: [a]}}\n"),
    /spec\.allow\.loginz: unknown field/,
  );
  assert.throws(() => parseResources("kind: widget\n"), /unknown kind/);
  assert.throws(
    () => parseResources("kind: user\nmetadata: {name: ../etc}\n"),
    /Cannot use user name/,
  );
  assert.throws(
    () =>
      parseResources("kind: role\nmetadata: {name: x}\nspec: {options: {max_session_ttl: soon}}\n"),
    /not a duration/,
  );
  assert.throws(() => parseResources("a: [\n"), /Cannot parse resource in input/);
});

Deno.test("resolveKind() accepts tctl aliases", () => {
  assert.equal(resolveKind("users"), "user");
  assert.equal(resolveKind("cert_authorities"), "cert_authority");
  assert.throws(() => resolveKind("foo"), /known: user, role/);
});
