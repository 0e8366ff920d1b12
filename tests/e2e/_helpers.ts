/**
 * End-to-end helpers: run the real program (`deno run -A main.ts …`) as a
 * subprocess, start a teleport process and wait for its readiness line, find
 * external tools. In CI (CI=true) a missing tool is a failure, not a skip.
 */
export const REPO = new URL("../../", import.meta.url).pathname;
const MAIN = `${REPO}main.ts`;

/** Result of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the program with `args` and waits for it to exit. */
export async function runCli(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<CliResult> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: opts.cwd ?? REPO,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Path of a tool, or undefined. */
export function findTool(
  name: string,
  dirs = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"],
): string | undefined {
  for (const d of dirs) {
    try {
      Deno.statSync(`${d}/${name}`);
      return `${d}/${name}`;
    } catch {
      // next
    }
  }
  return undefined;
}

/**
 * True when tests needing `tools` must be skipped (never in CI).
 * @deprecated Use `skipGroup()` from tools/prereqs.ts: `deno task test` reports its skips.
 */
export function missing(...tools: string[]): boolean {
  const absent = tools.filter((t) => findTool(t) === undefined);
  if (absent.length === 0) return false;
  if (Deno.env.get("CI")) return false; // in CI the test runs and fails loudly
  return true;
}

/** A running `teleport start`. */
export interface RunningTeleport extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** Everything printed on stdout up to readiness. */
  banner: string;
  /** Bound auth API port (NaN when the auth role does not run). */
  authPort: number;
  /** Bound node SSH port (NaN when the node role does not run). */
  sshPort: number;
  /** Bound proxy web port (NaN without the proxy role). */
  webPort: number;
  /** Proxy SSH port in separate mode (NaN otherwise). */
  proxySshPort: number;
  /** stderr so far (logs). */
  logs(): string;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/**
 * Starts `teleport start ARGS` and resolves once it prints its readiness
 * banner ("Stop with"), which happens after the `auth.ready` event.
 */
export async function startTeleport(
  args: string[],
  timeoutMs = 60_000,
  env: Record<string, string> = {},
  /** A program that runs deno for us (`["prlimit", "--nofile=2048:2048"]`). */
  launcher: string[] = [],
): Promise<RunningTeleport> {
  const deno = [Deno.execPath(), "run", "-A", MAIN, "start", ...args];
  const argv = [...launcher, ...deno];
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd: REPO,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const errDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  let banner = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    while (!banner.includes("Stop with")) {
      const { value, done } = await reader.read();
      if (done) {
        await errDone;
        throw new Error(`teleport start exited before it was ready:\n${banner}\n${stderr}`);
      }
      banner += value;
    }
  } finally {
    clearTimeout(deadline);
  }
  const outDone = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const m = /Auth API:\s+\S+:(\d+)/.exec(banner);
  const ssh = /^\s+SSH:\s+\S+:(\d+)/m.exec(banner);
  const web = /Web proxy:\s+https:\/\/\S+:(\d+)/.exec(banner);
  const proxySsh = /SSH proxy:\s+\S+:(\d+)/.exec(banner);
  if (m === null && ssh === null && web === null && !/through reverse tunnels/.test(banner)) {
    throw new Error(`no address in banner:\n${banner}`);
  }
  let exited: Promise<number> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    exited ??= (async () => {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      const status = await child.status;
      await Promise.all([errDone, outDone]);
      return status.code;
    })();
    return exited;
  };
  return {
    child,
    banner,
    authPort: m === null ? NaN : Number(m[1]),
    sshPort: ssh === null ? NaN : Number(ssh[1]),
    webPort: web === null ? NaN : Number(web[1]),
    proxySshPort: proxySsh === null ? NaN : Number(proxySsh[1]),
    logs: () => stderr,
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}

/** An audit event as `tctl audit ls --format=json` prints it. */
export interface AuditEventLike {
  event: string;
  code: string;
  user?: string;
  [field: string]: unknown;
}

/**
 * The audit events of `types` (comma-separated event names) as `tctl -c CONFIG audit ls
 * --type=TYPES --format=json` lists them; throws when tctl fails.
 */
export async function auditEvents<T = AuditEventLike>(config: string, types: string): Promise<T[]> {
  const r = await runCli(["tctl", "-c", config, "audit", "ls", `--type=${types}`, "--format=json"]);
  if (r.code !== 0) throw new Error(`tctl audit ls --type=${types} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T[];
}

/** A node join token and the cluster's CA pins, as `tctl tokens add --type=node` makes them. */
export interface NodeToken {
  token: string;
  /** `sha256:…` pins of the cluster's CA (`--ca-pin`). */
  pins: string[];
}

/** Makes a node join token with `tctl -c CONFIG tokens add --type=node --format=json`. */
export async function addNodeToken(config: string): Promise<NodeToken> {
  const r = await runCli(["tctl", "-c", config, "tokens", "add", "--type=node", "--format=json"]);
  if (r.code !== 0) throw new Error(`tctl tokens add failed: ${r.stderr}`);
  const { token, ca_pins } = JSON.parse(r.stdout) as { token: string; ca_pins: string[] };
  return { token, pins: ca_pins };
}

/** Options of {@link startTunnelNode}. */
export interface TunnelNodeOptions {
  /** `host:port` of the proxy (or of a load balancer in front of it). */
  proxy: string;
  /** The auth server's teleport.yaml: a join token is made with tctl. */
  config: string;
  dataDir: string;
  nodeName: string;
  /** More `teleport start` flags (e.g. `--labels=env=prod`). */
  extra?: string[];
}

/**
 * Makes a join token and starts a node that joins through the proxy and serves over reverse
 * tunnels (`--roles=node --proxy-server`, `--insecure` for the proxy's self-signed web
 * certificate); resolves once it printed its banner. Disposing it kills it.
 */
export async function startTunnelNode(o: TunnelNodeOptions): Promise<RunningTeleport> {
  const { token, pins } = await addNodeToken(o.config);
  return await startTeleport([
    "--roles=node",
    `--proxy-server=${o.proxy}`,
    `--token=${token}`,
    ...pins.map((p) => `--ca-pin=${p}`),
    "--insecure",
    `--data-dir=${o.dataDir}`,
    `--nodename=${o.nodeName}`,
    ...(o.extra ?? []),
  ]);
}

/** A fresh temp dir, removed on dispose. */
export async function tempDir(prefix = "tp-e2e-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Asserts-friendly check that stderr is one clear error line, no stack trace. */
export function isOneLineError(stderr: string): boolean {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("npm warn"));
  return lines.length === 1 && lines[0]!.startsWith("ERROR: ") && !/\n\s+at /.test(stderr);
}

/** Writes a minimal config that binds auth on loopback port 0. */
export async function writeConfig(dir: string, extra = ""): Promise<string> {
  const path = `${dir}/teleport.yaml`;
  await Deno.writeTextFile(
    path,
    `version: v3
teleport:
  nodename: e2e-auth
  data_dir: ${dir}/data
  pid_file: ${dir}/teleport.pid
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:0
  cluster_name: e2e.example
proxy_service:
  enabled: false
ssh_service:
  enabled: false
${extra}`,
  );
  return path;
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Runs a command and collects its output. */
export async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const o = await child.output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout), err: d.decode(o.stderr) };
}

/** Creates an OS user (idempotent, safe when tests run in parallel); returns its uid. */
export async function ensureOsUser(name: string, groups = "users"): Promise<number> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = await run("id", ["-u", name]);
    if (id.code === 0) return Number(id.out.trim());
    const add = await run("useradd", ["-m", "-s", "/bin/bash", "-G", groups, name]);
    if (add.code !== 0 && !/already exists|lock/i.test(add.err)) {
      throw new Error(`useradd ${name} failed: ${add.err}`);
    }
  }
  throw new Error(`Cannot create OS user ${name}`);
}

/** Polls `check` until it returns a value (not undefined) or the time is up. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** Options of {@link opensshArgs}. */
export interface OpensshArgsOptions {
  port: number;
  /** Private key path; `<key>-cert.pub` is offered too unless `certificate` is false. */
  key: string;
  certificate?: boolean;
  /** known_hosts file; without one, host keys are not checked at all. */
  knownHosts?: string;
  hostKeyAlias?: string;
  /** Options before the destination (e.g. `-tt`, `-o SetEnv=…`). */
  extra?: string[];
  /** `login@host`. */
  target: string;
  command: string;
}

/** Arguments for the stock `ssh` client: no user config, batch mode, only the given key. */
export function opensshArgs(o: OpensshArgsOptions): string[] {
  const opt = (v: string) => ["-o", v];
  return [
    "-F",
    "/dev/null",
    "-p",
    String(o.port),
    "-i",
    o.key,
    ...(o.certificate === false ? [] : opt(`CertificateFile=${o.key}-cert.pub`)),
    ...opt("IdentitiesOnly=yes"),
    ...opt("BatchMode=yes"),
    ...opt("LogLevel=ERROR"),
    ...(o.knownHosts === undefined
      ? [...opt("StrictHostKeyChecking=no"), ...opt("UserKnownHostsFile=/dev/null")]
      : [...opt("StrictHostKeyChecking=yes"), ...opt(`UserKnownHostsFile=${o.knownHosts}`)]),
    ...(o.hostKeyAlias === undefined ? [] : opt(`HostKeyAlias=${o.hostKeyAlias}`)),
    ...(o.extra ?? []),
    o.target,
    o.command,
  ];
}

/** The bytes a TLS client sends first when it asks for `alpn` (captured from node:tls). */
export async function captureClientHello(alpn: string): Promise<Uint8Array> {
  const { createServer } = await import("node:net");
  const tls = await import("node:tls");
  const got = Promise.withResolvers<Uint8Array>();
  const server = createServer((s) => {
    s.once("data", (d: Uint8Array) => {
      got.resolve(new Uint8Array(d));
      s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const c = tls.connect({ host: "127.0.0.1", port, ALPNProtocols: [alpn], servername: "x" });
  c.on("error", () => {});
  const hello = await got.promise;
  c.destroy();
  server.close();
  return hello;
}

/** Options of {@link writeClusterConfig}. */
export interface ClusterConfigOptions {
  nodeName: string;
  clusterName: string;
  /** The node's SSH port. @default {freePort()} */
  nodePort?: number;
  /** More YAML lines for `teleport:` (indented two spaces). */
  teleport?: string;
  /** More YAML lines for `ssh_service:` (indented two spaces). */
  ssh?: string;
  /** `auth_service.proxy_listener_mode`. @default {"multiplex"} */
  proxyListenerMode?: "multiplex" | "separate";
  /** More YAML lines for `proxy_service:` (indented two spaces). */
  proxy?: string;
}

/**
 * Writes `<dir>/teleport.yaml` for an all-in-one cluster on free 127.0.0.1 ports: auth, proxy
 * (multiplex) and node, local users with OTP. Returns the path.
 */
export async function writeClusterConfig(dir: string, o: ClusterConfigOptions): Promise<string> {
  const path = `${dir}/teleport.yaml`;
  await Deno.writeTextFile(
    path,
    `version: v3
teleport:
  nodename: ${o.nodeName}
  data_dir: ${dir}/data
${o.teleport ?? ""}auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${freePort()}
  cluster_name: ${o.clusterName}
  proxy_listener_mode: ${o.proxyListenerMode ?? "multiplex"}
  authentication:
    type: local
    second_factor: otp
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:${freePort()}
${o.proxy ?? ""}ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:${o.nodePort ?? freePort()}
${o.ssh ?? ""}`,
  );
  return path;
}
