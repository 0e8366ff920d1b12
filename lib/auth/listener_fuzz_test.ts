/**
 * Fuzz test of the auth API listener over real mutual-TLS connections: mutated and generated
 * HTTP/1.1 requests from an anonymous client and from an Admin host identity. Every connection
 * must get an HTTP response or a close before the deadline, no answer may be a 500, and the
 * listener must still serve a clean request afterwards.
 */
import { generateTlsKeyPair } from "../ca/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import { exchange, fuzz, httpStatusOfResponse, invariant, type Rng } from "../testing/mod.ts";
import { startAuthApiServer } from "./listener.ts";
import { newTestAuth } from "./_testing.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const latin1 = new TextDecoder("latin1");

const request = (method: string, path: string, body?: unknown) => {
  const text = body === undefined ? "" : JSON.stringify(body);
  return `${method} ${path} HTTP/1.1\r\nHost: teleport.cluster.local\r\n` +
    (body === undefined ? "" : `Content-Type: application/json\r\n`) +
    `Content-Length: ${enc(text).length}\r\nConnection: close\r\n\r\n${text}`;
};

const CORPUS = [
  request("GET", "/v1/ping"),
  request("GET", "/v1/cacerts"),
  request("GET", "/v1/status"),
  request("GET", "/v1/resources/role"),
  request("GET", "/v1/resources/user/alice"),
  request("GET", "/v1/events?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&limit=5"),
  request("POST", "/v1/tokens", { roles: ["node"], ttl_ms: 60_000 }),
  request("POST", "/v1/register", { token: "x", hostID: "h", node_name: "n", role: "Node" }),
  request("POST", "/v1/resources", {
    resource: { kind: "role", metadata: { name: "dev" }, spec: { allow: { logins: ["dev"] } } },
    upsert: true,
  }),
  request("DELETE", "/v1/resources/role/dev"),
  request("GET", "/v1/recordings"),
  request("GET", "/v1/recordings/3c7ef39a-0d4e-4b8f-9a8c-2d1f0c9e7b6a"),
].map(enc);

const DICTIONARY = [
  "\r\n",
  ": ",
  "\r\n\r\n",
  "Content-Length: 0\r\n",
  "Content-Length: 2000000\r\n",
  "Transfer-Encoding: chunked\r\n",
  "0\r\n\r\n",
  "%",
  "%2F",
  "/../",
  "//",
  "?",
  "{",
  "}",
  '"',
  "null",
  "1e300",
  " HTTP/1.1",
];

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];
const PATHS = [
  "/v1/ping",
  "/v1/resources/role",
  "/v1/resources/token/%41",
  "/v1/resources/user/%E0%A4%A",
  "/v1/users/%25/reset",
  "/v1/users/password/token/%FF",
  "/v1/nodes/n1",
  "/v1/proxies/%00",
  "/v1/recordings/%2e%2e",
  "/v1/recordings/ok-sid",
  "/v1/events?from=x",
  "/v1/tokens",
  "//v1/ping",
  "http://auth/v1/ping",
  "*",
];

function generateRequest(rng: Rng): Uint8Array {
  const body = rng.chance(0.5)
    ? rng.pick([{}, { roles: ["node"], ttl_ms: 1e300 }, [], "x", { events: [] }, null])
    : undefined;
  return enc(request(rng.pick(METHODS), rng.pick(PATHS), body));
}

/** Whether a request's head has ended and its declared body has fully arrived. */
function looksComplete(input: Uint8Array): boolean {
  const text = latin1.decode(input);
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd === -1) return false;
  const head = text.slice(0, headEnd);
  if (/transfer-encoding/i.test(head)) return /\r\n0\r\n\r\n$/.test(text);
  const lengths = [...head.matchAll(/^content-length:\s*(\S*)\s*$/gim)].map((m) => m[1]);
  if (lengths.length === 0) return true;
  return lengths.length === 1 && /^\d+$/.test(lengths[0]!) &&
    text.length - headEnd - 4 >= Number(lengths[0]);
}

Deno.test("the auth API listener answers or closes every mutated request, never 500", async () => {
  await using t = await newTestAuth();
  const serverKeys = await generateTlsKeyPair();
  const certPem = await t.auth.generateHostTlsCert({
    hostId: "auth-fuzz",
    role: "Auth",
    tlsPublicKeyPem: serverKeys.publicKeyPem,
    names: ["localhost", "127.0.0.1"],
  });
  await using api = await startAuthApiServer({
    server: t.auth,
    logger: getComponentLogger("auth:fuzz"),
    host: "127.0.0.1",
    port: 0,
    certPem,
    keyPem: serverKeys.privateKeyPem,
    // Every case is an anonymous call from 127.0.0.1: the per-address limit would answer 429.
    unauthenticatedRateLimit: { burst: 1_000_000, perMinute: 1_000_000 },
  });
  const adminKeys = await generateTlsKeyPair();
  const admin = {
    cert: await t.auth.generateHostTlsCert({
      hostId: "admin-fuzz",
      role: "Admin",
      tlsPublicKeyPem: adminKeys.publicKeyPem,
    }),
    key: adminKeys.privateKeyPem,
  };
  const caCerts = t.auth.hostCaCertPems();
  const connect = (asAdmin: boolean) =>
    Deno.connectTls({
      hostname: "127.0.0.1",
      port: api.port,
      caCerts,
      alpnProtocols: ["http/1.1"],
      ...(asAdmin ? admin : {}),
    });
  const outcomes = new Map<string, number>();
  await fuzz({
    name: "auth API listener over mTLS",
    cases: 1_000,
    concurrency: 8,
    corpus: CORPUS,
    dictionary: DICTIONARY,
    maxLength: 16 * 1024,
    generators: [generateRequest],
    async check(input, rng) {
      const conn = await connect(rng.chance(0.6));
      // Under Deno's node:https the listener's headersTimeout and requestTimeout are not
      // enforced: a request the server is still waiting for holds its connection open for
      // good (reported to the owner of listener.ts, which this branch does not edit). So a
      // request that is incomplete as far as the client can tell ends with EOF (half-close);
      // a complete one leaves the connection open, as real clients do, and waits for the answer.
      const { response, timedOut } = await exchange(conn, input, {
        halfClose: !looksComplete(input),
        untilHttpResponse: true,
        deadlineMs: 20_000,
      });
      invariant(!timedOut, "the listener answered or closed within 20 s");
      const status = httpStatusOfResponse(response);
      const outcome = response.length === 0 ? "closed" : String(status ?? "garbage");
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      invariant(
        response.length === 0 || status !== undefined,
        `an HTTP response: ${JSON.stringify(latin1.decode(response.subarray(0, 200)))}`,
      );
      invariant(status !== 500, `no 500: ${latin1.decode(response.subarray(0, 400))}`);
    },
  });
  const { response } = await exchange(await connect(false), CORPUS[0]!, {
    untilHttpResponse: true,
  });
  invariant(httpStatusOfResponse(response) === 200, "a clean ping still works");
  for (const s of ["200", "400", "403", "404"]) {
    invariant((outcomes.get(s) ?? 0) > 10, `outcomes ${JSON.stringify([...outcomes])}`);
  }
});
