/**
 * A stock OpenSSH sshd on a free loopback port, trusting a user CA file, run in
 * the foreground (-D -e) and ready once it logs "Server listening".
 */
import { findTool, freePort, run } from "./_helpers.ts";

/** Starts sshd in the foreground and resolves once it listens. */
export async function startSshd(dir: string, caFile: string, extraConfig = "") {
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
${extraConfig}`,
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
