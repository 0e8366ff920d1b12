import assert from "node:assert/strict";
import { formatResourcesYaml, parseResources, parseResourceValue, resolveKind } from "./mod.ts";

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

/** An authorized_keys line whose blob starts with the string `type` (enough for the codec). */
function certLine(type: string, claimed = type): string {
  const t = new TextEncoder().encode(type);
  const blob = new Uint8Array([0, 0, 0, t.length, ...t, 1, 2, 3]);
  return `${claimed} ${btoa(String.fromCharCode(...blob))} host1`;
}

Deno.test("parseResourceValue() reads proxies and host certificates of nodes and proxies", () => {
  const cert = certLine("ssh-ed25519-cert-v01@openssh.com");
  const proxy = parseResourceValue({
    kind: "proxy",
    version: "v2",
    metadata: { name: "0b9e4b36-2f5e-4c8e-8d34-7e0f4c1a2b3c" },
    spec: {
      addr: "0.0.0.0:3080",
      hostname: "proxy1",
      version: "1.0.0",
      public_addr: "proxy.example.com:443",
      ssh_public_addr: "proxy.example.com:3023",
      tunnel_public_addr: "proxy.example.com:3024",
      host_cert: cert,
    },
  });
  assert.equal(proxy.kind, "proxy");
  assert.deepEqual(parseResources(formatResourcesYaml([proxy])), [proxy]);
  assert.equal(resolveKind("proxies"), "proxy");
  const node = parseResourceValue({
    kind: "node",
    version: "v2",
    metadata: { name: "n1" },
    spec: { hostname: "n1", host_cert: cert },
  });
  assert.equal(node.kind === "node" && node.spec.host_cert, cert);
  const bad = (host_cert: unknown) => () =>
    parseResourceValue({
      kind: "node",
      metadata: { name: "n1" },
      spec: { hostname: "n1", host_cert },
    });
  assert.throws(
    bad("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"),
    /spec\.host_cert: must be an OpenSSH certificate/,
  );
  assert.throws(bad("ssh-ed25519-cert-v01@openssh.com !!!"), /spec\.host_cert/);
  assert.throws(bad("ssh-ed25519-cert-v01@openssh.com AAA"), /spec\.host_cert/);
  assert.throws(
    bad(certLine("ssh-rsa-cert-v01@openssh.com", "ssh-ed25519-cert-v01@openssh.com")),
    /does not match/,
  );
  assert.throws(bad(42), /spec\.host_cert: must be a string/);
  assert.throws(
    () =>
      parseResourceValue({ kind: "proxy", metadata: { name: "p" }, spec: { hostname: "p", x: 1 } }),
    /spec\.x: unknown field/,
  );
});

Deno.test("parseResources() reads forward_agent and ssh_port_forwarding role options", () => {
  const [role] = parseResources(
    `kind: role
version: v7
metadata: {name: fwd}
spec:
  options:
    forward_agent: true
    ssh_port_forwarding:
      local: {enabled: true}
      remote: {enabled: false}
`,
  );
  assert.equal(role?.kind, "role");
  if (role?.kind !== "role") return;
  assert.equal(role.spec.options.forward_agent, true);
  assert.deepEqual(role.spec.options.ssh_port_forwarding, {
    local: { enabled: true },
    remote: { enabled: false },
  });
  assert.deepEqual(parseResources(formatResourcesYaml([role])), [role]);
  assert.throws(
    () =>
      parseResources(
        "kind: role\nmetadata: {name: x}\nspec: {options: {ssh_port_forwarding: {remote: {on: true}}}}\n",
      ),
    /spec\.options\.ssh_port_forwarding\.remote\.on: unknown field/,
  );
  assert.throws(
    () =>
      parseResources("kind: role\nmetadata: {name: x}\nspec: {options: {forward_agent: yes}}\n"),
    /spec\.options\.forward_agent: must be true or false/,
  );
});

Deno.test("parseResources() reads join_sessions on the allow side and refuses bad modes", () => {
  const text = `kind: role
version: v7
metadata: {name: watch}
spec:
  allow:
    join_sessions:
      - {name: oversight, roles: [access], kinds: [ssh], modes: [observer]}
`;
  const [role] = parseResources(text);
  assert.equal(role?.kind, "role");
  if (role?.kind !== "role") return;
  assert.deepEqual(role.spec.allow.join_sessions, [
    { name: "oversight", roles: ["access"], kinds: ["ssh"], modes: ["observer"] },
  ]);
  assert.deepEqual(parseResources(formatResourcesYaml([role])), [role]);
  assert.throws(
    () => parseResources(text.replace("[observer]", "[moderator]")),
    /join_sessions\[0\]\.modes\[0\]: "moderator" is not a mode \(use peer or observer\)/,
  );
  assert.throws(
    () => parseResources(text.replace("allow:", "deny:")),
    /spec\.deny\.join_sessions: unknown field/,
  );
});

Deno.test("parseResourceValue() reads a session tracker and checks its fields", () => {
  const sid = "0b0e4c4e-1d7f-4c55-9d5e-3f1f2b8a7c11";
  const tracker = {
    kind: "session_tracker",
    version: "v1",
    metadata: { name: sid, expires: "2030-01-01T00:00:00.000Z" },
    spec: {
      session_id: sid,
      kind: "ssh",
      state: "running",
      created: "2029-12-31T23:00:00.000Z",
      user: "alice",
      login: "root",
      node_id: "host-1",
      hostname: "node1",
      cluster_name: "c",
      participants: [{ user: "alice", mode: "owner", joined: "2029-12-31T23:00:00.000Z" }],
    },
  };
  assert.deepEqual(parseResourceValue(tracker), tracker);
  assert.equal(resolveKind("session_trackers"), "session_tracker");
  assert.throws(
    () => parseResourceValue({ ...tracker, spec: { ...tracker.spec, session_id: "other" } }),
    /spec\.session_id: must equal metadata\.name/,
  );
  assert.throws(
    () =>
      parseResourceValue({
        ...tracker,
        spec: { ...tracker.spec, participants: [{ user: "b", mode: "boss", joined: "x" }] },
      }),
    /spec\.participants\[0\]\.mode: "boss" is not a mode/,
  );
});

Deno.test("parseResourceValue() reads a cert_authority with additional trusted keys and a rotation", () => {
  const ca = {
    kind: "cert_authority",
    version: "v2",
    metadata: { name: "host" },
    spec: {
      cluster_name: "example",
      type: "host",
      active_keys: { ssh: [{ public_key: "ssh-ed25519 NEW" }], tls: [{ cert: "NEWPEM" }] },
      additional_trusted_keys: { ssh: [{ public_key: "ssh-ed25519 OLD" }], tls: [] },
      rotation: {
        state: "in_progress",
        phase: "update_clients",
        mode: "auto",
        started: "2026-01-01T00:00:00.000Z",
        grace_period: "48h",
        schedule: {
          update_clients: "2026-01-01T16:00:00.000Z",
          update_servers: "2026-01-02T08:00:00.000Z",
          standby: "2026-01-03T00:00:00.000Z",
        },
      },
    },
  };
  assert.deepEqual(parseResourceValue(ca), ca);
  assert.deepEqual(parseResources(formatResourcesYaml([parseResourceValue(ca)]))[0], ca);
  const bad = { ...ca, spec: { ...ca.spec, rotation: { state: "in_progress", phase: "half" } } };
  assert.throws(() => parseResourceValue(bad), /spec\.rotation\.phase.*must be one of standby/);
});
