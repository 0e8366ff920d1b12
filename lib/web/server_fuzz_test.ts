/**
 * Fuzz test of the web server over real sockets: mutated and generated HTTP/1.1 request heads
 * (and bodies) are written to {@link createWebServer} through node:net connections on
 * 127.0.0.1. Every connection must get an HTTP response or a close before the deadline, no
 * answer may be a 500, and the server must still serve a clean request afterwards.
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import { FakeClock } from "../clock/mod.ts";
import { exchange, fuzz, httpStatusOfResponse, invariant, type Rng } from "../testing/mod.ts";
import { FakeAuth, testLogger } from "./_testing.ts";
import { makeProxySettings } from "./ping.ts";
import { createWebServer } from "./server.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const latin1 = new TextDecoder("latin1");

const LOGIN = JSON.stringify({
  user: "alice",
  password: "pw",
  ssh_pub_key: btoa("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop"),
  ttl: 3_600_000_000_000,
});
const JOIN = JSON.stringify({
  token: "0123456789abcdef",
  hostID: "h1",
  node_name: "n1",
  role: "Node",
  public_ssh_key: "ssh-ed25519 AAAA",
  public_tls_key: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
});
const PASSWORD = JSON.stringify({ token: "0123456789abcdef0123456789abcdef", password: "pw" });

const post = (path: string, body: string, method = "POST") =>
  `${method} ${path} HTTP/1.1\r\nHost: proxy.example.com\r\nContent-Type: application/json\r\n` +
  `Content-Length: ${enc(body).length}\r\n\r\n${body}`;

const CORPUS = [
  "GET /webapi/ping HTTP/1.1\r\nHost: 127.0.0.1:3080\r\n\r\n",
  "GET /webapi/find HTTP/1.1\r\nHost: proxy.example.com\r\nAccept: */*\r\n\r\n",
  "HEAD / HTTP/1.1\r\nHost: proxy.example.com:443\r\n\r\n",
  "GET /web/invite/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n",
  "GET /webapi/users/password/token/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n",
  post("/webapi/ssh/certs", LOGIN),
  post("/webapi/host/credentials", JOIN),
  post("/webapi/users/password/token", PASSWORD, "PUT"),
  "POST /webapi/ssh/certs HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n" +
  `Transfer-Encoding: chunked\r\n\r\n${LOGIN.length.toString(16)}\r\n${LOGIN}\r\n0\r\n\r\n`,
  "GET /webapi/ping HTTP/1.0\r\n\r\n",
].map(enc);

const DICTIONARY = [
  "\r\n",
  "\n",
  ": ",
  " ",
  "\r\n\r\n",
  "Content-Length: 0\r\n",
  "Content-Length: 99999999999\r\n",
  "Content-Length: -1\r\n",
  "Transfer-Encoding: chunked\r\n",
  "0\r\n\r\n",
  "Host: \r\n",
  "Content-Type: application/json; charset=utf-8\r\n",
  "Connection: keep-alive\r\n",
  "Expect: 100-continue\r\n",
  "Upgrade: websocket\r\n",
  "%",
  "%ZZ",
  "/../",
  "//",
  "?",
  "#",
  " HTTP/1.1",
  "HTTP/9.9",
  "\u0000",
  "\u00ff",
  "X: " + "a".repeat(9000) + "\r\n",
];

const METHODS = ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "G ET"];
const PATHS = [
  "/",
  "/web",
  "/webapi/ping",
  "/webapi/ping/local",
  "/webapi/find",
  "/webapi/ssh/certs",
  "/webapi/host/credentials",
  "/webapi/users/password/token",
  "/webapi/users/password/token/0123456789abcdef0123456789abcdef",
  "/webapi/users/password/token/%E0%A4%A",
  "/web/invite/x",
  "/web/reset/%00",
  "*",
  "http://proxy.example.com/webapi/ping",
  "/webapi/ping?x=%ZZ",
];
const HEADERS = [
  "Host: proxy.example.com",
  "Host: [::1]:3080",
  "Host: bad host",
  "Content-Type: application/json",
  "Content-Type: text/plain",
  "Accept-Encoding: gzip",
  "Origin: https://evil.example.com",
  "Cookie: session=x",
  "X-Forwarded-For: 127.0.0.9",
  "Connection: close",
  "Transfer-Encoding: chunked",
  "Transfer-Encoding: gzip, chunked",
];

/** A request built from parts, with a Content-Length that may be honest or not. */
function generateRequest(rng: Rng): Uint8Array {
  const body = rng.pick(["", LOGIN, JOIN, PASSWORD, "{", "null", "[]", "x".repeat(70_000)]);
  const headers = HEADERS.filter(() => rng.chance(0.25));
  const length = enc(body).length;
  if (rng.chance(0.8)) {
    headers.push(`Content-Length: ${rng.pick([length, length, length + 5, 0, length - 1])}`);
  }
  const head = `${rng.pick(METHODS)} ${rng.pick(PATHS)} ${rng.pick(["HTTP/1.1", "HTTP/1.0"])}`;
  return enc(`${head}\r\n${headers.map((h) => h + "\r\n").join("")}\r\n${body}`);
}

Deno.test("createWebServer() answers or closes every mutated request over real sockets, never 500", async () => {
  const auth = new FakeAuth();
  const { logger } = testLogger();
  const unlimited = { burst: 1_000_000, perMinute: 1_000_000 };
  const web = createWebServer({
    auth,
    clock: new FakeClock(Date.UTC(2026, 0, 1)),
    logger,
    serverVersion: "0.1.0-test",
    proxySettings: makeProxySettings({
      ssh: {
        listen_addr: "0.0.0.0:3023",
        tunnel_listen_addr: "0.0.0.0:3024",
        web_listen_addr: "0.0.0.0:3080",
        public_addr: "proxy.example.com:3080",
        dial_timeout: 30_000_000_000,
      },
      tls_routing_enabled: true,
    }),
    loginRateLimit: unlimited,
    // Short, so heads that never end are closed quickly (their cases wait for it).
    headersTimeoutMs: 300,
    requestTimeoutMs: 2_000,
  });
  // allowHalfOpen: a client that half-closes after its request still gets the answer.
  const listener = net.createServer({ allowHalfOpen: true }, (sock) => web.handleConnection(sock));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as AddressInfo).port;
  const outcomes = new Map<string, number>();
  try {
    await fuzz({
      name: "web server over sockets",
      cases: 3_000,
      concurrency: 16,
      corpus: CORPUS,
      dictionary: DICTIONARY,
      maxLength: 96 * 1024,
      generators: [generateRequest],
      async check(input, rng) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.setNoDelay(true);
        const { response, timedOut } = await exchange(conn, input, {
          halfClose: rng.chance(0.5),
          deadlineMs: 15_000,
        });
        invariant(!timedOut, "the server answered or closed within 15 s");
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
    // Still serving, and the fuzz reached the handlers, not just the HTTP parser.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const { response } = await exchange(conn, CORPUS[0]!);
    invariant(httpStatusOfResponse(response) === 200, "a clean ping still works");
    for (const s of ["200", "400", "404"]) {
      invariant((outcomes.get(s) ?? 0) > 50, `outcomes ${JSON.stringify([...outcomes])}`);
    }
  } finally {
    await web.close();
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
});
