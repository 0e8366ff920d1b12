import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
import { Duplex } from "node:stream";
import type { SshClient } from "../ssh/mod.ts";
import { parseLocalForwardSpec, startLocalForward } from "./forward.ts";

Deno.test("parseLocalForwardSpec() reads OpenSSH -L forms", () => {
  assert.deepEqual(parseLocalForwardSpec("8080:localhost:80"), {
    bindHost: "127.0.0.1",
    bindPort: 8080,
    destHost: "localhost",
    destPort: 80,
  });
  assert.deepEqual(parseLocalForwardSpec("0.0.0.0:8080:db:5432"), {
    bindHost: "0.0.0.0",
    bindPort: 8080,
    destHost: "db",
    destPort: 5432,
  });
  assert.deepEqual(parseLocalForwardSpec("[::1]:0:[fe80::1]:22"), {
    bindHost: "::1",
    bindPort: 0,
    destHost: "fe80::1",
    destPort: 22,
  });
  assert.equal(parseLocalForwardSpec("*:1:h:2").bindHost, "0.0.0.0");
  assert.equal(parseLocalForwardSpec(":1:h:2").bindHost, "0.0.0.0");
});

Deno.test("parseLocalForwardSpec() refuses malformed specs with the expected form", () => {
  for (
    const bad of [
      "8080",
      "8080:host",
      "x:host:80",
      "8080:host:0",
      "99999:h:1",
      "1:h:2:3:4",
      "[::1:1:h:2",
    ]
  ) {
    assert.throws(() => parseLocalForwardSpec(bad), /use \[bind_address:\]port:host:hostport/, bad);
  }
});

Deno.test("startLocalForward() pipes each local connection through a forwardOut channel", async () => {
  // A fake SSH client whose channels echo upper-cased data back.
  const asked: string[] = [];
  const client: Pick<SshClient, "forwardOut"> = {
    forwardOut(o) {
      asked.push(`${o.destHost}:${o.destPort}`);
      const channel: Duplex = new Duplex({
        read() {},
        write(chunk, _enc, cb) {
          channel.push(new TextDecoder().decode(chunk).toUpperCase());
          cb();
        },
        final(cb) {
          channel.push(null);
          cb();
        },
      });
      Object.assign(channel, { close: () => channel.destroy() });
      return Promise.resolve(channel as never);
    },
  };
  await using fwd = await startLocalForward(client, {
    bindHost: "127.0.0.1",
    bindPort: 0,
    destHost: "db",
    destPort: 5432,
  });
  const reply = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: fwd.port }, () => s.end("hello"));
    let text = "";
    s.on("data", (d) => text += d);
    s.on("end", () => resolve(text));
    s.on("error", reject);
  });
  assert.equal(reply, "HELLO");
  assert.deepEqual(asked, ["db:5432"]);
});

Deno.test("startLocalForward() reports a port that is taken", async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
  const port = (taken.address() as { port: number }).port;
  try {
    await assert.rejects(
      startLocalForward({ forwardOut: () => Promise.reject(new Error("unused")) }, {
        bindHost: "127.0.0.1",
        bindPort: port,
        destHost: "h",
        destPort: 1,
      }),
      new RegExp(`Cannot listen on 127.0.0.1:${port} for port forwarding`),
    );
  } finally {
    await new Promise<void>((r) => taken.close(() => r()));
  }
});
