import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { selfSignedCertificate, startFakeConnectProxy } from "../net/mod.ts";

/**
 * tsh reads HTTPS_PROXY / NO_PROXY from its environment. The environment is process-wide, so
 * this runs the web client in a child process (deno eval) with the variables set, never in the
 * test process. Loopback targets always bypass the proxy, so the web server listens on this
 * machine's non-loopback address.
 */
const HOST_IP = "127.0.0.1";
const ROOT = new URL("../../", import.meta.url);

const SCRIPT = `
import { WebClient } from ${JSON.stringify(new URL("lib/client/mod.ts", ROOT).href)};
const client = new WebClient({
  addr: { host: Deno.env.get("TEST_WEB_HOST"), port: Number(Deno.env.get("TEST_WEB_PORT")) },
  trust: { caCertPems: [Deno.env.get("TEST_WEB_CA")] },
  timeoutMs: 10000,
});
try {
  console.log(JSON.stringify(await client.ping()));
} catch (err) {
  console.log(JSON.stringify({ error: err.name + ": " + err.message }));
}
`;

async function pingInChild(
  env: Record<string, string>,
): Promise<{ cluster_name?: string; error?: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", new URL("deno.json", ROOT).pathname, SCRIPT],
    env: {
      NO_PROXY: "",
      no_proxy: "",
      HTTP_PROXY: "",
      http_proxy: "",
      https_proxy: "",
      // The proxy and the web server are both on 127.0.0.1 (tests use nothing else).
      TELEPORT_PROXY_LOOPBACK: "yes",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success, `${stdout}\n${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(stdout.split("\n").at(-1)!);
}

Deno.test({
  name: "WebClient (tsh) goes through HTTPS_PROXY to a non-loopback proxy address",
  ignore: skipGroup("web-client-proxy-env"),
  fn: async () => {
    const cert = await selfSignedCertificate([HOST_IP!]);
    const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ cluster_name: "example", path: req.url }));
    });
    await new Promise<void>((resolve) => server.listen(0, HOST_IP, resolve));
    const port = (server.address() as AddressInfo).port;
    await using proxy = await startFakeConnectProxy();
    await using refusing = await startFakeConnectProxy({
      answer: () => "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
    });
    const web = { TEST_WEB_HOST: HOST_IP!, TEST_WEB_PORT: String(port), TEST_WEB_CA: cert.certPem };
    try {
      // Through the proxy: it sees CONNECT to the web address, the TLS inside is verified.
      const viaProxy = await pingInChild({ ...web, HTTPS_PROXY: proxy.url });
      assert.equal(viaProxy.cluster_name, "example", viaProxy.error);
      assert.deepEqual(proxy.requests.map((r) => r.line), [
        `CONNECT ${HOST_IP}:${port} HTTP/1.1`,
      ]);
      // NO_PROXY naming the address: direct.
      const direct = await pingInChild({ ...web, HTTPS_PROXY: proxy.url, NO_PROXY: HOST_IP! });
      assert.equal(direct.cluster_name, "example", direct.error);
      assert.equal(proxy.requests.length, 1);
      // The lower case name works too, and a refusing proxy is explained.
      const refused = await pingInChild({ ...web, https_proxy: refusing.url });
      assert.equal(
        refused.error,
        `AccessDeniedError: Cannot connect to proxy ${HOST_IP}:${port} through HTTP proxy ` +
          `${refusing.url}: the proxy asks for credentials (HTTP 407 Proxy Authentication ` +
          "Required); put them in HTTPS_PROXY as http://user:password@host:port",
      );
      assert.equal(refusing.requests.length, 1);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  },
});
