/**
 * tsh parity with OpenSSH and Teleport's tsh, end to end: one `teleport start
 * --roles=auth,proxy,node` plus a tunnel node (`--proxy-server`), both labelled env=prod.
 * `tsh scp` both ways, recursive, with modes, to the direct and the tunnel node, and its
 * refusals (missing files, a role with `ssh_file_copy: false`); `tsh ssh LOGIN@env=prod CMD`
 * across both nodes with per-node prefixes and the exit code.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  ensureOsUser,
  eventually,
  runCli,
  startTeleport,
  startTunnelNode,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const ALICE = "td_e2e_tpalice";
const CLUSTER = "e2e-parity.example";
const NODE = "e2e-parity-node";
const TUNNEL_NODE = "e2e-parity-tunnel";

/** Writes a small tree: top.txt (0640), bin/run.sh (0755), bin/deep/d.bin (0600, binary). */
async function makeTree(root: string): Promise<void> {
  await Deno.mkdir(`${root}/bin/deep`, { recursive: true });
  await Deno.chmod(`${root}/bin`, 0o750);
  await Deno.writeTextFile(`${root}/top.txt`, "top line\nsecond line\n");
  await Deno.chmod(`${root}/top.txt`, 0o640);
  await Deno.writeTextFile(`${root}/bin/run.sh`, "#!/bin/sh\necho run\n");
  await Deno.chmod(`${root}/bin/run.sh`, 0o755);
  const bytes = new Uint8Array(200_000).map((_, i) => (i * 7919) % 256);
  await Deno.writeFile(`${root}/bin/deep/d.bin`, bytes);
  await Deno.chmod(`${root}/bin/deep/d.bin`, 0o600);
}

/** Asserts that `copy` holds the tree of makeTree with the same bytes and modes. */
async function assertSameTree(orig: string, copy: string): Promise<void> {
  for (
    const [rel, mode] of [
      ["top.txt", 0o640],
      ["bin", 0o750],
      ["bin/run.sh", 0o755],
      ["bin/deep/d.bin", 0o600],
    ] as const
  ) {
    const info = await Deno.stat(`${copy}/${rel}`);
    assert.equal((info.mode ?? 0) & 0o777, mode, `mode of ${copy}/${rel}`);
    if (info.isFile) {
      assert.deepEqual(
        await Deno.readFile(`${copy}/${rel}`),
        await Deno.readFile(`${orig}/${rel}`),
      );
    }
  }
}

Deno.test({
  name: "tsh scp and label targets: both ways, recursive, through a tunnel node, refusals",
  ignore: skipGroup("tsh-parity-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-parity-");
    const config = await writeClusterConfig(dir.path, {
      nodeName: NODE,
      clusterName: CLUSTER,
      ssh: `  labels:
    env: prod
`,
    });
    await using tp = await startTeleport(["-c", config]);
    const uid = await ensureOsUser(ALICE);
    const home = (await Deno.readTextFile("/etc/passwd")).split("\n")
      .find((l) => l.startsWith(`${ALICE}:`))!.split(":")[5]!;
    const tctl = (...args: string[]) => runCli(["tctl", "-c", config, ...args]);
    const tsh = (args: string[], tshHome = "tsh") =>
      runCli(["tsh", ...args], { env: { TELEPORT_HOME: `${dir.path}/${tshHome}` } });

    // A second node, labelled env=prod too, joined through the proxy's reverse tunnel.
    await using _stopTunnel = await startTunnelNode({
      proxy: `127.0.0.1:${tp.webPort}`,
      config,
      dataDir: `${dir.path}/tunnel-data`,
      nodeName: TUNNEL_NODE,
      extra: ["--labels=env=prod"],
    });

    const totp = await inviteAndEnroll({
      config,
      webPort: tp.webPort,
      user: "alice",
      roles: "access",
      logins: ALICE,
    });
    const li = await tshLogin({
      home: `${dir.path}/tsh`,
      webPort: tp.webPort,
      user: "alice",
      totp,
    });
    assert.equal(li.code, 0, li.stderr);
    // The tunnel node's heartbeat may lag its banner a little.
    await eventually("both nodes listed", async () => {
      const ls = await tsh(["ls", "env=prod"]);
      return ls.stdout.includes(NODE) && ls.stdout.includes(TUNNEL_NODE) ? true : undefined;
    });

    const local = `${dir.path}/local`;
    await makeTree(`${local}/tree`);

    for (const node of [NODE, TUNNEL_NODE]) {
      await t.step(`tsh scp -r uploads and downloads a tree with modes (${node})`, async () => {
        const remoteDir = `${home}/up-${node}`;
        await Deno.remove(remoteDir, { recursive: true }).catch(() => {});
        const up = await tsh(["scp", "-r", `${local}/tree`, `${ALICE}@${node}:up-${node}`]);
        assert.equal(up.code, 0, up.stderr);
        await assertSameTree(`${local}/tree`, remoteDir);
        // The node wrote the files as the login, not as root.
        assert.equal((await Deno.stat(`${remoteDir}/bin/deep/d.bin`)).uid, uid);

        const back = `${dir.path}/back-${node}`;
        await Deno.mkdir(back);
        const down = await tsh(["scp", "-r", `${ALICE}@${node}:up-${node}`, back]);
        assert.equal(down.code, 0, down.stderr);
        await assertSameTree(`${local}/tree`, `${back}/up-${node}`);

        // One file to a new name, and several files into a directory.
        const one = await tsh(["scp", `${ALICE}@${node}:up-${node}/top.txt`, `${back}/renamed`]);
        assert.equal(one.code, 0, one.stderr);
        assert.equal(await Deno.readTextFile(`${back}/renamed`), "top line\nsecond line\n");
        const many = await tsh([
          "scp",
          `${local}/tree/top.txt`,
          `${local}/tree/bin/run.sh`,
          `${ALICE}@${node}:up-${node}/bin/deep`,
        ]);
        assert.equal(many.code, 0, many.stderr);
        assert.equal(
          await Deno.readTextFile(`${remoteDir}/bin/deep/run.sh`),
          "#!/bin/sh\necho run\n",
        );
      });
    }

    await t.step("tsh scp names missing files and directories without -r", async () => {
      const noRemote = await tsh(["scp", `${ALICE}@${NODE}:no-such-file`, `${dir.path}/x`]);
      assert.equal(noRemote.code, 1);
      assert.match(noRemote.stderr, /no-such-file: No such file or directory/);
      const noLocal = await tsh(["scp", `${dir.path}/no-such-file`, `${ALICE}@${NODE}:`]);
      assert.equal(noLocal.code, 1);
      assert.match(noLocal.stderr, /no-such-file.*no such file or directory/);
      const noR = await tsh(["scp", `${local}/tree`, `${ALICE}@${NODE}:`]);
      assert.equal(noR.code, 1);
      assert.match(noR.stderr, /is a directory; use -r/);
      const denied = await tsh(["scp", `${local}/tree/top.txt`, `${ALICE}@${NODE}:/root/x`]);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /Permission denied/);
      const both = await tsh(["scp", "a", "b"]);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /one side must be remote/);
    });

    await t.step("a role with ssh_file_copy: false refuses tsh scp", async () => {
      const file = `${dir.path}/nocopy.yaml`;
      await Deno.writeTextFile(
        file,
        `kind: role\nversion: v7\nmetadata:\n  name: nocopy\nspec:\n  options:\n` +
          `    ssh_file_copy: false\n  allow:\n    logins: [${ALICE}]\n` +
          `    node_labels: {"*": "*"}\n`,
      );
      const created = await tctl("create", "-f", file);
      assert.equal(created.code, 0, created.stderr);
      const bobTotp = await inviteAndEnroll({
        config,
        webPort: tp.webPort,
        user: "bob",
        roles: "nocopy",
        logins: ALICE,
      });
      const bl = await tshLogin({
        home: `${dir.path}/tsh-bob`,
        webPort: tp.webPort,
        user: "bob",
        totp: bobTotp,
      });
      assert.equal(bl.code, 0, bl.stderr);
      const r = await tsh(["scp", `${local}/tree/top.txt`, `${ALICE}@${NODE}:`], "tsh-bob");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /ssh_file_copy: false/);
      const d = await tsh(["scp", `${ALICE}@${NODE}:up-${NODE}/top.txt`, dir.path], "tsh-bob");
      assert.equal(d.code, 1);
      assert.match(d.stderr, /ssh_file_copy: false/);
    });

    await t.step("tsh ssh LOGIN@env=prod runs on every matching node, prefixed", async () => {
      const r = await tsh(["ssh", `${ALICE}@env=prod`, "echo hello; echo oops >&2; exit 3"]);
      assert.equal(r.code, 3, r.stderr);
      const lines = r.stdout.trim().split("\n").sort();
      assert.deepEqual(lines, [`[${NODE}] hello`, `[${TUNNEL_NODE}] hello`]);
      assert.match(r.stderr, new RegExp(`\\[${NODE}\\] oops`));
      assert.match(r.stderr, new RegExp(`\\[${TUNNEL_NODE}\\] oops`));

      const ok = await tsh(["ssh", `${ALICE}@env=prod`, "hostname >/dev/null"]);
      assert.equal(ok.code, 0, ok.stderr);
      const shell = await tsh(["ssh", `${ALICE}@env=prod`]);
      assert.equal(shell.code, 2);
      assert.match(shell.stderr, /2 nodes match env=prod: give a command/);
      const none = await tsh(["ssh", `${ALICE}@env=nowhere`, "true"]);
      assert.equal(none.code, 255);
      assert.match(none.stderr, /Cannot find a node with labels env=nowhere/);
    });
  },
});
