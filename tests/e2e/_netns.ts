/**
 * Network topologies on one machine, for end-to-end tests: every "host" is a network namespace
 * (`ip netns`), every LAN a Linux bridge inside a per-topology "switch" namespace, and every host
 * has one veth pair per LAN it sits on. Nothing touches the root namespace, so subnets may repeat
 * across tests that run at the same time.
 *
 * ```
 *   client ──┐                    ┌── node
 *   auth ────┤ br-out ── fw ── br-in
 *            (switch namespace)
 * ```
 *
 * - Names: `topo.addNames({"proxy.example.com": ip})` writes `/etc/netns/<ns>/hosts` of every
 *   host (`ip netns exec` bind-mounts it over /etc/hosts); each host also knows every host by its
 *   name. `resolv.conf` points at a dead local nameserver so nothing waits on real DNS.
 * - Routers: `addRouter` enables forwarding; {@link firewallRules} builds an nftables ruleset
 *   (forward policy drop, established/related and the inside interface allowed, masquerade out).
 * - Processes: `host.spawn()` runs `ip netns exec <ns> …` with stdout/stderr captured and kept;
 *   {@link Proc.waitForOutput} and {@link Host.waitForPort} give readiness by events.
 *   `host.teleport()` runs this program (`deno run -A --cached-only main.ts …`): namespaces have
 *   no internet, so the module cache is warmed once from the root namespace first.
 * - Middleboxes: {@link startTinyproxy} (HTTP CONNECT with Basic auth) and {@link startHaproxy}
 *   (TCP mode, round robin, health checks).
 * - Cleanup: `await using topo = await Topology.create()` stops every process (SIGKILL after a
 *   SIGTERM grace), kills whatever else still runs inside its namespaces, deletes them and their
 *   `/etc/netns/<ns>` directories. A sweep at start removes namespaces of dead earlier runs (each
 *   run records its creator pid in `/run/tp-netns/<prefix>.pid`).
 * - Failures: `topo.step(t, name, fn)` (or `topo.explain(fn)`) rethrows a failure with the
 *   output of every process of the topology appended.
 *
 * Needs root and iproute2; {@link skipNetns} skips politely elsewhere, except in CI or as root.
 *
 * @module
 */
import { findTool, REPO } from "./_helpers.ts";

const IP = "/usr/sbin/ip";
const NFT = "/usr/sbin/nft";
/** Where each run records its creator pid (and temp dir), one file per prefix. */
const STATE_DIR = "/run/tp-netns";
const MAIN = `${REPO}main.ts`;
/** Lines of each process's output appended to a failure. */
const LOG_TAIL_LINES = 120;
/** Environment variables passed through to processes in namespaces (the rest is dropped). */
const PASS_ENV = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "LANG",
  "TMPDIR",
  "DENO_DIR",
  "XDG_CACHE_HOME",
];

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Writes a line to stderr (tests have no console). */
export function note(text: string): void {
  Deno.stderr.writeSync(enc.encode(`${text}\n`));
}

/** Hides `user:password@` in URLs, `--token` values and `Proxy-Authorization` values. */
export function redact(text: string): string {
  return text
    .replace(/(\/\/[^\s/:@]*:)[^\s/@]*@/g, "$1***@")
    .replace(/(--token[= ])\S+/g, "$1***")
    .replace(/(Proxy-Authorization:\s*\S+\s+)\S+/gi, "$1***");
}

/**
 * @deprecated Use `skipGroup()` from tools/prereqs.ts: `deno task test` reports its skips.
 *
 * True when a test needing network namespaces (and `tools`) must be skipped, after printing why.
 * Never skips in CI (`CI` set) or as root: there a missing piece is a loud failure.
 */
export function skipNetns(what: string, ...tools: string[]): boolean {
  const reasons: string[] = [];
  const root = Deno.uid() === 0;
  if (!root) reasons.push("it needs root (ip netns, veth, nftables)");
  for (const tool of ["ip", ...tools]) {
    if (findTool(tool) === undefined) reasons.push(`${tool} is not installed`);
  }
  if (reasons.length === 0) return false;
  if (Deno.env.get("CI") || root) return false;
  note(`skipping ${what}: ${reasons.join("; ")}`);
  return true;
}

/** Result of a one-shot command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in the root namespace; throws when `check` and it fails. */
async function sys(
  cmd: string,
  args: string[],
  o: { stdin?: string; check?: boolean } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: o.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (o.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(enc.encode(o.stdin));
    await w.close();
  }
  const out = await child.output();
  const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if ((o.check ?? true) && r.code !== 0) {
    throw new Error(`${cmd} ${redact(args.join(" "))} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r;
}

function ipv4ToInt(ip: string): number {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`Cannot parse IPv4 address "${ip}"`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** Start time of a process (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Namespaces currently defined (`ip netns list`). */
async function listNamespaces(): Promise<string[]> {
  const r = await sys(IP, ["netns", "list"], { check: false });
  return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]!).filter((n) => n !== "");
}

/** SIGKILLs every process left in namespace `ns` (descendants of our own processes). */
async function killAllIn(ns: string): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const r = await sys(IP, ["netns", "pids", ns], { check: false });
    const pids = r.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once every interface in `ifaces` of `ns` reports operational state UP. */
async function waitLinksUp(ns: string, ifaces: string[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await sys(IP, ["-n", ns, "-o", "link", "show"], { check: false });
    const down = ifaces.filter((i) =>
      !r.stdout.split("\n").some((l) => new RegExp(`^\\d+: ${i}[@:].* state UP`).test(l))
    );
    if (down.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`Cannot bring up ${down.join(", ")} in ${ns}:\n${r.stdout}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function deleteNamespace(ns: string): Promise<void> {
  await killAllIn(ns);
  await sys(IP, ["netns", "del", ns], { check: false });
  await Deno.remove(`/etc/netns/${ns}`, { recursive: true }).catch(() => {});
}

/**
 * Deletes namespaces (and their /etc/netns dirs and temp dirs) left by earlier runs whose
 * creator process is gone. Runs of live processes are left alone.
 */
export async function sweepStaleNamespaces(): Promise<string[]> {
  const swept: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(STATE_DIR));
  } catch {
    return swept;
  }
  let namespaces: string[] | undefined;
  for (const e of entries) {
    const m = /^(tp[0-9a-f]{4})\.pid$/.exec(e.name);
    if (m === null) continue;
    const path = `${STATE_DIR}/${e.name}`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch {
      continue;
    }
    const [pidText, start, dir] = text.trim().split("\n")[0]!.split(" ");
    const pid = Number(pidText);
    if (Number.isInteger(pid) && pid > 0 && processStartTime(pid) === start) continue;
    namespaces ??= await listNamespaces();
    const prefix = `${m[1]}-`;
    for (const ns of namespaces.filter((n) => n.startsWith(prefix))) {
      await deleteNamespace(ns);
      swept.push(ns);
    }
    // /etc/netns dirs without a namespace (a run killed between the two steps).
    const etc = await Array.fromAsync(Deno.readDir("/etc/netns")).catch(() => []);
    for (const d of etc) {
      if (d.name.startsWith(prefix)) {
        await Deno.remove(`/etc/netns/${d.name}`, { recursive: true }).catch(() => {});
      }
    }
    if (dir !== undefined && dir.startsWith("/")) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    await Deno.remove(path).catch(() => {});
  }
  return swept;
}

let cached: Promise<void> | undefined;

/**
 * Makes sure every module of main.ts is in Deno's cache, from the root namespace (which has the
 * network), so `deno run --cached-only` works inside namespaces. Runs once per test process.
 */
export function ensureProgramCached(): Promise<void> {
  cached ??= (async () => {
    const r = await sys(Deno.execPath(), ["cache", "--quiet", MAIN], { check: false });
    if (r.code !== 0) {
      throw new Error(`Cannot cache ${MAIN} for offline runs in namespaces: ${r.stderr.trim()}`);
    }
  })();
  return cached;
}

/** A LAN: a bridge in the topology's switch namespace. */
export class Lan {
  /** Bridge device in the switch namespace. */
  readonly bridge: string;
  constructor(
    /** Short name; hosts name their interface on it `<name>0`. */
    readonly name: string,
    /** Network address, dotted. */
    readonly network: string,
    /** Prefix length of the subnet. */
    readonly prefixLength: number,
  ) {
    this.bridge = `br-${name}`;
  }

  /** Whether `ip` lies in this LAN's subnet. */
  contains(ip: string): boolean {
    const mask = this.prefixLength === 0 ? 0 : (~0 << (32 - this.prefixLength)) >>> 0;
    return ((ipv4ToInt(ip) & mask) >>> 0) === ((ipv4ToInt(this.network) & mask) >>> 0);
  }
}

/** Options of {@link Host.spawn} and {@link Host.run}. */
export interface ProcOptions {
  /** Extra environment (on top of PATH, HOME, DENO_DIR… and NO_COLOR=1; nothing else leaks). */
  env?: Record<string, string>;
  /**
   * `"piped"` keeps stdin open for {@link Proc.write}; a string is written then closed.
   * @default "null"
   */
  stdin?: "null" | "piped" | string;
  /** Label in logs. @default the command's base name */
  name?: string;
  /** Working directory. @default the repository root */
  cwd?: string;
}

/** Options of {@link Host.run}. */
export interface RunOptions extends ProcOptions {
  /** The command is killed after this long. @default 60_000 */
  timeoutMs?: number;
}

function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const k of PASS_ENV) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/** A process running inside a host namespace; its output is kept for the logs. */
export class Proc implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  #stdout = "";
  #stderr = "";
  #all = "";
  #exit: Deno.CommandStatus | undefined;
  readonly #wakers = new Set<() => void>();
  readonly #pumps: Promise<void>;
  #stopping: Promise<number> | undefined;
  /** Resolves with the exit status (after the output is drained). */
  readonly status: Promise<Deno.CommandStatus>;

  constructor(
    /** Label in logs: `<host>/<name>`. */
    readonly label: string,
    /** The command line, credentials redacted. */
    readonly commandLine: string,
    child: Deno.ChildProcess,
    /** A one-shot command: reported with a short tail only. */
    readonly oneShot = false,
  ) {
    this.#child = child;
    const pump = async (stream: ReadableStream<Uint8Array>, which: "out" | "err") => {
      try {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
          if (which === "out") this.#stdout += chunk;
          else this.#stderr += chunk;
          this.#all += chunk;
          this.#wake();
        }
      } catch {
        // stream torn down
      }
    };
    this.#pumps = Promise.all([pump(child.stdout, "out"), pump(child.stderr, "err")]).then(
      () => {},
    );
    const exited = child.status.then((s) => {
      this.#exit = s;
      return s;
    });
    this.status = exited.then(async (s) => {
      // Output of a grandchild that keeps the pipe open is not waited for forever.
      await Promise.race([this.#pumps, new Promise((r) => setTimeout(r, 2_000))]);
      this.#wake();
      return s;
    });
    // Wake waiters once the exit is known and the output drained (or given up on).
    void this.status.catch(() => {});
  }

  #wake(): void {
    for (const w of [...this.#wakers]) w();
  }

  /** Process id (of the command itself: `ip netns exec` execs it). */
  get pid(): number {
    return this.#child.pid;
  }
  /** Everything printed on stdout so far. */
  get stdout(): string {
    return this.#stdout;
  }
  /** Everything printed on stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }
  /** stdout and stderr interleaved as they arrived. */
  get output(): string {
    return this.#all;
  }
  /** The exit status, once the process is gone. */
  get exitStatus(): Deno.CommandStatus | undefined {
    return this.#exit;
  }

  /**
   * Resolves with the first match of `re` in the output (`stream` selects stdout, stderr or
   * both); rejects with the output when the process ends first or `timeoutMs` passes.
   */
  waitForOutput(
    re: RegExp,
    timeoutMs = 30_000,
    stream: "stdout" | "stderr" | "both" = "both",
  ): Promise<RegExpExecArray> {
    const pattern = new RegExp(re.source, re.flags.replace("g", ""));
    const text = () =>
      stream === "stdout" ? this.#stdout : stream === "stderr" ? this.#stderr : this.#all;
    return new Promise((resolve, reject) => {
      let ended = false;
      void this.status.then(() => {
        ended = true;
        check();
      }, () => {});
      const finish = () => {
        clearTimeout(timer);
        this.#wakers.delete(check);
      };
      const check = () => {
        const m = pattern.exec(text());
        if (m !== null) {
          finish();
          resolve(m);
        } else if (ended) {
          finish();
          reject(
            new Error(
              `${this.label} exited (code ${this.#exit?.code}) before printing ${re}:\n${
                tail(this.#all, 40)
              }`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(
            `${this.label} did not print ${re} within ${timeoutMs} ms:\n${tail(this.#all, 40)}`,
          ),
        );
      }, timeoutMs);
      this.#wakers.add(check);
      check();
    });
  }

  /** Every match of `re` (made global) in the output so far. */
  matches(re: RegExp, stream: "stdout" | "stderr" | "both" = "both"): RegExpExecArray[] {
    const g = new RegExp(re.source, re.flags.includes("g") ? re.flags : re.flags + "g");
    const text = stream === "stdout"
      ? this.#stdout
      : stream === "stderr"
      ? this.#stderr
      : this.#all;
    return [...text.matchAll(g)];
  }

  /** Writes to stdin (spawned with `stdin: "piped"`). */
  async write(text: string): Promise<void> {
    const w = this.#child.stdin.getWriter();
    try {
      await w.write(enc.encode(text));
    } finally {
      w.releaseLock();
    }
  }

  /** Closes stdin. */
  async closeStdin(): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
  }

  /** Sends a signal (no-op once the process is gone). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exit !== undefined) return;
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
  }

  /** Sends `signal`, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(signal: Deno.Signal = "SIGTERM", graceMs = 5_000): Promise<number> {
    this.#stopping ??= (async () => {
      if (this.#exit === undefined) {
        this.kill(signal);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const graced = await Promise.race([
          this.#child.status.then(() => true),
          new Promise<boolean>((r) => {
            timer = setTimeout(() => r(false), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (!graced) this.kill("SIGKILL");
      }
      return (await this.status).code;
    })();
    return this.#stopping;
  }

  /** The last `lines` lines of output, labelled, for failure reports. */
  report(lines = LOG_TAIL_LINES): string {
    if (this.oneShot) lines = Math.min(lines, 8);
    const state = this.#exit === undefined ? "running" : `exited ${this.#exit.code}`;
    return `=== ${this.label} (${state}): ${this.commandLine}\n${redact(tail(this.#all, lines))}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function tail(text: string, lines: number): string {
  const all = text.split("\n");
  if (all.length <= lines) return text;
  return `[… ${all.length - lines} lines]\n${all.slice(-lines).join("\n")}`;
}

/** One LAN attachment of a host. */
export interface Attachment {
  lan: Lan;
  /** The host's IPv4 address on it. */
  ip: string;
}

/** Options of {@link Topology.addHost}. */
export interface HostOptions {
  /** LANs with this host's address on each; the interface is named `<lan.name>0`. */
  lans: Attachment[];
  /** Default route via this address. */
  gateway?: string;
  /** Extra routes, e.g. `{to: "10.2.0.0/24", via: "10.1.0.1"}`. */
  routes?: { to: string; via: string }[];
  /** IPv4 forwarding between its interfaces. @default false */
  forward?: boolean;
}

/** A host: one network namespace. */
export class Host {
  constructor(
    /** The topology this host belongs to. */
    readonly topology: Topology,
    /** Host name (also resolvable from every host). */
    readonly name: string,
    /** Namespace name. */
    readonly ns: string,
    /** Attachments, in order. */
    readonly lans: readonly Attachment[],
  ) {}

  /** Address on `lan` (a Lan or its name); the first address without one. */
  ip(lan?: Lan | string): string {
    if (lan === undefined) return this.lans[0]!.ip;
    const name = typeof lan === "string" ? lan : lan.name;
    const a = this.lans.find((x) => x.lan.name === name);
    if (a === undefined) throw new Error(`Host ${this.name} is not on LAN ${name}`);
    return a.ip;
  }

  /** Interface name on `lan`. */
  iface(lan: Lan | string): string {
    const name = typeof lan === "string" ? lan : lan.name;
    this.ip(name);
    return `${name}0`;
  }

  #command(cmd: string, args: string[], o: ProcOptions): Deno.Command {
    const piped = o.stdin !== undefined && o.stdin !== "null";
    return new Deno.Command(IP, {
      args: ["netns", "exec", this.ns, cmd, ...args],
      cwd: o.cwd ?? REPO,
      env: baseEnv(o.env),
      clearEnv: true,
      stdin: piped ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    });
  }

  /** Starts `cmd args` in this namespace; the topology stops it on dispose. */
  spawn(cmd: string, args: string[], o: ProcOptions = {}): Proc {
    return this.#spawn(cmd, args, o, false);
  }

  #spawn(cmd: string, args: string[], o: ProcOptions, oneShot: boolean): Proc {
    const name = o.name ?? cmd.split("/").at(-1)!;
    const child = this.#command(cmd, args, o).spawn();
    const proc = new Proc(
      `${this.name}/${name}`,
      redact([cmd.split("/").at(-1), ...args].join(" ")),
      child,
      oneShot,
    );
    if (o.stdin !== undefined && o.stdin !== "null" && o.stdin !== "piped") {
      void proc.write(o.stdin).then(() => proc.closeStdin()).catch(() => {});
    }
    this.topology.track(proc);
    return proc;
  }

  /** Runs `cmd args` here to completion (killed after `timeoutMs`); never throws on exit codes. */
  run(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
    return this.#complete(this.#spawn(cmd, args, o, true), o.timeoutMs);
  }

  async #complete(proc: Proc, timeoutMs = 60_000): Promise<RunResult> {
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    try {
      const s = await proc.status;
      return { code: s.code, stdout: proc.stdout, stderr: proc.stderr };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs `cmd args`; throws with its output unless it exits 0. */
  async exec(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
    const r = await this.run(cmd, args, o);
    if (r.code !== 0) {
      throw new Error(
        `${this.name}: ${
          redact([cmd, ...args].join(" "))
        } exited ${r.code}: ${r.stderr}${r.stdout}`,
      );
    }
    return r;
  }

  /** Starts this program (`teleport …`, `tsh …`) here: `deno run -A --cached-only main.ts`. */
  teleport(args: string[], o: ProcOptions = {}): Proc {
    return this.spawn(Deno.execPath(), ["run", "-A", "--cached-only", MAIN, ...args], {
      name: args[0] === "start" ? "teleport" : args[0],
      ...o,
    });
  }

  /** Runs this program here to completion (`tctl …`, `tsh …`). */
  cli(args: string[], o: RunOptions = {}): Promise<RunResult> {
    return this.#complete(
      this.#spawn(Deno.execPath(), ["run", "-A", "--cached-only", MAIN, ...args], {
        name: args[0],
        ...o,
      }, true),
      o.timeoutMs,
    );
  }

  /** Whether a TCP connection from this host to `addr:port` opens within `timeoutMs`. */
  async canConnect(addr: string, port: number, timeoutMs = 2_000): Promise<boolean> {
    const r = await this.run("timeout", [
      String(timeoutMs / 1000),
      "bash",
      "-c",
      'exec 3<>"/dev/tcp/$0/$1"',
      addr,
      String(port),
    ], { name: `connect ${addr}:${port}` });
    return r.code === 0;
  }

  /** Resolves once `addr:port` accepts a TCP connection from this host (polls every 100 ms). */
  async waitForPort(addr: string, port: number, timeoutMs = 30_000): Promise<void> {
    const script = `end=$((SECONDS + $2)); ` +
      `until timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$0" "$1" 2>/dev/null; do ` +
      `[ "$SECONDS" -ge "$end" ] && exit 1; sleep 0.1; done`;
    const r = await this.run("bash", [
      "-c",
      script,
      addr,
      String(port),
      String(Math.ceil(timeoutMs / 1000)),
    ], { name: `wait ${addr}:${port}`, timeoutMs: timeoutMs + 5_000 });
    if (r.code !== 0) {
      throw new Error(
        `${this.name}: ${addr}:${port} did not accept connections in ${timeoutMs} ms`,
      );
    }
  }

  /** Loads an nftables ruleset here; `replace` flushes the current one first. */
  async nft(rules: string, o: { replace?: boolean } = {}): Promise<void> {
    const text = o.replace ? `flush ruleset\n${rules}` : rules;
    await sys(IP, ["netns", "exec", this.ns, NFT, "-f", "-"], { stdin: text });
  }

  /** Adds a route (`to` a CIDR or `default`). */
  async addRoute(to: string, via: string): Promise<void> {
    await sys(IP, ["-n", this.ns, "route", "replace", to, "via", via]);
  }

  /** Sets `net.ipv4.ip_forward`. */
  async setForwarding(on: boolean): Promise<void> {
    // /proc/sys/net belongs to the namespace of the writer (no need for procps' sysctl).
    await sys(IP, [
      "netns",
      "exec",
      this.ns,
      "bash",
      "-c",
      `echo ${on ? 1 : 0} > /proc/sys/net/ipv4/ip_forward`,
    ]);
  }
}

/** Options of {@link Topology.create}. */
export interface TopologyOptions {
  /** Word in the temp dir name. @default "topo" */
  label?: string;
  /** SIGTERM grace of each process on dispose. @default 3_000 */
  graceMs?: number;
}

/** Options of {@link Topology.addRouter}. */
export interface RouterOptions extends HostOptions {
  /** Firewall/NAT rules: see {@link firewallRules}. */
  firewall?: FirewallOptions;
}

/** A set of hosts and LANs, deleted on dispose. */
export class Topology implements AsyncDisposable {
  /** Namespace prefix, `tp<hex4>-`. */
  readonly prefix: string;
  /** Temp dir for configs, data dirs and logs (removed on dispose). */
  readonly dir: string;
  readonly #switchNs: string;
  readonly #graceMs: number;
  readonly #lans = new Map<string, Lan>();
  readonly #hosts = new Map<string, Host>();
  readonly #names = new Map<string, string>();
  readonly #procs: Proc[] = [];
  readonly #namespaces: string[] = [];
  #veth = 0;
  #disposed = false;

  private constructor(prefix: string, dir: string, graceMs: number) {
    this.prefix = prefix;
    this.dir = dir;
    this.#switchNs = `${prefix}sw`;
    this.#graceMs = graceMs;
  }

  /** Sweeps stale runs, warms the module cache, claims a prefix and creates the switch. */
  static async create(o: TopologyOptions = {}): Promise<Topology> {
    await sweepStaleNamespaces();
    await ensureProgramCached();
    await Deno.mkdir(STATE_DIR, { recursive: true });
    const label = (o.label ?? "topo").replace(/[^a-z0-9-]/gi, "");
    for (let attempt = 0; attempt < 50; attempt++) {
      const id = [...crypto.getRandomValues(new Uint8Array(2))]
        .map((b) => b.toString(16).padStart(2, "0")).join("");
      const prefix = `tp${id}-`;
      const dir = await Deno.makeTempDir({ prefix: `${prefix}${label}-` });
      try {
        await Deno.writeTextFile(
          `${STATE_DIR}/tp${id}.pid`,
          `${Deno.pid} ${processStartTime(Deno.pid)} ${dir}\n`,
          { createNew: true },
        );
      } catch (err) {
        await Deno.remove(dir, { recursive: true });
        if (err instanceof Deno.errors.AlreadyExists) continue;
        throw err;
      }
      const topo = new Topology(prefix, dir, o.graceMs ?? 3_000);
      try {
        await topo.#createNamespace(topo.#switchNs);
      } catch (err) {
        await topo[Symbol.asyncDispose]();
        throw err;
      }
      return topo;
    }
    throw new Error("Cannot claim a namespace prefix: 50 random prefixes were taken");
  }

  /** Every host, in creation order. */
  get hosts(): Host[] {
    return [...this.#hosts.values()];
  }

  /** Every namespace this topology created (switch first). */
  get namespaces(): string[] {
    return [...this.#namespaces];
  }

  async #createNamespace(ns: string): Promise<void> {
    this.#namespaces.push(ns);
    await Deno.mkdir(`/etc/netns/${ns}`, { recursive: true });
    // A dead local nameserver: unknown names fail at once instead of waiting on real DNS.
    await Deno.writeTextFile(
      `/etc/netns/${ns}/resolv.conf`,
      "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    );
    await Deno.writeTextFile(`/etc/netns/${ns}/hosts`, "127.0.0.1 localhost\n");
    await sys(IP, ["netns", "add", ns]);
    await sys(IP, ["-n", ns, "link", "set", "lo", "up"]);
  }

  /** Adds a LAN (a bridge) with subnet `cidr`, e.g. `addLan("out", "10.1.0.0/24")`. */
  async addLan(name: string, cidr: string): Promise<Lan> {
    if (!/^[a-z][a-z0-9]{0,9}$/.test(name)) {
      throw new Error(`Cannot add LAN "${name}": use 1-10 lower-case letters and digits`);
    }
    if (this.#lans.has(name)) throw new Error(`Cannot add LAN "${name}": it exists`);
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
    if (m === null || Number(m[2]) > 30) {
      throw new Error(`Cannot add LAN "${name}": "${cidr}" is not an IPv4 CIDR like 10.1.0.0/24`);
    }
    ipv4ToInt(m[1]!);
    const lan = new Lan(name, m[1]!, Number(m[2]));
    await sys(IP, ["-n", this.#switchNs, "link", "add", lan.bridge, "type", "bridge"]);
    await sys(IP, ["-n", this.#switchNs, "link", "set", lan.bridge, "up"]);
    this.#lans.set(name, lan);
    return lan;
  }

  /** Adds a host on the given LANs; every host resolves it by `name`. */
  async addHost(name: string, o: HostOptions): Promise<Host> {
    if (!/^[a-z][a-z0-9-]{0,15}$/.test(name) || name === "sw") {
      throw new Error(`Cannot add host "${name}": use 1-16 lower-case letters, digits and -`);
    }
    if (this.#hosts.has(name)) throw new Error(`Cannot add host "${name}": it exists`);
    if (o.lans.length === 0) throw new Error(`Cannot add host "${name}": give at least one LAN`);
    for (const a of o.lans) {
      if (!a.lan.contains(a.ip)) {
        throw new Error(`Cannot add host "${name}": ${a.ip} is not in LAN ${a.lan.name}`);
      }
    }
    const ns = `${this.prefix}${name}`;
    await this.#createNamespace(ns);
    const host = new Host(this, name, ns, o.lans);
    this.#hosts.set(name, host);
    const ports: string[] = [];
    for (const a of o.lans) {
      const iface = `${a.lan.name}0`;
      const port = `p${++this.#veth}`;
      ports.push(port);
      await sys(IP, [
        "-n",
        ns,
        "link",
        "add",
        iface,
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        this.#switchNs,
      ]);
      await sys(IP, ["-n", this.#switchNs, "link", "set", port, "master", a.lan.bridge]);
      await sys(IP, ["-n", this.#switchNs, "link", "set", port, "up"]);
      await sys(IP, ["-n", ns, "addr", "add", `${a.ip}/${a.lan.prefixLength}`, "dev", iface]);
      await sys(IP, ["-n", ns, "link", "set", iface, "up"]);
    }
    // Link state changes are applied asynchronously (linkwatch, up to a second): until then the
    // device drops what is sent. Wait for both ends of every veth to be up.
    await waitLinksUp(ns, o.lans.map((a) => `${a.lan.name}0`));
    await waitLinksUp(this.#switchNs, ports);
    // New namespaces inherit IPv4 settings from the root one: set forwarding either way.
    await host.setForwarding(o.forward ?? false);
    if (o.gateway !== undefined) await host.addRoute("default", o.gateway);
    for (const r of o.routes ?? []) await host.addRoute(r.to, r.via);
    await this.#writeHostsFiles();
    return host;
  }

  /** Adds a forwarding host, optionally with a firewall/NAT ruleset ({@link firewallRules}). */
  async addRouter(name: string, o: RouterOptions): Promise<Host> {
    const host = await this.addHost(name, { ...o, forward: true });
    if (o.firewall !== undefined) await host.nft(firewallRules(o.firewall));
    return host;
  }

  /** Makes `name` resolve to `ip` on every host (e.g. `proxy.example.com`). */
  async addNames(names: Record<string, string>): Promise<void> {
    for (const [name, ip] of Object.entries(names)) {
      ipv4ToInt(ip);
      this.#names.set(name, ip);
    }
    await this.#writeHostsFiles();
  }

  async #writeHostsFiles(): Promise<void> {
    const lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"];
    for (const h of this.#hosts.values()) lines.push(`${h.ip()} ${h.name}`);
    for (const [name, ip] of this.#names) lines.push(`${ip} ${name}`);
    const text = lines.join("\n") + "\n";
    for (const h of this.#hosts.values()) {
      await Deno.writeTextFile(`/etc/netns/${h.ns}/hosts`, text);
    }
  }

  /** Registers a process to report and stop (done by {@link Host.spawn}). */
  track(proc: Proc): void {
    if (this.#disposed) {
      proc.kill("SIGKILL");
      throw new Error("Cannot start a process: the topology is disposed");
    }
    this.#procs.push(proc);
  }

  /** Every process started in this topology, in start order. */
  get procs(): Proc[] {
    return [...this.#procs];
  }

  /** The output of every long-running process (one-shot runs: a line each). */
  logs(lines = LOG_TAIL_LINES): string {
    // Retry loops run the same one-shot command many times: report a run of equal ones once.
    const out: string[] = [];
    let last = "";
    let repeats = 0;
    const flush = () => {
      if (repeats > 0) out.push(`[… the same ${repeats} more time(s)]\n`);
      repeats = 0;
    };
    for (const p of this.#procs) {
      const text = p.report(lines);
      if (p.oneShot && text === last) {
        repeats++;
        continue;
      }
      flush();
      out.push(text);
      last = p.oneShot ? text : "";
    }
    flush();
    return out.join("\n");
  }

  /** Runs `fn`; a failure is rethrown with {@link logs} appended. */
  async explain<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`${msg}\n\n----- logs of topology ${this.prefix} -----\n${this.logs()}`, {
        cause: err,
      });
    }
  }

  /** `t.step(name, fn)` whose failure carries the logs of the topology. */
  step(t: Deno.TestContext, name: string, fn: () => Promise<void>): Promise<boolean> {
    return t.step(name, () => this.explain(fn));
  }

  /** Stops every process, deletes every namespace, /etc/netns dir, the temp dir and the pid file. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await Promise.allSettled(this.#procs.map((p) => p.stop("SIGTERM", this.#graceMs)));
    await Promise.allSettled(this.#namespaces.map((ns) => killAllIn(ns)));
    await Promise.allSettled(this.#namespaces.map((ns) => deleteNamespace(ns)));
    const left = (await listNamespaces()).filter((n) => n.startsWith(this.prefix));
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    if (left.length > 0) {
      // The pid file stays: once this process is gone, the next sweep deletes what is left.
      throw new Error(`Cannot delete namespaces ${left.join(", ")}`);
    }
    await Deno.remove(`${STATE_DIR}/${this.prefix.slice(0, -1)}.pid`).catch(() => {});
  }
}

/** Options of {@link firewallRules}. */
export interface FirewallOptions {
  /** Inside interface (e.g. `host.iface(insideLan)`): what comes from it is forwarded. */
  inside: string;
  /**
   * What is forwarded from the inside: nftables matches (each accepted with `iifname <inside>`).
   * @default [""] (everything)
   */
  outbound?: string[];
  /** Outside interface. */
  outside: string;
  /** Masquerade what leaves through `outside` (source NAT). @default true */
  nat?: boolean;
  /**
   * Extra nftables matches accepted in the forward chain, e.g.
   * `iifname "out0" ip daddr 10.3.0.2 tcp dport 3080` (a port forward into the inside).
   */
  allow?: string[];
  /** Extra matches dropped before anything else, e.g. `tcp dport 3080`. */
  deny?: string[];
}

/**
 * An nftables ruleset for a firewall router: forward policy drop; established/related accepted;
 * `deny` dropped; everything from the inside interface (or only `outbound`) accepted; `allow`
 * accepted; masquerade out of the outside interface. Nothing from outside reaches inside unless
 * `allow` says so.
 */
export function firewallRules(o: FirewallOptions): string {
  const forward = [
    "    type filter hook forward priority 0; policy drop;",
    "    ct state established,related accept",
    ...(o.deny ?? []).map((d) => `    ${d} drop`),
    ...(o.outbound ?? [""]).map((m) =>
      `    iifname "${o.inside}" ${m}${m === "" ? "" : " "}accept`
    ),
    ...(o.allow ?? []).map((a) => `    ${a} accept`),
  ];
  let rules = `table inet tp_filter {\n  chain forward {\n${forward.join("\n")}\n  }\n}\n`;
  if (o.nat ?? true) {
    rules += `table ip tp_nat {\n  chain post {\n` +
      `    type nat hook postrouting priority 100;\n    oifname "${o.outside}" masquerade\n  }\n}\n`;
  }
  return rules;
}

/** Options of {@link startTinyproxy}. */
export interface TinyproxyOptions {
  /** @default 8888 */
  port?: number;
  /** Basic auth user; without user and password, no authentication. */
  user?: string;
  password?: string;
  /** Address to listen on. @default every address */
  listen?: string;
}

/** A running tinyproxy. */
export interface Tinyproxy {
  proc: Proc;
  port: number;
  /** `http://user:password@<hostname>:<port>` (no credentials without a user). */
  url(hostname: string): string;
  /** Targets of every CONNECT request seen so far (`host:port`), in order. */
  connectTargets(): string[];
}

/**
 * Starts tinyproxy in the foreground on `host`, with Basic auth, no `ConnectPort` lines (every
 * port may be tunnelled), its own config and pid file in the topology's temp dir and its log on
 * stderr (so it lands in the topology logs). Resolves once it accepts connections.
 */
export async function startTinyproxy(host: Host, o: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const port = o.port ?? 8888;
  const dir = `${host.topology.dir}/tinyproxy-${host.name}-${port}`;
  await Deno.mkdir(dir, { recursive: true });
  const auth = o.user !== undefined && o.password !== undefined;
  if (auth && (/\s/.test(o.user! + o.password!) || o.user === "" || o.password === "")) {
    throw new Error(
      "Cannot configure tinyproxy: user and password must be non-empty without spaces",
    );
  }
  const config = [
    `Port ${port}`,
    ...(o.listen === undefined ? [] : [`Listen ${o.listen}`]),
    "Timeout 600",
    "LogLevel Info",
    `PidFile "${dir}/tinyproxy.pid"`,
    "MaxClients 100",
    "DisableViaHeader Yes",
    ...(auth ? [`BasicAuth ${o.user} ${o.password}`] : []),
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/tinyproxy.conf`, config, { mode: 0o600 });
  const proc = host.spawn("tinyproxy", ["-d", "-c", `${dir}/tinyproxy.conf`], {
    name: `tinyproxy:${port}`,
  });
  await proc.waitForOutput(/Starting main loop|Accepting connections/, 15_000);
  await host.waitForPort(o.listen ?? "127.0.0.1", port, 15_000);
  return {
    proc,
    port,
    url: (hostname) =>
      auth
        ? `http://${encodeURIComponent(o.user!)}:${
          encodeURIComponent(o.password!)
        }@${hostname}:${port}`
        : `http://${hostname}:${port}`,
    connectTargets: () =>
      proc.matches(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/).map((m) => m[1]!),
  };
}

/** One haproxy frontend: `bind` (`ip:port` or `:port`) balanced over `backends` (`ip:port`). */
export interface HaproxyFrontend {
  bind: string;
  backends: string[];
}

/** Options of {@link startHaproxy}. */
export interface HaproxyOptions {
  frontends: HaproxyFrontend[];
  /** Health check interval. @default "500ms" */
  checkInterval?: string;
  /** More keywords for every `server` line, e.g. `on-marked-down shutdown-sessions`. */
  serverOptions?: string;
}

/**
 * Starts haproxy in TCP mode in the foreground (`-db`) on `host`: round robin, health checks
 * (`check inter 500ms fall 1 rise 1`), `option redispatch`, `retries 3`, long client and server
 * timeouts (tunnels are long-lived). Resolves once every frontend accepts connections.
 */
export async function startHaproxy(host: Host, o: HaproxyOptions): Promise<Proc> {
  const inter = o.checkInterval ?? "500ms";
  const lines = [
    "global",
    "  maxconn 1024",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    "  timeout client 1h",
    "  timeout server 1h",
    "  retries 3",
    "  option redispatch",
  ];
  o.frontends.forEach((f, i) => {
    lines.push(`frontend f${i}`, `  bind ${f.bind}`, `  default_backend b${i}`);
    lines.push(`backend b${i}`, "  balance roundrobin");
    f.backends.forEach((b, j) =>
      lines.push(
        `  server s${j} ${b} check inter ${inter} fall 1 rise 1` +
          (o.serverOptions === undefined ? "" : ` ${o.serverOptions}`),
      )
    );
  });
  const path = `${host.topology.dir}/haproxy-${host.name}.cfg`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  const proc = host.spawn("haproxy", ["-db", "-f", path], { name: "haproxy" });
  for (const f of o.frontends) {
    const [addr, port] = splitHostPort(f.bind);
    await Promise.race([
      host.waitForPort(addr === "" || addr === "*" ? "127.0.0.1" : addr, port, 15_000),
      proc.status.then(() => {
        throw new Error(`haproxy exited:\n${proc.output}`);
      }),
    ]);
  }
  return proc;
}

function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(":");
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

/** Options of {@link startTcpServer}. */
export interface TcpServerOptions {
  port: number;
  /** Written to each connection (plus a line feed). @default the host's name */
  banner?: string;
  /** @default every address */
  listen?: string;
}

const TCP_SERVER = `
const [hostname, port, banner] = Deno.args;
const listener = Deno.listen({ hostname, port: Number(port) });
console.log("listening on " + port);
for (;;) {
  let conn;
  try {
    conn = await listener.accept();
  } catch {
    continue; // a peer that reset before accept (haproxy health checks): Deno throws ENOTCONN
  }
  conn.setNoDelay(true);
  (async () => {
    console.log("from " + conn.remoteAddr.hostname);
    try {
      await conn.write(new TextEncoder().encode(banner + "\\n"));
      // Read the request (a line, or HTTP headers) before closing, so the close is a FIN.
      let text = "";
      const buf = new Uint8Array(4096);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
        const http = /^[A-Z]+ \\S+ HTTP\\//.test(text);
        if (http ? /\\r?\\n\\r?\\n/.test(text) : text.includes("\\n")) break;
      }
    } catch {
      // client gone
    }
    try { conn.close(); } catch { /* closed */ }
  })();
}
`;

/**
 * Starts a tiny TCP server on `host`: each connection gets `banner` and a line feed, then the
 * server reads one line (or one HTTP request) and closes; it prints `from <peer ip>` for each
 * connection (see {@link Proc.matches}). Resolves once it listens.
 */
export async function startTcpServer(host: Host, o: TcpServerOptions): Promise<Proc> {
  const proc = host.spawn(Deno.execPath(), [
    "eval",
    TCP_SERVER,
    o.listen ?? "0.0.0.0",
    String(o.port),
    o.banner ?? host.name,
  ], { name: `tcp:${o.port}` });
  await proc.waitForOutput(/listening on/, 15_000, "stdout");
  return proc;
}
