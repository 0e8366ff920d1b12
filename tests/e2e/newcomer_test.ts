/**
 * The newcomer path: every command `teleport start` prints as a next step runs as printed, in
 * the order a new user follows them, pasted into bash in the directory the banner names, on a
 * PATH without `deno` (a machine set up with the README has only npx) and with a fresh HOME:
 * `tctl status`, `tctl tokens add`, `tctl users add` (then the invite page's part through the
 * web API, as a browser does it), `tsh login`, `tsh ls`, `tsh ssh`, `tsh config`, and the stock
 * `ssh` with the config it wrote.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { ensureOsUser, freePort, run, startTeleport, tempDir } from "./_helpers.ts";
import { enrollInvite, TEST_PASSWORD } from "./_proxy.ts";

const LOGIN = "td_e2e_newcomer";
const NODE = "newcomer-node";
const CLUSTER = "newcomer.example";

/** The PATH without any directory that holds a `deno` (npx adds its own for its children). */
function pathWithoutDeno(): string {
  const hasDeno = (dir: string) => {
    try {
      return Deno.statSync(`${dir}/deno`).isFile;
    } catch {
      return false;
    }
  };
  return (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":")
    .filter((d) => d !== "" && !hasDeno(d)).join(":");
}

/** Deno's cache as this test process uses it (so the pasted commands need no downloads). */
function denoDir(): string {
  const home = Deno.env.get("HOME") ?? "/root";
  return Deno.env.get("DENO_DIR") ??
    `${Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`}/deno`;
}

/** The commands a banner block lists: its lines that start with `prefix` or `mkdir`. */
function commandsOf(block: string, prefix: string): string[] {
  return block.split("\n")
    .map((l) => l.replace(/^\s+(?:\d\.\s+)?/, ""))
    .filter((l) => l.startsWith(prefix) || l.startsWith("mkdir "));
}

Deno.test({
  name: "teleport start prints next steps that run as printed without deno on the PATH",
  ignore: skipGroup("newcomer"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await ensureOsUser(LOGIN);
    await using dir = await tempDir("tp-e2e-newcomer-");
    const home = `${dir.path}/home`;
    await Deno.mkdir(home);
    const config = `${dir.path}/teleport.yaml`;
    await Deno.writeTextFile(
      config,
      `version: v3
teleport:
  nodename: ${NODE}
  data_dir: ${dir.path}/data
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
    await using tp = await startTeleport(["-c", config], 60_000, { USER: LOGIN });
    const banner = tp.banner;

    const where = /^Next steps, from another terminal in (.+):$/m.exec(banner);
    assert.ok(where, banner);
    const first = /^Next steps.*\n\s+(.+) tctl /m.exec(banner);
    assert.ok(first, banner);
    const prefix = first[1]!;
    assert.match(prefix, /^npx -y deno@\d+\.\d+\.\d+ run -A main\.ts$/, banner);
    const [nextBlock, userBlock] = banner.split(/^Create the first user and log in:$/m);
    assert.ok(userBlock !== undefined, banner);
    const next = commandsOf(nextBlock!.slice(nextBlock!.indexOf("Next steps")), prefix);
    const steps = commandsOf(userBlock.slice(0, userBlock.indexOf("Stop with")), prefix);
    assert.equal(next.length, 2, next.join("\n"));
    assert.equal(steps.length, 5, steps.join("\n"));

    const env = {
      PATH: pathWithoutDeno(),
      HOME: home,
      USER: LOGIN,
      DENO_DIR: denoDir(),
      npm_config_cache: `${Deno.env.get("HOME") ?? "/root"}/.npm`,
      NO_COLOR: "1",
    };
    const noDeno = await run("bash", ["-c", "command -v deno"], { env });
    assert.notEqual(noDeno.code, 0, `deno is on the PATH: ${noDeno.out}`);
    /** Pastes `command` into bash where the banner says. */
    const paste = async (command: string, stdin?: string) => {
      const r = await run("bash", ["-c", `cd "${where[1]}" && ${command}`], {
        env,
        ...(stdin === undefined ? {} : { stdin }),
      });
      assert.equal(r.code, 0, `${command}\n${r.out}\n${r.err}`);
      return r.out;
    };

    // Next steps.
    assert.match(next[0]!, / tctl .* status$/);
    assert.match(await paste(next[0]!), new RegExp(CLUSTER.replace(".", "\\.")));
    assert.match(next[1]!, / tctl .* tokens add --type=node /);
    const join = await paste(next[1]!);
    assert.ok(join.includes(`> ${prefix} start \\`), join);

    // 1. users add, 2. the invite page, 3. tsh login.
    assert.match(steps[0]!, / tctl .* users add alice .*--logins=td_e2e_newcomer$/);
    const invite = /https:\/\/\S+\/web\/invite\/([0-9a-f]+)/.exec(await paste(steps[0]!));
    assert.ok(invite);
    const totp = await enrollInvite({ webPort: tp.webPort, token: invite[1]!, user: "alice" });
    assert.match(steps[1]!, / tsh login --proxy=\S+ --user=alice --insecure$/);
    // The enrollment used the current TOTP step: log in with the next one.
    const code = totp.generate({ timestamp: Date.now() + 30_000 });
    await paste(steps[1]!, `${TEST_PASSWORD}\n${code}\n`);

    // 4. tsh ls, tsh ssh, tsh config and the stock ssh.
    assert.match(steps[2]!, / tsh ls$/);
    assert.match(await paste(steps[2]!), new RegExp(NODE));
    assert.match(steps[3]!, new RegExp(` tsh ssh ${LOGIN}@${NODE}$`));
    const shell = await paste(steps[3]!, "echo from-the-shell-$((6 * 7)) $(id -un)\nexit\n");
    assert.match(shell, new RegExp(`from-the-shell-42 ${LOGIN}`));
    const then = new RegExp(
      `# then plain: ssh (${LOGIN}@${NODE}\\.${CLUSTER.replace(".", "\\.")})$`,
    )
      .exec(steps[4]!);
    assert.ok(then, steps[4]);
    await paste(steps[4]!);
    // OpenSSH reads the config of the passwd entry's home, not $HOME: name the file.
    const ssh = await paste(
      `ssh -F ~/.ssh/config -o BatchMode=yes ${then[1]} echo through-openssh`,
    );
    assert.match(ssh, /through-openssh/);
  },
});
