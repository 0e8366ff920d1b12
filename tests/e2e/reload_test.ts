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
import { REPO, writeClusterConfig } from "./_helpers.ts";
import { type Host, note, type Proc, Topology } from "./_netns.ts";
import type { LoadOptions, LoadResult } from "./_reload_load.ts";

const LOAD = `${REPO}tests/e2e/_reload_load.ts`;
const NODE = "reloadnode";
const CLUSTER = "reload.test";

async function pkill(args: string[]): Promise<{ code: number; err: string }> {
  const r = await new Deno.Command("pkill", { args, stdout: "null", stderr: "piped" }).output();
  return { code: r.code, err: new TextDecoder().decode(r.stderr) };
}

async function readPid(path: string): Promise<number> {
  return Number((await Deno.readTextFile(path)).trim());
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `cond` holds, checked after each new output of `proc` (and every 200 ms). */
async function until(what: string, proc: Proc, cond: () => boolean, timeoutMs = 60_000) {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`Timed out waiting for ${what}:\n${proc.report(60)}`);
    }
    await proc.waitForOutput(/\n/, 200).catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Sends HUP through the pid file; resolves with the new pid once the successor took over. */
async function reload(tp: Proc, pidFile: string, takeovers: number): Promise<number> {
  const old = await readPid(pidFile);
  const r = await pkill(["-HUP", "-L", "-F", pidFile]);
  assert.equal(r.code, 0, `pkill -HUP -L -F: ${r.err}`);
  await until(
    `takeover ${takeovers}`,
    tp,
    () => tp.matches(/Took over from the old process/).length >= takeovers,
  );
  const pid = await readPid(pidFile);
  assert.notEqual(pid, old, "the pid file names the new process");
  assert.ok(alive(pid));
  return pid;
}

async function setUp(srv: Host, dir: string) {
  const cfg = await writeClusterConfig(dir, { nodeName: NODE, clusterName: CLUSTER });
  const pidFile = `${dir}/teleport.pid`;
  const tp = srv.teleport(["start", "-c", cfg, `--pid-file=${pidFile}`]);
  await tp.waitForOutput(/Stop with/, 90_000);
  const tctl = async (...args: string[]) => {
    const r = await srv.cli(["tctl", "-c", cfg, ...args]);
    assert.equal(r.code, 0, `tctl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await tctl("users", "add", "loader", "--roles=access", "--logins=root");
  await tctl("auth", "sign", "--user=loader", `--out=${dir}/loader`, "--ttl=2h");
  await Deno.writeTextFile(`${dir}/known_hosts`, await tctl("auth", "export", "--type=host"));
  const web = /web_listen_addr: (\S+)/.exec(await Deno.readTextFile(cfg))![1]!;
  return { cfg, pidFile, tp, web };
}

Deno.test({
  name: "teleport HUP under load: new connections, sessions and a bulk upload all survive",
  ignore: skipGroup("reload"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using topo = await Topology.create({ label: "reload" });
    const lan = await topo.addLan("lan", "10.91.0.0/24");
    const srv = await topo.addHost("srv", { lans: [{ lan, ip: "10.91.0.2" }] });
    const { cfg, pidFile, tp, web } = await setUp(srv, topo.dir);
    const first = await readPid(pidFile);

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

    await topo.step(t, "three HUPs in a row drop nothing", async () => {
      const options: LoadOptions = {
        jump: `root@${web}`,
        target: `root@${NODE}`,
        key: `${topo.dir}/loader`,
        knownHosts: `${topo.dir}/known_hosts`,
        alias: `${NODE}.${CLUSTER}`,
        // bench/reload.ts runs the heavier load (20/s) and reports the numbers; the test keeps
        // to what a loaded CI machine sustains without client time-outs.
        rate: 10,
        sessions: 10,
        pingMs: 300,
        bulkMiB: 16,
        bulkSeconds: 8,
      };
      const load = srv.spawn(
        Deno.execPath(),
        ["run", "-A", "--cached-only", LOAD, JSON.stringify(options)],
        { stdin: "piped", name: "load" },
      );
      await load.waitForOutput(/sessions-ready/, 90_000);
      const pids = [first];
      for (let k = 1; k <= 3; k++) pids.push(await reload(tp, pidFile, k));
      await load.write("finish\n");
      const m = await load.waitForOutput(/RESULT (\{.*\})/, 120_000);
      const result = JSON.parse(m[1]!) as LoadResult;
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
      // The backend lock moved to the survivor.
      const lock = (await Deno.readTextFile(`${topo.dir}/data/backend/kv.db.lock`)).trim();
      assert.equal(Number(lock), last, "the survivor owns the backend");
      // TERM through the pid file stops it; the pid file goes with it.
      assert.equal((await pkill(["-TERM", "-L", "-F", pidFile])).code, 0);
      await until("the last process to exit", tp, () => !alive(last));
      await assert.rejects(Deno.stat(pidFile), Deno.errors.NotFound);
    });
  },
});
