import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { Buffer } from "node:buffer";
import { formatOpenSshPrivateKey, generateSshKeyPair } from "../ca/mod.ts";
import { AccessDeniedError, ConnectionProblemError } from "../errors/mod.ts";
import { Ssh2ClientClass } from "./_ssh2.ts";
import { bytesEqual, deadline, serve, startEchoServer, testCa } from "./_testing.ts";
import { connectSsh, type SshClient } from "./client.ts";
import type { ServerChannel } from "./channel.ts";
import type {
  SessionRequest,
  SshAuthFailure,
  SshServerHandlers,
  SshServerOptions,
} from "./server.ts";

const dec = new TextDecoder();

interface Ctx {
  login: string;
}

/** A CA, a host key, a certified user and a server with the given handlers. */
async function setup(
  handlers: SshServerHandlers<Ctx>,
  extra: Partial<SshServerOptions<Ctx>> = {},
) {
  const ca = await testCa();
  const host = await generateSshKeyPair("ed25519");
  const alice = await ca.user(["alice"], { keyId: "alice" });
  const failures: SshAuthFailure[] = [];
  const server = await serve<Ctx>({
    hostKey: host,
    hostCertificate: (await ca.host(["127.0.0.1"], { key: host })).cert,
    authenticate: ({ username, certificate }) =>
      certificate.principals.includes(username)
        ? { ok: true, context: { login: username } }
        : { ok: false, reason: `principal ${username} is not in the certificate` },
    onAuthFailure: (f) => failures.push(f),
    handlers,
    ...extra,
  });
  const connect = (opts: { username?: string; cert?: Uint8Array } = {}) =>
    connectSsh({
      port: server.addr.port,
      username: opts.username ?? "alice",
      key: alice.key,
      certificate: opts.cert ?? alice.cert,
      verifyHostKey: ({ keyBlob }) => bytesEqual(keyBlob, host.publicKeyBlob),
    });
  return {
    ca,
    host,
    alice,
    server,
    failures,
    connect,
    async [Symbol.asyncDispose]() {
      await server.close();
    },
  };
}

/** Session handler that runs `onExec` for exec requests and accepts pty/env. */
function execHandlers(
  onExec: (
    req: Extract<SessionRequest, { type: "exec" }>,
    seen: SessionRequest[],
  ) => void | Promise<void>,
): SshServerHandlers<Ctx> {
  return {
    session: (open) => {
      const seen: SessionRequest[] = [];
      open.accept(async (req) => {
        seen.push(req);
        if (req.type === "exec") return await onExec(req, seen);
        if (req.type === "pty-req" || req.type === "env") return req.accept();
        req.reject();
      });
    },
  };
}

/**
 * Reads a stream to its end without `for await`, which destroys a Duplex (and so the SSH
 * channel) when the readable side ends.
 */
function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    stream.on("data", (c: Uint8Array) => parts.push(c));
    stream.once("end", () => resolve(Buffer.concat(parts)));
    stream.once("error", reject);
  });
}

Deno.test("connectSsh() runs exec with exit code and separate stderr when the certificate is valid", async () => {
  await using t = await setup(execHandlers((req) => {
    const ch = req.accept();
    ch.write(`out:${req.command}\n`);
    ch.stderr.write("err-line\n");
    ch.exit(7);
    ch.end();
  }));
  await using client = await t.connect();
  const r = await client.exec("hello world");
  assert.equal(dec.decode(r.stdout), "out:hello world\n");
  assert.equal(dec.decode(r.stderr), "err-line\n");
  assert.equal(r.exitCode, 7);
  assert.equal(r.exitSignal, null);
  assert.deepEqual(t.failures, []);
});

Deno.test("SshServer passes the auth context, username and certificate to the connection", async () => {
  const conns: Array<{ login: string; keyId: string; user: string; version: string }> = [];
  await using t = await setup(
    execHandlers((req) => {
      const ch = req.accept();
      ch.exit(0);
      ch.end();
    }),
    {
      onConnection: (conn) =>
        conns.push({
          login: conn.context.login,
          keyId: conn.certificate.keyId,
          user: conn.username,
          version: conn.clientVersion,
        }),
    },
  );
  await using client = await t.connect();
  await client.exec("x");
  assert.equal(conns.length, 1);
  assert.equal(conns[0]!.login, "alice");
  assert.equal(conns[0]!.keyId, "alice");
  assert.equal(conns[0]!.user, "alice");
  assert.match(conns[0]!.version, /^SSH-2\.0-/);
});

Deno.test("exec delivers stdin and EOF to the handler", async () => {
  await using t = await setup(execHandlers(async (req) => {
    const ch = req.accept();
    const input = await readAll(ch);
    ch.write(`got ${input.length} bytes: ${dec.decode(input)}`);
    ch.exit(0);
    ch.end();
  }));
  await using client = await t.connect();
  const r = await client.exec("cat", { stdin: "abc" });
  assert.equal(dec.decode(r.stdout), "got 3 bytes: abc");
  assert.equal(r.exitCode, 0);
});

Deno.test("env and pty-req reach the session handler before exec", async () => {
  await using t = await setup(execHandlers((req, seen) => {
    const ch = req.accept();
    const lines = seen.map((s) =>
      s.type === "env"
        ? `env ${s.name}=${s.value}`
        : s.type === "pty-req"
        ? `pty ${s.term} ${s.cols}x${s.rows} ${JSON.stringify(s.modes)}`
        : s.type
    );
    ch.write(lines.join("\n"));
    ch.exit(0);
    ch.end();
  }));
  await using client = await t.connect();
  const r = await client.exec("show", {
    env: { LANG: "C.UTF-8" },
    pty: { term: "xterm-256color", cols: 100, rows: 30, modes: { ECHO: 0 } },
  });
  assert.equal(
    dec.decode(r.stdout),
    'env LANG=C.UTF-8\npty xterm-256color 100x30 {"ECHO":0}\nexec',
  );
});

Deno.test("openSession() sees each request's reply and window-change reaches the handler", async () => {
  const sizes: string[] = [];
  const done = Promise.withResolvers<void>();
  await using t = await setup({
    session: (open) => {
      open.accept((req) => {
        switch (req.type) {
          case "pty-req":
            return req.accept();
          case "env":
            return req.name === "OK" ? req.accept() : req.reject();
          case "window-change":
            sizes.push(`${req.cols}x${req.rows}`);
            req.accept();
            done.resolve();
            return;
          case "shell": {
            const ch = req.accept();
            ch.write("$ ");
            return;
          }
          default:
            req.reject();
        }
      });
    },
  });
  await using client = await t.connect();
  const s = await client.openSession();
  assert.equal(await s.requestPty({ cols: 80, rows: 24 }), true);
  assert.equal(await s.setEnv("OK", "1"), true);
  assert.equal(await s.setEnv("NOPE", "1"), false);
  assert.equal(await s.subsystem("sftp"), false);
  assert.equal(await s.shell(), true);
  const [prompt] = await Promise.all([
    new Promise<string>((resolve) =>
      s.channel.once("data", (d: Uint8Array) => resolve(dec.decode(d)))
    ),
    s.windowChange({ cols: 120, rows: 40 }),
  ]);
  assert.equal(prompt, "$ ");
  await done.promise;
  assert.deepEqual(sizes, ["120x40"]);
  s.close();
  await s.channel.exitStatus;
});

Deno.test("window-change and signal are served while the exec handler is still running", async () => {
  const seen: string[] = [];
  const signalled = Promise.withResolvers<void>();
  await using t = await setup({
    session: (open) => {
      let program: { ch: ServerChannel; seen: PromiseWithResolvers<void> } | undefined;
      open.accept(async (req) => {
        switch (req.type) {
          case "pty-req":
            return req.accept();
          case "window-change":
            seen.push(`resize ${req.cols}x${req.rows}`);
            program?.ch.write(`size ${req.cols}x${req.rows}\n`);
            return req.accept();
          case "signal":
            seen.push(`signal ${req.name}`);
            req.accept();
            return program?.seen.resolve();
          case "exec": {
            // Like the node: the handler returns only when the "program" ends.
            program = { ch: req.accept(), seen: Promise.withResolvers() };
            program.ch.write("started\n");
            await program.seen.promise;
            program.ch.exit(130);
            program.ch.end();
            signalled.resolve();
            return;
          }
          default:
            return req.reject();
        }
      });
    },
  });
  await using client = await t.connect();
  const s = await client.openSession();
  assert.equal(await s.requestPty({ cols: 80, rows: 24 }), true);
  assert.equal(await s.exec("long-running"), true);
  const out: string[] = [];
  const resized = new Promise<void>((resolve) => {
    s.channel.on("data", (d: Uint8Array) => {
      out.push(dec.decode(d));
      if (out.join("").includes("size 100x30")) resolve();
    });
  });
  s.windowChange({ cols: 100, rows: 30 });
  await deadline(resized, 10_000, "the window-change while exec runs");
  s.signal("INT");
  await deadline(signalled.promise, 10_000, "the signal while exec runs");
  assert.deepEqual(await s.channel.exitStatus, { kind: "code", code: 130 });
  assert.deepEqual(seen, ["resize 100x30", "signal INT"]);
});

Deno.test("shell() requests a pty and the handler sees it", async () => {
  await using t = await setup({
    session: (open) => {
      let term = "";
      open.accept((req) => {
        if (req.type === "pty-req") {
          term = req.term;
          return req.accept();
        }
        if (req.type !== "shell") return req.reject();
        const ch = req.accept();
        ch.write(`term=${term}`);
        ch.exit(0);
        ch.end();
      });
    },
  });
  await using client = await t.connect();
  const ch = await client.shell({ pty: { term: "vt220", cols: 80, rows: 24 } });
  const out = await readAll(ch);
  assert.equal(dec.decode(out), "term=vt220");
  assert.deepEqual(await ch.exitStatus, { kind: "code", code: 0 });
});

Deno.test("exitSignal() reaches the client as a signal", async () => {
  await using t = await setup(execHandlers((req) => {
    const ch = req.accept();
    ch.exitSignal("SIGTERM", { message: "terminated" });
    ch.end();
  }));
  await using client = await t.connect();
  const r = await client.exec("x");
  assert.equal(r.exitCode, null);
  assert.equal(r.exitSignal, "TERM");
});

Deno.test("direct-tcpip reaches a local echo server when the handler connects it", async () => {
  await using echo = await startEchoServer();
  const asked: string[] = [];
  await using t = await setup({
    directTcpip: (open) => {
      asked.push(`${open.destHost}:${open.destPort} from ${open.originHost}:${open.originPort}`);
      const ch = open.accept();
      const sock = netConnect({ host: open.destHost, port: open.destPort });
      sock.setNoDelay(true);
      sock.pipe(ch).pipe(sock);
      sock.on("error", () => ch.destroy());
    },
  });
  await using client = await t.connect();
  const ch = await client.forwardOut({
    destHost: "127.0.0.1",
    destPort: echo.port,
    originHost: "10.0.0.1",
    originPort: 5555,
  });
  const payload = new Uint8Array(300_000).map((_, i) => i % 251);
  const reply = (async () => {
    const parts: Uint8Array[] = [];
    let n = 0;
    for await (const c of ch) {
      parts.push(c);
      n += c.length;
      if (n >= payload.length) break;
    }
    return Buffer.concat(parts);
  })();
  ch.write(payload);
  assert.ok(bytesEqual(await reply, payload));
  assert.deepEqual(asked, [`127.0.0.1:${echo.port} from 10.0.0.1:5555`]);
  ch.destroy();
});

Deno.test("unhandled channel types and session requests are refused", async () => {
  await using t = await setup({
    session: (open) =>
      open.accept((req) => req.type === "shell" ? void req.accept().end() : undefined),
  });
  await using client = await t.connect();
  await assert.rejects(client.exec("id"), AccessDeniedError);
  const s = await client.openSession();
  assert.equal(await s.subsystem("sftp"), false);
  assert.equal(await s.exec("id"), false);
  assert.equal(await s.setEnv("A", "b"), false);
  assert.equal(await s.requestPty({ cols: 80, rows: 24 }), false);
  s.close();
  await assert.rejects(
    client.forwardOut({ destHost: "127.0.0.1", destPort: 1 }),
    (err: Error) => {
      assert.ok(err instanceof AccessDeniedError);
      assert.match(err.message, /port forwarding is not permitted/);
      return true;
    },
  );
});

Deno.test("session channels are refused with the handler's reason", async () => {
  await using t = await setup({
    session: (open) => open.reject({ message: "sessions are not permitted by your roles" }),
  });
  await using client = await t.connect();
  await assert.rejects(client.exec("id"), /sessions are not permitted by your roles/);
  await using t2 = await setup({});
  await using client2 = await t2.connect();
  await assert.rejects(client2.openSession(), /session channels are not permitted/);
});

Deno.test("reject() writes the reason to the session's stderr", async () => {
  await using t = await setup({
    session: (open) =>
      open.accept((req) => {
        if (req.type === "exec") return req.reject({ stderr: "exec is denied by policy\r\n" });
        req.reject();
      }),
  });
  await using client = await t.connect();
  const s = await client.openSession();
  const err = readAll(s.channel.stderr);
  s.channel.resume();
  assert.equal(await s.exec("id"), false);
  s.close();
  assert.equal(dec.decode(await err), "exec is denied by policy\r\n");
  await s.channel.exitStatus;
});

Deno.test("a handler that neither accepts nor rejects gets its request refused", async () => {
  await using t = await setup({
    session: (open) => open.accept(async () => {}),
    directTcpip: () => {},
  });
  await using client = await t.connect();
  await assert.rejects(client.exec("x"), AccessDeniedError);
  await assert.rejects(client.forwardOut({ destHost: "x", destPort: 1 }), AccessDeniedError);
});

Deno.test("ping() gets a keepalive reply", async () => {
  await using t = await setup({});
  await using client = await t.connect();
  await client.ping(5_000);
  await client.ping(5_000);
});

Deno.test("authenticate() refusing logs the reason to onAuthFailure", async () => {
  await using t = await setup({});
  await assert.rejects(t.connect({ username: "root" }), AccessDeniedError);
  assert.equal(t.failures.length, 1);
  assert.equal(t.failures[0]!.username, "root");
  assert.equal(t.failures[0]!.method, "publickey");
  assert.equal(t.failures[0]!.certificateKeyId, "alice");
  assert.match(t.failures[0]!.reason, /principal root is not in the certificate/);
});

Deno.test("a plain public key is refused but reported", async () => {
  await using t = await setup({});
  const pem = await formatOpenSshPrivateKey(t.alice.key);
  const raw = new Ssh2ClientClass();
  const err = await new Promise<Error & { level?: string }>((resolve) => {
    raw.on("error", resolve);
    raw.on("ready", () => resolve(new Error("logged in")));
    raw.connect({
      host: "127.0.0.1",
      port: t.server.addr.port,
      username: "alice",
      privateKey: pem,
      readyTimeout: 0,
    });
  });
  await new Promise((r) => raw.once("close", r));
  assert.equal(err.level, "client-authentication");
  const plain = t.failures.find((f) => f.keyAlgorithm === "ssh-ed25519");
  assert.ok(plain, JSON.stringify(t.failures));
  assert.match(plain.reason, /certificate is required/);
  assert.match(plain.keyFingerprint ?? "", /^SHA256:/);
});

Deno.test("a certificate signed for another key is refused when the signature does not verify", async () => {
  await using t = await setup({});
  const mallory = await generateSshKeyPair("ed25519");
  // Claims alice's public key (and certificate) but signs with mallory's private key.
  await assert.rejects(
    connectSsh({
      port: t.server.addr.port,
      username: "alice",
      key: { privateKey: mallory.privateKey, publicKeyBlob: t.alice.key.publicKeyBlob },
      certificate: t.alice.cert,
      verifyHostKey: () => true,
    }),
    AccessDeniedError,
  );
  assert.equal(t.failures.length, 1);
  assert.match(t.failures[0]!.reason, /signature does not verify/);
});

Deno.test("connectSsh() fails when verifyHostKey refuses the host key", async () => {
  await using t = await setup({});
  await assert.rejects(
    connectSsh({
      port: t.server.addr.port,
      username: "alice",
      key: t.alice.key,
      certificate: t.alice.cert,
      verifyHostKey: async () => await Promise.resolve(false),
    }),
    (err: Error) => err instanceof AccessDeniedError && /host key is not trusted/.test(err.message),
  );
});

Deno.test("SshServer closes connections that do not authenticate in time", async () => {
  await using t = await setup({}, { handshakeTimeoutMs: 100 });
  const sock = netConnect({ host: "127.0.0.1", port: t.server.addr.port });
  sock.on("data", () => {});
  await new Promise((resolve) => sock.once("close", resolve));
  assert.equal(t.server.connectionCount, 0);
});

Deno.test("SshServer disconnects after maxAuthTries failures", async () => {
  await using t = await setup({}, { maxAuthTries: 3 });
  const raw = new Ssh2ClientClass();
  let attempts = 0;
  const closed = new Promise((resolve) => raw.once("close", resolve));
  raw.on("error", () => {});
  raw.connect({
    host: "127.0.0.1",
    port: t.server.addr.port,
    username: "alice",
    readyTimeout: 0,
    // Keeps trying passwords; the server must cut it off.
    authHandler: () => {
      attempts++;
      return { type: "password", username: "alice", password: "secret" };
    },
  });
  await closed;
  assert.equal(t.failures.length, 3);
  assert.ok(attempts <= 4, `attempts: ${attempts}`);
  assert.match(t.failures[0]!.reason, /authentication method password is not allowed/);
  assert.ok(t.failures.every((f) => !JSON.stringify(f).includes("secret")));
});

Deno.test("exec gets the data and EOF the client sent before the handler accepted", async () => {
  await using t = await setup(execHandlers(async (req) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const ch = req.accept();
    const input = await readAll(ch);
    ch.write(`stdin had ${input.length} bytes`);
    ch.exit(0);
    ch.end();
  }));
  await using client = await t.connect();
  for (const size of [0, 100_000]) {
    const s = await client.openSession();
    const out = readAll(s.channel);
    // Data and EOF before the exec is answered, like `ssh host cmd <file`.
    s.channel.end(new Uint8Array(size));
    assert.equal(await deadline(s.exec("x"), 5_000, "exec after EOF"), true);
    assert.equal(
      dec.decode(await deadline(out, 5_000, "exec output")),
      `stdin had ${size} bytes`,
    );
    assert.deepEqual(await s.channel.exitStatus, { kind: "code", code: 0 });
  }
});

Deno.test("handleSocket() serves sockets accepted elsewhere", async () => {
  const ca = await testCa("ecdsa-p256");
  const host = await generateSshKeyPair("ecdsa-p256");
  const user = await ca.user(["alice"]);
  await using server = await (await import("./server.ts")).startSshServer<null>({
    hostKey: host,
    authenticate: () => ({ ok: true, context: null }),
    handlers: execHandlers((req) => {
      const ch = req.accept();
      ch.end("ok");
    }) as unknown as SshServerHandlers<null>,
  });
  const { createServer } = await import("node:net");
  const outer = createServer((s) => server.handleSocket(s));
  await new Promise<void>((r) => outer.listen({ host: "127.0.0.1", port: 0 }, r));
  try {
    const port = (outer.address() as { port: number }).port;
    await using client = await connectSsh({
      port,
      username: "alice",
      key: user.key,
      certificate: user.cert,
      verifyHostKey: ({ keyBlob, algorithm }) =>
        algorithm === "ecdsa-sha2-nistp256" && bytesEqual(keyBlob, host.publicKeyBlob),
    });
    assert.equal(dec.decode((await client.exec("x")).stdout), "ok");
  } finally {
    await new Promise<void>((r) => outer.close(() => r()));
  }
});

Deno.test("server channels respect backpressure (write() false, then drain)", async () => {
  const total = 8 * 1024 * 1024;
  let sawBackpressure = false;
  await using t = await setup(execHandlers(async (req) => {
    const ch = req.accept();
    const chunk = new Uint8Array(64 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!ch.write(chunk)) {
        sawBackpressure = true;
        await new Promise((r) => ch.once("drain", r));
      }
    }
    ch.exit(0);
    ch.end();
  }));
  await using client = await t.connect();
  const ch = await client.execStream("flood");
  let n = 0;
  for await (const c of ch) n += (c as Uint8Array).length;
  assert.equal(n, total);
  assert.ok(sawBackpressure);
  assert.deepEqual(await ch.exitStatus, { kind: "code", code: 0 });
});

Deno.test("SshServer.close() ends open connections", async () => {
  const t = await setup({});
  const client: SshClient = await t.connect();
  await t.server.close();
  await client.closed;
  await assert.rejects(client.exec("x"), ConnectionProblemError);
});
