/**
 * Issue 11 finding 1 end to end: a real `teleport start --roles=auth,proxy,node` with a small
 * open-files limit (prlimit) is flooded with silent TLS ClientHellos — the ALPN that routes to
 * the auth pass-through, the one that killed the whole daemon before — far beyond its caps:
 * first from one address (the per-address pending cap bites), then from many addresses at once
 * (the descriptor reserve bites). Throughout, the process stays alive, its open descriptors stay
 * below the limit, a live `tsh ssh` session keeps echoing, and ping and `tsh login` work.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import type * as OTPAuth from "otpauth";
import { connect, type Socket } from "node:net";
import tls from "node:tls";
import { authAlpn } from "../../lib/multiplex/mod.ts";
import {
  captureClientHello,
  ensureOsUser,
  eventually,
  freePort,
  REPO,
  run,
  startTeleport,
  tempDir,
} from "./_helpers.ts";
import { inviteAndEnroll, TEST_PASSWORD } from "./_proxy.ts";
import { runCli } from "./_helpers.ts";

const USER = "td_e2e_flood";
const CLUSTER = "e2e-flood.example";
const NOFILE = 2048;

/** Opens `n` connections from `localAddress` that send `hello` and then stay silent. */
async function flood(port: number, localAddress: string, n: number, hello: Uint8Array) {
  const socks: Socket[] = [];
  let closedByServer = 0;
  await Promise.all(Array.from({ length: n }, () =>
    new Promise<void>((resolve) => {
      const s = connect({ host: "127.0.0.1", port, localAddress });
      s.setNoDelay(true);
      socks.push(s);
      s.on("error", () => {});
      s.once("close", () => closedByServer++);
      s.resume(); // read what the server sends, so its close is seen
      s.once("connect", () => {
        s.write(hello);
        resolve();
      });
      s.once("close", () => resolve());
    })));
  return { socks, closed: () => closedByServer };
}

/**
 * `tsh login` as `user` with the TOTP code of the next time step: auth takes each user's codes
 * in order, once, so each login of the test is a user of its own.
 */
function login(home: string, webPort: number, user: string, totp: OTPAuth.TOTP) {
  const code = totp.generate({ timestamp: Date.now() + 30_000 });
  return runCli(
    ["tsh", "login", `--proxy=127.0.0.1:${webPort}`, `--user=${user}`, "--insecure"],
    { env: { TELEPORT_HOME: home }, stdin: `${TEST_PASSWORD}\n${code}\n` },
  );
}

function openFiles(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

async function ping(port: number): Promise<boolean> {
  const r = await run("curl", ["-sk", "-m", "10", `https://127.0.0.1:${port}/webapi/ping`]);
  return r.code === 0 && r.out.includes(CLUSTER);
}

/** A `tsh ssh node cat` that echoes lines back while it lives. */
function liveSession(home: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}main.ts`, "tsh", "ssh", `${USER}@e2e-flood-node`, "cat"],
    env: { NO_COLOR: "1", TELEPORT_HOME: home },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  return {
    async echo(line: string): Promise<void> {
      await writer.write(new TextEncoder().encode(`${line}\n`));
      const timer = setTimeout(() => child.kill(), 30_000);
      try {
        while (!seen.includes(`${line}\n`)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`the session ended before echoing ${line}`);
          seen += value;
        }
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await writer.close().catch(() => {});
      await reader.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      await child.status;
    },
  };
}

Deno.test({
  name: "flood: silent ClientHellos far beyond the caps leave ping, tsh login and a live session",
  ignore: skipGroup("flood-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-flood-");
    const config = `${dir.path}/teleport.yaml`;
    await Deno.writeTextFile(
      config,
      `version: v3
teleport:
  nodename: e2e-flood-node
  data_dir: ${dir.path}/data
  connection_limits:
    max_pending_connections: 100
    # Long enough that a flood accepted slowly on a loaded machine still piles up.
    handshake_timeout: 15s
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
  cluster_name: ${CLUSTER}
  proxy_listener_mode: multiplex
  authentication:
    type: local
    second_factor: otp
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${freePort()}
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
`,
    );
    await using tp = await startTeleport(["-c", config], 60_000, {}, [
      "prlimit",
      `--nofile=${NOFILE}:${NOFILE}`,
    ]);
    const pid = tp.child.pid;
    await ensureOsUser(USER);
    const users = ["flood-a", "flood-b", "flood-c"];
    const totps: OTPAuth.TOTP[] = [];
    for (const user of users) {
      totps.push(
        await inviteAndEnroll({ config, webPort: tp.webPort, user, roles: "access", logins: USER }),
      );
    }
    const home = `${dir.path}/tsh`;
    const first = await login(home, tp.webPort, users[0]!, totps[0]!);
    assert.equal(first.code, 0, first.stderr);
    const session = liveSession(home);
    await session.echo("before the flood");
    const hello = await captureClientHello(authAlpn(CLUSTER));
    let peak = 0;
    const sample = setInterval(() => peak = Math.max(peak, openFiles(pid)), 50);

    try {
      await t.step("one address, 15x its pending cap: refused beyond the cap", async () => {
        const f = await flood(tp.webPort, "127.0.0.2", 1500, hello);
        try {
          await eventually(
            "the per-address cap to bite",
            () => Promise.resolve(f.closed() >= 1400 ? true : undefined),
          );
          assert.ok(await ping(tp.webPort), "ping works during the flood");
          const during = await login(`${home}-b`, tp.webPort, users[1]!, totps[1]!);
          assert.equal(during.code, 0, during.stderr);
          await session.echo("during the one-address flood");
          assert.match(
            tp.logs(),
            /Refusing connections on proxy web: the client address has too many connections still in their handshake/,
          );
        } finally {
          for (const s of f.socks) s.destroy();
        }
      });

      await t.step("60 addresses, more connections than the process has descriptors", async () => {
        const floods = await Promise.all(
          Array.from({ length: 60 }, (_, i) => flood(tp.webPort, `127.0.3.${i + 1}`, 50, hello)),
        );
        try {
          // The server may still be accepting when the client side is connected.
          await eventually("the descriptor reserve to bite", () =>
            Promise.resolve(
              /Refusing connections on [a-z ]+: the process is near its open-files limit/
                  .test(tp.logs())
                ? true
                : undefined,
            ), 60_000);
          assert.ok(peak < NOFILE, `peak ${peak} descriptors of ${NOFILE}`);
          await session.echo("during the many-address flood");
          // The flood's connections time out after 15 s; then new clients get in again.
          await eventually(
            "ping after the flood's deadline",
            async () => await ping(tp.webPort) ? true : undefined,
            60_000,
          );
          const after = await login(`${home}-c`, tp.webPort, users[2]!, totps[2]!);
          assert.equal(after.code, 0, after.stderr);
        } finally {
          for (const f of floods) for (const s of f.socks) s.destroy();
        }
      });

      await t.step(
        "slow web clients (TLS done, body dribbled) are cut by the deadline",
        async () => {
          const cut = await Promise.all(
            Array.from({ length: 50 }, () =>
              new Promise<number>((resolve, reject) => {
                const t0 = Date.now();
                const c = tls.connect({
                  host: "127.0.0.1",
                  port: tp.webPort,
                  rejectUnauthorized: false,
                  ALPNProtocols: ["http/1.1"],
                }, () => {
                  c.write(
                    "POST /webapi/ssh/certs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                      "Content-Length: 1000\r\n\r\n{",
                  );
                });
                c.setNoDelay(true);
                c.on("error", () => {});
                c.resume();
                const drip = setInterval(() => c.writable && c.write(" "), 1000);
                const limit = setTimeout(() => {
                  clearInterval(drip);
                  c.destroy();
                  reject(new Error("a slow client was still connected after 30 s"));
                }, 30_000);
                c.once("close", () => {
                  clearInterval(drip);
                  clearTimeout(limit);
                  resolve(Date.now() - t0);
                });
              })),
          );
          // The handshake deadline is 5 s (the web server's own request timeout is 60 s).
          assert.ok(Math.max(...cut) < 20_000, `slowest cut after ${Math.max(...cut)} ms`);
          assert.ok(await ping(tp.webPort));
        },
      );

      await t.step("the process is alive and the session still echoes", async () => {
        await session.echo("after the flood");
        assert.ok(await ping(tp.webPort));
        assert.equal((await Deno.stat(`/proc/${pid}`)).isDirectory, true);
        assert.ok(peak < NOFILE, `peak ${peak} descriptors of ${NOFILE}`);
      });
    } finally {
      clearInterval(sample);
      await session.close();
    }
  },
});
