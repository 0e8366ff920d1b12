/**
 * `teleport start`: load config, start the services; TERM/INT stop fast, QUIT drains, USR1
 * logs a diagnostic report, USR2 starts a second process beside this one, HUP hands over to a
 * new process and drains (lib/service Supervisor and handover.ts).
 */
import {
  FAST_SHUTDOWN_TIMEOUT_MS,
  formatAddr,
  isUnspecifiedHost,
  loadConfigForStart,
  type ProcessConfig,
  resolveProcessConfig,
  type StartFlags,
} from "../../lib/config/mod.ts";
import { configureLogging, getComponentLogger } from "../../lib/log/mod.ts";
import {
  type AuthReady,
  type NodeReady,
  predecessorFromEnv,
  type ProxyReady,
  startSuccessor,
  TeleportProcess,
} from "../../lib/service/mod.ts";
import { caPin } from "../../lib/ca/mod.ts";
import {
  flag,
  type FlagSpec,
  parseFlags,
  print,
  selfCommand,
  shellQuote,
  str,
  strs,
  wantsHelp,
} from "../_common.ts";

const FLAGS: FlagSpec = {
  roles: { type: "string" },
  config: { type: "string", short: "c" },
  "pid-file": { type: "string" },
  token: { type: "string" },
  "ca-pin": { type: "string", multiple: true },
  "auth-server": { type: "string" },
  "proxy-server": { type: "string" },
  "data-dir": { type: "string" },
  nodename: { type: "string" },
  labels: { type: "string" },
  "cluster-name": { type: "string" },
  insecure: { type: "boolean" },
  "diag-addr": { type: "string" },
  "insecure-no-tls": { type: "boolean" },
  debug: { type: "boolean", short: "d" },
};

const USAGE = `Usage: teleport start [flags]

Starts the teleport services. With no config file (--config, $TELEPORT_CONFIG_FILE
or /etc/teleport.yaml) it runs with defaults.

Flags:
  --roles=auth[,node]        services to run (the proxy role arrives later)
  -c, --config=FILE          teleport.yaml to load
  --data-dir=DIR             where state and keys live (default /var/lib/teleport)
  --pid-file=FILE            write the process id here while running
  --cluster-name=NAME        cluster name (first start only)
  --nodename=NAME            name of this host in the cluster
  --token=TOKEN              join token (node/proxy roles)
  --ca-pin=PIN               CA pin sha256:<hex> (repeatable)
  --auth-server=HOST:PORT    auth server to join
  --proxy-server=HOST:PORT   proxy to join through
  --labels=k=v,...           static node labels
  --insecure                 do not verify the proxy's TLS certificate
  --diag-addr=HOST:PORT      serve /healthz, /readyz and /metrics over plain HTTP here
                             (keep it private: 127.0.0.1:3000, or an address only the
                             load balancer and Prometheus reach)
  --insecure-no-tls          the proxy's web port speaks plain HTTP and SSH, for a load
                             balancer in front of it that terminates TLS
  -d, --debug                verbose logging`;

function toStartFlags(p: ReturnType<typeof parseFlags>): StartFlags {
  const f: StartFlags = {};
  const set = <K extends keyof StartFlags>(k: K, v: StartFlags[K] | undefined) => {
    if (v !== undefined) f[k] = v;
  };
  set("roles", str(p, "roles"));
  set("config", str(p, "config"));
  set("pidFile", str(p, "pid-file"));
  set("token", str(p, "token"));
  if (strs(p, "ca-pin").length > 0) f.caPins = strs(p, "ca-pin");
  set("authServer", str(p, "auth-server"));
  set("proxyServer", str(p, "proxy-server"));
  set("dataDir", str(p, "data-dir"));
  set("nodename", str(p, "nodename"));
  set("labels", str(p, "labels"));
  set("clusterName", str(p, "cluster-name"));
  set("diagAddr", str(p, "diag-addr"));
  if (flag(p, "insecure")) f.insecure = true;
  if (flag(p, "insecure-no-tls")) f.insecureNoTls = true;
  if (flag(p, "debug")) f.debug = true;
  return f;
}

/** Resolves the configuration of `teleport start` from flags, file and environment. */
export async function resolveStartConfig(args: string[]): Promise<ProcessConfig> {
  const p = parseFlags(args, FLAGS, "teleport start");
  if (p.positionals.length > 0) {
    throw new Error(`teleport start: unexpected argument "${p.positionals[0]}"`);
  }
  const flags = toStartFlags(p);
  const env = Deno.env.toObject();
  const file = await loadConfigForStart(flags, env);
  return resolveProcessConfig({ ...(file ? { file } : {}), flags, hostname: Deno.hostname(), env });
}

/** Runs `teleport start` until TERM/INT; returns the exit code. */
export async function startCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    print(USAGE);
    return 0;
  }
  const cfg = await resolveStartConfig(args);
  configureLogging({
    severity: cfg.debug ? "DEBUG" : cfg.log.severity,
    format: cfg.log.format,
    output: cfg.log.output,
  });
  // A bug in one connection's handler must not take the whole process (and every other
  // session) down: log it and keep serving.
  const crashLog = getComponentLogger("service");
  const keepRunning = (e: Event & { reason?: unknown; error?: unknown }) => {
    e.preventDefault();
    const err = e.reason ?? e.error;
    crashLog.error("Unhandled error, the process keeps running: {error}", {
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
  };
  globalThis.addEventListener("unhandledrejection", keepRunning);
  globalThis.addEventListener("error", keepRunning);
  // Started by a running teleport's SIGHUP/SIGUSR2 to take over its ports.
  const predecessor = predecessorFromEnv();
  const proc = await TeleportProcess.start({
    config: cfg,
    hostname: Deno.hostname(),
    successor: predecessor !== undefined,
  });
  using _signals = proc.supervisor.listenForSignals({
    drainTimeoutMs: cfg.drainTimeoutMs,
    fastStopTimeoutMs: FAST_SHUTDOWN_TIMEOUT_MS,
    onForcedExit: () => {
      proc.pidFile?.releaseSync();
      Deno.exit(1);
    },
    report: () => proc.diagnosticReport(),
    startSuccessor: () => startSuccessor({ logger: getComponentLogger("service") }),
  });
  try {
    const auth = cfg.roles.auth
      ? await proc.supervisor.waitFor("auth.ready") as AuthReady
      : undefined;
    const proxy = cfg.roles.proxy
      ? await proc.supervisor.waitFor("proxy.ready") as ProxyReady
      : undefined;
    const node = cfg.roles.node
      ? await proc.supervisor.waitFor("node.ready") as NodeReady
      : undefined;
    if (predecessor !== undefined) {
      await predecessor.notifyReady().catch((err) =>
        crashLog.warn("Cannot tell the old process that this one is ready: {error}", {
          error: err instanceof Error ? err.message : String(err),
        })
      );
      crashLog.info(
        "Took over beside the old process (pid {pid}): on SIGHUP it drains and exits, on SIGUSR2 " +
          "it serves on",
        { pid: Deno.ppid },
      );
    } else {
      printReady(cfg, proc, { auth, proxy, node });
    }
    await proc.supervisor.wait();
  } finally {
    await proc.close();
  }
  return proc.supervisor.failure === undefined ? 0 : 1;
}

function printReady(
  cfg: ProcessConfig,
  proc: TeleportProcess,
  ready: {
    auth?: AuthReady | undefined;
    proxy?: ProxyReady | undefined;
    node?: NodeReady | undefined;
  },
): void {
  const { auth, proxy, node } = ready;
  const lines: string[] = [];
  const names = [auth && "auth", proxy && "proxy", node && "node"].filter(Boolean) as string[];
  const services = names.length > 1
    ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)} services are`
    : `${names[0]} service is`;
  lines.push(`Teleport ${services} running.`, "");
  lines.push(`  Cluster:      ${auth?.clusterName ?? proxy?.clusterName ?? node?.clusterName}`);
  if (auth) lines.push(`  Auth API:     ${auth.host}:${auth.port} (mutual TLS)`);
  const webHost = proxy === undefined
    ? ""
    : cfg.proxy.publicAddrs[0] !== undefined
    ? formatAddr(cfg.proxy.publicAddrs[0])
    : formatAddr({
      host: isUnspecifiedHost(proxy.webHost) ? "localhost" : proxy.webHost,
      port: proxy.webPort,
    });
  if (proxy) {
    lines.push(
      `  Web proxy:    https://${webHost} (${
        proxy.tlsRouting ? "TLS routing: web, SSH and auth on this one port" : "web"
      })`,
    );
    if (!proxy.tlsRouting) {
      lines.push(`  SSH proxy:    ${proxy.webHost}:${proxy.sshPort}`);
      lines.push(
        `  Tunnels:      ${proxy.webHost}:${proxy.tunnelPort} (reverse tunnels from nodes)`,
      );
    }
  }
  if (node) {
    lines.push(
      node.tunnelVia === undefined
        ? `  SSH:          ${node.host}:${node.port} (node ${node.nodeName}, ${node.hostId})`
        : `  SSH:          through reverse tunnels via ${node.tunnelVia} (node ${node.nodeName}, ${node.hostId}; no port is open)`,
    );
  }
  if (proc.diag !== undefined) {
    lines.push(
      `  Diagnostics:  http://${
        formatAddr({ host: proc.diag.addr.host, port: proc.diag.addr.port })
      } (/healthz, /readyz, /metrics)`,
    );
  }
  lines.push(`  Data dir:     ${cfg.dataDir}`);
  if (auth) {
    const pins = (proc.auth?.hostCaCertPems() ?? []).map((c) => caPin(c));
    const self = selfCommand();
    const tctl = self === "teleport" ? "tctl" : `${self} tctl`;
    const tsh = self === "teleport" ? "tsh" : `${self} tsh`;
    const cfgFlag = cfg.configFile !== undefined
      ? ` -c ${shellQuote(cfg.configFile)}`
      : ` --data-dir=${shellQuote(cfg.dataDir)} --auth-server=127.0.0.1:${auth.port}`;
    const login = Deno.env.get("USER") ?? "root";
    // Each command below runs as printed (tests/e2e/newcomer_test.ts runs them): from this
    // directory, as the main module and the data dir may be relative.
    lines.push(
      `  CA pin:       ${pins.join(" ")}`,
      "",
      `Next steps, from another terminal in ${Deno.cwd()}:`,
      `  ${tctl}${cfgFlag} status`,
      `  ${tctl}${cfgFlag} tokens add --type=node   # prints the command that joins another host`,
    );
    if (!proxy) {
      lines.push(`  ${tctl}${cfgFlag} users add alice --roles=access,editor --logins=${login}`);
    }
    if (proxy) {
      lines.push(
        "",
        "Create the first user and log in:",
        `  1. ${tctl}${cfgFlag} users add alice --roles=access,editor --logins=${login}`,
        "  2. open the invite URL it prints, choose a password and enroll the TOTP secret in an",
        "     authenticator app (the certificate is self-signed unless https_keypairs is set)",
        `  3. ${tsh} login --proxy=${webHost} --user=alice${
          cfg.proxy.httpsKeyPairs.length === 0 ? " --insecure" : ""
        }`,
        `  4. ${tsh} ls`,
        `     ${tsh} ssh ${login}@${node?.nodeName ?? "<node>"}`,
        `     mkdir -p ~/.ssh && ${tsh} config >> ~/.ssh/config   # then plain: ssh ${login}@${
          node?.nodeName ?? "<node>"
        }.${auth.clusterName}`,
      );
    } else if (node) {
      lines.push(
        "",
        "Log in to this node with OpenSSH (after users add alice … --logins=" + login + "):",
        `  ${tctl}${cfgFlag} auth export --type=host > known_hosts`,
        `  ${tctl}${cfgFlag} auth sign --user=alice --out=alice --ttl=1h`,
        `  ssh -p ${node.port} -i alice -o UserKnownHostsFile=known_hosts -o HostKeyAlias=${node.nodeName}.${node.clusterName} ${login}@127.0.0.1`,
      );
    }
  }
  lines.push(
    "",
    "Stop with Ctrl-C (or SIGTERM); SIGQUIT drains (waits for sessions to end); SIGHUP restarts\n" +
      "without dropping connections (a new process takes the ports, this one drains); SIGUSR1 logs a report.",
  );
  print(lines.join("\n"));
}
