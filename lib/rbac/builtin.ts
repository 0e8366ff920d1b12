/** Built-in roles, created by the auth service on first start (Teleport's presets). */
import type { Role } from "../resource/mod.ts";

/** `access`: log in as the user's own logins on every node. */
export const ACCESS_ROLE: Role = {
  kind: "role",
  version: "v7",
  metadata: { name: "access", description: "Access cluster resources as the user's own logins" },
  spec: {
    options: { max_session_ttl: "30h", port_forwarding: true, forward_agent: true },
    allow: { logins: ["{{internal.logins}}"], node_labels: { "*": "*" } },
    deny: {},
  },
};

/** `editor`: manage users, roles and tokens; read CAs, nodes and session recordings. */
export const EDITOR_ROLE: Role = {
  kind: "role",
  version: "v7",
  metadata: { name: "editor", description: "Edit cluster configuration" },
  spec: {
    options: { max_session_ttl: "8h" },
    allow: {
      rules: [
        { resources: ["user", "role", "token"], verbs: ["*"] },
        { resources: ["cert_authority", "node", "cluster"], verbs: ["list", "read"] },
        { resources: ["session"], verbs: ["list", "read"] },
      ],
    },
    deny: {},
  },
};

/** `auditor`: read the audit log and session recordings. */
export const AUDITOR_ROLE: Role = {
  kind: "role",
  version: "v7",
  metadata: { name: "auditor", description: "Review cluster events and replay sessions" },
  spec: {
    options: { max_session_ttl: "30h" },
    allow: { rules: [{ resources: ["event", "session"], verbs: ["list", "read"] }] },
    deny: {},
  },
};

/** All built-in roles. */
export const BUILTIN_ROLES: readonly Role[] = [ACCESS_ROLE, EDITOR_ROLE, AUDITOR_ROLE];
