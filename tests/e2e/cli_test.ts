/**
 * The CLI's contract for bad input: one clear error line (what, where, how to
 * fix), a non-zero exit, never a stack trace. Also personality selection and
 * the data dir safety checks.
 */
import assert from "node:assert/strict";
import { isOneLineError, runCli, tempDir, writeConfig } from "./_helpers.ts";

Deno.test("teleport version and personalities", async () => {
  const v = await runCli(["version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^Teleport v\d+\.\d+\.\d+ deno 2\.9\.6/);
  const tsh = await runCli(["tsh", "version"]);
  assert.match(tsh.stdout, /^tsh v/);
  const help = await runCli(["tctl", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: tctl/);
});

Deno.test("bad config files give one line naming the key and line", async (t) => {
  await using dir = await tempDir();
  const cases: Array<[string, string, RegExp]> = [
    [
      "unknown key",
      "auth_service:\n  listen_adr: 1.2.3.4:3025\n",
      /line 2.*listen_adr.*listen_addr/,
    ],
    [
      "wrong type",
      "auth_service:\n  enabled: true\n  public_addr: {a: 1}\n",
      /line 3.*public_addr/,
    ],
    ["bad address", 'teleport:\n  auth_server: "host:99999"\n', /auth_server.*port/],
    ["bad yaml", "teleport: [\n", /teleport\.yaml/],
    [
      "static token",
      'auth_service:\n  tokens: ["bogus-role:supersecretvalue"]\n',
      /auth_service\.tokens\[0\]/,
    ],
  ];
  for (const [name, text, re] of cases) {
    await t.step(name, async () => {
      const path = `${dir.path}/teleport.yaml`;
      await Deno.writeTextFile(path, text);
      const r = await runCli(["start", "--config", path, "--data-dir", `${dir.path}/d`]);
      assert.notEqual(r.code, 0);
      assert.ok(isOneLineError(r.stderr), r.stderr);
      assert.match(r.stderr, re);
      assert.ok(!r.stderr.includes("supersecretvalue"), "secrets are never echoed");
    });
  }
  await t.step("missing file", async () => {
    const r = await runCli(["start", "--config", `${dir.path}/nope.yaml`]);
    assert.ok(isOneLineError(r.stderr), r.stderr);
    assert.match(r.stderr, /nope\.yaml/);
  });
});

Deno.test("bad flags and bad tctl input give one line", async (t) => {
  await using dir = await tempDir();
  const config = await writeConfig(dir.path);
  const cases: Array<[string[], RegExp]> = [
    [["start", "--rolez=auth"], /unknown flag --rolez/],
    [["start", "--roles=auth,chef"], /chef/],
    [["start", "--auth-server=:x"], /--auth-server/],
    [["nosuch"], /unknown command "nosuch"/],
    [["tctl", "frobnicate"], /unknown command "frobnicate"/],
    [["tctl", "-c", config, "tokens", "add", "--ttl=10"], /--type is required|not a duration/],
    [["tctl", "-c", config, "tokens", "add", "--type=node", "--ttl=10"], /--ttl.*not a duration/],
    [["tctl", "-c", config, "get", "widgets"], /unknown kind/],
    [["tctl", "-c", config, "users", "add", "../x", "--roles=access"], /user name/],
    [["tctl", "-c", config, "create", "-f", `${dir.path}/none.yaml`], /does not exist/],
    [["tctl", "-c", config, "status"], /identity|admin/],
    [["tctl", "--auth-server=127.0.0.1:1", "--identity", `${dir.path}/none`, "status"], /identity/],
  ];
  for (const [args, re] of cases) {
    await t.step(
      args.filter((a) => !a.startsWith(dir.path) && a !== config).join(" "),
      async () => {
        const r = await runCli(args);
        assert.notEqual(r.code, 0);
        assert.ok(isOneLineError(r.stderr), r.stderr);
        assert.match(r.stderr, re);
      },
    );
  }
  await t.step("invalid resource file names the document and field", async () => {
    const file = `${dir.path}/bad.yaml`;
    await Deno.writeTextFile(
      file,
      "kind: role\nversion: v7\nmetadata: {name: x}\nspec: {allow: {logins: 5}}\n",
    );
    // The parse error comes before any connection, so no running auth is needed.
    const r = await runCli(["tctl", "-c", config, "create", "-f", file]);
    assert.ok(isOneLineError(r.stderr), r.stderr);
  });
});

Deno.test("teleport start refuses unsafe data dirs and roles it cannot run", async (t) => {
  await using dir = await tempDir();
  await t.step("group-writable data dir", async () => {
    const d = `${dir.path}/open`;
    await Deno.mkdir(d);
    await Deno.chmod(d, 0o777);
    const r = await runCli(["start", "--roles=auth", `--data-dir=${d}`]);
    assert.equal(r.code, 1);
    assert.ok(isOneLineError(r.stderr), r.stderr);
    assert.match(r.stderr, /chmod 700/);
  });
  await t.step("proxy role without a join token", async () => {
    const r = await runCli([
      "start",
      "--roles=proxy",
      `--data-dir=${dir.path}/x`,
      "--auth-server=127.0.0.1:1",
    ]);
    assert.equal(r.code, 1);
    assert.ok(isOneLineError(r.stderr), r.stderr);
    assert.match(r.stderr, /--token=/);
  });
  await t.step("node role without a join token", async () => {
    const r = await runCli([
      "start",
      "--roles=node",
      `--data-dir=${dir.path}/n`,
      "--auth-server=127.0.0.1:1",
    ]);
    assert.equal(r.code, 1);
    assert.ok(isOneLineError(r.stderr), r.stderr);
    assert.match(r.stderr, /--token=/);
  });
  await t.step("configure writes a config that start accepts", async () => {
    const out = `${dir.path}/sample.yaml`;
    const r = await runCli(["configure", "--cluster-name=sample.example", "-o", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);
    // Loading and resolving happen before any service starts: a node without a token is
    // refused with its own message, proving the file parsed.
    const s = await runCli([
      "start",
      "--config",
      out,
      `--data-dir=${dir.path}/s`,
      "--roles=node",
      "--auth-server=127.0.0.1:1",
    ]);
    assert.ok(isOneLineError(s.stderr), s.stderr);
    assert.match(s.stderr, /--token=/);
  });
});
