import assert from "node:assert/strict";
import net from "node:net";
import { Buffer } from "node:buffer";
import { formatProxyHeaderV2 } from "./proxy_protocol.ts";
import { readProxyHeader, type ReadProxyHeaderResult } from "./read_proxy_header.ts";

/** Accepts one TCP connection, reads a header off it, then collects everything after it. */
async function serveOnce(
  send: (c: net.Socket) => void,
  timeoutMs?: number,
): Promise<{ result: ReadProxyHeaderResult; rest: string }> {
  const accepted = Promise.withResolvers<net.Socket>();
  const server = net.createServer((s) => accepted.resolve(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect({ host: "127.0.0.1", port });
  client.setNoDelay(true);
  client.once("connect", () => send(client));
  const sock = await accepted.promise;
  sock.setNoDelay(true);
  const result = await readProxyHeader(sock, timeoutMs === undefined ? {} : { timeoutMs });
  const chunks: Buffer[] = [];
  if (result.kind !== "error") {
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.resume();
    // A server-speaks-first client (below) answers the banner by closing.
    if (result.kind === "silent") sock.write("SSH-2.0-server\r\n");
    await new Promise((r) => sock.once("end", r));
  }
  sock.destroy();
  client.destroy();
  await new Promise((r) => server.close(r));
  return { result, rest: Buffer.concat(chunks).toString() };
}

Deno.test("readProxyHeader() takes a v2 header off and puts back what follows it", async () => {
  const header = formatProxyHeaderV2({
    source: { addr: "127.0.0.9", port: 4242 },
    destination: { addr: "127.0.0.1", port: 22 },
  });
  const { result, rest } = await serveOnce((c) => {
    // Split inside the header: the reader must assemble it.
    c.write(header.subarray(0, 10));
    c.end(Buffer.concat([Buffer.from(header.subarray(10)), Buffer.from("SSH-2.0-x\r\n")]));
  });
  assert.equal(result.kind, "header");
  assert.deepEqual(
    (result as { header: { source: unknown } }).header.source,
    { addr: "127.0.0.9", port: 4242 },
  );
  assert.equal(rest, "SSH-2.0-x\r\n");
});

Deno.test("readProxyHeader() leaves other protocols' bytes untouched", async () => {
  const { result, rest } = await serveOnce((c) => c.end("SSH-2.0-OpenSSH_9\r\n"));
  assert.deepEqual(result, { kind: "none" });
  assert.equal(rest, "SSH-2.0-OpenSSH_9\r\n");
});

Deno.test("readProxyHeader() reports a malformed header as an error", async () => {
  const bad = formatProxyHeaderV2({}).slice();
  bad[12] = 0x13;
  const { result } = await serveOnce((c) => c.write(bad));
  assert.equal(result.kind, "error");
  assert.match((result as { reason: string }).reason, /version nibble/);
});

Deno.test("readProxyHeader() answers silent when the client waits for the server", async () => {
  // The client writes nothing until it hears the server, so the reader gives up waiting.
  const { result, rest } = await serveOnce((c) => c.once("data", () => c.end()), 50);
  assert.deepEqual(result, { kind: "silent" });
  assert.equal(rest, "");
});
