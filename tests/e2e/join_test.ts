/**
 * Session sharing end to end: one `teleport start --roles=auth,proxy,node` plus a tunnel node
 * (`--proxy-server`). The owner runs `tsh ssh -t` (a PTY, driven through pipes); `tsh sessions
 * ls` lists the session; `tsh join` finds its node through the session tracker and joins
 * through the proxy (direct and tunnel node): an observer sees the owner's output and cannot
 * type, a peer's input reaches the shell, the owner sees who joined and left; a user without a
 * join_sessions policy neither sees nor joins it, one with an observer policy may watch only;
 * when the owner exits, every party gets its exit status and the session leaves the list.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { type DrivenProcess, driveProcess } from "../../lib/testing/mod.ts";
import {
  ensureOsUser,
  eventually,
  REPO,
  runCli,
  startTeleport,
  startTunnelNode,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import { inviteAndEnroll, tshLogin } from "./_proxy.ts";

const LOGIN = "td_e2e_tpjoin";
const CLUSTER = "e2e-join.example";
const NODE = "e2e-join-node";
const TUNNEL_NODE = "e2e-join-tunnel";

/** A tsh process driven through pipes. */
function drive(args: string[], tshHome: string): DrivenProcess {
  return driveProcess(Deno.execPath(), ["run", "-A", `${REPO}main.ts`, "tsh", ...args], {
    env: { NO_COLOR: "1", TELEPORT_HOME: tshHome },
  });
}

Deno.test({
  name: "tsh sessions ls and tsh join: observers watch, peers type, policies decide others",
  ignore: skipGroup("join-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-join-");
    const config = await writeClusterConfig(dir.path, {
      nodeName: NODE,
      clusterName: CLUSTER,
    });
    await using tp = await startTeleport(["-c", config]);
    await ensureOsUser(LOGIN);
    const tctl = (...args: string[]) => runCli(["tctl", "-c", config, ...args]);
    const home = (user: string) => `${dir.path}/tsh-${user}`;
    const tsh = (user: string, ...args: string[]) =>
      runCli(["tsh", ...args], { env: { TELEPORT_HOME: home(user) } });

    // A second node, joined through the proxy's reverse tunnel.
    await using _stopTunnel = await startTunnelNode({
      proxy: `127.0.0.1:${tp.webPort}`,
      config,
      dataDir: `${dir.path}/tunnel-data`,
      nodeName: TUNNEL_NODE,
    });

    // wendy may watch (not type into) sessions of users holding "access".
    await Deno.writeTextFile(
      `${dir.path}/watch.yaml`,
      `kind: role
version: v7
metadata: {name: watch}
spec:
  allow:
    logins: [${LOGIN}]
    node_labels: {"*": "*"}
    join_sessions:
      - {name: oversight, roles: [access], kinds: [ssh], modes: [observer]}
`,
    );
    const created = await tctl("create", "-f", `${dir.path}/watch.yaml`);
    assert.equal(created.code, 0, created.stderr);
    for (const [user, roles] of [["alice", "access"], ["bob", "access"], ["wendy", "watch"]]) {
      const totp = await inviteAndEnroll({
        config,
        webPort: tp.webPort,
        user: user!,
        roles: roles!,
        logins: LOGIN,
      });
      const li = await tshLogin({ home: home(user!), webPort: tp.webPort, user: user!, totp });
      assert.equal(li.code, 0, li.stderr);
    }
    await eventually("both nodes listed", async () => {
      const ls = await tsh("alice", "ls");
      return ls.stdout.includes(NODE) && ls.stdout.includes(TUNNEL_NODE) ? true : undefined;
    });

    for (const node of [NODE, TUNNEL_NODE]) {
      await t.step(`owner, observer and peer share a session on ${node}`, async () => {
        // The owner: a shell on a PTY (tsh ssh -t), driven through a pipe.
        await using owner = drive(["ssh", "-t", `${LOGIN}@${node}`], home("alice"));
        await owner.write("echo SID=$TELEPORT_SESSION=\n");
        const sid = (await owner.waitFor(/SID=([0-9a-f-]{36})=/))[1]!;

        const ls = await tsh("alice", "sessions", "ls");
        assert.equal(ls.code, 0, ls.stderr);
        const row = ls.stdout.split("\n").find((l) => l.startsWith(sid));
        assert.ok(row, ls.stdout);
        assert.match(row, new RegExp(`^${sid}\\s+alice\\s+${node}\\s+${LOGIN}\\s+\\d{4}-`));
        // bob (no join_sessions) neither sees nor joins it; wendy sees it.
        const bobLs = await tsh("bob", "sessions", "ls");
        assert.equal(bobLs.code, 0, bobLs.stderr);
        assert.ok(!bobLs.stdout.includes(sid), bobLs.stdout);
        const bobJoin = await tsh("bob", "join", sid);
        assert.equal(bobJoin.code, 1);
        assert.match(bobJoin.stderr, new RegExp(`Cannot join session ${sid}: it is not running`));
        const wendyLs = await tsh("wendy", "sessions", "ls", "--format=json");
        assert.deepEqual(
          (JSON.parse(wendyLs.stdout) as Array<{ metadata: { name: string } }>)
            .map((s) => s.metadata.name).filter((n) => n === sid),
          [sid],
        );

        await using observer = drive(["join", sid], home("alice"));
        await observer.waitFor(/joined session .* as observer/);
        await owner.waitFor(/\[user alice joined the session as observer\]/);
        await owner.write("echo owner-says-$((6*7))\n");
        await observer.waitFor(/owner-says-42/);
        // An observer's keys never reach the shell.
        await observer.write("echo observer-typed-$((5*5))\n");

        await using peer = drive(["join", "--mode=peer", sid], home("alice"));
        await peer.waitFor(/joined session .* as peer/);
        await owner.waitFor(/\[user alice joined the session as peer\]/);
        const withPeer = await tsh("alice", "sessions", "ls");
        assert.match(withPeer.stdout, /alice \(observer\), alice \(peer\)/);
        await peer.write("echo peer-says-$((7*7))\n");
        await owner.waitFor(/peer-says-49/);
        await observer.waitFor(/peer-says-49/);
        assert.equal(await peer.finish(), 0, peer.output());
        await owner.waitFor(/\[user alice left the session\]/);

        // wendy's policy allows watching only.
        const wendyPeer = await tsh("wendy", "join", "--mode=peer", sid);
        assert.equal(wendyPeer.code, 1);
        assert.match(wendyPeer.stderr, /no role of yours allows joining it/);
        await using watcher = drive(["join", sid], home("wendy"));
        await watcher.waitFor(/joined session .* as observer/);
        await owner.waitFor(/\[user wendy joined the session as observer\]/);

        await owner.write("exit 3\n");
        assert.equal(await owner.finish(), 3, owner.output());
        // The parties' part ends with the session, with its exit status.
        assert.equal(await observer.finish(), 3, observer.output());
        assert.equal(await watcher.finish(), 3, watcher.output());
        assert.doesNotMatch(owner.output(), /observer-typed-25/);
        await eventually("the session leaves the list", async () => {
          const after = await tsh("alice", "sessions", "ls");
          return after.code === 0 && !after.stdout.includes(sid) ? true : undefined;
        });
      });
    }
  },
});
