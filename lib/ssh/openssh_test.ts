/**
 * Interop with real OpenSSH (ssh, sshd). These tests cover the ssh2 adaptations in _ssh2.ts
 * (A1/A2 host certificate, A3 open-failure text, A4 refused exec and early stdin/EOF, A5 user
 * certificate login, A6 raw sessions, A7 keepalive, A8 terminal modes, A9 custom channels and
 * global requests, refused by stock OpenSSH, A10 server-sig-algs for RSA user keys) and fail,
 * not skip, when OpenSSH is missing.
 */
import assert from "node:assert/strict";
import {
  generateSshKeyPair,
  parseAuthorizedKey,
  signSshCertificate,
  type SshKeyAlgorithm,
  sshPublicKeyBlob,
  verifySshCertificate,
} from "../ca/mod.ts";
import { AccessDeniedError } from "../errors/mod.ts";
import {
  bytesEqual,
  requireTool,
  run,
  serve,
  sshArgs,
  startEchoServer,
  startSshd,
  tempDir,
  testCa,
  writeIdentity,
} from "./_testing.ts";
import { connectSsh } from "./client.ts";
import type { SessionRequest, SshAuthFailure, SshServerHandlers } from "./server.ts";

const ALGS: SshKeyAlgorithm[] = ["ed25519", "ecdsa-p256"];
const dec = new TextDecoder();

/** pty-reqs the echo handler saw, for the terminal modes test. */
const ptyRequests: Array<{ term: string; modes: Record<string, number> }> = [];

/**
 * Exec echoes the command (stdout), the pty/env it saw (stderr) and exits with 7. The command
 * "deny" is refused with a stderr reason, "fail" is accepted and failed with a reason.
 */
const echoHandlers: SshServerHandlers<{ login: string }> = {
  globalRequest: (req) => {
    // Pretend to listen on 4567 for `-R 127.0.0.1:0:…`; refuse every other forward.
    if (req.name === "tcpip-forward" && req.bindPort === 0) return req.accept(4567);
    req.reject();
  },
  session: (open) => {
    const seen: string[] = [];
    open.accept(async (req: SessionRequest) => {
      switch (req.type) {
        case "pty-req":
          ptyRequests.push({ term: req.term, modes: { ...req.modes } });
          seen.push(`pty:${req.term}`);
          return req.accept();
        case "env":
          seen.push(`env:${req.name}`);
          return req.accept();
        case "exec": {
          if (req.command === "deny") {
            return req.reject({ stderr: "exec is not permitted by your roles\r\n" });
          }
          if (req.command === "fail") return req.fail("exec is not permitted by your roles\r\n");
          if (req.command === "relay") {
            // Remote forwarding: open forwarded-tcpip back to the client (RFC 4254 §7.2).
            const ch = req.accept();
            const fwd = await open.conn.openForwardedTcpip({
              boundAddr: "127.0.0.1",
              boundPort: 4567,
              originAddr: "127.0.0.1",
              originPort: 40000,
            });
            const echoed = new Promise<string>((resolve) =>
              fwd.once("data", (d: Uint8Array) => resolve(new TextDecoder().decode(d)))
            );
            fwd.write("ping");
            ch.write(`relayed ${await echoed}\n`);
            fwd.end();
            ch.exit(0);
            ch.end();
            return;
          }
          if (req.command === "tunnel-probe") {
            // A9 against stock ssh: it refuses unknown global requests and channel types.
            const ch = req.accept();
            const version = await open.conn.globalRequest("x-teleport-version");
            const opened = await open.conn.openChannel("teleport-transport").then(
              () => "opened",
              (err: Error) => `${err.name}: ${err.message}`,
            );
            const again = await open.conn.globalRequest("x-teleport-version");
            ch.write(`version ${version.ok} ${again.ok}\n${opened}\n`);
            ch.exit(0);
            ch.end();
            return;
          }
          if (req.command === "count") {
            // Accept late, after stock ssh has started sending stdin (adaptation A4).
            await new Promise((resolve) => setTimeout(resolve, 20));
            const ch = req.accept();
            let n = 0;
            ch.on("data", (d: Uint8Array) => n += d.length);
            ch.on("end", () => {
              ch.end(`${n}\n`);
            });
            return;
          }
          const ch = req.accept();
          ch.write(`${open.conn.context.login} ran: ${req.command}\n`);
          ch.stderr.write(seen.join(",") + "\n");
          ch.exit(7);
          ch.end();
          return;
        }
        default:
          req.reject();
      }
    });
  },
};

async function ourServer(alg: SshKeyAlgorithm) {
  const ca = await testCa(alg);
  const host = await ca.host(["127.0.0.1", "localhost"]);
  const failures: SshAuthFailure[] = [];
  const server = await serve<{ login: string }>({
    hostKey: host.key,
    hostCertificate: host.cert,
    authenticate: ({ username, certificate }) =>
      certificate.principals.includes(username)
        ? { ok: true, context: { login: username } }
        : { ok: false, reason: "login not in principals" },
    onAuthFailure: (f) => failures.push(f),
    handlers: echoHandlers,
  });
  return { ca, host, server, failures };
}

for (const alg of ALGS) {
  Deno.test(`stock ssh logs in to SshServer with a user certificate and trusts its host certificate (${alg})`, async () => {
    const ssh = requireTool("ssh");
    await using dir = await tempDir();
    const { ca, server } = await ourServer(alg);
    await using _server = server;
    const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
    const knownHosts = `${dir.path}/known_hosts`;
    await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
    const r = await run(ssh, [
      ...sshArgs({
        port: server.addr.port,
        keyPath,
        knownHosts,
        user: "alice",
        extra: ["-tt", "-o", "SetEnv=FOO=bar"],
      }),
      "echo",
      "hi",
    ], { env: { TERM: "vt220" } });
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout, "alice ran: echo hi\n");
    assert.match(r.stderr, /pty:vt220/);
    assert.match(r.stderr, /env:FOO/);
    // The certificate algorithm was negotiated and trusted: known_hosts is unchanged.
    assert.equal((await Deno.readTextFile(knownHosts)).trim(), ca.knownHostsLine);

    // stdin sent before the (late) accept arrives in full, then EOF.
    const stdin = new Uint8Array(3 * 1024 * 1024 + 17);
    const counted = await run(
      ssh,
      [...sshArgs({ port: server.addr.port, keyPath, knownHosts, user: "alice" }), "count"],
      { stdin },
    );
    assert.equal(counted.stdout, `${stdin.length}\n`, counted.stderr);
  });

  Deno.test(`stock ssh refuses SshServer when known_hosts trusts a different CA (${alg})`, async () => {
    const ssh = requireTool("ssh");
    await using dir = await tempDir();
    const { ca, server, failures } = await ourServer(alg);
    await using _server = server;
    const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
    const knownHosts = `${dir.path}/known_hosts`;
    await Deno.writeTextFile(knownHosts, (await testCa(alg)).knownHostsLine + "\n");
    const r = await run(
      ssh,
      [...sshArgs({ port: server.addr.port, keyPath, knownHosts, user: "alice" }), "true"],
    );
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Host key verification failed/);
    assert.deepEqual(failures, []); // it never got to authentication
  });

  Deno.test(`connectSsh() runs a command on stock sshd with TrustedUserCAKeys (${alg})`, async () => {
    requireTool("sshd");
    await using dir = await tempDir();
    const ca = await testCa(alg);
    const hostKey = await generateSshKeyPair(alg);
    await using sshd = await startSshd(dir.path, hostKey, ca.ca);
    const login = (await run("id", ["-un"])).stdout.trim();
    const user = await ca.user([login]);
    await using client = await connectSsh({
      port: sshd.port,
      username: login,
      key: user.key,
      certificate: user.cert,
      verifyHostKey: ({ keyBlob }) => bytesEqual(keyBlob, hostKey.publicKeyBlob),
    });
    const r = await client.exec("id -un; echo to-stderr >&2; exit 3");
    assert.equal(dec.decode(r.stdout), `${login}\n`, sshd.log());
    assert.equal(dec.decode(r.stderr), "to-stderr\n");
    assert.equal(r.exitCode, 3);
    await client.ping(5_000);
    const pty = await client.exec("stty -a | tr ' ' '\\n' | grep -c '^-echo$'; tty", {
      pty: { cols: 90, rows: 20, modes: { ECHO: 0 } },
    });
    assert.match(dec.decode(pty.stdout), /^1\r?\n\/dev\/pts\//, dec.decode(pty.stderr));

    // A raw session: each request's reply is visible (sshd refuses env outside AcceptEnv).
    const s = await client.openSession();
    assert.equal(await s.setEnv("NOT_ACCEPTED", "1"), false);
    assert.equal(await s.requestPty({ cols: 80, rows: 24, term: "xterm" }), true);
    assert.equal(await s.exec("echo $TERM"), true);
    const out: Uint8Array[] = [];
    s.channel.on("data", (d: Uint8Array) => out.push(d));
    assert.deepEqual(await s.channel.exitStatus, { kind: "code", code: 0 });
    assert.equal(dec.decode(Uint8Array.from(out.flatMap((c) => [...c]))).trim(), "xterm");
  });
}

Deno.test("stock ssh refuses the server's custom global requests and channel opens", async () => {
  const ssh = requireTool("ssh");
  await using dir = await tempDir();
  const { ca, server } = await ourServer("ed25519");
  await using _server = server;
  const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
  const r = await run(ssh, [
    ...sshArgs({ port: server.addr.port, keyPath, knownHosts, user: "alice" }),
    "tunnel-probe",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    "version false false\n" +
      "AccessDeniedError: Cannot open teleport-transport channel: open failed\n",
  );
});

Deno.test("stock sshd refuses connectSsh()'s custom global requests and channel opens", async () => {
  requireTool("sshd");
  await using dir = await tempDir();
  const ca = await testCa();
  const hostKey = await generateSshKeyPair("ed25519");
  await using sshd = await startSshd(dir.path, hostKey, ca.ca);
  const login = (await run("id", ["-un"])).stdout.trim();
  const user = await ca.user([login]);
  await using client = await connectSsh({
    port: sshd.port,
    username: login,
    key: user.key,
    certificate: user.cert,
    verifyHostKey: ({ keyBlob }) => bytesEqual(keyBlob, hostKey.publicKeyBlob),
    onGlobalRequest: (req) => req.reject(),
  });
  assert.deepEqual(await client.globalRequest("x-teleport-version"), {
    ok: false,
    data: new Uint8Array(0),
  });
  const err = await client.openChannel("teleport-heartbeat").then(() => undefined, (e) => e);
  assert.equal(
    String(err),
    "ConnectionProblemError: Cannot open teleport-heartbeat channel: open failed",
  );
  await client.ping(5_000);
  assert.equal(dec.decode((await client.exec("echo ok")).stdout), "ok\n", sshd.log());
});

Deno.test("stock ssh exits when exec is refused and shows the reason of fail()", async () => {
  const ssh = requireTool("ssh");
  await using dir = await tempDir();
  const { ca, server } = await ourServer("ed25519");
  await using _server = server;
  const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
  const args = sshArgs({ port: server.addr.port, keyPath, knownHosts, user: "alice" });
  const refused = await run(ssh, [...args, "deny"]);
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /exec request failed on channel 0/);
  const failed = await run(ssh, [...args, "fail"]);
  assert.equal(failed.code, 1);
  assert.equal(failed.stderr, "exec is not permitted by your roles\r\n");
});

Deno.test("stock ssh shows the channel-open refusal text for port forwarding", async () => {
  const ssh = requireTool("ssh");
  await using dir = await tempDir();
  const { ca, server } = await ourServer("ed25519");
  await using _server = server;
  const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
  const r = await run(
    ssh,
    sshArgs({
      port: server.addr.port,
      keyPath,
      knownHosts,
      user: "alice",
      logLevel: "INFO",
      extra: ["-W", "127.0.0.1:9"],
    }),
  );
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /administratively prohibited: port forwarding is not permitted/);
});

Deno.test("stock ssh -R gets the port the globalRequest handler chose and forwarded-tcpip, or a refusal", async () => {
  const ssh = requireTool("ssh");
  await using dir = await tempDir();
  const { ca, server } = await ourServer("ed25519");
  await using _server = server;
  const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
  await using echo = await startEchoServer();
  const forward = (spec: string, command: string) =>
    run(ssh, [
      ...sshArgs({
        port: server.addr.port,
        keyPath,
        knownHosts,
        user: "alice",
        logLevel: "INFO",
        extra: ["-o", "ExitOnForwardFailure=yes", "-R", spec],
      }),
      command,
    ]);
  const allowed = await forward(`127.0.0.1:0:127.0.0.1:${echo.port}`, "relay");
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stderr, /Allocated port 4567 for remote forward/);
  assert.equal(allowed.stdout, "relayed ping\n");
  const refused = await forward("127.0.0.1:2222:127.0.0.1:9", "true");
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /remote port forwarding failed for listen port 2222/);
});

Deno.test("SshServer reads the terminal modes of stock ssh's pty-req", async () => {
  const ssh = requireTool("ssh");
  const script = requireTool("script");
  await using dir = await tempDir();
  const { ca, server } = await ourServer("ed25519");
  await using _server = server;
  const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
  const before = ptyRequests.length;
  // script(1) gives ssh a terminal, so it sends that terminal's modes (RFC 4254 §8).
  const cmd = [
    ssh,
    ...sshArgs({ port: server.addr.port, keyPath, knownHosts, user: "alice", extra: ["-t"] }),
    "modes",
  ].join(" ");
  const r = await run(script, ["-qec", cmd, "/dev/null"], { env: { TERM: "xterm" } });
  assert.equal(r.code, 7, r.stdout);
  const pty = ptyRequests.slice(before).find((p) => p.term === "xterm");
  assert.ok(pty, JSON.stringify(ptyRequests));
  assert.equal(pty.modes.VINTR, 3); // ^C
  assert.equal(pty.modes.ICANON, 1);
  assert.ok("IUTF8" in pty.modes || "ECHO" in pty.modes, JSON.stringify(pty.modes));
});

Deno.test("stock ssh with a plain key is refused and the attempt is reported", async () => {
  const ssh = requireTool("ssh");
  await using dir = await tempDir();
  const { ca, server, failures } = await ourServer("ed25519");
  await using _server = server;
  const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
  await Deno.remove(`${keyPath}-cert.pub`);
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
  const r = await run(ssh, [
    ...sshArgs({ port: server.addr.port, keyPath, knownHosts, user: "alice", certificate: false }),
    "true",
  ]);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Permission denied \(publickey\)/);
  assert.ok(
    failures.some((f) => /certificate is required/.test(f.reason)),
    JSON.stringify(failures),
  );
});

Deno.test("stock sshd refuses connectSsh() with a certificate from an untrusted CA", async () => {
  requireTool("sshd");
  await using dir = await tempDir();
  const ca = await testCa();
  const hostKey = await generateSshKeyPair("ed25519");
  await using sshd = await startSshd(dir.path, hostKey, ca.ca);
  const login = (await run("id", ["-un"])).stdout.trim();
  const other = await (await testCa()).user([login]);
  await assert.rejects(
    connectSsh({
      port: sshd.port,
      username: login,
      key: other.key,
      certificate: other.cert,
      verifyHostKey: () => true,
    }),
    AccessDeniedError,
  );
});

Deno.test("stock ssh with default algorithms logs in with RSA user keys (rsa-sha2-512/256 certificates, Ed25519 and RSA CAs)", async () => {
  const ssh = requireTool("ssh");
  const keygen = requireTool("ssh-keygen");
  await using dir = await tempDir();
  const edCa = await testCa("ed25519");
  const rsaPair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-512",
    },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const rsaCa = {
    privateKey: rsaPair.privateKey,
    publicKeyBlob: await sshPublicKeyBlob(rsaPair.publicKey),
  };
  const trusted = [edCa.ca.publicKeyBlob, rsaCa.publicKeyBlob];
  const failures: SshAuthFailure[] = [];
  const host = await edCa.host(["127.0.0.1"]);
  await using server = await serve<{ login: string }>({
    hostKey: host.key,
    hostCertificate: host.cert,
    authenticate: async ({ username, certificate }) => {
      try {
        await verifySshCertificate(certificate, {
          trustedCaKeys: trusted,
          certType: "user",
          principal: username,
          now: new Date(),
        });
        return { ok: true, context: { login: username } };
      } catch (err) {
        return { ok: false, reason: (err as Error).message };
      }
    },
    onAuthFailure: (f) => failures.push(f),
    handlers: echoHandlers,
  });
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, edCa.knownHostsLine + "\n");
  // A user key made the way a user makes one.
  const keyPath = `${dir.path}/id_rsa`;
  const gen = await run(keygen, ["-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", keyPath]);
  assert.equal(gen.code, 0, gen.stderr);
  const userKey = parseAuthorizedKey(await Deno.readTextFile(`${keyPath}.pub`));
  const certify = async (signer: { privateKey: CryptoKey; publicKeyBlob: Uint8Array }) => {
    const cert = await signSshCertificate({
      signer,
      publicKeyBlob: userKey.blob,
      certType: "user",
      keyId: "rsa-user",
      principals: ["alice"],
      validAfter: new Date(Date.now() - 60_000),
      validBefore: new Date(Date.now() + 3_600_000),
      extensions: { "permit-pty": "" },
    });
    await Deno.writeTextFile(`${keyPath}-cert.pub`, cert.authorizedKey + "\n");
  };
  const login = (extra: string[] = []) =>
    run(ssh, [
      ...sshArgs({
        port: server.addr.port,
        keyPath,
        knownHosts,
        user: "alice",
        logLevel: "DEBUG3",
        extra,
      }),
      "echo",
      "rsa",
    ]);

  await certify(edCa.ca);
  const byDefault = await login();
  assert.equal(byDefault.code, 7, byDefault.stderr);
  assert.equal(byDefault.stdout, "alice ran: echo rsa\n");
  const sigAlgs = /server-sig-algs=<([^>]*)>/.exec(byDefault.stderr)?.[1];
  assert.equal(
    sigAlgs,
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512," +
      "rsa-sha2-256",
  );
  assert.match(byDefault.stderr, /signing using rsa-sha2-512-cert-v01@openssh\.com/);

  const sha256 = await login([
    "-o",
    "PubkeyAcceptedAlgorithms=rsa-sha2-256-cert-v01@openssh.com,rsa-sha2-256",
  ]);
  assert.equal(sha256.code, 7, sha256.stderr);
  assert.match(sha256.stderr, /signing using rsa-sha2-256-cert-v01@openssh\.com/);

  await certify(rsaCa);
  const rsaSigned = await login();
  assert.equal(rsaSigned.code, 7, rsaSigned.stderr);
  assert.equal(rsaSigned.stdout, "alice ran: echo rsa\n");
  assert.match(
    await Deno.readTextFile(`${keyPath}-cert.pub`),
    /^ssh-rsa-cert-v01@openssh\.com /,
  );
  assert.deepEqual(failures, []);
});

Deno.test("stock ssh prints the reason SshServer.close() gives its connections", async () => {
  const ssh = requireTool("ssh");
  await using dir = await tempDir();
  const ca = await testCa("ed25519");
  const host = await ca.host(["127.0.0.1", "localhost"]);
  const authenticated = Promise.withResolvers<void>();
  await using server = await serve<{ login: string }>({
    hostKey: host.key,
    hostCertificate: host.cert,
    authenticate: ({ username }) => ({ ok: true, context: { login: username } }),
    onConnection: () => authenticated.resolve(),
    handlers: echoHandlers,
  });
  const keyPath = await writeIdentity(dir.path, "alice", await ca.user(["alice"]));
  const knownHosts = `${dir.path}/known_hosts`;
  await Deno.writeTextFile(knownHosts, ca.knownHostsLine + "\n");
  const child = new Deno.Command(ssh, {
    args: [
      ...sshArgs({ port: server.addr.port, keyPath, knownHosts, user: "alice", logLevel: "INFO" }),
      "count", // waits for the end of stdin, which never comes
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await authenticated.promise;
  await server.close("node is shutting down");
  const out = await child.output();
  assert.equal(out.code, 255);
  assert.match(new TextDecoder().decode(out.stderr), /disconnect.*node is shutting down/i);
});

Deno.test("SshServer.setHostCertificate() makes ssh-keyscan see the re-issued certificate on new connections", async () => {
  requireTool("ssh");
  const oldCa = await testCa();
  const newCa = await testCa();
  const host = await generateSshKeyPair("ed25519");
  const first = await oldCa.host(["127.0.0.1"], { key: host });
  await using server = await serve<{ login: string }>({
    hostKey: host,
    hostCertificate: first.cert,
    authenticate: () => ({ ok: false, reason: "no logins here" }),
  });
  const scan = async () => {
    const r = await run("ssh-keyscan", [
      "-c",
      "-t",
      "ed25519",
      "-p",
      String(server.addr.port),
      "127.0.0.1",
    ]);
    const line = r.stdout.split("\n").find((l) => l.includes("-cert-v01@openssh.com"));
    assert.ok(line !== undefined, r.stdout + r.stderr);
    // With -c the line is the certificate alone (no host name before it).
    return parseAuthorizedKey(line.slice(line.indexOf("ssh-ed25519-cert"))).blob;
  };
  assert.ok(bytesEqual(await scan(), first.cert));
  const second = await newCa.host(["127.0.0.1"], { key: host });
  server.setHostCertificate(second.cert);
  assert.ok(bytesEqual(await scan(), second.cert));
  const stranger = await newCa.host(["127.0.0.1"]);
  assert.throws(
    () => server.setHostCertificate(stranger.cert),
    /Cannot update the host certificate: host certificate is not for the host key/,
  );
});
