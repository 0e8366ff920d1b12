/**
 * Terminal resizes as a user makes them, in a real terminal (tmux): the stock `ssh -tt`
 * straight to the node and through the proxy (ProxyCommand from `tsh config`), and `tsh ssh -t`
 * through the proxy, each run in a tmux pane of 80×24 that is then resized to 100×30. Inside,
 * `trap … WINCH` fires and `stty size` prints the new size, as with a stock sshd. The recording
 * of the tsh session carries the resize, and `tsh play` replays it as an xterm resize.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  ensureOsUser,
  eventually,
  freePort,
  REPO,
  run,
  runCli,
  startTeleport,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const ALICE = "td_e2e_ralice";
const CLUSTER = "e2e-resize.example";
const NODE = "e2e-rnode";

/** A private tmux server (own socket and config) whose panes have no status line. */
async function startTmux(dir: string) {
  const conf = `${dir}/tmux.conf`;
  await Deno.writeTextFile(
    conf,
    "set -g status off\nset -g default-terminal screen\nset -g history-limit 5000\n",
  );
  const sock = `${dir}/tmux.sock`;
  const tmux = async (...args: string[]) => {
    const r = await run("tmux", ["-f", conf, "-S", sock, ...args]);
    if (r.code !== 0) throw new Error(`tmux ${args.join(" ")} failed: ${r.err}`);
    return r.out;
  };
  return {
    /** Runs `command` (a shell command line) in a new detached 80×24 session `name`. */
    start: (name: string, command: string) =>
      tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command),
    /** Types `keys` and Enter into the pane. */
    type: (name: string, keys: string) => tmux("send-keys", "-t", name, "-l", keys),
    enter: (name: string) => tmux("send-keys", "-t", name, "Enter"),
    resize: (name: string, cols: number, rows: number) =>
      tmux("resize-window", "-t", name, "-x", String(cols), "-y", String(rows)),
    /** The pane's text, scrollback included. */
    screen: (name: string) => tmux("capture-pane", "-p", "-J", "-S", "-", "-t", name),
    async [Symbol.asyncDispose]() {
      await run("tmux", ["-S", sock, "kill-server"]);
    },
  };
}

type Tmux = Awaited<ReturnType<typeof startTmux>>;

/** Waits until the pane shows a match of `re`; returns the match. */
async function showing(
  tmux: Tmux,
  name: string,
  re: RegExp,
  what: string,
): Promise<RegExpExecArray> {
  let last = "";
  try {
    return await eventually(what, async () => {
      last = await tmux.screen(name);
      return re.exec(last) ?? undefined;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; the pane shows:\n${last}`);
  }
}

/**
 * In pane `name` (an interactive remote shell): sets a WINCH trap, resizes the window to
 * 100×30, and checks that the trap fired and `stty size` prints the new size. Returns the
 * session id the node gave the shell.
 */
async function checkResize(tmux: Tmux, name: string): Promise<string> {
  // `$((6*7))` and the quotes make the echoed output differ from the typed command line.
  await tmux.type(
    name,
    `trap 'echo "WINCH-""FIRED $(stty size)"' WINCH; echo "READY-$((6*7)) $SSH_SESSION_ID"`,
  );
  await tmux.enter(name);
  const ready = await showing(tmux, name, /READY-42 ([0-9a-f-]{36})/, "the remote shell");
  const before = await tmux.screen(name);
  await tmux.type(name, "stty size");
  await tmux.enter(name);
  await showing(tmux, name, /^24 80\s*$/m, "stty size 24 80 before the resize");
  assert.doesNotMatch(before, /WINCH-FIRED/);

  await tmux.resize(name, 100, 30);
  await showing(tmux, name, /WINCH-FIRED 30 100/, "the WINCH trap with the new size");
  await tmux.type(name, "stty size");
  await tmux.enter(name);
  await showing(tmux, name, /^30 100\s*$/m, "stty size 30 100 after the resize");
  return ready[1]!;
}

Deno.test({
  name: "resize: ssh -tt (direct, via proxy) and tsh ssh -t in tmux see the new size; play",
  ignore: skipGroup("resize-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-resize-");
    const d = dir.path;
    const nodePort = freePort();
    const config = await writeClusterConfig(d, {
      nodeName: NODE,
      clusterName: CLUSTER,
      nodePort,
    });
    await using tp = await startTeleport(["-c", config]);
    await ensureOsUser(ALICE);
    const home = `${d}/tsh`;
    const totp = await inviteAndEnroll({
      config,
      webPort: tp.webPort,
      user: "alice",
      roles: "access,editor", // editor: tsh play of the session
      logins: ALICE,
    });
    const login = await tshLogin({ home, webPort: tp.webPort, user: "alice", totp });
    assert.equal(login.code, 0, login.stderr + login.stdout);
    const cfg = await runCli(["tsh", "config"], { env: { TELEPORT_HOME: home } });
    assert.equal(cfg.code, 0, cfg.stderr);
    const sshConfig = `${d}/ssh_config`;
    await Deno.writeTextFile(sshConfig, cfg.stdout);
    const identity = /IdentityFile\s+"?([^"\n]+)"?/.exec(cfg.stdout)![1]!;
    const certificate = /CertificateFile\s+"?([^"\n]+)"?/.exec(cfg.stdout)![1]!;
    const knownHosts = /UserKnownHostsFile\s+"?([^"\n]+)"?/.exec(cfg.stdout)![1]!;
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const line = (argv: string[]) => argv.map(quote).join(" ");

    await using tmux = await startTmux(d);

    await t.step("ssh -tt straight to the node: WINCH fires, stty size is 30 100", async () => {
      await tmux.start(
        "direct",
        line([
          "ssh",
          "-F",
          "/dev/null",
          "-tt",
          "-i",
          identity,
          "-o",
          `CertificateFile=${certificate}`,
          "-o",
          `UserKnownHostsFile=${knownHosts}`,
          "-o",
          `HostKeyAlias=${NODE}.${CLUSTER}`,
          "-o",
          "BatchMode=yes",
          "-o",
          "StrictHostKeyChecking=yes",
          "-p",
          String(nodePort),
          `${ALICE}@127.0.0.1`,
        ]),
      );
      await checkResize(tmux, "direct");
    });

    await t.step("ssh -tt through the proxy (tsh config): WINCH fires, size 30 100", async () => {
      await tmux.start(
        "viaproxy",
        line([
          "env",
          `TELEPORT_HOME=${home}`,
          "ssh",
          "-F",
          sshConfig,
          "-tt",
          "-o",
          "BatchMode=yes",
          `${ALICE}@${NODE}.${CLUSTER}`,
        ]),
      );
      await checkResize(tmux, "viaproxy");
    });

    let sid = "";
    await t.step("tsh ssh -t through the proxy forwards its SIGWINCH", async () => {
      await tmux.start(
        "tsh",
        line([
          "env",
          `TELEPORT_HOME=${home}`,
          "NO_COLOR=1",
          Deno.execPath(),
          "run",
          "-A",
          "--quiet",
          `${REPO}main.ts`,
          "tsh",
          "ssh",
          "-t",
          `${ALICE}@${NODE}`,
        ]) + "; echo TSH-EXITED-$?; sleep 600",
      );
      sid = await checkResize(tmux, "tsh");
      await tmux.type("tsh", "exit");
      await tmux.enter("tsh");
      await showing(tmux, "tsh", /TSH-EXITED-0/, "tsh ssh to exit");
    });

    await t.step("the recording carries the resize and tsh play replays it", async () => {
      const tsh = (...args: string[]) => runCli(["tsh", ...args], { env: { TELEPORT_HOME: home } });
      const json = await eventually("the uploaded recording", async () => {
        const r = await tsh("play", "--format=json", sid);
        if (r.code !== 0) throw new Error(`tsh play: ${r.stderr}`);
        return r.stdout;
      });
      const records = json.trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual([records[0].cols, records[0].rows], [80, 24]);
      const resizes = records.filter((r) => r.type === "resize").map((r) => [r.cols, r.rows]);
      assert.deepEqual(resizes, [[100, 30]]);

      const play = await tsh("play", "--speed=1000", sid);
      assert.equal(play.code, 0, play.stderr);
      const start = play.stdout.indexOf("\x1b[8;24;80t");
      const resized = play.stdout.indexOf("\x1b[8;30;100t");
      assert.ok(start === 0, "playback starts at the recorded size");
      assert.ok(resized > play.stdout.indexOf("READY-42"), "the resize comes after READY");
      assert.ok(resized < play.stdout.indexOf("WINCH-FIRED 30 100"), "and before the trap");
    });
  },
});
