import assert from "node:assert/strict";
import https from "node:https";
import net, { type AddressInfo, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { createX509Ca, generateTlsKeyPair, issueX509Certificate } from "../ca/mod.ts";
import { isKind } from "../errors/mod.ts";
import { dialTcp, startFakeConnectProxy } from "../net/mod.ts";
import { AuthClient } from "./mod.ts";

const ALPN = "teleport-auth@6578616d706c65.teleport.cluster.local";

/**
 * An HTTPS server answering ping (or never answering, with `hang`), with a certificate for
 * `dnsNames`, recording ALPN and SNI.
 */
async function startServer(dnsNames: string[], hang = false, dropSecondRequest = false) {
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
  let dropped = 0;
  const server = https.createServer(
    { cert, key: key.privateKeyPem, ALPNProtocols: [ALPN, "http/1.1"] },
    (req, res) => {
      if (hang) return;
      // A server that went away while the connection sat idle in the client's pool.
      const sock = req.socket as Socket & { served?: number };
      sock.served = (sock.served ?? 0) + 1;
      if (dropSecondRequest && sock.served === 2) {
        // Read and dropped unanswered a moment later: the request surely went out.
        dropped++;
        return void setTimeout(() => sock.destroy(), 20);
      }
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
    get dropped() {
      return dropped;
    },
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

Deno.test("AuthClient recovers when the server dropped a kept-alive connection unanswered", async () => {
  await using srv = await startServer(["teleport.cluster.local"], false, true);
  using client = new AuthClient({ host: "127.0.0.1", port: srv.port, caCertPems: [srv.caPem] });
  // Calls until one goes out on a pooled connection, which the server drops unanswered after
  // reading the request (an auth process that closes its idle connections as it drains, racing
  // the request): the read goes again on a new connection and succeeds like the others.
  for (let i = 0; i < 50 && srv.dropped === 0; i++) {
    assert.equal((await client.ping()).cluster_name, "example");
  }
  assert.equal(srv.dropped, 1, "a pooled connection was reused and dropped");
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

Deno.test("AuthClient runs TLS over its dial function and keeps the connection alive", async () => {
  await using srv = await startServer(["teleport.cluster.local"]);
  const dialled: string[] = [];
  const dial = (host: string, port: number) => {
    dialled.push(`${host}:${port}`);
    return new Promise<Duplex>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port: srv.port });
      s.setNoDelay(true);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
  };
  using client = new AuthClient({
    host: "auth.example.test",
    port: 3025,
    caCertPems: [srv.caPem],
    dial,
  });
  for (let i = 0; i < 3; i++) assert.equal((await client.ping()).cluster_name, "example");
  assert.deepEqual(dialled, ["auth.example.test:3025"]);
});

Deno.test("AuthClient reaches the auth server through an HTTP CONNECT proxy", async () => {
  await using srv = await startServer(["teleport.cluster.local"]);
  await using proxy = await startFakeConnectProxy({
    route: () => ({ host: "127.0.0.1", port: srv.port }),
  });
  using client = new AuthClient({
    host: "auth.example.test",
    port: 3025,
    caCertPems: [srv.caPem],
    dial: (host, port) => dialTcp(host, port, { proxy: { httpsProxy: proxy.url } }),
  });
  assert.equal((await client.ping()).cluster_name, "example");
  assert.deepEqual(proxy.requests.map((r) => r.target), ["auth.example.test:3025"]);
});

Deno.test("AuthClient keeps the explanation of a proxy that refuses CONNECT", async () => {
  await using proxy = await startFakeConnectProxy({
    answer: () => "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
  });
  using client = new AuthClient({
    host: "auth.example.test",
    port: 3025,
    insecureSkipVerify: true,
    dial: (host, port) => dialTcp(host, port, { proxy: { httpsProxy: proxy.url } }),
  });
  await assert.rejects(client.ping(), (e: Error) => {
    assert.ok(isKind(e, "AccessDenied"), e.message);
    assert.equal(
      e.message,
      `Cannot reach auth server auth.example.test:3025 through HTTP proxy ${proxy.url}: the ` +
        "proxy asks for credentials (HTTP 407 Proxy Authentication Required); put them in " +
        "HTTPS_PROXY as http://user:password@host:port",
    );
    return true;
  });
});

Deno.test("AuthClient explains a refused connection and times out a silent server", async () => {
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  {
    using client = new AuthClient({ host: "127.0.0.1", port, insecureSkipVerify: true });
    await assert.rejects(client.ping(), (e: Error) => {
      assert.ok(isKind(e, "ConnectionProblem"), e.message);
      assert.match(
        e.message,
        new RegExp(
          `^Cannot reach auth server 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.* ` +
            "\\(is the auth service running there\\?\\)$",
        ),
      );
      return true;
    });
  }
  {
    // tsh reaches auth through the proxy's web port: the error names the proxy.
    using client = new AuthClient({
      host: "127.0.0.1",
      port,
      insecureSkipVerify: true,
      via: "proxy",
    });
    await assert.rejects(client.ping(), (e: Error) => {
      assert.match(
        e.message,
        new RegExp(
          `^Cannot reach the auth service through proxy 127\\.0\\.0\\.1:${port}: ` +
            ".*ECONNREFUSED.* \\(is the proxy running there, and is that its web port\\?\\)$",
        ),
      );
      assert.doesNotMatch(e.message, /auth server/);
      return true;
    });
  }
  await using srv = await startServer(["teleport.cluster.local"], true);
  using client = new AuthClient({
    host: "127.0.0.1",
    port: srv.port,
    caCertPems: [srv.caPem],
    timeoutMs: 100,
  });
  await assert.rejects(client.ping(), (e: Error) => {
    assert.ok(isKind(e, "ConnectionProblem"), e.message);
    assert.match(e.message, /request timed out/);
    return true;
  });
});
