import assert from "node:assert/strict";
import { generateTlsKeyPair } from "../ca/mod.ts";
import { type LoggedRecord, type Logger, testLogger } from "../log/mod.ts";
import type { RateLimit } from "../net/mod.ts";
import { newTestAuth } from "./_testing.ts";
import { type AuthApiServer, startAuthApiServer } from "./listener.ts";

const MiB = 1024 * 1024;

interface TestApi extends AsyncDisposable {
  api: AuthApiServer;
  records: LoggedRecord[];
  until(pred: (r: LoggedRecord[]) => boolean): Promise<void>;
  /** Files for curl: the host CA (`--cacert`) and an Admin host certificate and key. */
  caFile: string;
  certFile: string;
  keyFile: string;
  dir: string;
}

/** The auth API on 127.0.0.1:0 over a test AuthServer, with files for curl. */
async function startTestApi(o: { unauthenticatedRateLimit?: RateLimit } = {}): Promise<TestApi> {
  const t = await newTestAuth();
  const { logger, records, until } = watchedLogger();
  const serverKey = await generateTlsKeyPair();
  const certPem = await t.auth.generateHostTlsCert({
    hostId: "auth-host",
    role: "Auth",
    tlsPublicKeyPem: serverKey.publicKeyPem,
    names: ["127.0.0.1"],
  });
  const api = await startAuthApiServer({
    server: t.auth,
    logger,
    host: "127.0.0.1",
    port: 0,
    certPem,
    keyPem: serverKey.privateKeyPem,
    ...o,
  });
  const dir = await Deno.makeTempDir({ prefix: "tp-auth-listener-" });
  const clientKey = await generateTlsKeyPair();
  const clientCert = await t.auth.generateHostTlsCert({
    hostId: "admin-host",
    role: "Admin",
    tlsPublicKeyPem: clientKey.publicKeyPem,
  });
  const caFile = `${dir}/ca.pem`;
  const certFile = `${dir}/client.pem`;
  const keyFile = `${dir}/client.key`;
  await Deno.writeTextFile(caFile, t.auth.hostCaCertPems().join("\n"));
  await Deno.writeTextFile(certFile, clientCert);
  await Deno.writeTextFile(keyFile, clientKey.privateKeyPem, { mode: 0o600 });
  return {
    api,
    records,
    until,
    caFile,
    certFile,
    keyFile,
    dir,
    async [Symbol.asyncDispose]() {
      await api.close();
      await t[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

interface CurlResult {
  code: number;
  status: number;
  headers: string;
  body: string;
}

/** Runs curl against the test API; `args` come before the URL. */
async function curl(t: TestApi, path: string, args: string[] = []): Promise<CurlResult> {
  const headerFile = `${t.dir}/headers-${crypto.randomUUID()}`;
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--cacert",
      t.caFile,
      "-D",
      headerFile,
      "-o",
      "-",
      "-w",
      "\n%{http_code}",
      ...args,
      `https://127.0.0.1:${t.api.port}${path}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const nl = text.lastIndexOf("\n");
  const headers = await Deno.readTextFile(headerFile).catch(() => "");
  return {
    code: out.code,
    status: Number(text.slice(nl + 1)),
    headers: headers.toLowerCase(),
    body: text.slice(0, nl),
  };
}

/** The bytes the server had read from the connection it closed over a too-large body. */
function closedAfterBytes(records: LoggedRecord[]): number[] {
  return records
    .filter((r) => r.message.startsWith("Closed auth API connection"))
    .map((r) => Number(r.properties?.bytesRead));
}

/** A test logger that can wait for records. */
function watchedLogger() {
  const { logger, records } = testLogger();
  const watchers = new Set<() => void>();
  const watched = new Proxy({}, {
    get(_target, level) {
      return (message: unknown, properties?: Record<string, unknown>) => {
        (logger as unknown as Record<string, (m: unknown, p?: unknown) => void>)[String(level)]!(
          message,
          properties,
        );
        for (const w of [...watchers]) w();
      };
    },
  }) as Logger;
  /** Resolves once `pred(records)` holds. */
  const until = (pred: (r: LoggedRecord[]) => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!pred(records)) return;
        watchers.delete(check);
        resolve();
      };
      watchers.add(check);
      check();
    });
  return { logger: watched, records, until };
}

Deno.test("auth API refuses a 500 MiB unauthenticated upload early, by length and chunked", async (t) => {
  await using api = await startTestApi();
  const big = `${api.dir}/big.json`;
  // A sparse file: curl streams it, nothing is held in memory on either side.
  {
    using file = await Deno.create(big);
    await file.truncate(500 * MiB);
  }
  const rssBefore = Deno.memoryUsage().rss;
  const upload = (extra: string[]) =>
    curl(api, "/v1/register", [
      "-X",
      "POST",
      "-T",
      big,
      "-H",
      "Expect:", // no 100-continue: the body comes right behind the headers
      "-H",
      "Content-Type: application/json",
      ...extra,
    ]);
  const outcomes: CurlResult[] = [];
  await t.step("by Content-Length", async () => {
    outcomes.push(await upload([]));
  });
  await t.step("chunked", async () => {
    outcomes.push(await upload(["-H", "Transfer-Encoding: chunked"]));
  });
  // The close is logged from the socket's close event, which may come after curl exits.
  await api.until((r) => closedAfterBytes(r).length === 2);
  const read = closedAfterBytes(api.records);
  for (const [i, r] of outcomes.entries()) {
    // Either curl read the 413 before the server closed, or it saw the connection close
    // while still sending (55: send failure, 56: receive failure).
    if (r.code === 0) {
      assert.equal(r.status, 413, `upload ${i}`);
      assert.match(r.headers, /connection: close/);
      assert.equal(JSON.parse(r.body).error.kind, "LimitExceeded");
    } else {
      assert.ok([55, 56].includes(r.code), `upload ${i}: curl exit ${r.code}`);
    }
  }
  // The limit without a certificate is 64 KiB; a few TLS records more may be in flight.
  for (const n of read) assert.ok(n <= 64 * 1024 + 256 * 1024, `server read ${n} bytes`);
  const grown = Deno.memoryUsage().rss - rssBefore;
  assert.ok(grown < 48 * MiB, `RSS grew by ${Math.round(grown / MiB)} MiB`);
});

Deno.test("auth API answers 413 with Connection: close before reading a too-large body", async () => {
  await using api = await startTestApi();
  const caCerts = [await Deno.readTextFile(api.caFile)];
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: api.api.port });
  tcp.setNoDelay(true);
  const conn = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts });
  await conn.write(new TextEncoder().encode(
    "POST /v1/register HTTP/1.1\r\nHost: auth\r\nContent-Type: application/json\r\n" +
      `Content-Length: ${2 * MiB}\r\n\r\n`,
  ));
  // The server answers without a body byte sent, then closes: reading ends at EOF.
  const answer = await new Response(conn.readable).text();
  assert.match(answer, /^HTTP\/1\.1 413 /);
  assert.match(answer.toLowerCase(), /\r\nconnection: close\r\n/);
  assert.match(answer, /"kind":"LimitExceeded"/);
  assert.match(answer, /larger than 65536 bytes/);
});

Deno.test("auth API rate-limits calls without a client certificate per client IP", async () => {
  await using api = await startTestApi({ unauthenticatedRateLimit: { burst: 3, perMinute: 1 } });
  for (let i = 0; i < 3; i++) assert.equal((await curl(api, "/v1/ping")).status, 200);
  const refused = await curl(api, "/v1/ping");
  assert.equal(refused.status, 429);
  assert.match(refused.headers, /\r\nretry-after: 60\r\n/);
  assert.equal(JSON.parse(refused.body).error.kind, "LimitExceeded");
  // Every unauthenticated call counts against the same bucket: join and CA certificates too.
  const join = await curl(api, "/v1/register", [
    "-H",
    "Content-Type: application/json",
    "--data-binary",
    "{}",
  ]);
  assert.equal(join.status, 429);
  assert.equal((await curl(api, "/v1/cacerts")).status, 429);
  // Another client address has its own bucket.
  assert.equal((await curl(api, "/v1/ping", ["--interface", "127.0.0.2"])).status, 200);
  // A caller with a valid client certificate is not throttled.
  const withCert = ["--cert", api.certFile, "--key", api.keyFile];
  assert.equal((await curl(api, "/v1/ping", withCert)).status, 200);
  assert.equal((await curl(api, "/v1/status", withCert)).status, 200);
  // A flood is logged once per client a minute.
  for (let i = 0; i < 10; i++) await curl(api, "/v1/ping");
  const warned = api.records.filter((r) => r.message.startsWith("Throttling auth API calls"));
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.properties?.addr, "127.0.0.1");
});

Deno.test("auth API answers a malformed path escape with 400 and no error log", async () => {
  await using api = await startTestApi();
  const withCert = ["--cert", api.certFile, "--key", api.keyFile];
  for (const path of ["/v1/recordings/%zz", "/v1/resources/node/%E0%A4%A", "/v1/users/%zz/reset"]) {
    const r = await curl(api, path, withCert);
    assert.equal(r.status, 400, path);
    assert.equal(JSON.parse(r.body).error.kind, "BadParameter");
  }
  // Without a certificate, the recording route refuses before it looks at the path.
  assert.equal((await curl(api, "/v1/recordings/%zz")).status, 403);
  assert.deepEqual(api.records.filter((r) => r.level === "error"), []);
});
