/**
 * Remote forwarding (tcpip-forward, forwarded-tcpip) and agent forwarding
 * (auth-agent-req@openssh.com, auth-agent@openssh.com channels) between our SshServer and
 * connectSsh() in one process.
 */
import assert from "node:assert/strict";
import { generateSshKeyPair } from "../ca/mod.ts";
import { AccessDeniedError } from "../errors/mod.ts";
import { testLogger } from "../log/mod.ts";
import { bytesEqual, deadline, serve, testCa } from "./_testing.ts";
import type { ServerChannel, SshChannel } from "./channel.ts";
import { connectSsh, type ConnectSshOptions } from "./client.ts";
import type { GlobalRequest, SshServerHandlers } from "./server.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function setup(handlers: SshServerHandlers<null>) {
  const ca = await testCa();
  const host = await generateSshKeyPair("ed25519");
  const alice = await ca.user(["alice"]);
  const { logger } = testLogger();
  const server = await serve<null>({
    hostKey: host,
    hostCertificate: (await ca.host(["127.0.0.1"], { key: host })).cert,
    authenticate: () => ({ ok: true, context: null }),
    handlers,
    logger,
  });
  return {
    connect: (options: Pick<ConnectSshOptions, "channels"> = {}) =>
      connectSsh({
        port: server.addr.port,
        username: "alice",
        key: alice.key,
        certificate: alice.cert,
        verifyHostKey: ({ keyBlob }) => bytesEqual(keyBlob, host.publicKeyBlob),
        logger,
        ...options,
      }),
    async [Symbol.asyncDispose]() {
      await server.close();
    },
  };
}

/** The first chunk a stream delivers, as text. */
function firstChunk(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => stream.once("data", (d: Uint8Array) => resolve(dec.decode(d))));
}

Deno.test("forwardIn() gets the bound port and each forwarded-tcpip connection; cancel reaches the server", async () => {
  const requests: Array<{ name: string; addr?: string; port?: number }> = [];
  const forwarded = Promise.withResolvers<ServerChannel>();
  await using s = await setup({
    globalRequest: (req: GlobalRequest<null>) => {
      requests.push({
        name: req.name,
        ...(req.bindAddr === undefined ? {} : { addr: req.bindAddr }),
        ...(req.bindPort === undefined ? {} : { port: req.bindPort }),
      });
      if (req.name === "tcpip-forward" && req.bindPort === 0) {
        req.accept(40123);
        // As a node does when its listener accepts a connection.
        req.conn.openForwardedTcpip({
          boundAddr: req.bindAddr ?? "",
          boundPort: 40123,
          originAddr: "127.0.0.9",
          originPort: 5555,
        }).then(forwarded.resolve, forwarded.reject);
        return;
      }
      if (req.name === "cancel-tcpip-forward") return req.accept();
      req.reject();
    },
  });
  await using client = await s.connect();
  const origins: string[] = [];
  const handle = await client.forwardIn({ bindAddr: "localhost", bindPort: 0 }, (conn) => {
    origins.push(`${conn.originAddr}:${conn.originPort}`);
    const ch = conn.accept();
    ch.on("data", (d: Uint8Array) => ch.write(dec.decode(d).toUpperCase()));
  });
  assert.equal(handle.port, 40123);
  const channel = await deadline(forwarded.promise, 10_000, "the forwarded-tcpip channel");
  channel.write(enc.encode("round trip"));
  assert.equal(await deadline(firstChunk(channel), 10_000, "the echo"), "ROUND TRIP");
  assert.deepEqual(origins, ["127.0.0.9:5555"]);
  channel.destroy();
  await handle.cancel();
  assert.deepEqual(requests, [
    { name: "tcpip-forward", addr: "localhost", port: 0 },
    { name: "cancel-tcpip-forward", addr: "localhost", port: 40123 },
  ]);
  await assert.rejects(
    client.forwardIn({ bindAddr: "localhost", bindPort: 22 }, () => {}),
    (err: Error) => err instanceof AccessDeniedError && /the server refused/.test(err.message),
  );
});

Deno.test("requestAgentForwarding() lets the server open auth-agent@openssh.com channels to the client's handler", async () => {
  const agentChannel = Promise.withResolvers<SshChannel>();
  await using s = await setup({
    session: (open) => {
      open.accept((req) => {
        if (req.type !== "auth-agent-req@openssh.com") return req.reject();
        req.accept();
        open.conn.openChannel("auth-agent@openssh.com").then(
          agentChannel.resolve,
          agentChannel.reject,
        );
      });
    },
  });
  await using client = await s.connect({
    channels: {
      // Stands in for the local agent: answers each message upper-cased.
      "auth-agent@openssh.com": (open) => {
        const ch = open.accept();
        ch.on("data", (d: Uint8Array) => ch.write(dec.decode(d).toUpperCase()));
      },
    },
  });
  const session = await client.openSession();
  assert.equal(await session.requestAgentForwarding(), true);
  const ch = await deadline(agentChannel.promise, 10_000, "the agent channel");
  ch.write(enc.encode("list keys"));
  assert.equal(await deadline(firstChunk(ch), 10_000, "the agent reply"), "LIST KEYS");
  ch.destroy();
  session.close();
});

Deno.test("requestAgentForwarding() resolves false when the server refuses", async () => {
  await using s = await setup({ session: (open) => void open.accept((req) => req.reject()) });
  await using client = await s.connect();
  const session = await client.openSession();
  assert.equal(await session.requestAgentForwarding(), false);
  session.close();
});
