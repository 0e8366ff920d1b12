import assert from "node:assert/strict";
import { startFakeWebProxy, testCluster, webCertificate } from "../../lib/client/mod.ts";
import { firstPositionalIndex } from "../_common.ts";
import { formatStatus, GLOBAL_FLAGS } from "./_env.ts";
import { parseProxyTarget } from "./proxy.ts";
import { parseSshArgs, SSH_FLAGS } from "./ssh.ts";

Deno.test("firstPositionalIndex() skips flags and their values", () => {
  const spec = { ...GLOBAL_FLAGS, ...SSH_FLAGS };
  assert.equal(firstPositionalIndex(["-l", "root", "node", "ls"], spec), 2);
  assert.equal(firstPositionalIndex(["-lroot", "node"], spec), 1);
  assert.equal(firstPositionalIndex(["--proxy", "p:3080", "--insecure", "node"], spec), 3);
  assert.equal(firstPositionalIndex(["--proxy=p", "-tL", "1:h:2", "node"], spec), 3);
  assert.equal(firstPositionalIndex(["--", "-node"], spec), 1);
  assert.equal(firstPositionalIndex(["-t"], spec), -1);
});

Deno.test("parseSshArgs() takes everything after the node as the command", () => {
  const inv = parseSshArgs(["-l", "root", "-t", "web1", "ls", "-la", "--color"], () => "me");
  assert.equal(inv.login, "root");
  assert.equal(inv.target, "web1");
  assert.equal(inv.command, "ls -la --color");
  assert.equal(inv.tty, "force");
  const inv2 = parseSshArgs(["--insecure", "alice@db.c1"], () => "me");
  assert.equal(inv2.login, "alice");
  assert.equal(inv2.target, "db.c1");
  assert.equal(inv2.command, undefined);
  assert.equal(inv2.tty, "auto");
  assert.equal(parseSshArgs(["-T", "n"], () => "me").login, "me");
  assert.equal(parseSshArgs(["-l", "x", "bob@n"], () => "me").login, "x");
});

Deno.test("parseSshArgs() reads repeated -L forwards and rejects bad ones", () => {
  const inv = parseSshArgs(["-L", "8080:localhost:80", "-L9000:db:5432", "n"], () => "me");
  assert.deepEqual(inv.forwards.map((f) => `${f.bindPort}>${f.destHost}:${f.destPort}`), [
    "8080>localhost:80",
    "9000>db:5432",
  ]);
  assert.throws(() => parseSshArgs(["-L", "nope", "n"], () => "me"), /Cannot parse port forward/);
  assert.throws(() => parseSshArgs(["-t", "-T", "n"], () => "me"), /-t and -T/);
  assert.throws(() => parseSshArgs(["-l", "root"], () => "me"), /give a node/);
  assert.throws(() => parseSshArgs(["--bogus", "n"], () => "me"), /unknown flag --bogus/);
});

Deno.test("parseSshArgs() reads -A and repeated -R forwards", () => {
  const inv = parseSshArgs(
    ["-A", "-R", "0:localhost:80", "-R8022:[::1]:22", "n", "true"],
    () => "me",
  );
  assert.equal(inv.forwardAgent, true);
  assert.deepEqual(inv.remoteForwards?.map((f) => `${f.bindPort}>${f.destHost}:${f.destPort}`), [
    "0>localhost:80",
    "8022>::1:22",
  ]);
  assert.equal(inv.command, "true");
  assert.equal(parseSshArgs(["n"], () => "me").forwardAgent, false);
  assert.throws(() => parseSshArgs(["-R", "1:h", "n"], () => "me"), /Cannot parse port forward/);
});

Deno.test("parseProxyTarget() strips the cluster suffix and keeps the port", () => {
  assert.deepEqual(parseProxyTarget("root@web1.c1:3022", "c1"), {
    login: "root",
    host: "web1",
    port: 3022,
  });
  assert.deepEqual(parseProxyTarget("root@10.0.0.5", "c1"), {
    login: "root",
    host: "10.0.0.5",
    port: 0,
  });
  assert.throws(() => parseProxyTarget("web1:22", "c1"), /must be LOGIN@HOST/);
});

Deno.test("formatStatus() prints Teleport's profile summary", () => {
  assert.equal(
    formatStatus({
      profileUrl: "https://proxy.example.com:3080",
      user: "alice",
      cluster: "c1",
      roles: ["access"],
      logins: ["alice", "root"],
      extensions: ["permit-pty"],
      validUntil: new Date(Date.UTC(2030, 0, 1, 12)),
      validForMs: 12 * 3_600_000 + 999,
      expired: false,
    }),
    [
      "> Profile URL:        https://proxy.example.com:3080",
      "  Logged in as:       alice",
      "  Cluster:            c1",
      "  Roles:              access",
      "  Logins:             alice, root",
      "  Valid until:        2030-01-01 12:00:00 +0000 UTC [valid for 12h0m0s]",
      "  Extensions:         permit-pty",
    ].join("\n"),
  );
});

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function tsh(
  home: string,
  args: string[],
  stdin = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "tsh", ...args],
    env: { TELEPORT_HOME: home, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("tsh login --insecure warns, pins the proxy, and status/config/logout use the profile", async () => {
  const cluster = await testCluster("c1");
  await using web = await startFakeWebProxy({
    cluster,
    tls: await webCertificate(),
    password: "pw",
    secondFactor: "otp",
    otp: "424242",
  });
  const home = await Deno.makeTempDir({ prefix: "tsh_cli_test_" });
  try {
    const proxy = `127.0.0.1:${web.port}`;
    const refused = await tsh(home, ["login", `--proxy=${proxy}`, "--user=alice"], "pw\n424242\n");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ERROR: Cannot connect to proxy .*log in with --insecure/);

    const login = await tsh(
      home,
      ["login", `--proxy=${proxy}`, "--user=alice", "--insecure", "--ttl=2h"],
      "pw\n424242\n",
    );
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /WARNING: --insecure/);
    assert.match(login.stderr, /Enter password for Teleport user alice: Enter your OTP token: /);
    assert.match(login.stderr, /is now pinned in your profile/);
    assert.match(login.stdout, new RegExp(`^> Profile URL: +https://${proxy}$`, "m"));
    assert.match(login.stdout, /^ {2}Logged in as: +alice$/m);
    assert.match(login.stdout, /\[valid for 1h59m5\ds\]|\[valid for 2h0m0s\]/);

    // Pinned: no --insecure needed, and no warning.
    const again = await tsh(home, ["login", "--user=alice"], "pw\n424242\n");
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /WARNING/);

    const status = await tsh(home, ["status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^ {2}Cluster: +c1$/m);

    const config = await tsh(home, ["config"]);
    assert.equal(config.code, 0, config.stderr);
    assert.match(config.stdout, new RegExp(`^Host \\*\\.c1 127\\.0\\.0\\.1$`, "m"));
    assert.match(
      config.stdout,
      new RegExp(
        `ProxyCommand env TELEPORT_HOME="${home}" ".*" run -A --quiet "${MAIN}" tsh proxy ssh ` +
          `--cluster=c1 --proxy=${proxy} %r@%h:%p`,
      ),
    );

    const wrong = await tsh(home, ["login", "--user=alice"], "nope\n0\n");
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /ERROR: invalid credentials/);
    assert.doesNotMatch(wrong.stderr, /nope/);

    const logout = await tsh(home, ["logout"]);
    assert.equal(logout.code, 0);
    assert.equal(logout.stdout, "Logged out alice from 127.0.0.1.\n");
    const after = await tsh(home, ["status"]);
    assert.equal(after.code, 1);
    assert.equal(after.stderr, "ERROR: Not logged in\n");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("tsh --help and unknown commands answer without a profile", async () => {
  const home = await Deno.makeTempDir({ prefix: "tsh_cli_test_" });
  try {
    const help = await tsh(home, ["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^ {2}ssh +run a shell or command on a node$/m);
    const sshHelp = await tsh(home, ["ssh", "--help"]);
    assert.equal(sshHelp.code, 0);
    assert.match(sshHelp.stdout, /^Usage: tsh ssh/);
    const bad = await tsh(home, ["bogus"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command "bogus"/);
    const ssh = await tsh(home, ["ssh", "node1", "true"]);
    assert.equal(ssh.code, 255);
    assert.match(ssh.stderr, /Not logged in/);
    const version = await tsh(home, ["version"]);
    assert.match(version.stdout, /^tsh v/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
