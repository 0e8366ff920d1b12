import assert from "node:assert/strict";
import net from "node:net";
import { connectSsh } from "./client.ts";
import { testCa } from "./_testing.ts";
import { testLogger } from "../log/mod.ts";

Deno.test("connectSsh() fails at once when the given socket closed before the handshake", async () => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.setNoDelay(true);
    await new Promise((r) => socket.once("connect", r));
    await new Promise((r) => setTimeout(r, 50)); // the peer's close arrives with no reader
    const user = await (await testCa()).user(["u"]);
    await assert.rejects(
      connectSsh({
        socket,
        username: "u",
        key: user.key,
        certificate: user.cert,
        verifyHostKey: () => true,
        timeoutMs: 20_000,
        logger: testLogger().logger,
      }),
      // Not "timed out": the close is noticed, not waited out.
      { name: "ConnectionProblemError", message: /connection closed/ },
    );
    socket.destroy();
  } finally {
    await new Promise((r) => server.close(r));
  }
});
