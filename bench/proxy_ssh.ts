/**
 * `tsh ssh` through the proxy vs OpenSSH `ssh -J` (sshd as jump host and sshd as target, both on
 * high loopback ports), same machine, same run, same OS user and the same user certificate
 * (the one `tsh login` obtained; both sshds trust the cluster's user CA):
 *
 * - connect + `true` latency: p50 / p99 over `--runs` runs (interleaved). tsh runs under
 *   `deno run`, so the start-up of an idle Deno program (`tsh version`) is measured too and
 *   shown beside it;
 * - bulk: `cat` of a `--mib` MiB file out (download) and `wc -c` of it in (upload).
 * - also the stock `ssh` through `tsh config` (ProxyCommand `tsh proxy ssh`);
 * - `tsh ssh` to a tunnel node: a second `teleport start --roles=node --proxy-server=…` process
 *   that reaches the proxy only through its reverse tunnel (TLS routing on the web port);
 * - `tsh ssh` through an HTTP CONNECT proxy (tinyproxy with Basic auth, and squid, each through
 *   `HTTPS_PROXY`, with `TELEPORT_PROXY_LOOPBACK=yes` so that 127.0.0.1 is proxied too); the
 *   bench fails unless each proxy logged a CONNECT for every run.
 *
 * Run as root (it creates the OS user `td_bench`):
 *   npx -y deno@2.9.6 run -A bench/proxy_ssh.ts [--runs=30] [--mib=128]
 * Prints a table and the ratios ours / OpenSSH.
 */
import { parseArgs } from "node:util";
import { benchSetup, eachLine, out, percentile, settle, startDaemon, timed } from "./_common.ts";
import { startSshd } from "../tests/e2e/_sshd.ts";
import { findTool, freePort, run, runCli, startTeleport } from "../tests/e2e/_helpers.ts";
import { inviteAndEnroll, TEST_PASSWORD, tshLogin } from "../tests/e2e/_proxy.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "30" }, mib: { type: "string", default: "128" } },
});
const RUNS = Number(values.runs);
// Deno's own update check would add a CONNECT to dl.deno.land to every run through a proxy.
Deno.env.set("DENO_NO_UPDATE_CHECK", "1");
const MIB = Number(values.mib);
const LOGIN = "td_bench";
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The first file under `dir` whose path matches `re`. */
async function find(dir: string, re: RegExp): Promise<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) {
      const hit = await find(p, re).catch(() => "");
      if (hit !== "") return hit;
    } else if (re.test(p)) return p;
  }
  throw new Error(`no file matching ${re} under ${dir}`);
}

/**
 * squid in the foreground on 127.0.0.1, no auth, CONNECT to any port, no cache: a second CONNECT
 * proxy beside tinyproxy (tinyproxy leaves Nagle on, squid does not: the difference shows).
 */
async function startSquid(dir: string) {
  const port = freePort();
  const sq = `${dir}/squid`;
  await Deno.mkdir(sq);
  await Deno.chmod(sq, 0o777); // squid drops to its own user for its logs
  await Deno.writeTextFile(
    `${sq}/squid.conf`,
    [
      `http_port 127.0.0.1:${port}`,
      "http_access allow localhost",
      "http_access deny all",
      "cache deny all",
      "shutdown_lifetime 0 seconds",
      `pid_filename ${sq}/squid.pid`,
      `access_log stdio:${sq}/access.log`,
      `cache_log ${sq}/cache.log`,
      `coredump_dir ${sq}`,
      "",
    ].join("\n"),
  );
  const bin = findTool("squid");
  if (bin === undefined) throw new Error("Cannot find squid: apt-get install squid");
  const child = new Deno.Command(bin, {
    args: ["-N", "-f", `${sq}/squid.conf`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let err = "";
  const errDone = eachLine(child.stderr, (l) => err += l + "\n");
  let exited = false;
  child.status.then(() => exited = true);
  for (let i = 0;; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (exited || i > 300) throw new Error(`squid did not start:\n${err}`);
      await settle(100);
    }
  }
  return {
    url: `http://127.0.0.1:${port}`,
    /** Targets of the CONNECT requests logged so far. */
    connects: async () =>
      [...(await Deno.readTextFile(`${sq}/access.log`).catch(() => "")).matchAll(
        / CONNECT (\S+) /g,
      )].map((m) => m[1]!),
    async [Symbol.asyncDispose]() {
      child.kill("SIGINT");
      await child.status;
      await errDone;
    },
  };
}

/** tinyproxy in the foreground on 127.0.0.1 with Basic auth and every CONNECT port allowed. */
async function startTinyproxy(dir: string, user: string, password: string) {
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/tinyproxy.conf`,
    [
      `Port ${port}`,
      "Listen 127.0.0.1",
      "Timeout 600",
      "LogLevel Info",
      `PidFile "${dir}/tinyproxy.pid"`,
      "MaxClients 100",
      "DisableViaHeader Yes",
      `BasicAuth ${user} ${password}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const bin = findTool("tinyproxy");
  if (bin === undefined) throw new Error("Cannot find tinyproxy: apt-get install tinyproxy");
  const child = new Deno.Command(bin, {
    args: ["-d", "-c", `${dir}/tinyproxy.conf`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const listening = Promise.withResolvers<void>();
  const onLine = (l: string) => {
    log += l + "\n";
    if (/Starting main loop|Accepting connections/.test(l)) listening.resolve();
  };
  const done = Promise.all([eachLine(child.stdout, onLine), eachLine(child.stderr, onLine)]);
  child.status.then(() => listening.reject(new Error(`tinyproxy exited:\n${log}`)));
  await listening.promise;
  return {
    url: `http://${user}:${password}@127.0.0.1:${port}`,
    /** Targets of the CONNECT requests seen so far. */
    connects: () => [...log.matchAll(/CONNECT (\S+) HTTP/g)].map((m) => m[1]!),
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await done;
    },
  };
}

const dir = await benchSetup("tp-bench-proxy-", LOGIN);
const config = `${dir}/teleport.yaml`;
const webPort = freePort();
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
  listen_addr: 127.0.0.1:${freePort()}
  cluster_name: bench.example
  proxy_listener_mode: multiplex
proxy_service:
  enabled: true
  web_listen_addr: 0.0.0.0:${webPort}
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
`,
);
const tp = await startTeleport(["--config", config]);
const home = `${dir}/tsh`;
const tshEnv = { TELEPORT_HOME: home };
const cleanups: Array<() => Promise<unknown>> = [];
try {
  const tctl = async (...args: string[]) => {
    const r = await runCli(["tctl", "-c", config, ...args]);
    if (r.code !== 0) throw new Error(`tctl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  // Invite, enroll TOTP and set the password through the proxy, then tsh login.
  const totp = await inviteAndEnroll({
    config,
    webPort,
    user: "bench",
    roles: "access",
    logins: LOGIN,
  });
  const login = await tshLogin({ home, webPort, user: "bench", totp });
  if (login.code !== 0) throw new Error(`tsh login: ${login.stderr}`);
  // The TOTP step the login used (or a later one): the next login needs a newer step.
  const usedStep = Math.floor((Date.now() + 30_000) / 30_000);
  const cfg = await runCli(["tsh", "config"], { env: tshEnv });
  await Deno.writeTextFile(`${dir}/tsh_ssh_config`, cfg.stdout);

  // OpenSSH: jump sshd and target sshd, trusting the same user CA.
  await Deno.writeTextFile(`${dir}/user_ca.pub`, await tctl("auth", "export", "--type=user"));
  await Deno.mkdir(`${dir}/jump`);
  await Deno.mkdir(`${dir}/target`);
  await using jump = await startSshd(`${dir}/jump`, `${dir}/user_ca.pub`);
  await using target = await startSshd(`${dir}/target`, `${dir}/user_ca.pub`);
  const key = await find(`${home}/keys`, new RegExp(`/keys/[^/]+/bench$`));
  const cert = await find(`${home}/keys`, /-cert\.pub$/);
  const hostKey = async (d: string) => (await Deno.readTextFile(`${d}/hostkey.pub`)).trim();
  await Deno.writeTextFile(
    `${dir}/known_hosts`,
    `[127.0.0.1]:${jump.port} ${await hostKey(
      `${dir}/jump`,
    )}\n[127.0.0.1]:${target.port} ${await hostKey(
      `${dir}/target`,
    )}\n`,
  );
  const common = `  HostName 127.0.0.1
  User ${LOGIN}
  IdentityFile ${key}
  CertificateFile ${cert}
  IdentitiesOnly yes
  BatchMode yes
  LogLevel ERROR
  StrictHostKeyChecking yes
  UserKnownHostsFile ${dir}/known_hosts
`;
  await Deno.writeTextFile(
    `${dir}/jump_config`,
    `Host jump\n  Port ${jump.port}\n${common}\nHost target\n  Port ${target.port}\n  ProxyJump jump\n${common}`,
  );

  // A tunnel node: joins through the proxy and serves SSH only over its reverse tunnel.
  const tok = JSON.parse(await tctl("tokens", "add", "--type=node", "--format=json")) as {
    token: string;
    ca_pins: string[];
  };
  const tunnelNode = await startDaemon([
    "--roles=node",
    `--proxy-server=127.0.0.1:${webPort}`,
    `--token=${tok.token}`,
    ...tok.ca_pins.map((p) => `--ca-pin=${p}`),
    "--insecure",
    `--data-dir=${dir}/tunnel-node`,
    "--nodename=bench-tunnel",
  ]);
  cleanups.push(() => tunnelNode.stop());
  if (!/Reverse tunnel to proxy \S+ at \S+ is up/.test(tunnelNode.logs())) {
    throw new Error(`the tunnel node is ready but logged no tunnel:\n${tunnelNode.logs()}`);
  }
  out(`tunnel node bench-tunnel ready in ${(tunnelNode.startMs / 1000).toFixed(1)} s`);

  // HTTP CONNECT: tinyproxy, and a second profile logged in through it. Loopback targets bypass
  // CONNECT proxies unless TELEPORT_PROXY_LOOPBACK says otherwise (benchmarks and tests only).
  const ip = "127.0.0.1";
  await using tinyproxy = await startTinyproxy(dir, "bench", "bench-proxy-pass");
  const connectEnv = {
    TELEPORT_HOME: `${dir}/tsh-connect`,
    HTTPS_PROXY: tinyproxy.url,
    TELEPORT_PROXY_LOOPBACK: "yes",
  };
  while (Math.floor((Date.now() + 30_000) / 30_000) <= usedStep) await settle(500);
  const login2 = await runCli(
    ["tsh", "login", `--proxy=${ip}:${webPort}`, "--user=bench", "--insecure"],
    {
      env: connectEnv,
      stdin: `${TEST_PASSWORD}\n${totp.generate({ timestamp: Date.now() + 30_000 })}\n`,
    },
  );
  if (login2.code !== 0) throw new Error(`tsh login through tinyproxy: ${login2.stderr}`);
  if (!tinyproxy.connects().includes(`${ip}:${webPort}`)) {
    throw new Error(
      `tsh login did not go through tinyproxy (CONNECTs: ${tinyproxy.connects().join(", ")})`,
    );
  }

  await using squid = await startSquid(dir);
  const squidEnv = { ...connectEnv, HTTPS_PROXY: squid.url };

  type Way = { name: string; cmd: (remote: string) => [string, string[], Record<string, string>?] };
  const tsh = (target: string, r: string): [string, string[]] => [
    Deno.execPath(),
    ["run", "-A", MAIN, "tsh", "ssh", target, r],
  ];
  const ways: Way[] = [
    {
      name: "tsh ssh via proxy (TLS routing)",
      cmd: (r) => [...tsh(`${LOGIN}@bench-node`, r), tshEnv],
    },
    {
      name: "tsh ssh to a tunnel node",
      cmd: (r) => [...tsh(`${LOGIN}@bench-tunnel`, r), tshEnv],
    },
    {
      name: "tsh ssh via HTTP CONNECT (tinyproxy)",
      cmd: (r) => [...tsh(`${LOGIN}@bench-node`, r), connectEnv],
    },
    {
      name: "tsh ssh via HTTP CONNECT (squid)",
      cmd: (r) => [...tsh(`${LOGIN}@bench-node`, r), squidEnv],
    },
    {
      name: "ssh via tsh config (ProxyCommand)",
      cmd: (r) => ["ssh", ["-F", `${dir}/tsh_ssh_config`, `${LOGIN}@bench-node.bench.example`, r]],
    },
    {
      name: "OpenSSH ssh -J (sshd jump + sshd)",
      cmd: (r) => ["ssh", ["-F", `${dir}/jump_config`, "target", r]],
    },
  ];
  const exec = (w: Way, remote: string) => {
    const [c, a, env] = w.cmd(remote);
    return run(c, a, env === undefined ? {} : { env: { ...Deno.env.toObject(), ...env } });
  };
  const startup: number[] = [];
  const latency = new Map<string, number[]>(ways.map((w) => [w.name, []]));
  // Warm-up; the tunnel node is listed once its first heartbeat reached auth and the proxy.
  const deadline = Date.now() + 60_000;
  for (let ok = false; !ok;) {
    try {
      await timed(() => exec(ways[1]!, "true"));
      ok = true;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await settle(1000);
    }
  }
  for (let i = 0; i < 2; i++) for (const w of ways) await timed(() => exec(w, "true"));
  const connectsBefore = tinyproxy.connects().length;
  const squidBefore = (await squid.connects()).length;
  for (let i = 0; i < RUNS; i++) {
    for (const w of ways) latency.get(w.name)!.push(await timed(() => exec(w, "true")));
    startup.push(
      await timed(() => run(Deno.execPath(), ["run", "-A", MAIN, "tsh", "version"])),
    );
  }
  const webTarget = `${ip}:${webPort}`;
  const connects = tinyproxy.connects().slice(connectsBefore).filter((t) => t === webTarget);
  const squidConnects = (await squid.connects()).slice(squidBefore).filter((t) => t === webTarget);
  for (const [name, seen] of [["tinyproxy", connects], ["squid", squidConnects]] as const) {
    if (seen.length < RUNS) {
      throw new Error(
        `${name} saw ${seen.length} CONNECTs for ${RUNS} runs through it: its row did not ` +
          "measure a proxied connection",
      );
    }
  }

  const big = `${dir}/big.bin`;
  await run("dd", ["if=/dev/urandom", `of=${big}`, "bs=1M", `count=${MIB}`, "status=none"]);
  await Deno.chmod(big, 0o644);
  const bulk = new Map<string, { down: number; up: number }>();
  for (const w of ways) {
    const [c, a, env] = w.cmd(`cat ${big}`);
    const [c2, a2] = w.cmd("wc -c");
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const sh = (cmd: string) =>
      run("sh", ["-c", cmd], env === undefined ? {} : { env: { ...Deno.env.toObject(), ...env } });
    const check = (r: { code: number; out: string; err: string }) =>
      r.code === 0 && Number(r.out.trim()) !== MIB * 1024 * 1024
        ? { code: 1, err: `wrong byte count ${r.out.trim()}` }
        : r;
    const down = await timed(async () =>
      check(await sh(`${[c, ...a].map(quote).join(" ")} | wc -c`))
    );
    const up = await timed(async () =>
      check(await sh(`${[c2, ...a2].map(quote).join(" ")} < ${big}`))
    );
    bulk.set(w.name, { down, up });
  }

  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  out();
  out(`connect + true, ${RUNS} runs each (ms)            p50      p99`);
  for (const w of ways) {
    const s = sorted(latency.get(w.name)!);
    out(
      `  ${w.name.padEnd(40)} ${percentile(s, 50).toFixed(1).padStart(7)}  ${
        percentile(s, 99).toFixed(1).padStart(7)
      }`,
    );
  }
  const st = sorted(startup);
  out(
    `  ${"(deno start-up: tsh version)".padEnd(40)} ${percentile(st, 50).toFixed(1).padStart(7)}  ${
      percentile(st, 99).toFixed(1).padStart(7)
    }`,
  );
  out();
  out(`bulk ${MIB} MiB (MiB/s)                              out (cat)   in (wc -c <)`);
  for (const w of ways) {
    const b = bulk.get(w.name)!;
    out(
      `  ${w.name.padEnd(40)} ${(MIB / (b.down / 1000)).toFixed(0).padStart(9)}  ${
        (MIB / (b.up / 1000)).toFixed(0).padStart(13)
      }`,
    );
  }
  const openssh = ways.at(-1)!.name;
  const p = (name: string, q: number) => percentile(sorted(latency.get(name)!), q);
  out();
  out(
    `CONNECTs to ${ip}:${webPort} during the ${RUNS} timed runs through each: tinyproxy ` +
      `${connects.length}, squid ${squidConnects.length} (tsh dials from its cached node and proxy lists: one CONNECT per run once warm)`,
  );
  out();
  out("ratios (ours / OpenSSH -J; latency >1 = slower, throughput <1 = slower)");
  for (const w of ways.slice(0, -1)) {
    out(
      `  ${w.name}: latency p50 ${(p(w.name, 50) / p(openssh, 50)).toFixed(2)}  p99 ${
        (p(w.name, 99) / p(openssh, 99)).toFixed(2)
      }  (p50 without deno start-up ${
        ((p(w.name, 50) - percentile(st, 50)) / p(openssh, 50)).toFixed(2)
      }); throughput out ${(bulk.get(openssh)!.down / bulk.get(w.name)!.down).toFixed(2)}  in ${
        (bulk.get(openssh)!.up / bulk.get(w.name)!.up).toFixed(2)
      }`,
    );
  }
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await tp.stop();
  await Deno.remove(dir, { recursive: true });
}
