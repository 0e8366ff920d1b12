// The web API against hostile requests, over real sockets (curl for what a client sends).
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { logText, startTestWeb, type TestWeb } from "./_testing.ts";
import { makeProxySettings } from "./ping.ts";

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
    const res = await curl(web, "/web", ["-H", "Host: evil.example:4443"]);
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
    for (const path of ["/", "/web"]) {
      const res = await curl(web, path, ["-H", "Host: evil.example"]);
      assert.equal(res.status, 200);
      assert.ok(!res.body.includes("evil.example"), res.body);
      assert.match(res.body, /data-from-browser="yes">&#60;proxy host&#62;:3080</);
    }
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
