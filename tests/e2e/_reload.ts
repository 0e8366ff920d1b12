/**
 * Shared by tests/e2e/reload_test.ts and bench/reload.ts: a `teleport start` (auth, proxy, node)
 * in a network namespace host with a pid file and an OpenSSH identity for the load
 * (_reload_load.ts), and HUPs sent the way systemd does (`pkill -HUP -L -F`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ensureOsUser, REPO, writeClusterConfig } from "./_helpers.ts";
import type { Host, Proc } from "./_netns.ts";
import type { LoadOptions, LoadResult } from "./_reload_load.ts";

const LOAD = `${REPO}tests/e2e/_reload_load.ts`;
export const NODE = "reloadnode";
export const CLUSTER = "reload.test";
/**
 * The OS user the load logs in as: a fresh account, so that no shell start-up file of the
 * machine's own users (root's) slows sessions down, on teleport and sshd alike.
 */
export const LOGIN = "td_reload";

export async function pkill(args: string[]): Promise<{ code: number; err: string }> {
  const r = await new Deno.Command("pkill", { args, stdout: "null", stderr: "piped" }).output();
  return { code: r.code, err: new TextDecoder().decode(r.stderr) };
}

export async function readPid(path: string): Promise<number> {
  return Number((await Deno.readTextFile(path)).trim());
}

export function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `cond` holds, checked after each new output of `proc` (and every 200 ms). */
export async function until(what: string, proc: Proc, cond: () => boolean, timeoutMs = 60_000) {
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
export async function reload(tp: Proc, pidFile: string): Promise<number> {
  const old = await readPid(pidFile);
  const before = tp.matches(/Took over beside the old process/).length;
  const r = await pkill(["-HUP", "-L", "-F", pidFile]);
  assert.equal(r.code, 0, `pkill -HUP -L -F: ${r.err}`);
  await until(
    "the new process to take over",
    tp,
    () => tp.matches(/Took over beside the old process/).length > before,
  );
  const pid = await readPid(pidFile);
  assert.notEqual(pid, old, "the pid file names the new process");
  assert.ok(alive(pid));
  return pid;
}

export async function startReloadCluster(srv: Host, dir: string, o: { teleport?: string } = {}) {
  const cfg = await writeClusterConfig(dir, { nodeName: NODE, clusterName: CLUSTER, ...o });
  const pidFile = `${dir}/teleport.pid`;
  const tp = srv.teleport(["start", "-c", cfg, `--pid-file=${pidFile}`]);
  await tp.waitForOutput(/Stop with/, 90_000);
  const tctl = async (...args: string[]) => {
    const r = await srv.cli(["tctl", "-c", cfg, ...args]);
    assert.equal(r.code, 0, `tctl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await ensureOsUser(LOGIN);
  await tctl("users", "add", "loader", "--roles=access", `--logins=${LOGIN}`);
  await tctl("auth", "sign", "--user=loader", `--out=${dir}/loader`, "--ttl=2h");
  await Deno.writeTextFile(`${dir}/known_hosts`, await tctl("auth", "export", "--type=host"));
  const web = /web_listen_addr: (\S+)/.exec(await Deno.readTextFile(cfg))![1]!;
  return { cfg, pidFile, tp, web };
}

/**
 * Starts the load script on `host` with `options`; `during` runs once every session answered
 * (send the HUPs there); then the load finishes and its result comes back.
 */
export async function runLoad(
  host: Host,
  options: LoadOptions,
  during: () => Promise<void>,
): Promise<LoadResult> {
  const load = host.spawn(
    Deno.execPath(),
    ["run", "-A", "--cached-only", LOAD, JSON.stringify(options)],
    { stdin: "piped", name: "load" },
  );
  await load.waitForOutput(/sessions-ready/, 90_000);
  await during();
  await load.write("finish\n");
  const m = await load.waitForOutput(/RESULT (\{.*\})/, 180_000);
  return JSON.parse(m[1]!) as LoadResult;
}

/** Load options against the cluster of {@link startReloadCluster} in `dir`. */
export function loadOptions(
  dir: string,
  web: string,
  o: Partial<LoadOptions> = {},
): LoadOptions {
  return {
    jump: `${LOGIN}@${web}`,
    target: `${LOGIN}@${NODE}`,
    key: `${dir}/loader`,
    knownHosts: `${dir}/known_hosts`,
    alias: `${NODE}.${CLUSTER}`,
    rate: 20,
    sessions: 10,
    pingMs: 300,
    bulkMiB: 24,
    bulkSeconds: 12,
    ...o,
  };
}
