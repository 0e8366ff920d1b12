/**
 * Graceful restart under load: a real `teleport start` (auth, proxy, node) inside its own
 * network namespace, reloaded the way systemd does (`pkill -HUP -L -F <pid file>`) three times
 * in a row while stock OpenSSH clients make new connections through the proxy, keep 10
 * interactive sessions busy and upload a paced bulk transfer (tests/e2e/_reload_load.ts).
 * Nothing may be refused, reset or dropped, and the upload must arrive intact (sha256); the
 * pid file follows the live process, every old process exits once its sessions ended, and a
 * HUP with a broken config leaves the running process serving.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { note, Topology } from "./_netns.ts";
import { addToken } from "./_topology_enroll.ts";
import {
  alive,
  CLUSTER,
  loadOptions,
  LOGIN,
  NODE,
  pkill,
  readPid,
  reload,
  runLoad,
  startReloadCluster,
  until,
} from "./_reload.ts";

Deno.test({
  name: "teleport HUP under load: new connections, sessions and a bulk upload all survive",
  ignore: skipGroup("reload"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "reload" });
    const lan = await topo.addLan("lan", "10.91.0.0/24");
    const srv = await topo.addHost("srv", { lans: [{ lan, ip: "10.91.0.2" }] });
    const { cfg, pidFile, tp, web } = await startReloadCluster(srv, topo.dir);
    const first = await readPid(pidFile);
    let lastPid = first;

    await topo.step(t, "a HUP with a broken config keeps the running process serving", async () => {
      const good = await Deno.readTextFile(cfg);
      await Deno.writeTextFile(cfg, good + "\nproxy_service: [not, a, mapping\n");
      const r = await pkill(["-HUP", "-L", "-F", pidFile]);
      assert.equal(r.code, 0, r.err);
      await tp.waitForOutput(/Cannot hand over to a new process: .*keeps serving/, 60_000);
      await Deno.writeTextFile(cfg, good);
      assert.equal(await readPid(pidFile), first, "the pid file still names the running process");
      const ping = await srv.run("curl", ["-sk", "--max-time", "10", `https://${web}/webapi/ping`]);
      assert.equal(ping.code, 0, ping.stderr);
      assert.match(ping.stdout, /"cluster_name"/);
    });

    await topo.step(
      t,
      "USR2 starts a second process beside; QUIT then stops the first",
      async () => {
        assert.equal((await pkill(["-USR2", "-L", "-F", pidFile])).code, 0);
        await tp.waitForOutput(/The new process is ready and serves beside this one/, 90_000);
        await tp.waitForOutput(/Took over beside the old process/);
        const second = await readPid(pidFile);
        assert.notEqual(second, first, "the pid file names the new process");
        assert.ok(alive(first) && alive(second), "both processes run");
        const ping = await srv.run("curl", [
          "-sk",
          "--max-time",
          "10",
          `https://${web}/webapi/ping`,
        ]);
        assert.equal(ping.code, 0, ping.stderr);
        Deno.kill(first, "SIGQUIT");
        await until("the first process to drain and exit", tp, () => !alive(first));
        assert.equal(await readPid(pidFile), second, "the pid file still names the second one");
        lastPid = second;
      },
    );

    await topo.step(t, "three HUPs in a row drop nothing", async () => {
      // bench/reload.ts runs the heavier load (20/s) and reports the numbers; the test keeps
      // to what a loaded CI machine sustains without client time-outs.
      const options = loadOptions(topo.dir, web, { rate: 10, bulkMiB: 16, bulkSeconds: 8 });
      const pids = [lastPid];
      const result = await runLoad(srv, options, async () => {
        for (let k = 1; k <= 3; k++) pids.push(await reload(tp, pidFile));
      });
      note(`reload under load: ${JSON.stringify(result)}`);
      assert.deepEqual(result.connections.failed, [], "no connection refused, reset or failed");
      assert.ok(result.connections.attempted >= 10, `${result.connections.attempted} attempts`);
      assert.equal(result.connections.ok, result.connections.attempted);
      assert.deepEqual(result.sessions.failed, [], "no session dropped");
      assert.equal(result.sessions.ok, options.sessions);
      assert.ok(result.bulk.ok, result.bulk.detail);
      // Every old process drains and exits once its sessions ended; the last one serves on.
      const last = pids.at(-1)!;
      await until("the old processes to exit", tp, () => pids.slice(0, -1).every((p) => !alive(p)));
      assert.ok(alive(last));
      assert.equal(await readPid(pidFile), last);
      const check = await pkill(["-0", "-L", "-F", pidFile]);
      assert.equal(check.code, 0, `pkill -0 -L -F: ${check.err}`);
      const ping = await srv.run("curl", ["-sk", "--max-time", "10", `https://${web}/webapi/ping`]);
      assert.equal(ping.code, 0, ping.stderr);
      // The backend lock moves to the survivor (it tries once a second).
      const lockFile = `${topo.dir}/data/backend/kv.db.lock`;
      await until(
        "the survivor to own the backend",
        tp,
        () => Deno.readTextFileSync(lockFile).trim() === String(last),
      );
      lastPid = last;
    });

    await topo.step(t, "a tunnel node and the proxy it tunnels to reload under load", async () => {
      const { token, pins } = await addToken(srv, cfg, "node");
      const tnPid = `${topo.dir}/tunnel.pid`;
      const tn = srv.teleport([
        "start",
        "--roles=node",
        `--proxy-server=${web}`,
        `--token=${token}`,
        ...pins.map((p) => `--ca-pin=${p}`),
        "--insecure",
        `--data-dir=${topo.dir}/tunnel`,
        "--nodename=tunnelnode",
        `--pid-file=${tnPid}`,
      ], { name: "tunnel-node" });
      await tn.waitForOutput(/Stop with/, 90_000);
      const options = loadOptions(topo.dir, web, {
        target: `${LOGIN}@tunnelnode`,
        alias: `tunnelnode.${CLUSTER}`,
        jumpAlias: `${NODE}.${CLUSTER}`,
        rate: 5,
        sessions: 4,
        bulkMiB: 8,
        bulkSeconds: 6,
      });
      const result = await runLoad(srv, options, async () => {
        // The proxy's process first (its tunnel agents are told to reconnect), then the node's.
        lastPid = await reload(tp, pidFile);
        await reload(tn, tnPid);
      });
      note(`tunnel node reload under load: ${JSON.stringify(result)}`);
      assert.deepEqual(result.connections.failed, [], "no connection to the tunnel node failed");
      assert.equal(result.connections.ok, result.connections.attempted);
      assert.deepEqual(result.sessions.failed, [], "no tunnel session dropped");
      assert.ok(result.bulk.ok, result.bulk.detail);
      assert.equal((await pkill(["-TERM", "-L", "-F", tnPid])).code, 0);
    });

    await topo.step(t, "TERM through the pid file stops the last process", async () => {
      const last = lastPid;
      // TERM through the pid file stops it; the pid file goes with it.
      assert.equal((await pkill(["-TERM", "-L", "-F", pidFile])).code, 0);
      await until("the last process to exit", tp, () => !alive(last));
      await assert.rejects(Deno.stat(pidFile), Deno.errors.NotFound);
    });
  },
});
