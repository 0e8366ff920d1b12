// The web API against hostile requests, over real sockets (curl for what a client sends).
import assert from "node:assert/strict";
import { startTestWeb, type TestWeb } from "./_testing.ts";
import { makeProxySettings } from "./ping.ts";

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
