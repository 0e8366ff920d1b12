/**
 * The auth API's body limit holds through the proxy's web port: a client offering the auth
 * ALPN id gets its TLS session passed through to the auth listener untouched, so a 500 MiB
 * upload without a client certificate is refused there, early, and neither the proxy nor
 * auth buffers it.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import type { ProxyReady } from "../../lib/service/mod.ts";
import { startTestCluster } from "./_cluster.ts";

const MiB = 1024 * 1024;

function authAlpn(cluster: string): string {
  const hex = Array.from(new TextEncoder().encode(cluster), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `teleport-auth@${hex}.teleport.cluster.local`;
}

/**
 * Sends `POST /v1/register` declaring `declared` bytes and then streams zeros until the
 * server answers or closes. Returns the answer's status line and how many body bytes the
 * socket accepted.
 */
function upload(
  port: number,
  caPems: string[],
  headers: string,
  total: number,
): Promise<{ answer: string; written: number }> {
  return new Promise((resolve, reject) => {
    const tcp = net.connect({ host: "127.0.0.1", port, noDelay: true });
    const sock = tls.connect({
      socket: tcp,
      ca: caPems,
      servername: "teleport.cluster.local",
      ALPNProtocols: [authAlpn("example")],
    });
    let answer = "";
    let written = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      sock.destroy();
      tcp.destroy();
      resolve({ answer, written });
    };
    const chunk = new Uint8Array(64 * 1024);
    const pump = () => {
      while (!done && written < total) {
        written += chunk.length;
        if (!sock.write(chunk)) {
          sock.once("drain", pump);
          return;
        }
      }
    };
    sock.once("secureConnect", () => {
      if (sock.alpnProtocol !== authAlpn("example")) {
        reject(new Error(`the proxy chose ALPN ${sock.alpnProtocol}`));
        return;
      }
      sock.write(`POST /v1/register HTTP/1.1\r\nHost: auth\r\n${headers}\r\n`);
      pump();
    });
    sock.on("data", (d: Uint8Array) => {
      answer += new TextDecoder().decode(d);
    });
    sock.once("close", finish);
    sock.once("end", finish);
    sock.on("error", () => finish());
  });
}

Deno.test("auth API refuses a 500 MiB unauthenticated upload through the web port early", async () => {
  await using c = await startTestCluster({
    configure: (config) => {
      config.roles.proxy = true;
      config.proxy.webListenAddr = { host: "127.0.0.1", port: 0 };
      config.proxy.sshListenAddr = config.proxy.webListenAddr;
      config.proxy.tunnelListenAddr = config.proxy.webListenAddr;
      config.auth.proxyListenerMode = "multiplex";
    },
  });
  const proxy = await c.proc.supervisor.waitFor("proxy.ready") as ProxyReady;
  const rssBefore = Deno.memoryUsage().rss;
  const total = 500 * MiB;
  for (
    const headers of [
      `Content-Type: application/json\r\nContent-Length: ${total}\r\n`,
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
    ]
  ) {
    // Chunked: one chunk declared as 500 MiB (hex), its bytes streamed behind it.
    const prefix = headers.includes("chunked") ? `\r\n${total.toString(16)}` : "";
    const r = await upload(proxy.webPort, c.admin.tlsCaCertPems, headers + prefix, total);
    // Refused by the auth listener: its 413, or a connection closed while still sending.
    if (r.answer !== "") assert.match(r.answer, /^HTTP\/1\.1 413 /, headers);
    // Socket buffers along client → proxy → auth hold a few MiB; never the whole upload.
    assert.ok(r.written < 64 * MiB, `${headers}: ${r.written} bytes accepted`);
  }
  const grown = Deno.memoryUsage().rss - rssBefore;
  assert.ok(grown < 64 * MiB, `RSS grew by ${Math.round(grown / MiB)} MiB`);
});
