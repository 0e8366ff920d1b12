import assert from "node:assert/strict";
import type { Role } from "../resource/mod.ts";
import {
  ACCESS_ROLE,
  AccessChecker,
  AUDITOR_ROLE,
  EDITOR_ROLE,
  expandTemplate,
  matchLabels,
} from "./mod.ts";

function role(name: string, spec: Partial<Role["spec"]>): Role {
  return {
    kind: "role",
    version: "v7",
    metadata: { name },
    spec: { options: {}, allow: {}, deny: {}, ...spec },
  };
}

const node = (labels: Record<string, string> = {}) => ({ name: "n1", labels });

Deno.test("expandTemplate() expands internal traits and drops unknown templates", () => {
  assert.deepEqual(expandTemplate("{{internal.logins}}", { logins: ["a", "b"] }), ["a", "b"]);
  assert.deepEqual(expandTemplate("{{ internal.logins }}", {}), []);
  assert.deepEqual(expandTemplate("root", {}), ["root"]);
  assert.deepEqual(expandTemplate("{{bogus", {}), []);
});

Deno.test("matchLabels() handles wildcard, globs, regexps and lists", () => {
  assert.ok(matchLabels({ "*": "*" }, {}));
  assert.ok(matchLabels({ env: "prod" }, { env: "prod" }));
  assert.ok(!matchLabels({ env: "prod" }, { env: "dev" }));
  assert.ok(matchLabels({ env: ["dev", "prod"] }, { env: "dev" }));
  assert.ok(matchLabels({ env: "pr*" }, { env: "prod" }));
  assert.ok(matchLabels({ env: "^p.*d$" }, { env: "prod" }));
  assert.ok(!matchLabels({ env: "prod", team: "x" }, { env: "prod" }));
  assert.ok(!matchLabels({}, { env: "prod" }));
  assert.ok(!matchLabels(undefined, { env: "prod" }));
});

Deno.test("AccessChecker.logins() expands access role logins from traits", () => {
  const c = new AccessChecker([ACCESS_ROLE], { logins: ["alice", "root"] });
  assert.deepEqual(c.logins(), ["alice", "root"]);
});

Deno.test("AccessChecker.checkLogin() lets deny win over allow", () => {
  const deny = role("no-root", { deny: { logins: ["root"] } });
  const c = new AccessChecker([ACCESS_ROLE, deny], { logins: ["alice", "root"] });
  assert.deepEqual(c.logins(), ["alice"]);
  c.checkLogin("alice", node());
  assert.throws(() => c.checkLogin("root", node()), /denied by role "no-root"/);
  assert.throws(() => c.checkLogin("bob", node()), /login "bob" is not allowed/);
});

Deno.test("AccessChecker.checkLogin() requires node labels to match", () => {
  const dev = role("dev", { allow: { logins: ["dev"], node_labels: { env: "dev" } } });
  const c = new AccessChecker([dev]);
  c.checkLogin("dev", node({ env: "dev" }));
  assert.throws(() => c.checkLogin("dev", node({ env: "prod" })), /labels/);
  assert.ok(c.canSeeNode(node({ env: "dev" })));
  assert.ok(!c.canSeeNode(node({ env: "prod" })));
});

Deno.test("AccessChecker.checkRule() follows built-in editor and auditor rules", () => {
  const editor = new AccessChecker([EDITOR_ROLE]);
  editor.checkRule("user", "create");
  editor.checkRule("cert_authority", "read");
  assert.throws(() => editor.checkRule("cert_authority", "delete"), /none of your roles/);
  const auditor = new AccessChecker([AUDITOR_ROLE]);
  auditor.checkRule("event", "list");
  assert.throws(() => auditor.checkRule("user", "create"), /access denied to create user/);
  const denied = new AccessChecker([
    EDITOR_ROLE,
    role("x", { deny: { rules: [{ resources: ["token"], verbs: ["create"] }] } }),
  ]);
  assert.throws(() => denied.checkRule("token", "create"), /denied by role "x"/);
});

Deno.test("AccessChecker.maxSessionTtlMs() takes the smallest role limit", () => {
  assert.equal(new AccessChecker([]).maxSessionTtlMs(), 30 * 3_600_000);
  assert.equal(new AccessChecker([ACCESS_ROLE, EDITOR_ROLE]).maxSessionTtlMs(), 8 * 3_600_000);
});

Deno.test("AccessChecker.canForwardAgent() is off unless a role turns it on", () => {
  assert.equal(new AccessChecker([role("a", {})], {}).canForwardAgent(), false);
  assert.equal(new AccessChecker([ACCESS_ROLE], {}).canForwardAgent(), true);
  const off = role("off", { options: { forward_agent: false } });
  assert.equal(new AccessChecker([off, ACCESS_ROLE], {}).canForwardAgent(), true);
});

Deno.test("AccessChecker.canPortForward() reads ssh_port_forwarding per direction", () => {
  const none = new AccessChecker([role("a", {})], {});
  assert.equal(none.canPortForward("local"), true);
  assert.equal(none.canPortForward("remote"), true);
  const legacyOff = new AccessChecker([role("a", { options: { port_forwarding: false } })], {});
  assert.equal(legacyOff.canPortForward("remote"), false);
  assert.equal(legacyOff.canPortForward(), false);
  const remoteOnly = new AccessChecker([
    role("a", {
      options: {
        port_forwarding: false,
        ssh_port_forwarding: { remote: { enabled: true } },
      },
    }),
  ], {});
  assert.equal(remoteOnly.canPortForward("local"), false);
  assert.equal(remoteOnly.canPortForward("remote"), true);
  assert.equal(remoteOnly.canPortForward(), true);
  const noRemote = new AccessChecker([
    ACCESS_ROLE,
    role("b", { options: { ssh_port_forwarding: { remote: { enabled: false } } } }),
  ], {});
  assert.equal(noRemote.canPortForward("local"), true);
  assert.equal(noRemote.canPortForward("remote"), false);
});

Deno.test("AccessChecker.canJoinSession() lets owners join and others only by join_sessions", () => {
  const session = { owner: "alice", ownerRoles: ["access"], kind: "ssh" };
  const plain = new AccessChecker([ACCESS_ROLE]);
  assert.ok(plain.canJoinSession("alice", session, "peer"));
  assert.ok(plain.canJoinSession("alice", session, "observer"));
  assert.ok(!plain.canJoinSession("bob", session, "observer"));
  const watcher = new AccessChecker([role("watch", {
    allow: {
      join_sessions: [{ name: "watch", roles: ["access"], kinds: ["ssh"], modes: ["observer"] }],
    },
  })]);
  assert.ok(watcher.canJoinSession("bob", session, "observer"));
  assert.ok(!watcher.canJoinSession("bob", session, "peer"));
  assert.ok(!watcher.canJoinSession("bob", { ...session, ownerRoles: ["editor"] }, "observer"));
  const any = new AccessChecker([role("any", {
    allow: { join_sessions: [{ name: "all", roles: ["*"], kinds: ["*"], modes: ["peer"] }] },
  })]);
  assert.ok(any.canJoinSession("bob", { ...session, ownerRoles: ["x"] }, "peer"));
});
