/**
 * Graceful restart under load, teleport against OpenSSH, in one run (`deno task bench:reload`,
 * as root: everything runs in a network namespace it creates).
 *
 * The same load (tests/e2e/_reload_load.ts: `--rate` new connections a second, 10 interactive
 * PTY sessions answering a line every 300 ms, a paced `--mib` upload hashed on the far end) runs
 * against
 * 1. teleport (auth, proxy, node in one process; stock `ssh` jumping through the proxy) while it
 *    is reloaded `--hups` times in a row with `pkill -HUP -L -F <pid file>`, each HUP sent once
 *    the previous successor took over;
 * 2. OpenSSH's sshd (direct connections, same user certificate) reloaded as often with
 *    `kill -HUP` (sshd re-executes itself and binds its port again).
 *
 * Prints, per server: new connections attempted, ok, refused, reset or closed, timed out;
 * sessions dropped; upload intact.
 *
 *   npx -y deno@2.9.6 task bench:reload [--rate=20] [--hups=3] [--mib=24] [--seconds=12]
 */
import { parseArgs } from "node:util";
import { findTool } from "../tests/e2e/_helpers.ts";
import { Topology } from "../tests/e2e/_netns.ts";
import type { LoadResult } from "../tests/e2e/_reload_load.ts";
import {
  loadOptions,
  LOGIN,
  reload,
  runLoad,
  startReloadCluster,
  until,
} from "../tests/e2e/_reload.ts";
import { out } from "./_common.ts";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "20" },
    hups: { type: "string", default: "3" },
    mib: { type: "string", default: "24" },
    seconds: { type: "string", default: "12" },
  },
});
const RATE = Number(values.rate);
const HUPS = Number(values.hups);
const load = { rate: RATE, bulkMiB: Number(values.mib), bulkSeconds: Number(values.seconds) };

if (Deno.uid() !== 0) {
  out("bench:reload needs root (it runs in a network namespace of its own)");
  Deno.exit(1);
}

function classify(r: LoadResult) {
  const c = { refused: 0, resetOrClosed: 0, timedOut: 0, other: 0 };
  for (const f of r.connections.failed) {
    if (/refused/i.test(f)) c.refused++;
    else if (/reset|closed/i.test(f)) c.resetOrClosed++;
    else if (/timed out/i.test(f)) c.timedOut++;
    else c.other++;
  }
  return c;
}

function row(name: string, r: LoadResult, hupSeconds: number[]): string {
  const c = classify(r);
  return `| ${name} | ${r.connections.attempted} | ${r.connections.ok} | ${c.refused} | ${c.resetOrClosed} | ${
    c.timedOut + c.other
  } | ${r.sessions.failed.length}/${r.sessions.ok + r.sessions.failed.length} | ${
    r.bulk.ok ? "intact" : "BROKEN"
  } (${r.bulk.mib} MiB) | ${hupSeconds.map((s) => s.toFixed(1)).join(", ")} |`;
}

await using topo = await Topology.create({ label: "benchreload" });
const lan = await topo.addLan("lan", "10.92.0.0/24");
const srv = await topo.addHost("srv", { lans: [{ lan, ip: "10.92.0.2" }] });

// 1. teleport
const { pidFile, tp, web, cfg } = await startReloadCluster(srv, topo.dir);
const tpHups: number[] = [];
/** Keeps the load on until `--seconds` passed since `t0` (both servers get the same span). */
const rest = (t0: number) =>
  new Promise((r) =>
    setTimeout(r, Math.max(0, load.bulkSeconds * 1000 - (performance.now() - t0)))
  );
const tpResult = await runLoad(srv, loadOptions(topo.dir, web, load), async () => {
  const start = performance.now();
  for (let k = 1; k <= HUPS; k++) {
    const t0 = performance.now();
    await reload(tp, pidFile);
    tpHups.push((performance.now() - t0) / 1000);
  }
  await rest(start);
});

// 2. OpenSSH sshd with the cluster's user CA, same certificate.
const dir = topo.dir;
const userCa = await srv.cli(["tctl", "-c", cfg, "auth", "export", "--type=user"]);
const caKeys = userCa.stdout.split("\n").flatMap((l) => {
  const m = /(ssh-[a-z0-9-]+|ecdsa-[a-z0-9-]+) (\S+)/.exec(l);
  return m === null ? [] : [`${m[1]} ${m[2]}`];
});
await Deno.writeTextFile(`${dir}/user_ca.pub`, caKeys.join("\n") + "\n");
await srv.exec("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/sshd_hostkey`]);
const sshdPort = 2222;
await Deno.writeTextFile(
  `${dir}/sshd_config`,
  `Port ${sshdPort}
ListenAddress 127.0.0.1
HostKey ${dir}/sshd_hostkey
TrustedUserCAKeys ${dir}/user_ca.pub
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile ${dir}/sshd.pid
MaxStartups 200
LogLevel INFO
`,
);
const hostKey = (await Deno.readTextFile(`${dir}/sshd_hostkey.pub`)).trim().split(" ");
await Deno.writeTextFile(
  `${dir}/sshd_known_hosts`,
  `[127.0.0.1]:${sshdPort} ${hostKey[0]} ${hostKey[1]}\n`,
);
await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
// sshd without PAM refuses a locked account ("!" from useradd); "*" unlocks it with no usable
// password.
await srv.exec("usermod", ["-p", "*", LOGIN]);
const sshd = srv.spawn(findTool("sshd")!, ["-D", "-e", "-f", `${dir}/sshd_config`], {
  name: "sshd",
});
await sshd.waitForOutput(/Server listening on 127\.0\.0\.1 port/);
const sshdHups: number[] = [];
const sshdResult = await runLoad(
  srv,
  {
    ...loadOptions(dir, web, load),
    jump: undefined,
    target: `${LOGIN}@127.0.0.1`,
    port: sshdPort,
    knownHosts: `${dir}/sshd_known_hosts`,
    alias: undefined,
  } as Parameters<typeof runLoad>[1],
  async () => {
    const start = performance.now();
    for (let k = 1; k <= HUPS; k++) {
      // HUPs as far apart as teleport's were.
      await new Promise((r) => setTimeout(r, (tpHups[k - 1] ?? 1) * 1000));
      const t0 = performance.now();
      sshd.kill("SIGHUP");
      await until(
        "sshd to listen again",
        sshd,
        () => sshd.matches(/Server listening on 127\.0\.0\.1 port/).length >= k + 1,
      );
      sshdHups.push((performance.now() - t0) / 1000);
    }
    await rest(start);
  },
);

out(
  `Graceful restart under load: ${RATE} new connections/s, 10 PTY sessions, ${load.bulkMiB} MiB upload, ${HUPS} HUPs in a row`,
);
out(
  "| server | new conns | ok | refused | reset/closed | timed out/other | sessions dropped | upload | s per HUP |",
);
out("|---|---|---|---|---|---|---|---|---|");
out(row("teleport (ssh -J via proxy)", tpResult, tpHups));
out(row("OpenSSH sshd (direct)", sshdResult, sshdHups));
const fail = (r: LoadResult) => r.connections.attempted - r.connections.ok;
out(
  `failed new connections: teleport ${fail(tpResult)} of ${tpResult.connections.attempted}, sshd ${
    fail(sshdResult)
  } of ${sshdResult.connections.attempted}`,
);
for (const [name, r] of [["teleport", tpResult], ["sshd", sshdResult]] as const) {
  for (const f of r.connections.failed.slice(0, 3)) out(`  ${name} failure: ${f.slice(-200)}`);
  for (const f of r.sessions.failed.slice(0, 3)) out(`  ${name} session: ${f.slice(-200)}`);
}
