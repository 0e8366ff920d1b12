/**
 * Node SSH service vs OpenSSH sshd, same machine, same run, same client (stock `ssh`), same
 * user certificate and OS user:
 *
 * - connect + `true` latency: p50 / p99 over `--runs` logins (interleaved);
 * - bulk: `cat` of a `--mib` MiB file out (download) and `cat > /dev/null` in (upload).
 *
 * Run as root (it creates the OS user `td_bench`):
 *   npx -y deno@2.9.6 run -A bench/ssh_node.ts [--runs=50] [--mib=256]
 * Prints a table and the ratios ours / OpenSSH.
 */
import { parseArgs } from "node:util";
import { benchSetup, out, percentile, timed } from "./_common.ts";
import { startSshd } from "../tests/e2e/_sshd.ts";
import { opensshArgs, run, runCli, startTeleport } from "../tests/e2e/_helpers.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "50" }, mib: { type: "string", default: "256" } },
});
const RUNS = Number(values.runs);
const MIB = Number(values.mib);
const LOGIN = "td_bench";

const dir = await benchSetup("tp-bench-", LOGIN);
const config = `${dir}/teleport.yaml`;
await Deno.writeTextFile(
  config,
  `version: v3
teleport:
  nodename: bench-node
  data_dir: ${dir}/data
  log:
    severity: WARN
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:0
  cluster_name: bench.example
proxy_service:
  enabled: false
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:0
`,
);
const tp = await startTeleport(["--config", config]);
try {
  const tctl = async (...args: string[]) => {
    const r = await runCli([
      "tctl",
      "-c",
      config,
      `--auth-server=127.0.0.1:${tp.authPort}`,
      ...args,
    ]);
    if (r.code !== 0) throw new Error(`tctl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await tctl("users", "add", "bench", "--roles=access", `--logins=${LOGIN}`);
  await tctl("auth", "sign", "--user=bench", `--out=${dir}/bench`, "--ttl=2h");
  await Deno.writeTextFile(`${dir}/user_ca.pub`, await tctl("auth", "export", "--type=user"));
  const hostCa = await tctl("auth", "export", "--type=host");
  await using sshd = await startSshd(dir, `${dir}/user_ca.pub`);
  const sshdHostKey = (await Deno.readTextFile(`${dir}/hostkey.pub`)).trim();
  await Deno.writeTextFile(
    `${dir}/known_hosts`,
    `${hostCa.trim()}\n[127.0.0.1]:${sshd.port} ${sshdHostKey}\n`,
  );

  const targets = [
    {
      name: "teleport-deno node",
      port: tp.sshPort,
      alias: "bench-node.bench.example",
    },
    { name: "OpenSSH sshd", port: sshd.port, alias: undefined as string | undefined },
  ];
  const sshArgs = (t: typeof targets[number], cmd: string, extra: string[] = []) =>
    opensshArgs({
      port: t.port,
      key: `${dir}/bench`,
      knownHosts: `${dir}/known_hosts`,
      ...(t.alias === undefined ? {} : { hostKeyAlias: t.alias }),
      extra,
      target: `${LOGIN}@127.0.0.1`,
      command: cmd,
    });
  const ssh = (t: typeof targets[number], cmd: string) => run("ssh", sshArgs(t, cmd));
  /** Runs ssh inside `sh -c` with `shell` around it (redirections, pipes); checks the byte count. */
  const sshBytes = async (t: typeof targets[number], cmd: string, shell: string) => {
    const r = await run("sh", ["-c", shell, "ssh", ...sshArgs(t, cmd)]);
    if (r.code === 0 && Number(r.out.trim()) !== MIB * 1024 * 1024) {
      return { code: 1, err: `wrong byte count ${r.out.trim()}` };
    }
    return r;
  };

  // Which cipher each side negotiates (both default to chacha20-poly1305 with stock ssh).
  for (const t of targets) {
    const v = await run("ssh", ["-v", ...sshArgs(t, "true", ["-o", "LogLevel=DEBUG1"])]);
    const cipher = /kex: server->client cipher: (\S+)/.exec(v.err)?.[1] ?? "?";
    out(`${t.name}: port ${t.port}, cipher ${cipher}`);
  }

  const latency = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let i = 0; i < 3; i++) for (const t of targets) await timed(() => ssh(t, "true")); // warm-up
  for (let i = 0; i < RUNS; i++) {
    for (const t of targets) latency.get(t.name)!.push(await timed(() => ssh(t, "true")));
  }

  const big = `${dir}/big.bin`;
  await run("dd", ["if=/dev/urandom", `of=${big}`, "bs=1M", `count=${MIB}`, "status=none"]);
  await Deno.chmod(big, 0o644);
  const bulk = new Map<string, { down: number; up: number }>();
  for (const t of targets) {
    const down = await timed(() => sshBytes(t, `cat ${big}`, `ssh "$@" | wc -c`));
    const up = await timed(() => sshBytes(t, "wc -c", `ssh "$@" < ${big}`));
    bulk.set(t.name, { down, up });
  }

  out();
  out(`connect + true, ${RUNS} runs each (ms)      p50      p99`);
  for (const t of targets) {
    const s = [...latency.get(t.name)!].sort((a, b) => a - b);
    out(
      `  ${t.name.padEnd(36)} ${percentile(s, 50).toFixed(1).padStart(7)}  ${
        percentile(s, 99).toFixed(1).padStart(7)
      }`,
    );
  }
  out();
  out(`bulk ${MIB} MiB (MiB/s)                        out (cat)   in (cat >)`);
  for (const t of targets) {
    const b = bulk.get(t.name)!;
    out(
      `  ${t.name.padEnd(36)} ${(MIB / (b.down / 1000)).toFixed(0).padStart(9)}  ${
        (MIB / (b.up / 1000)).toFixed(0).padStart(11)
      }`,
    );
  }
  const [ours, openssh] = targets.map((t) => t.name) as [string, string];
  const p = (name: string, q: number) =>
    percentile([...latency.get(name)!].sort((a, b) => a - b), q);
  out();
  out("ratios (teleport-deno / OpenSSH; latency >1 = slower, throughput <1 = slower)");
  out(
    `  latency p50 ${(p(ours, 50) / p(openssh, 50)).toFixed(2)}  p99 ${
      (p(ours, 99) / p(openssh, 99)).toFixed(2)
    }`,
  );
  out(
    `  throughput out ${(bulk.get(openssh)!.down / bulk.get(ours)!.down).toFixed(2)}  in ${
      (bulk.get(openssh)!.up / bulk.get(ours)!.up).toFixed(2)
    }`,
  );
} finally {
  await tp.stop();
  await Deno.remove(dir, { recursive: true });
}
