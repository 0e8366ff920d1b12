/**
 * Fuzz test of the auth API's request handling ({@link handleApiRequest}): random methods, paths
 * built from the route table with mutated segments, random queries and JSON bodies, from every
 * kind of caller. Bad input is the caller's fault: any 500 is a bug.
 *
 * The server keeps state across cases (tokens, users and resources the fuzzer creates), which
 * is part of what is tested; a failure names its case, and replaying a stateful one may need
 * the cases before it (run with the same seed and no FUZZ_CASE).
 */
import assert from "node:assert/strict";
import { fuzz, invariant, type Rng } from "../testing/mod.ts";
import { handleApiRequest } from "./api.ts";
import { ADMIN, newTestAuth, nodeIdentity, proxyIdentity, userIdentity } from "./_testing.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const utf8 = new TextDecoder();

const PATHS = [
  "/v1/ping",
  "/v1/cacerts",
  "/v1/register",
  "/v1/status",
  "/v1/resources/{kind}",
  "/v1/resources/{kind}/{name}",
  "/v1/resources",
  "/v1/nodes/{name}",
  "/v1/proxies/{name}",
  "/v1/proxies",
  "/v1/events",
  "/v1/recordings",
  "/v1/tokens",
  "/v1/users",
  "/v1/users/{name}/reset",
  "/v1/users/password/token/{name}",
  "/v1/users/password/token",
  "/v1/users/{name}/ssh/authenticate",
  "/v1/certs/user",
];
const KINDS = ["user", "role", "token", "cert_authority", "node", "proxy", "ca", "users", "x"];
const NAMES = [
  "alice",
  "dev",
  "admin",
  "editor",
  "host",
  "user",
  "0123456789abcdef0123456789abcdef",
  "%ZZ",
  "%",
  "%00",
  "%2F..%2F",
  "..",
  "a".repeat(300),
  "%F0%9F%98%80",
  "%ED%A0%80",
];
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", ""];

const role = {
  kind: "role",
  version: "v7",
  metadata: { name: "dev" },
  spec: { allow: { logins: ["dev"], rules: [{ resources: ["node"], verbs: ["list"] }] } },
};
const BODIES = [
  { roles: ["node"], ttl_ms: 3_600_000 },
  { roles: ["proxy", "node"], ttl_ms: 60_000, token: "0123456789abcdef" },
  { resource: role, upsert: true },
  {
    user: {
      kind: "user",
      version: "v2",
      metadata: { name: "alice" },
      spec: { roles: ["dev"], traits: { logins: ["alice"] } },
    },
  },
  { events: [{ event: "session.start", time: "2026-01-01T00:00:00Z" }, 5, null] },
  {
    token: "0123456789abcdef",
    hostID: "0b9e4b36",
    node_name: "n1",
    role: "Node",
    public_ssh_key: "ssh-ed25519 AAAA",
    public_tls_key: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
    remote_addr: "127.0.0.2:5000",
  },
  { user: "alice", ttl_ms: 60_000, ssh_public_key: "ssh-ed25519 AAAA" },
  { token: "0123456789abcdef0123456789abcdef", password: "x", second_factor_token: "1" },
  {
    node: {
      kind: "node",
      version: "v2",
      metadata: { name: "n1" },
      spec: { hostname: "n1", addr: "127.0.0.1:3022" },
    },
  },
  { password: "wrong", ttl_ms: 60_000, ssh_public_key: "ssh-ed25519 AAAA" },
];
const QUERIES = [
  "",
  "from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z",
  "from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&limit=5&order=desc&type=a,b&sid=x",
  "from=x&to=y",
  "from=1e400&to=-1&limit=1e400",
  "from=2026-01-01&to=2025-01-01&limit=0&order=up&start_key=%ZZ",
  "from=0&to=8640000000000001",
];

const callers = [
  undefined,
  ADMIN,
  proxyIdentity(),
  nodeIdentity(),
  userIdentity("alice", ["editor"]),
  userIdentity("bob", ["access"]),
  userIdentity("eve", ["no-such-role"]),
];

/** The method each path template takes (so half the cases reach a handler). */
const METHOD_OF: Record<string, string> = {
  "/v1/register": "POST",
  "/v1/resources": "POST",
  "/v1/nodes/{name}": "PUT",
  "/v1/proxies/{name}": "PUT",
  "/v1/tokens": "POST",
  "/v1/users": "POST",
  "/v1/users/{name}/reset": "POST",
  "/v1/users/password/token": "PUT",
  "/v1/users/{name}/ssh/authenticate": "POST",
  "/v1/certs/user": "POST",
};

/** Values that sit on a boundary of some check. */
const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  0.5,
  1e300,
  -1e300,
  2 ** 53 + 2,
  8.64e15,
  "",
  "x",
  "%ZZ",
  "a".repeat(2000),
  [],
  ["node", "Admin"],
  [1, null],
  {},
  { kind: "role" },
];

/** A corpus body with one field replaced, removed or added (structure-aware). */
function mutatedBody(rng: Rng): Uint8Array {
  const b = structuredClone(rng.pick(BODIES)) as Record<string, unknown>;
  const keys = Object.keys(b);
  const target = rng.chance(0.8) && keys.length > 0 ? rng.pick(keys) : rng.pick(["ttl_ms", "x"]);
  const inner = b[target];
  if (rng.chance(0.3) && typeof inner === "object" && inner !== null && !Array.isArray(inner)) {
    const ik = Object.keys(inner);
    if (ik.length > 0) (inner as Record<string, unknown>)[rng.pick(ik)] = rng.pick(ODD_VALUES);
  } else if (rng.chance(0.2)) {
    delete b[target];
  } else {
    b[target] = rng.pick(ODD_VALUES);
  }
  return enc(JSON.stringify(b));
}

/** A request line: method, path (templated, then percent- or byte-mangled), query. */
function requestFor(rng: Rng, bodyText: string) {
  const template = rng.pick(PATHS);
  const consistent = rng.chance(0.5);
  let path = template
    .replace("{kind}", () => rng.pick(KINDS))
    .replace("{name}", () => rng.pick(NAMES));
  if (rng.chance(0.2)) {
    const at = rng.int(path.length + 1);
    path = path.slice(0, at) + rng.pick(["/", "%", "%25", "//", "\u0000", "é", "?"]) +
      path.slice(at);
  }
  const method = consistent
    ? METHOD_OF[template] ?? (rng.chance(0.8) ? "GET" : "DELETE")
    : rng.pick(METHODS);
  return {
    method,
    path,
    query: new URLSearchParams(rng.pick(QUERIES)),
    bodyText,
    caller: consistent && rng.chance(0.6) ? ADMIN : rng.pick(callers),
  };
}

Deno.test("handleApiRequest() never answers 500 to bad input (100k random requests)", async () => {
  await using t = await newTestAuth();
  const statuses = new Map<number, number>();
  await fuzz({
    name: "handleApiRequest()",
    // Fast checks here; the slow paths (password hashing) are rare by construction.
    cases: 100_000,
    corpus: BODIES.map((b) => enc(JSON.stringify(b))),
    dictionary: ['"', "{", "}", "[", "]", ":", ",", "null", "1e300", "-1", '"ttl_ms"', "0.5"],
    generators: [mutatedBody],
    generatorShare: 0.6,
    async check(input, rng) {
      const req = requestFor(rng, utf8.decode(input));
      let body: unknown;
      try {
        body = req.bodyText === "" ? undefined : JSON.parse(req.bodyText);
      } catch {
        return; // the listener answers 400 before the API runs
      }
      const res = await handleApiRequest(t.auth, {
        method: req.method,
        path: req.path,
        query: req.query,
        body,
        ...(req.caller === undefined ? {} : { caller: req.caller }),
        remoteAddr: "127.0.0.1",
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      invariant(
        res.status !== 500,
        `500 for ${req.method} ${req.path}?${req.query} as ${req.caller?.username ?? "nobody"} ` +
          `with ${req.bodyText.slice(0, 300)}`,
      );
      invariant([200, 400, 403, 404, 409, 412, 429, 501].includes(res.status), `${res.status}`);
      if (res.status !== 200) {
        const err = (res.body as { error?: { message?: unknown } }).error;
        invariant(typeof err?.message === "string" && err.message !== "", "an error message");
      }
    },
  });
  invariant((statuses.get(200) ?? 0) > 2000, `few successes: ${JSON.stringify([...statuses])}`);
});

Deno.test("handleApiRequest() refuses a token TTL that ends past the last representable time", async () => {
  // Found by the fuzzer: toISOString() threw a RangeError and the API answered 500.
  await using t = await newTestAuth();
  for (const ttl_ms of [1e300, 8.64e15]) {
    const res = await handleApiRequest(t.auth, {
      method: "POST",
      path: "/v1/tokens",
      body: { roles: ["node"], ttl_ms },
      caller: ADMIN,
    });
    assert.equal(res.status, 400);
    assert.match(
      (res.body as { error: { message: string } }).error.message,
      /^Cannot create token: a TTL of .* ms ends past the last representable time$/,
    );
  }
});
