/**
 * A real `teleport start` process with a config file, driven by the real
 * `tctl`: pid file, file modes, CA pin vs openssl, tokens, users, resources,
 * export, and a fast clean stop on SIGTERM.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { isOneLineError, runCli, startTeleport, tempDir, writeConfig } from "./_helpers.ts";

async function sh(cmd: string, stdin?: string): Promise<string> {
  const child = new Deno.Command("sh", {
    args: ["-c", cmd],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (out.code !== 0) throw new Error(`${cmd}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name: "teleport start + tctl manage a real auth service",
  ignore: skipGroup("auth-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir();
    const config = await writeConfig(dir.path);
    await using tp = await startTeleport(["--config", config]);
    const tctl = (...args: string[]) =>
      runCli(["tctl", "-c", config, `--auth-server=127.0.0.1:${tp.authPort}`, ...args]);

    await t.step("data dir, keys and pid file", async () => {
      assert.equal((await Deno.stat(`${dir.path}/data`)).mode! & 0o777, 0o700);
      assert.equal((await Deno.stat(`${dir.path}/data/admin.identity`)).mode! & 0o777, 0o600);
      assert.equal(
        (await Deno.readTextFile(`${dir.path}/teleport.pid`)).trim(),
        String(tp.child.pid),
      );
      assert.match(tp.banner, /Cluster:\s+e2e\.example/);
    });

    await t.step("tctl status prints the CA pin that openssl computes", async () => {
      const status = await tctl("status");
      assert.equal(status.code, 0, status.stderr);
      const pin = /CA pin\s+(sha256:[0-9a-f]{64})/.exec(status.stdout)?.[1];
      assert.ok(pin, status.stdout);
      const exported = await tctl("auth", "export", "--type=tls-host");
      assert.equal(exported.code, 0, exported.stderr);
      const digest = await sh(
        "openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
        exported.stdout,
      );
      assert.equal(pin, `sha256:${digest.split(" ")[0]}`);
      assert.ok(tp.banner.includes(pin!), "start banner shows the same pin");
    });

    await t.step("tokens add, ls, rm", async () => {
      const add = await tctl("tokens", "add", "--type=node,proxy", "--ttl=5m");
      assert.equal(add.code, 0, add.stderr);
      const token = /The invite token: ([0-9a-f]{32})/.exec(add.stdout)?.[1];
      assert.ok(token, add.stdout);
      assert.match(add.stdout, /--roles=node,proxy/);
      assert.match(add.stdout, /--ca-pin=sha256:[0-9a-f]{64}/);
      assert.match(add.stdout, /expire in 5m0s/);
      const ls = await tctl("tokens", "ls", "--format=json");
      assert.deepEqual(
        JSON.parse(ls.stdout).map((x: { metadata: { name: string } }) => x.metadata.name),
        [token],
      );
      assert.equal((await tctl("tokens", "rm", token!)).code, 0);
      const again = await tctl("tokens", "rm", token!);
      assert.equal(again.code, 1);
      assert.ok(isOneLineError(again.stderr), again.stderr);
      assert.ok(!again.stderr.includes(token!), "token must not be echoed");
      assert.ok(!tp.logs().includes(token!), "token must not be logged");
    });

    await t.step("users add, ls, reset, rm", async () => {
      const add = await tctl(
        "users",
        "add",
        "alice",
        "--roles=access,editor",
        "--logins=alice,root",
      );
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /https:\/\/\S+\/web\/invite\/[0-9a-f]{32}/);
      const ls = await tctl("users", "ls");
      assert.match(ls.stdout, /alice\s+access,editor\s+alice,root/);
      const reset = await tctl("users", "reset", "alice");
      assert.match(reset.stdout, /has been reset/);
      const dup = await tctl("users", "add", "alice", "--roles=access");
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, /user "alice" already exists/);
      assert.equal((await tctl("users", "rm", "alice")).code, 0);
    });

    await t.step("create -f, get, rm resources", async () => {
      const file = `${dir.path}/dev.yaml`;
      await Deno.writeTextFile(
        file,
        "kind: role\nversion: v7\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: [dev]\n    node_labels: {env: dev}\n",
      );
      const created = await tctl("create", "-f", file);
      assert.equal(created.code, 0, created.stderr);
      const again = await tctl("create", "-f", file);
      assert.equal(again.code, 1);
      assert.ok(isOneLineError(again.stderr), again.stderr);
      assert.equal((await tctl("create", "-f", file, "--force")).code, 0);
      const got = await tctl("get", "role/dev", "--format=json");
      assert.deepEqual(JSON.parse(got.stdout)[0].spec.allow.logins, ["dev"]);
      const text = await tctl("get", "roles", "--format=text");
      assert.match(text.stdout, /role\s+dev\s+logins: dev/);
      assert.equal((await tctl("rm", "role/dev")).code, 0);
      assert.equal((await tctl("get", "role/dev")).code, 1);
      const cas = await tctl("get", "cert_authorities");
      assert.ok(!cas.stdout.includes("PRIVATE"), "CA private keys never leave auth");
    });

    await t.step("auth export lines", async () => {
      const host = await tctl("auth", "export", "--type=host");
      assert.match(
        host.stdout.trim(),
        /^@cert-authority \*\.e2e\.example ssh-ed25519 \S+ type=host$/,
      );
      const user = await tctl("auth", "export", "--type=user");
      assert.match(user.stdout.trim(), /^ssh-ed25519 \S+ clustername=e2e\.example&type=user$/);
    });

    await t.step("a second process on the same data dir is refused", async () => {
      const second = await runCli(["start", "--config", config]);
      assert.equal(second.code, 1);
      assert.ok(isOneLineError(second.stderr), second.stderr);
      assert.match(second.stderr, /another teleport process \(pid \d+\) holds it/);
    });

    await t.step("SIGTERM stops fast and removes the pid file", async () => {
      const t0 = performance.now();
      const code = await tp.stop("SIGTERM");
      const ms = performance.now() - t0;
      assert.equal(code, 0, tp.logs());
      assert.ok(ms < 5000, `stopped in ${ms} ms`);
      await assert.rejects(Deno.stat(`${dir.path}/teleport.pid`), Deno.errors.NotFound);
    });

    await t.step("a restart reuses the CAs", async () => {
      const before = (await Deno.readTextFile(`${dir.path}/data/host_uuid`)).trim();
      await using again = await startTeleport(["--config", config]);
      const pinBefore = /CA pin:\s+(\S+)/.exec(tp.banner)?.[1];
      assert.equal(/CA pin:\s+(\S+)/.exec(again.banner)?.[1], pinBefore);
      assert.equal((await Deno.readTextFile(`${dir.path}/data/host_uuid`)).trim(), before);
      assert.equal(await again.stop("SIGINT"), 0);
    });
  },
});
