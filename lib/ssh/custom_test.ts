/**
 * Custom channel types, channel requests and global requests in both directions (adaptation
 * A9 in _ssh2.ts), between our SshServer and connectSsh() in one process, the way reverse
 * tunnels use them.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import { generateSshKeyPair } from "../ca/mod.ts";
import { AccessDeniedError, BadParameterError, ConnectionProblemError } from "../errors/mod.ts";
import { testLogger } from "../log/mod.ts";
import { bytesEqual, deadline, serve, testCa } from "./_testing.ts";
import type { IncomingChannelRequest, IncomingGlobalRequest, SshChannel } from "./channel.ts";
import { connectSsh, type ConnectSshOptions } from "./client.ts";
import { copyingStream } from "./copy_stream.ts";
import {
  type SshConnection,
  type SshServerHandlers,
  type SshServerOptions,
  startSshServer,
} from "./server.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

type ClientExtras = Pick<ConnectSshOptions, "channels" | "refuseChannel" | "onGlobalRequest">;

/**
 * A server with the given handlers (its connections are handed out by `nextConnection()`) and
 * a `connect()` that logs in as alice with the given client options.
 */
async function setup(
  handlers: SshServerHandlers<null> = {},
  extra: Partial<SshServerOptions<null>> = {},
) {
  const ca = await testCa();
  const host = await generateSshKeyPair("ed25519");
  const alice = await ca.user(["alice"]);
  const { logger } = testLogger();
  const conns: Array<PromiseWithResolvers<SshConnection<null>>> = [Promise.withResolvers()];
  const server = await serve<null>({
    hostKey: host,
    hostCertificate: (await ca.host(["127.0.0.1"], { key: host })).cert,
    authenticate: () => ({ ok: true, context: null }),
    handlers,
    logger,
    ...extra,
    onConnection: (conn) => {
      conns.at(-1)!.resolve(conn);
      conns.push(Promise.withResolvers());
      extra.onConnection?.(conn);
    },
  });
  let taken = 0;
  return {
    ca,
    host,
    alice,
    server,
    logger,
    connect: (options: ClientExtras = {}) =>
      connectSsh({
        port: server.addr.port,
        username: "alice",
        key: alice.key,
        certificate: alice.cert,
        verifyHostKey: ({ keyBlob }) => bytesEqual(keyBlob, host.publicKeyBlob),
        logger,
        ...options,
      }),
    nextConnection: () => conns[taken++]!.promise,
    async [Symbol.asyncDispose]() {
      await server.close();
    },
  };
}

/** Collects a stream to its end without `for await` (which would destroy a Duplex). */
function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    stream.on("data", (c: Uint8Array) => parts.push(c));
    stream.once("end", () => resolve(Buffer.concat(parts)));
    stream.once("error", reject);
  });
}

/** Resolves with the first `n` bytes read from `stream` (no `for await`). */
function readBytes(stream: NodeJS.ReadableStream, n: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    let got = 0;
    const onData = (c: Uint8Array) => {
      parts.push(c);
      got += c.length;
      if (got >= n) {
        stream.off("data", onData);
        resolve(Buffer.concat(parts).subarray(0, n));
      }
    };
    stream.on("data", onData);
    stream.once("error", reject);
  });
}

/** The SHA-256 of what `stream` delivers until `total` bytes arrived. */
function hashOf(stream: NodeJS.ReadableStream, total: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let got = 0;
    const onData = (c: Uint8Array) => {
      hash.update(c);
      got += c.length;
      if (got >= total) {
        stream.off("data", onData);
        resolve(hash.digest("hex"));
      }
    };
    stream.on("data", onData);
    stream.once("error", reject);
  });
}

/** Writes `total` pseudo-random bytes with backpressure; resolves with their hash. */
async function writeBulk(
  stream: Duplex,
  total: number,
): Promise<{ hash: string; sawBackpressure: boolean }> {
  const hash = createHash("sha256");
  const chunk = new Uint8Array(64 * 1024);
  let sawBackpressure = false;
  let seed = 1;
  for (let sent = 0; sent < total; sent += chunk.length) {
    for (let i = 0; i < chunk.length; i += 4) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      chunk[i] = seed & 0xff;
      chunk[i + 1] = (seed >>> 8) & 0xff;
    }
    const piece = Uint8Array.from(chunk.subarray(0, Math.min(chunk.length, total - sent)));
    hash.update(piece);
    if (!stream.write(piece)) {
      sawBackpressure = true;
      await new Promise((resolve) => stream.once("drain", resolve));
    }
  }
  return { hash: hash.digest("hex"), sawBackpressure };
}

/** Resolves when `channel` emits 'close'. */
function closedOf(channel: SshChannel): Promise<void> {
  return new Promise((resolve) => channel.once("close", () => resolve()));
}

Deno.test("openChannel() from the client reaches the server's handler and requests flow both ways", async () => {
  const serverSaw: string[] = [];
  const serverChannel = Promise.withResolvers<SshChannel>();
  await using t = await setup({
    channels: {
      "teleport-heartbeat": (open) => {
        assert.equal(open.conn.username, "alice");
        const ch = open.accept();
        assert.equal(ch.channelType, "teleport-heartbeat");
        ch.onRequest((req) => {
          serverSaw.push(`${req.name}/${req.wantReply}/${dec.decode(req.data)}`);
          if (req.name === "want-yes" || req.name === "signal") return req.accept();
          if (req.name === "want-no") return req.reject();
          // anything else: returns without replying, so it is refused
        });
        // Sent before the client installs its handler: queued, delivered in order.
        void ch.request("srv-note", enc.encode("n1"), { wantReply: false });
        serverChannel.resolve(ch);
      },
    },
  });
  await using client = await t.connect();
  const ch = await client.openChannel("teleport-heartbeat");
  assert.equal(ch.channelType, "teleport-heartbeat");
  const sch = await serverChannel.promise;
  const asked = [
    sch.request("srv-ask", enc.encode("a1")),
    sch.request("srv-ask", enc.encode("a2")),
    sch.request("exit-status", Uint8Array.of(0, 0, 0, 9)),
  ];
  // The server answers this after sending the requests above, so by the time the reply is
  // here they have arrived and wait for the client's handler.
  assert.equal(await ch.request("want-yes", enc.encode("y")), true);
  const clientSaw: IncomingChannelRequest[] = [];
  ch.onRequest((req) => {
    clientSaw.push(req);
    if (req.name === "srv-ask" && dec.decode(req.data) === "a2") return req.reject();
    req.accept();
  });
  assert.deepEqual(await Promise.all(asked), [true, false, true]);
  assert.deepEqual(
    clientSaw.map((r) => `${r.name}/${r.wantReply}/${[...r.data].join(".")}`),
    [
      "srv-note/false/110.49",
      "srv-ask/true/97.49",
      "srv-ask/true/97.50",
      "exit-status/true/0.0.0.9",
    ],
  );

  const ts = enc.encode(new Date(0).toISOString());
  assert.equal(await ch.request("ping", ts, { wantReply: false }), true);
  assert.equal(await ch.request("want-no"), false);
  assert.equal(await ch.request("unanswered"), false);
  // ssh2 parses "signal" itself; the handler still gets the bytes as sent.
  const signalData = Uint8Array.of(0, 0, 0, 4, ...enc.encode("TERM"));
  assert.equal(await ch.request("signal", signalData), true);
  assert.deepEqual(serverSaw, [
    "want-yes/true/y",
    `ping/false/${dec.decode(ts)}`,
    "want-no/true/",
    "unanswered/true/",
    `signal/true/${dec.decode(signalData)}`,
  ]);

  // Data both ways, then EOF both ways closes the channel on both sides.
  const serverGot = readAll(sch);
  const clientGot = readAll(ch);
  const bothClosed = Promise.all([closedOf(ch), closedOf(sch)]);
  ch.end("to-server");
  sch.end("to-client");
  assert.equal(dec.decode(await serverGot), "to-server");
  assert.equal(dec.decode(await clientGot), "to-client");
  await deadline(bothClosed, 5_000, "close after EOF both ways");
  assert.equal(await ch.request("late"), false);
});

Deno.test("openChannel() from the server reaches the client's handler, with stderr and dial requests", async () => {
  await using t = await setup();
  const dialed: string[] = [];
  await using _client = await t.connect({
    channels: {
      "teleport-transport": async (open) => {
        await Promise.resolve(); // an asynchronous handler may answer later
        const ch = open.accept();
        ch.onRequest((req) => {
          if (req.name !== "teleport-transport-dial") return req.reject();
          const dial = JSON.parse(dec.decode(req.data)) as { address: string };
          dialed.push(dial.address);
          if (dial.address !== "@local-node") {
            ch.writeStderr(`Cannot dial ${dial.address}: no route to host`);
            return req.reject();
          }
          req.accept();
          ch.pipe(ch); // echo
        });
      },
    },
  });
  const conn = await t.nextConnection();
  const dialReq = (address: string) => enc.encode(JSON.stringify({ address }));

  const refused = await conn.openChannel("teleport-transport");
  const why = "Cannot dial 10.0.0.1:22: no route to host";
  const reason = readBytes(refused.stderr, why.length);
  assert.equal(await refused.request("teleport-transport-dial", dialReq("10.0.0.1:22")), false);
  assert.equal(dec.decode(await reason), why);
  refused.close();

  const ch = await conn.openChannel("teleport-transport");
  assert.equal(await ch.request("teleport-transport-dial", dialReq("@local-node")), true);
  const echoed = readBytes(ch, 5);
  ch.write("hello");
  assert.equal(dec.decode(await echoed), "hello");
  assert.deepEqual(dialed, ["10.0.0.1:22", "@local-node"]);

  // Stderr larger than the window (2 MiB) arrives whole as the window opens.
  const big = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => i % 253);
  const channelDone = Promise.withResolvers<SshChannel>();
  await using _client2 = await t.connect({
    channels: {
      "teleport-discovery": (open) => {
        const c = open.accept();
        c.writeStderr(big);
        c.end();
        channelDone.resolve(c);
      },
    },
  });
  const conn2 = await t.nextConnection();
  const disc = await conn2.openChannel("teleport-discovery");
  const stderr = readAll(disc.stderr);
  disc.resume();
  assert.ok(bytesEqual(await deadline(stderr, 10_000, "big stderr"), big));
  // And the server's stderr reaches the client.
  const clientSide = await channelDone.promise;
  const back = readBytes(clientSide.stderr, 4);
  clientSide.resume();
  disc.writeStderr("back");
  assert.equal(dec.decode(await back), "back");
});

Deno.test("openChannel() from the server rejects with the client's description when it is refused", async () => {
  await using t = await setup();
  await using _client = await t.connect({
    channels: {
      "teleport-transport": (open) => open.reject({ message: "agent connection is draining" }),
      "teleport-discovery": (open) =>
        open.reject({ reason: "connect-failed", message: "discovery is off" }),
      "teleport-silent": async () => {},
    },
  });
  const conn = await t.nextConnection();
  await assert.rejects(conn.openChannel("teleport-transport"), (err: Error) => {
    assert.ok(err instanceof AccessDeniedError, String(err));
    assert.equal(
      err.message,
      "Cannot open teleport-transport channel: agent connection is draining",
    );
    return true;
  });
  await assert.rejects(conn.openChannel("teleport-discovery"), (err: Error) => {
    assert.ok(err instanceof ConnectionProblemError, String(err));
    assert.match(err.message, /: discovery is off$/);
    return true;
  });
  await assert.rejects(
    conn.openChannel("teleport-silent"),
    /Cannot open teleport-silent channel: teleport-silent channels are not permitted/,
  );
  // No handler and no refuseChannel: ssh2's refusal, with the standard phrase.
  await assert.rejects(conn.openChannel("session"), (err: Error) => {
    assert.ok(err instanceof ConnectionProblemError, String(err));
    assert.equal(err.message, "Cannot open session channel: unknown channel type");
    return true;
  });
});

Deno.test("refuseChannel() describes the refusal of a server-opened session channel", async () => {
  await using t = await setup();
  const asked: string[] = [];
  await using _client = await t.connect({
    channels: { "teleport-transport": (open) => void open.accept() },
    refuseChannel: (type) => {
      asked.push(type);
      return { message: `${type} channels are not served on the tunnel; use the SSH port` };
    },
  });
  const conn = await t.nextConnection();
  await assert.rejects(conn.openChannel("session"), (err: Error) => {
    assert.ok(err instanceof AccessDeniedError, String(err));
    assert.equal(
      err.message,
      "Cannot open session channel: session channels are not served on the tunnel; use the SSH port",
    );
    return true;
  });
  (await conn.openChannel("teleport-transport")).close();
  assert.deepEqual(asked, ["session"]);
});

Deno.test("globalRequest() from the server gets reply data and failures, in request order", async () => {
  await using t = await setup();
  const slowStarted = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  const seen: string[] = [];
  await using _client = await t.connect({
    onGlobalRequest: async (req: IncomingGlobalRequest) => {
      seen.push(`${req.name}/${req.wantReply}/${dec.decode(req.data)}`);
      switch (req.name) {
        case "x-teleport-version":
          return req.accept(enc.encode("17.0.0"));
        case "slow":
          slowStarted.resolve();
          await gate.promise;
          return req.accept(enc.encode("slow"));
        case "fast":
          return req.accept(enc.encode("fast"));
        case "nope":
          return req.reject();
        case "reconnect@goteleport.com":
        case "x-teleport-host-cert":
          return req.accept();
      }
      // anything else: returns without replying, so it is refused
    },
  });
  const conn = await t.nextConnection();
  const version = await conn.globalRequest("x-teleport-version");
  assert.equal(version.ok, true);
  assert.equal(dec.decode(version.data), "17.0.0");
  assert.deepEqual(await conn.globalRequest("nope"), { ok: false, data: new Uint8Array(0) });
  assert.equal((await conn.globalRequest("unheard-of")).ok, false);
  const certBlob = enc.encode("cert-blob");
  assert.equal(
    (await conn.globalRequest("x-teleport-host-cert", certBlob, { wantReply: false })).ok,
    true,
  );
  // The slow handler answers last; its reply must still come first.
  const slow = conn.globalRequest("slow");
  const fast = conn.globalRequest("fast");
  await slowStarted.promise;
  gate.resolve();
  const [s, f] = await Promise.all([slow, fast]);
  assert.equal(dec.decode(s.data), "slow");
  assert.equal(dec.decode(f.data), "fast");
  assert.equal((await conn.globalRequest("reconnect@goteleport.com")).ok, true);
  assert.deepEqual(seen, [
    "x-teleport-version/true/",
    "nope/true/",
    "unheard-of/true/",
    "x-teleport-host-cert/false/cert-blob",
    "slow/true/",
    "fast/true/",
    "reconnect@goteleport.com/true/",
  ]);

  // A client without onGlobalRequest refuses everything.
  await using _plain = await t.connect();
  const plain = await t.nextConnection();
  assert.equal((await plain.globalRequest("x-teleport-version")).ok, false);
});

Deno.test("globalRequest() replies stay matched while the server sends keepalive probes", async () => {
  // Probes every millisecond; replies never count as missed (the count only guards the test).
  await using t = await setup({}, { keepaliveIntervalMs: 1, keepaliveCountMax: 1_000_000 });
  let probes = 0;
  await using _client = await t.connect({
    onGlobalRequest: (req) => {
      if (req.name === "keepalive@openssh.com") {
        probes++;
        return req.reject();
      }
      req.accept(req.data);
    },
  });
  const conn = await t.nextConnection();
  for (let round = 0; probes < 5; round++) {
    assert.ok(round < 5_000, "the server sent no keepalive probes");
    const replies = await Promise.all(
      [0, 1, 2].map((i) => conn.globalRequest("echo", enc.encode(`${round}.${i}`))),
    );
    assert.deepEqual(replies.map((r) => `${r.ok}:${dec.decode(r.data)}`), [
      `true:${round}.0`,
      `true:${round}.1`,
      `true:${round}.2`,
    ]);
  }
});

Deno.test("a channel and a global request the server sends right after login are not missed", async () => {
  const results = Promise.withResolvers<[boolean, string]>();
  await using t = await setup({}, {
    onConnection: (conn) => {
      Promise.all([
        conn.openChannel("teleport-discovery").then((ch) =>
          ch.request("discovery", enc.encode('{"proxies":[]}'))
        ),
        conn.globalRequest("x-teleport-version").then((r) => dec.decode(r.data)),
      ]).then(results.resolve, results.reject);
    },
  });
  const discovered: string[] = [];
  await using _client = await t.connect({
    channels: {
      "teleport-discovery": (open) =>
        open.accept().onRequest((req) => {
          discovered.push(dec.decode(req.data));
          req.accept();
        }),
    },
    onGlobalRequest: (req) => req.accept(enc.encode("v1")),
  });
  assert.deepEqual(await deadline(results.promise, 5_000, "requests after login"), [true, "v1"]);
  assert.deepEqual(discovered, ['{"proxies":[]}']);
});

for (const opener of ["client", "server"] as const) {
  Deno.test(`a ${opener}-opened custom channel carries 32 MiB both ways with flow control`, async () => {
    const total = 32 * 1024 * 1024;
    const echo = (open: { accept(): SshChannel }) => {
      const ch = open.accept();
      ch.pipe(ch);
    };
    await using t = await setup({ channels: { bulk: echo } });
    await using client = await t.connect({ channels: { bulk: echo } });
    const conn = await t.nextConnection();
    const ch = opener === "client"
      ? await client.openChannel("bulk")
      : await conn.openChannel("bulk");
    const received = hashOf(ch, total);
    const sent = await writeBulk(ch, total);
    assert.equal(await deadline(received, 60_000, "bulk echo"), sent.hash);
    assert.ok(sent.sawBackpressure, "write() never returned false");
    const closed = closedOf(ch);
    ch.end();
    ch.resume();
    await deadline(closed, 5_000, "close after bulk");
  });
}

Deno.test("a nested SSH connection runs exec over copyingStream() of a server-opened channel", async () => {
  // The reverse tunnel data path: user -> proxy (server) -> tunnel channel -> agent (client)
  // -> the node's SSH server, which serves the channel through handleSocket().
  await using t = await setup();
  const nodeHost = await generateSshKeyPair("ed25519");
  const nodeOutput = new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 7) % 256);
  await using node = await startSshServer<null>({
    hostKey: nodeHost,
    authenticate: () => ({ ok: true, context: null }),
    logger: t.logger,
    handlers: {
      session: (open) =>
        open.accept((req) => {
          if (req.type !== "exec") return req.reject();
          const ch = req.accept();
          if (req.command === "bulk") ch.write(nodeOutput);
          else ch.write(`node ran ${req.command}\n`);
          ch.exit(0);
          ch.end();
        }),
    },
  });
  await using _agent = await t.connect({
    channels: {
      "teleport-transport": (open) => {
        const ch = open.accept();
        ch.onRequest((req) => {
          if (req.name !== "teleport-transport-dial") return req.reject();
          req.accept();
          node.handleSocket(copyingStream(ch));
        });
      },
    },
  });
  const proxySide = await t.nextConnection();
  const tunnel = await proxySide.openChannel("teleport-transport");
  assert.equal(
    await tunnel.request("teleport-transport-dial", enc.encode('{"address":"@local-node"}')),
    true,
  );
  await using user = await connectSsh({
    socket: copyingStream(tunnel),
    username: "alice",
    key: t.alice.key,
    certificate: t.alice.cert,
    verifyHostKey: ({ keyBlob }) => bytesEqual(keyBlob, nodeHost.publicKeyBlob),
    logger: t.logger,
  });
  const r = await user.exec("uptime");
  assert.equal(dec.decode(r.stdout), "node ran uptime\n");
  assert.equal(r.exitCode, 0);
  const bulk = await deadline(user.exec("bulk"), 30_000, "bulk exec through the tunnel");
  assert.ok(bytesEqual(bulk.stdout, nodeOutput));
});

Deno.test("closing the connection rejects pending opens and global requests and fails channel requests", async () => {
  const serverHeld = Promise.withResolvers<void>();
  await using t = await setup({
    channels: {
      held: (open) => void open.accept().onRequest(() => new Promise(() => {})),
      hang: () => {
        serverHeld.resolve();
        return new Promise(() => {});
      },
    },
  });
  const clientHung = { open: Promise.withResolvers<void>(), global: Promise.withResolvers<void>() };
  const client = await t.connect({
    channels: {
      hang: () => {
        clientHung.open.resolve();
        return new Promise(() => {});
      },
    },
    onGlobalRequest: () => {
      clientHung.global.resolve();
      return new Promise(() => {});
    },
  });
  const conn = await t.nextConnection();
  const held = await client.openChannel("held");
  const pendingRequest = held.request("wait");
  // Settled results, so that no rejection goes unhandled while the test awaits others.
  const settled = <T>(p: Promise<T>) => p.then(() => undefined, (err: Error) => err);
  const serverOpen = settled(conn.openChannel("hang"));
  const serverGlobal = settled(conn.globalRequest("x-teleport-version"));
  const clientOpen = settled(client.openChannel("hang"));
  await Promise.all([clientHung.open.promise, clientHung.global.promise, serverHeld.promise]);
  await client.close();
  assert.equal(await pendingRequest, false);
  const openErr = await serverOpen;
  assert.ok(openErr instanceof ConnectionProblemError, String(openErr));
  assert.equal(openErr.message, "Cannot open hang channel: the connection closed");
  const globalErr = await serverGlobal;
  assert.ok(globalErr instanceof ConnectionProblemError, String(globalErr));
  assert.equal(
    globalErr.message,
    'Cannot send global request "x-teleport-version": the connection closed',
  );
  assert.match(String(await clientOpen), /Cannot open hang channel: the connection closed/);
  await assert.rejects(client.openChannel("held"), /the connection is closed/);
  await assert.rejects(client.globalRequest("x"), /the connection is closed/);
  await conn.closed;
  await assert.rejects(conn.openChannel("held"), /the connection is closed/);
  await assert.rejects(conn.globalRequest("x"), /the connection is closed/);
});

Deno.test("onRequest() refuses requests beyond 64 waiting before a handler exists", async () => {
  const serverChannel = Promise.withResolvers<SshChannel>();
  await using t = await setup({
    channels: { many: (open) => serverChannel.resolve(open.accept()) },
  });
  await using client = await t.connect();
  const ch = await client.openChannel("many");
  const sch = await serverChannel.promise;
  const replies = Array.from({ length: 70 }, (_, i) => ch.request("r", Uint8Array.of(i)));
  // The server answers this after the 70 requests arrived (one connection, in order).
  assert.equal((await client.globalRequest("barrier")).ok, false);
  const order: number[] = [];
  sch.onRequest((req) => {
    order.push(req.data[0]!);
    req.accept();
  });
  // The six beyond the limit were refused at once, but their replies wait for the others'.
  assert.deepEqual(await Promise.all(replies), [...Array(64).fill(true), ...Array(6).fill(false)]);
  assert.deepEqual(order, Array.from({ length: 64 }, (_, i) => i));
});

Deno.test("globalRequest() from the client gets ssh2's refusal from our server", async () => {
  await using t = await setup();
  await using client = await t.connect();
  assert.deepEqual(await client.globalRequest("x-anything", enc.encode("d")), {
    ok: false,
    data: new Uint8Array(0),
  });
  await client.ping(5_000); // keepalive replies still match after ours
  assert.equal((await client.globalRequest("x-more", undefined, { wantReply: false })).ok, true);
  // A type without a handler is refused as unknown.
  await assert.rejects(
    client.openChannel("teleport-heartbeat"),
    /Cannot open teleport-heartbeat channel: unknown channel type/,
  );
});

Deno.test("startSshServer() and openChannel() reject bad channel types, names and data", async () => {
  const host = await generateSshKeyPair("ed25519");
  for (const type of ["session", "direct-tcpip"]) {
    await assert.rejects(
      startSshServer<null>({
        hostKey: host,
        authenticate: () => ({ ok: true, context: null }),
        handlers: { channels: { [type]: () => {} } },
      }),
      BadParameterError,
    );
  }
  await using t = await setup({ channels: { ok: (open) => void open.accept() } });
  await using client = await t.connect();
  await assert.rejects(client.openChannel(""), BadParameterError);
  await assert.rejects(client.openChannel("has space"), BadParameterError);
  await assert.rejects(client.openChannel("x".repeat(65)), BadParameterError);
  await assert.rejects(
    client.globalRequest("ok", "text" as unknown as Uint8Array),
    BadParameterError,
  );
  const ch = await client.openChannel("ok");
  await assert.rejects(ch.request("bad name"), BadParameterError);
  assert.throws(() => ch.writeStderr(42 as unknown as Uint8Array), BadParameterError);
  await assert.rejects(
    t.connect({ channels: { "a b": () => {} } }),
    BadParameterError,
  );
  ch.close();
});

Deno.test("destroy() marks a custom channel destroyed at once and closes it on both sides", async () => {
  const serverChannel = Promise.withResolvers<SshChannel>();
  await using t = await setup({
    channels: { c: (open) => serverChannel.resolve(open.accept()) },
  });
  await using client = await t.connect();
  const ch = await client.openChannel("c");
  const sch = await serverChannel.promise;
  const closed = Promise.all([closedOf(ch), closedOf(sch)]);
  sch.resume();
  ch.destroy();
  assert.equal(ch.destroyed, true);
  await deadline(closed, 5_000, "close after destroy()");
  // The side that did not call destroy() counts as destroyed once closed.
  assert.equal(sch.destroyed, true);
  assert.equal(await ch.request("late"), false);

  // Connection loss closes (and so destroys) open channels too.
  const other = await client.openChannel("c");
  other.resume();
  const otherClosed = closedOf(other);
  await client.close();
  await deadline(otherClosed, 5_000, "close on connection loss");
  assert.equal(other.destroyed, true);
});
