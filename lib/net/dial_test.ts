import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import net, { type AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { isKind } from "../errors/mod.ts";
import { testLogger } from "../log/mod.ts";
import { dialTcp, type HttpProxySettings } from "./mod.ts";
import { selfSignedCertificate, startEchoServer, startFakeConnectProxy } from "./_testing.ts";

/** A name the fake proxy "resolves": dialTcp never resolves it (not loopback, so proxied). */
const TARGET_HOST = "node.example.test";

/** Reads from `s` until the text seen so far includes `want`. */
function readUntil(s: Duplex, want: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (d: Buffer) => {
      seen += d.toString("latin1");
      if (!seen.includes(want)) return;
      s.off("data", onData);
      s.off("error", reject);
      resolve(seen);
    };
    s.on("data", onData);
    s.once("error", reject);
  });
}

/** A port nothing listens on (bound once, then closed). */
async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function rejectsWith(
  p: Promise<unknown>,
  kind: string,
  ...patterns: RegExp[]
): Promise<void> {
  return assert.rejects(p, (e: Error) => {
    assert.ok(isKind(e, kind as never), `${e.name}: ${e.message}`);
    for (const re of patterns) assert.match(e.message, re);
    return true;
  });
}

Deno.test("dialTcp() connects directly when no proxy is set and sets no-delay", async () => {
  await using echo = await startEchoServer();
  const { logger, records } = testLogger();
  const s = await dialTcp("127.0.0.1", echo.port, { proxy: {}, logger });
  try {
    assert.ok(s instanceof net.Socket);
    s.write("ping");
    assert.equal(await readUntil(s, "ping"), "ping");
    assert.deepEqual(records.map((r) => [r.level, r.message, r.properties?.reason]), [
      ["debug", "Dialling {target} directly ({reason})", "no proxy set"],
    ]);
  } finally {
    s.destroy();
  }
});

Deno.test("dialTcp() dials loopback targets directly even with HTTPS_PROXY set", async () => {
  await using echo = await startEchoServer();
  await using proxy = await startFakeConnectProxy();
  const { logger, records } = testLogger();
  const s = await dialTcp("127.0.0.1", echo.port, { proxy: { httpsProxy: proxy.url }, logger });
  s.destroy();
  assert.equal(proxy.requests.length, 0);
  assert.equal(records[0]?.properties?.reason, "loopback destination");
});

Deno.test("dialTcp() explains a refused direct connection", async () => {
  const port = await freePort();
  await rejectsWith(
    dialTcp("127.0.0.1", port, { proxy: {} }),
    "ConnectionProblem",
    new RegExp(`^Cannot connect to 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
  );
});

Deno.test("dialTcp() refuses bad input with BadParameterError", async () => {
  for (const [host, port] of [["", 22], ["a b", 22], ["a\r\nX: y", 22], ["h", 0], ["h", 70000]]) {
    await rejectsWith(dialTcp(host as string, port as number, { proxy: {} }), "BadParameter");
  }
  await rejectsWith(
    dialTcp(TARGET_HOST, 22, { proxy: { httpsProxy: "http://u:hunter2@h:bad" } }),
    "BadParameter",
    /HTTPS_PROXY/,
  );
});

Deno.test("dialTcp() tunnels through CONNECT and returns bytes sent after the answer first", async () => {
  await using echo = await startEchoServer();
  await using proxy = await startFakeConnectProxy({
    // The proxy's answer and the server's first bytes arrive in one chunk.
    answer: () => "HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\nSSH-2.0-banner\r\n",
    route: () => ({ host: "127.0.0.1", port: echo.port }),
  });
  const { logger, records } = testLogger();
  const s = await dialTcp(TARGET_HOST, 3022, { proxy: { httpsProxy: proxy.url }, logger });
  try {
    assert.equal(await readUntil(s, "\r\n"), "SSH-2.0-banner\r\n");
    s.write("ping");
    assert.equal(await readUntil(s, "ping"), "ping");
    assert.deepEqual(proxy.requests, [{
      line: `CONNECT ${TARGET_HOST}:3022 HTTP/1.1`,
      target: `${TARGET_HOST}:3022`,
      headers: { host: `${TARGET_HOST}:3022` },
    }]);
    assert.deepEqual(records.map((r) => [r.message, r.properties]), [[
      "Dialling {target} through HTTP proxy {proxy}",
      { target: `${TARGET_HOST}:3022`, proxy: proxy.url },
    ]]);
  } finally {
    s.destroy();
  }
});

Deno.test("dialTcp() writes IPv6 targets in brackets and sends Basic credentials raw", async () => {
  await using echo = await startEchoServer();
  await using proxy = await startFakeConnectProxy({
    route: () => ({ host: "127.0.0.1", port: echo.port }),
  });
  const url = proxy.url.replace("://", "://alice:p%40ss:w%C3%A9@");
  const s = await dialTcp("fd00::1", 22, { proxy: { httpProxy: url } });
  s.destroy();
  const req = proxy.requests[0]!;
  assert.equal(req.line, "CONNECT [fd00::1]:22 HTTP/1.1");
  assert.equal(req.headers.host, "[fd00::1]:22");
  assert.equal(
    req.headers["proxy-authorization"],
    `Basic ${Buffer.from("alice:p@ss:wé", "utf8").toString("base64")}`,
  );
  // An empty user and password are still sent.
  const s2 = await dialTcp("[fd00::1]", 22, {
    proxy: { httpProxy: proxy.url.replace("://", "://:@") },
  });
  s2.destroy();
  assert.equal(proxy.requests[1]?.headers["proxy-authorization"], "Basic Og==");
});

Deno.test("dialTcp() goes direct for NO_PROXY host:port entries only on that port", async () => {
  await using proxy = await startFakeConnectProxy({ answer: () => "close" });
  const settings: HttpProxySettings = {
    httpsProxy: proxy.url,
    noProxy: `${TARGET_HOST}:3024`,
  };
  // Port 3024 is dialled directly: the name does not resolve, so no proxy request is made.
  await rejectsWith(
    dialTcp(TARGET_HOST, 3024, { proxy: settings }),
    "ConnectionProblem",
    new RegExp(`^Cannot connect to ${TARGET_HOST}:3024: `),
  );
  assert.equal(proxy.requests.length, 0);
  await rejectsWith(dialTcp(TARGET_HOST, 3080, { proxy: settings }), "ConnectionProblem");
  assert.equal(proxy.requests[0]?.target, `${TARGET_HOST}:3080`);
});

Deno.test("dialTcp() explains each way a proxy can refuse CONNECT", async (t) => {
  const cases: Array<{
    name: string;
    answer: string;
    credentials?: boolean;
    kind: string;
    message: RegExp;
  }> = [
    {
      name: "407 with credentials",
      answer: "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
      credentials: true,
      kind: "AccessDenied",
      message:
        /: the proxy refused the credentials \(HTTP 407 Proxy Authentication Required\); check the user and password in HTTPS_PROXY$/,
    },
    {
      name: "407 without credentials",
      answer: "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
      kind: "AccessDenied",
      message: /: the proxy asks for credentials \(HTTP 407 .*\); put them in HTTPS_PROXY as /,
    },
    {
      name: "401 (tinyproxy's answer to a bad password)",
      answer: "HTTP/1.0 401 Unauthorized\r\n\r\n",
      credentials: true,
      kind: "AccessDenied",
      message: /: the proxy refused the credentials \(HTTP 401 Unauthorized\)/,
    },
    {
      name: "403",
      answer: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
      kind: "AccessDenied",
      message: /: the proxy answered HTTP 403 Forbidden to CONNECT; check that the proxy allows /,
    },
    {
      name: "502",
      answer: "HTTP/1.1 502 Bad Gateway\r\n\r\n",
      kind: "ConnectionProblem",
      message: /: the proxy answered HTTP 502 Bad Gateway to CONNECT: it could not reach /,
    },
    {
      name: "other status",
      answer: "HTTP/1.1 204 No Content\r\n\r\n",
      kind: "ConnectionProblem",
      message: /answered HTTP 204 No Content to CONNECT; only 200 means connected$/,
    },
    {
      name: "not HTTP",
      answer: "SSH-2.0-OpenSSH_9.2\r\n",
      kind: "ConnectionProblem",
      message: /malformed answer to CONNECT \("SSH-2\.0-OpenSSH_9\.2"\); check that HTTPS_PROXY /,
    },
    {
      name: "bad status line",
      answer: "HTTP/1.1 2OO OK\r\n\r\n",
      kind: "ConnectionProblem",
      message: /malformed answer to CONNECT \("HTTP\/1\.1 2OO OK"\)/,
    },
    {
      name: "closed early",
      answer: "close",
      kind: "ConnectionProblem",
      message: /: the proxy closed the connection before answering CONNECT; check that HTTPS_PROXY/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await using proxy = await startFakeConnectProxy({ answer: () => c.answer });
      const url = c.credentials ? proxy.url.replace("://", "://bob:hunter2@") : proxy.url;
      await assert.rejects(
        dialTcp(TARGET_HOST, 3080, { proxy: { httpsProxy: url } }),
        (e: Error) => {
          assert.ok(isKind(e, c.kind as never), `${e.name}: ${e.message}`);
          assert.ok(
            e.message.startsWith(
              `Cannot connect to ${TARGET_HOST}:3080 through HTTP proxy ${proxy.url}: `,
            ),
            e.message,
          );
          assert.match(e.message, c.message);
          assert.ok(!e.message.includes("hunter2") && !e.message.includes("bob"), e.message);
          return true;
        },
      );
    });
  }
});

Deno.test("dialTcp() explains an unreachable proxy and names the variable", async () => {
  const port = await freePort();
  await rejectsWith(
    dialTcp(TARGET_HOST, 3080, {
      proxy: { httpProxy: `http://carol:hunter2@127.0.0.1:${port}` },
    }),
    "ConnectionProblem",
    new RegExp(
      `^Cannot connect to ${TARGET_HOST}:3080 through HTTP proxy http://127\\.0\\.0\\.1:${port}: ` +
        "the proxy is unreachable \\(.*ECONNREFUSED.*\\); check HTTP_PROXY$",
    ),
  );
});

Deno.test("dialTcp() gives up when the proxy does not answer in time", async () => {
  await using proxy = await startFakeConnectProxy({ answer: () => "hang" });
  await rejectsWith(
    dialTcp(TARGET_HOST, 3080, { proxy: { httpsProxy: proxy.url }, timeoutMs: 50 }),
    "ConnectionProblem",
    /: the proxy did not answer CONNECT within 50 ms$/,
  );
});

Deno.test("dialTcp() stops when its signal aborts", async () => {
  await using proxy = await startFakeConnectProxy({ answer: () => "hang" });
  const abort = new AbortController();
  const dial = dialTcp(TARGET_HOST, 3080, {
    proxy: { httpsProxy: proxy.url },
    signal: abort.signal,
  });
  const reason = new Error("stopped by test");
  abort.abort(reason);
  await assert.rejects(dial, (e) => e === reason);
  const aborted = AbortSignal.abort();
  await assert.rejects(
    dialTcp(TARGET_HOST, 3080, { proxy: { httpsProxy: proxy.url }, signal: aborted }),
    (e) => e === aborted.reason,
  );
});

Deno.test("dialTcp() speaks TLS to an https:// proxy and verifies it", async () => {
  const cert = await selfSignedCertificate(["localhost", "127.0.0.1"]);
  await using echo = await startEchoServer();
  await using proxy = await startFakeConnectProxy({
    tls: cert,
    route: () => ({ host: "127.0.0.1", port: echo.port }),
  });
  const url = `https://localhost:${proxy.port}`;
  const s = await dialTcp(TARGET_HOST, 3080, {
    proxy: { httpsProxy: url },
    proxyCaCertPems: [cert.certPem],
  });
  try {
    s.write("ping over tls");
    assert.equal(await readUntil(s, "tls"), "ping over tls");
    assert.equal(proxy.requests[0]?.target, `${TARGET_HOST}:3080`);
  } finally {
    s.destroy();
  }
  // Not trusted without its CA.
  await rejectsWith(
    dialTcp(TARGET_HOST, 3080, { proxy: { httpsProxy: url } }),
    "ConnectionProblem",
    new RegExp(`through HTTPS proxy ${url}: TLS with the proxy failed \\(`),
  );
  // Plain HTTP spoken to a TLS proxy: the answer is not HTTP.
  await rejectsWith(
    dialTcp(TARGET_HOST, 3080, { proxy: { httpsProxy: `http://localhost:${proxy.port}` } }),
    "ConnectionProblem",
    /write https:\/\/ for a proxy that speaks TLS|closed the connection/,
  );
});

// --- Against real tinyproxy (Debian package; CI installs it). ---------------------------------

const TINYPROXY = "/usr/bin/tinyproxy";
const HOST_IP = "127.0.0.1";

/** Runs tinyproxy on a free loopback port with `BasicAuth user pass`, all CONNECT ports allowed. */
async function startTinyproxy(): Promise<AsyncDisposable & { port: number }> {
  const port = await freePort();
  const dir = await Deno.makeTempDir();
  const conf = `${dir}/tinyproxy.conf`;
  await Deno.writeTextFile(
    conf,
    [
      `Port ${port}`,
      "Listen 127.0.0.1",
      "Timeout 60",
      "MaxClients 20",
      "LogLevel Info",
      "BasicAuth user pass",
      "",
    ].join("\n"),
  );
  const child = new Deno.Command(TINYPROXY, {
    args: ["-d", "-c", conf],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const ready = Promise.withResolvers<void>();
  let log = "";
  const drain = (stream: ReadableStream<Uint8Array>) =>
    (async () => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        log += text;
        if (log.includes("listening on fd")) ready.resolve();
      }
    })();
  const drains = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const status = child.status;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await status;
    await drains;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await Promise.race([
      ready.promise,
      status.then((s) => {
        throw new Error(`tinyproxy exited (${s.code}) before listening:\n${log}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, [Symbol.asyncDispose]: stop };
}

Deno.test({
  name: "dialTcp() tunnels through real tinyproxy and reports a wrong password as access denied",
  ignore: skipGroup("tinyproxy-dial"),
  fn: async () => {
    // A loopback target is dialled directly unless the settings say otherwise (tests only).
    await using echo = await startEchoServer(HOST_IP);
    await using tiny = await startTinyproxy();
    const s = await dialTcp(HOST_IP!, echo.port, {
      proxy: { httpsProxy: `http://user:pass@127.0.0.1:${tiny.port}`, proxyLoopback: true },
    });
    try {
      s.write("through tinyproxy");
      assert.equal(await readUntil(s, "tinyproxy"), "through tinyproxy");
    } finally {
      s.destroy();
    }
    await rejectsWith(
      dialTcp(HOST_IP!, echo.port, {
        proxy: { httpsProxy: `http://user:wrong@127.0.0.1:${tiny.port}`, proxyLoopback: true },
      }),
      "AccessDenied",
      /the proxy refused the credentials \(HTTP 40[17] /,
    );
    await rejectsWith(
      dialTcp(HOST_IP!, echo.port, {
        proxy: { httpsProxy: `127.0.0.1:${tiny.port}`, proxyLoopback: true },
      }),
      "AccessDenied",
      /the proxy asks for credentials/,
    );
  },
});
