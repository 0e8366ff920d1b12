/**
 * `tctl auth sign` output authenticates the stock `ssh` client to a stock
 * OpenSSH `sshd` (high port, started here) that trusts our
 * `tctl auth export --type=user` line as TrustedUserCAKeys. Also: a cert whose
 * principals lack the login is refused, and ssh-keygen -L reads the cert.
 */
import assert from "node:assert/strict";
import { findTool, missing, runCli, startTeleport, tempDir, writeConfig } from "./_helpers.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout), err: d.decode(o.stderr) };
}

/** Starts sshd in the foreground and resolves once it listens. */
async function startSshd(dir: string, caFile: string) {
  const port = freePort();
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/hostkey`]);
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    `Port ${port}
ListenAddress 127.0.0.1
HostKey ${dir}/hostkey
TrustedUserCAKeys ${caFile}
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile ${dir}/sshd.pid
LogLevel VERBOSE
`,
  );
  if (Deno.uid() === 0) await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const child = new Deno.Command(findTool("sshd")!, {
    args: ["-D", "-e", "-f", `${dir}/sshd_config`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  while (!/Server listening on 127\.0\.0\.1 port/.test(log)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`sshd exited:\n${log}`);
    log += value;
  }
  const drained = (async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) log += r.value;
  })();
  return {
    port,
    log: () => log,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await drained;
    },
  };
}

Deno.test({
  name: "tctl auth sign certificates log in to OpenSSH sshd",
  ignore: missing("ssh", "sshd", "ssh-keygen"),
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
