// The web API against hostile requests, over real sockets: curl for what a client sends, a raw
// TLS client for a body that keeps coming after the answer.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import { logText, startTestWeb, type TestWeb } from "./_testing.ts";
import { makeProxySettings } from "./ping.ts";
import { MAX_BODY_BYTES } from "./server.ts";

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests alice@laptop";
const LOGIN = JSON.stringify({
  user: "alice",
  password: "correct-horse-battery-staple-7",
  ssh_pub_key: b64(SSH_KEY),
});
const TOKEN = "0123456789abcdef0123456789abcdef";

interface CurlResult {
  status: number;
  body: string;
  /** Bytes of request body curl sent. */
  uploaded: number;
}

/** Runs curl against the test server (`-sk`, trusting nothing but answering anyway). */
async function curl(t: TestWeb, path: string, args: string[]): Promise<CurlResult> {
  const out = await new Deno.Command("curl", {
    args: [
      "-sk",
      "--max-time",
      "30",
      "-w",
      "\\n%{http_code} %{size_upload}",
      ...args,
      t.url(path),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, `curl failed: ${new TextDecoder().decode(out.stderr)}`);
  const text = new TextDecoder().decode(out.stdout);
  const nl = text.lastIndexOf("\n");
  const [status, uploaded] = text.slice(nl + 1).split(" ").map(Number);
  return { status: status!, body: text.slice(0, nl), uploaded: uploaded! };
}

const json = ["-H", "content-type: application/json"];

Deno.test("createWebServer() never copies the Host header into the landing page", async (t) => {
  await t.step("with a public address", async () => {
    await using web = await startTestWeb();
    const res = await curl(web, "/", ["-H", "Host: evil.example:4443"]);
    assert.equal(res.status, 200);
    assert.ok(!res.body.includes("evil.example"), res.body);
    assert.match(res.body, /data-from-browser="no">proxy\.example\.com:3080</);
  });
  await t.step("without one: the browser fills in the address it shows", async () => {
    await using web = await startTestWeb({
      proxySettings: makeProxySettings({
        ssh: { web_listen_addr: "0.0.0.0:3080" },
        tls_routing_enabled: true,
      }),
    });
    const res = await curl(web, "/", ["-H", "Host: evil.example"]);
    assert.equal(res.status, 200);
    assert.ok(!res.body.includes("evil.example"), res.body);
    assert.match(res.body, /data-from-browser="yes">&#60;proxy host&#62;:3080</);
  });
});

Deno.test("createWebServer() refuses state-changing calls from other sites with 403", async () => {
  await using t = await startTestWeb();
  const calls: Array<[string, string[]]> = [
    ["/webapi/ssh/certs", [...json, "-H", "Origin: https://evil.example", "--data", LOGIN]],
    ["/webapi/ssh/certs", [...json, "-H", "Origin: null", "--data", LOGIN]],
    // Same host and port as the test server, but plain http: another origin.
    ["/webapi/ssh/certs", [...json, "-H", `Origin: http://127.0.0.1:${t.port}`, "--data", LOGIN]],
    ["/webapi/ssh/certs", [...json, "-H", "Sec-Fetch-Site: cross-site", "--data", LOGIN]],
    [
      "/webapi/ssh/certs",
      [...json, "-H", "Origin: https://proxy.example.com:3080", "-H", "Sec-Fetch-Site: cross-site"]
        .concat(["--data", LOGIN]),
    ],
    [
      "/webapi/users/password/token",
      [...json, "-X", "PUT", "-H", "Origin: https://evil.example", "--data", "{}"],
    ],
    ["/webapi/host/credentials", [...json, "-H", "Origin: https://evil.example", "--data", "{}"]],
    // A state-changing method the route does not take: refused before the 405.
    ["/webapi/ssh/certs", ["-X", "DELETE", "-H", "Origin: https://evil.example"]],
  ];
  for (const [path, args] of calls) {
    const res = await curl(t, path, args);
    const what = `${path} ${args.join(" ")}`;
    assert.equal(res.status, 403, what);
    const message = JSON.parse(res.body).error.message as string;
    assert.match(message, /^Cannot [a-z ]+: cross-site requests are refused: /, what);
    assert.ok(!message.includes("evil.example"), "the answer echoes the Origin");
  }
  assert.equal(t.auth.logins.length, 0);
  assert.equal(t.auth.passwordChanges.length, 0);
  assert.equal(t.auth.registers.length, 0);
  assert.match(
    logText(t.records),
    /warn Refused a cross-site .*\n *method: "POST",\n *path: "\/webapi\/ssh\/certs"/,
  );
});

Deno.test("createWebServer() accepts state-changing calls from its own origins and without Origin", async () => {
  await using t = await startTestWeb({
    extra: { publicAddrs: ["proxy.example.com:3080", "internal.example.com:443"] },
  });
  const origins = [
    undefined, // tsh, curl
    "https://proxy.example.com:3080",
    "https://INTERNAL.example.com", // port 443 implied
    `https://127.0.0.1:${t.port}`, // the authority the request was sent to (curl's Host)
  ];
  for (const origin of origins) {
    const headers = origin === undefined
      ? []
      : ["-H", `Origin: ${origin}`, "-H", "Sec-Fetch-Site: same-origin"];
    const res = await curl(t, "/webapi/ssh/certs", [...json, ...headers, "--data", LOGIN]);
    assert.equal(res.status, 200, `${origin}: ${res.body}`);
  }
  assert.equal(t.auth.logins.length, origins.length);
  // Reads are not checked: a cross-site GET changes nothing.
  const ping = await curl(t, "/webapi/ping", ["-H", "Origin: https://evil.example"]);
  assert.equal(ping.status, 200);
  const token = await curl(t, `/webapi/users/password/token/${TOKEN}`, [
    "-H",
    "Sec-Fetch-Site: cross-site",
  ]);
  assert.equal(token.status, 200);
});

Deno.test("createWebServer() refuses a body over 64 KiB by its Content-Length before reading it", async () => {
  await using t = await startTestWeb();
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/body.json`;
    await Deno.writeFile(file, new Uint8Array(2 * 1024 * 1024).fill(0x20));
    // curl waits for "100 Continue" before sending; the 413 comes instead, so nothing is sent.
    const big = await curl(t, "/webapi/ssh/certs", [
      ...json,
      "-H",
      "Expect: 100-continue",
      "--expect100-timeout",
      "30",
      "--data-binary",
      `@${file}`,
    ]);
    assert.equal(big.status, 413);
    assert.equal(big.uploaded, 0);
    assert.equal(
      JSON.parse(big.body).error.message,
      `Cannot log in: the request body is larger than ${MAX_BODY_BYTES} bytes`,
    );
    // A body within the limit still gets its "100 Continue" and is read.
    const small = await curl(t, "/webapi/ssh/certs", [
      ...json,
      "-H",
      "Expect: 100-continue",
      "--expect100-timeout",
      "30",
      "--data",
      LOGIN,
    ]);
    assert.equal(small.status, 200, small.body);
    // Chunked: read up to the limit, then answered.
    const chunked = await curl(t, "/webapi/ssh/certs", [
      ...json,
      "-H",
      "Transfer-Encoding: chunked",
      "--data-binary",
      `@${file}`,
    ]);
    assert.equal(chunked.status, 413);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** What a client that keeps sending its body after the answer saw. */
interface PushResult {
  /** The answer's status line. */
  statusLine: string;
  /** Body bytes the client wrote before the connection failed. */
  sent: number;
  /** Bytes the server read from the connection before closing it. */
  serverRead: number;
}

/**
 * Sends a POST whose body goes on for `total` bytes (chunked, or with that Content-Length),
 * ignoring every answer, until the server closes the connection.
 */
async function pushBody(t: TestWeb, total: number, chunked: boolean): Promise<PushResult> {
  const serverSocket = Promise.withResolvers<Socket>();
  t.web.server.once("request", (req) => serverSocket.resolve(req.socket as Socket));
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: t.port });
  tcp.setNoDelay(true);
  const conn = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [t.caPem] });
  const enc = new TextEncoder();
  await conn.write(enc.encode(
    "POST /webapi/ssh/certs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
      (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : `Content-Length: ${total}\r\n\r\n`),
  ));
  let answer = "";
  const reading = (async () => {
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      answer += new TextDecoder().decode(buf.subarray(0, n));
    }
  })();
  const block = new Uint8Array(64 * 1024).fill(0x20);
  const frame = chunked
    ? Buffer.concat([enc.encode(`${block.length.toString(16)}\r\n`), block, enc.encode("\r\n")])
    : block;
  let sent = 0;
  try {
    while (sent < total) {
      // write() may take part of the frame only.
      for (let off = 0; off < frame.length;) off += await conn.write(frame.subarray(off));
      sent += block.length;
    }
  } catch {
    // The server closed the connection: what this measures.
  }
  await reading;
  conn.close();
  const socket = await serverSocket.promise;
  if (!socket.destroyed) await new Promise((resolve) => socket.once("close", resolve));
  return { statusLine: answer.split("\r\n")[0]!, sent, serverRead: socket.bytesRead };
}

Deno.test("createWebServer() closes the connection instead of draining a refused body", async (t) => {
  const total = 256 * 1024 * 1024;
  for (const chunked of [false, true]) {
    await t.step(chunked ? "chunked" : "with Content-Length", async () => {
      await using web = await startTestWeb();
      const r = await pushBody(web, total, chunked);
      assert.equal(r.statusLine, "HTTP/1.1 413 Payload Too Large");
      assert.ok(r.sent < total, "the server read the whole body");
      assert.ok(r.serverRead < total / 4, `the server read ${r.serverRead} bytes`);
    });
  }
});
