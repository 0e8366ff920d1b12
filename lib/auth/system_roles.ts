/**
 * What cluster members may do through the auth API, as role policies so the
 * same AccessChecker decides for hosts and users. Admin (tctl on the auth host)
 * may do everything.
 */
import type { Role, SystemRole } from "../resource/mod.ts";

function policy(name: SystemRole, rules: Array<[string[], string[]]>): Role {
  return {
    kind: "role",
    version: "v7",
    metadata: { name: `system:${name.toLowerCase()}` },
    spec: {
      options: {},
      allow: { rules: rules.map(([resources, verbs]) => ({ resources, verbs })) },
      deny: {},
    },
  };
}

/** Policies of the system roles. */
export const SYSTEM_ROLE_POLICIES: Record<SystemRole, Role> = {
  Admin: policy("Admin", [[["*"], ["*"]]]),
  Auth: policy("Auth", [[["*"], ["*"]]]),
  Node: policy("Node", [
    // Roles: a node checks a user's roles (named in the certificate) itself.
    [["cert_authority", "cluster", "role"], ["list", "read"]],
    [["node"], ["create", "update"]],
    [["event", "session"], ["create"]],
    // Trackers of its own interactive sessions (the server checks the node id).
    [["session_tracker"], ["create", "update", "delete"]],
  ]),
  Proxy: policy("Proxy", [
    [["cert_authority", "cluster", "node", "proxy", "user", "role"], ["list", "read"]],
    [["event", "session"], ["create"]],
    // Invite links (token details with the TOTP key, setting the password) and logins.
    [["user_token"], ["read", "use"]],
    [["user_login"], ["create"]],
    // Browser logins: web sessions live in auth's backend so every proxy can serve them.
    [["web_session"], ["create", "read", "update", "delete"]],
    // Its own heartbeat (the server checks that a proxy announces only itself).
    [["proxy"], ["create", "update"]],
  ]),
};
