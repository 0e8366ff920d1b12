/**
 * `tctl auth sign` output authenticates the stock `ssh` client to a stock
 * OpenSSH `sshd` (high port, started here) that trusts our
 * `tctl auth export --type=user` line as TrustedUserCAKeys. Also: a cert whose
 * principals lack the login is refused, and ssh-keygen -L reads the cert.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { startSshd } from "./_sshd.ts";
import { run, runCli, startTeleport, tempDir, writeConfig } from "./_helpers.ts";

Deno.test({
  name: "tctl auth sign certificates log in to OpenSSH sshd",
  ignore: skipGroup("openssh-sshd"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using dir = await tempDir();
    const config = await writeConfig(dir.path);
    await using tp = await startTeleport(["--config", config]);
    const tctl = (...args: string[]) =>
      runCli(["tctl", "-c", config, `--auth-server=127.0.0.1:${tp.authPort}`, ...args]);
    const osUser = (await run("id", ["-un"])).out.trim();

    const exported = await tctl("auth", "export", "--type=user");
    assert.equal(exported.code, 0, exported.stderr);
    await Deno.writeTextFile(`${dir.path}/user_ca.pub`, exported.stdout);
    await using sshd = await startSshd(dir.path, `${dir.path}/user_ca.pub`);

    assert.equal(
      (await tctl("users", "add", "alice", "--roles=access", `--logins=${osUser}`)).code,
      0,
    );
    assert.equal(
      (await tctl("users", "add", "bob", "--roles=access", "--logins=nobody-here")).code,
      0,
    );
    const signed = await tctl(
      "auth",
      "sign",
      "--user=alice",
      "--format=openssh",
      `--out=${dir.path}/alice`,
      "--ttl=10m",
    );
    assert.equal(signed.code, 0, signed.stderr);
    assert.equal((await Deno.stat(`${dir.path}/alice`)).mode! & 0o777, 0o600);
    assert.equal((await tctl("auth", "sign", "--user=bob", `--out=${dir.path}/bob`)).code, 0);

    const listing = await run("ssh-keygen", ["-L", "-f", `${dir.path}/alice-cert.pub`]);
    assert.match(listing.out, /Type: ssh-ed25519-cert-v01@openssh.com user certificate/);
    assert.match(listing.out, /Key ID: "alice"/);
    assert.match(listing.out, new RegExp(`Principals: \\n\\s+${osUser}\\n`));
    assert.match(listing.out, /permit-pty/);

    const ssh = (key: string) =>
      run("ssh", [
        "-F",
        "/dev/null",
        "-i",
        key,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-p",
        String(sshd.port),
        `${osUser}@127.0.0.1`,
        "echo signed-login-ok:$(id -un)",
      ]);
    const ok = await ssh(`${dir.path}/alice`);
    assert.equal(ok.code, 0, `${ok.err}\n--- sshd log:\n${sshd.log()}`);
    assert.equal(ok.out.trim(), `signed-login-ok:${osUser}`);

    const refused = await ssh(`${dir.path}/bob`);
    assert.notEqual(refused.code, 0, "a cert without the login as principal must be refused");
    assert.match(refused.err, /Permission denied/);
  },
});
