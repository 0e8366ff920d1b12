/**
 * The web UI's resource list with 10,000 nodes (`GET /v1/webapi/sites/:site/resources`):
 * the time of one page through the web API's handler (`new Request`, no sockets) and through
 * HTTPS on 127.0.0.1 (the real adapter: TLS handshake, one request per connection, as the
 * browser gets it), for the first page, a page deep in the list (by cursor), a keyword search
 * and a label query; plus a cold page (a node list the proxy has not sorted yet, as after each
 * registry refresh). The user's roles allow half of the nodes (RBAC filter on every page).
 *
 *   npx -y deno@2.9.6 run -A bench/web_resources.ts [--nodes=10000] [--runs=200]
 *
 * Prints p50/p95 in ms. Not a test: it asserts nothing about timing.
 */
import { parseArgs } from "node:util";
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import {
  createX509Ca,
  generateSshKeyPair,
  generateTlsKeyPair,
  issueX509Certificate,
  X509_OIDS,
} from "../lib/ca/mod.ts";
import { RealClock } from "../lib/clock/mod.ts";
import { testLogger } from "../lib/log/mod.ts";
import {
  type AuthPing,
  createWebServer,
  makeProxySettings,
  type WebAuthApi,
  type WebSessionRecord,
} from "../lib/web/mod.ts";
import { out } from "./_common.ts";
import { AccessChecker } from "../lib/rbac/mod.ts";
import type { Role, ServerResource } from "../lib/resource/mod.ts";
import type { WebClusterAccess } from "../lib/web/mod.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "10000" },
    runs: { type: "string", default: "200" },
  },
});
const N = Number(args.values.nodes);
const RUNS = Number(args.values.runs);
const SITE = "example";

function makeNodes(): ServerResource[] {
  return Array.from({ length: N }, (_, i) => ({
    kind: "node",
    version: "v2",
    metadata: {
      name: crypto.randomUUID(),
      labels: { env: i % 2 === 0 ? "prod" : "dev", team: `t${i % 40}`, rack: `r${i % 300}` },
    },
    spec: {
      addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:3022`,
      hostname: `node-${String(i).padStart(5, "0")}`,
      version: "0.1.0",
      ...(i % 7 === 0 ? { use_tunnel: true, addr: "" } : {}),
    },
  }));
}

let nodes: readonly ServerResource[] = makeNodes();
const role = {
  kind: "role",
  version: "v7",
  metadata: { name: "dev" },
  spec: {
    options: {},
    allow: { node_labels: { env: "dev" }, logins: ["ubuntu", "root"] },
    deny: {},
  },
} as Role;
const checker = new AccessChecker([role]);
const cluster: WebClusterAccess = {
  clusterName: SITE,
  certifyUser: () =>
    Promise.resolve({
      user: "alice",
      roles: ["dev"],
      traits: {},
      checker,
      certificate: {} as never,
    }),
  nodes: () => Promise.resolve(nodes),
  hasTunnel: () => true,
  dial: () => Promise.reject(new Error("not in this benchmark")),
  verifyHostKey: () => Promise.resolve(),
  userApi: () => {
    throw new Error("not in this benchmark");
  },
};

// An auth stand-in: any password logs in (the certificate only has to parse: certifyUser above
// stands in for the check), web sessions in a map.
const sshCert = (await generateSshKeyPair("ed25519")).authorizedKey;
const stored = new Map<string, WebSessionRecord>();
const auth: WebAuthApi = {
  ping: () => Promise.resolve({ cluster_name: SITE, server_version: "bench" } as AuthPing),
  authenticateSshUser: () =>
    Promise.resolve({
      sshCert,
      tlsCert: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
      tlsCaCerts: [],
      hostCaKeys: [],
      userCaKeys: [],
      expires: new Date(Date.now() + 12 * 3_600_000).toISOString(),
    }),
  getUserTokenDetails: () => Promise.reject(new Error("not in this benchmark")),
  changePasswordWithToken: () => Promise.reject(new Error("not in this benchmark")),
  register: () => Promise.reject(new Error("not in this benchmark")),
  upsertWebSession: (s) => Promise.resolve(void stored.set(s.id, s)),
  getWebSession: (id) => Promise.resolve(stored.get(id)!),
  deleteWebSession: (id) => Promise.resolve(void stored.delete(id)),
};
const { logger } = testLogger();
const web = createWebServer({
  auth,
  cluster,
  clock: new RealClock(),
  logger,
  serverVersion: "bench",
  proxySettings: makeProxySettings({}),
  publicRateLimit: { burst: 1e9, perMinute: 1e9 },
});
// A throwaway CA and certificate for 127.0.0.1.
const validity = {
  notBefore: new Date(Date.now() - 60_000),
  notAfter: new Date(Date.now() + 86_400_000),
};
const ca = await createX509Ca({ commonName: "bench-ca", ...validity });
const keys = await generateTlsKeyPair();
const certPem = await issueX509Certificate({
  ca,
  publicKey: keys.publicKey,
  subject: [[X509_OIDS.commonName, "127.0.0.1"]],
  ipAddresses: ["127.0.0.1"],
  extKeyUsage: ["serverAuth"],
  ...validity,
});
const server = tls.createServer({ cert: certPem, key: keys.privateKeyPem });
server.on("secureConnection", (s: tls.TLSSocket) => web.handleConnection(s));
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = (server.address() as AddressInfo).port;
const client = Deno.createHttpClient({ caCerts: [ca.certPem] });
const t = {
  web,
  fetch: (path: string, init: RequestInit = {}) =>
    fetch(`https://127.0.0.1:${port}${path}`, { ...init, client }),
};
const login = await t.fetch("/v1/webapi/sessions/web", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ user: "alice", pass: "x" }),
});
const cookie = login.headers.getSetCookie()[0]!.split(";")[0]!;
const token = (await login.json()).token as string;
const headers = { cookie, authorization: `Bearer ${token}` };

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

async function measure(
  name: string,
  path: string,
  via: "handler" | "https",
  cold = false,
): Promise<void> {
  const times: number[] = [];
  let total = 0;
  let items = 0;
  const runs = cold ? Math.min(RUNS, 20) : RUNS;
  for (let i = 0; i < runs + 5; i++) {
    if (cold) nodes = makeNodes();
    const t0 = performance.now();
    const res = via === "handler"
      ? await t.web.handler(new Request(`https://proxy.example.com:3080${path}`, { headers }), {
        remoteAddr: "127.0.0.1",
      })
      : await t.fetch(path, { headers });
    const body = await res.json();
    const ms = performance.now() - t0;
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
    if (i >= 5) times.push(ms); // warm-up runs are not counted
    total = body.totalCount;
    items = body.items.length;
  }
  out(
    `${name.padEnd(34)} ${via.padEnd(7)} p50 ${pct(times, 0.5).toFixed(2).padStart(7)} ms  ` +
      `p95 ${pct(times, 0.95).toFixed(2).padStart(7)} ms  (${items} of ${total})`,
  );
}

const base = `/v1/webapi/sites/${SITE}/resources`;
// A cursor half-way through the user's nodes.
let deep = "";
{
  const r = await (await t.fetch(`${base}?limit=1000`, { headers })).json();
  let key = r.startKey as string;
  for (let i = 0; i < 1; i++) {
    const next = await (await t.fetch(`${base}?limit=1000&startKey=${key}`, { headers })).json();
    key = next.startKey;
  }
  deep = key;
}
out(`web resources: ${N} nodes, the user's roles allow ${N / 2}; ${RUNS} runs each`);
for (const via of ["handler", "https"] as const) {
  await measure("first page (limit 50)", `${base}?limit=50`, via);
  await measure("page at a cursor (limit 50)", `${base}?limit=50&startKey=${deep}`, via);
  await measure('search "node-01"', `${base}?limit=50&search=node-01`, via);
  await measure(
    "query team == t3",
    `${base}?limit=50&query=${encodeURIComponent('labels["team"] == "t3"')}`,
    via,
  );
}
await measure("first page, cold (new node list)", `${base}?limit=50`, "handler", true);
client.close();
await new Promise<void>((resolve) => server.close(() => resolve()));
await web.close();
