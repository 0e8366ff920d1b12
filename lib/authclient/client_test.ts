import assert from "node:assert/strict";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { createX509Ca, generateTlsKeyPair, issueX509Certificate } from "../ca/mod.ts";
import { isKind } from "../errors/mod.ts";
import { AuthClient } from "./mod.ts";

const ALPN = "teleport-auth@6578616d706c65.teleport.cluster.local";

/** An HTTPS server answering ping, with a certificate for `dnsNames`, recording ALPN and SNI. */
async function startServer(dnsNames: string[]) {
  const now = Date.now();
  const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };
  const ca = await createX509Ca({ commonName: "example", ...validity });
  const key = await generateTlsKeyPair();
  const cert = await issueX509Certificate({
    ca: { certPem: ca.certPem, privateKey: ca.privateKey },
    publicKeyPem: key.publicKeyPem,
    subject: [["2.5.4.3", "auth"]],
    extKeyUsage: ["serverAuth"],
    dnsNames,
    ...validity,
  });
  const seen: Array<{ alpn: string | false | null; sni: string | undefined }> = [];
  const server = https.createServer(
    { cert, key: key.privateKeyPem, ALPNProtocols: [ALPN, "http/1.1"] },
    (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ cluster_name: "example" }));
    },
  );
  server.on("connection", (s: Socket) => s.setNoDelay(true));
  server.on("secureConnection", (s: TLSSocket) => {
    seen.push({
      alpn: s.alpnProtocol,
      sni: (s as TLSSocket & { servername?: string }).servername,
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    caPem: ca.certPem,
    port: (server.address() as AddressInfo).port,
    seen,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

Deno.test("AuthClient sends the given ALPN protocols and SNI but verifies the API name", async () => {
  await using srv = await startServer(["teleport.cluster.local"]);
  {
    using client = new AuthClient({
      host: "127.0.0.1",
      port: srv.port,
      caCertPems: [srv.caPem],
      alpnProtocols: [ALPN],
      servername: "proxy.example.com",
    });
    assert.equal((await client.ping()).cluster_name, "example");
  }
  assert.deepEqual(srv.seen, [{ alpn: ALPN, sni: "proxy.example.com" }]);
  {
    using client = new AuthClient({ host: "127.0.0.1", port: srv.port, caCertPems: [srv.caPem] });
    await client.ping();
  }
  assert.equal(srv.seen[1]?.sni, "teleport.cluster.local");
  assert.ok(srv.seen[1]?.alpn !== ALPN);
});

Deno.test("AuthClient refuses a server certificate without the API name, whatever the SNI", async () => {
  await using srv = await startServer(["proxy.example.com"]);
  using client = new AuthClient({
    host: "127.0.0.1",
    port: srv.port,
    caCertPems: [srv.caPem],
    alpnProtocols: [ALPN],
    servername: "proxy.example.com",
  });
  await assert.rejects(client.ping(), (e) => isKind(e, "ConnectionProblem"));
});

Deno.test("AuthClient refuses a server outside the trusted CA with a custom SNI", async () => {
  await using srv = await startServer(["teleport.cluster.local"]);
  await using other = await startServer(["teleport.cluster.local"]);
  using client = new AuthClient({
    host: "127.0.0.1",
    port: srv.port,
    caCertPems: [other.caPem],
    alpnProtocols: [ALPN],
    servername: "6578616d706c65.teleport.cluster.local",
  });
  await assert.rejects(client.ping(), (e) => isKind(e, "ConnectionProblem"));
});
