/**
 * What the tests and benchmarks need from the machine, in one place:
 * - {@link PACKAGES}: every Debian package they use and the commands it provides; `deno task
 *   deps` installs them all (tools/deps.ts; `.ci/run` uses it too), the README lists them;
 * - {@link GROUPS}: the groups of tests that cannot run without something (root, a command, a
 *   non-loopback address). A test asks {@link skipGroup} (`ignore: skipGroup("topology")`), and
 *   `deno task test` (tools/test.ts) prints after the run which groups were skipped and why,
 *   from the same table, so a run on a machine without them never looks complete.
 *
 * In CI (`CI` set) nothing is skipped: a missing piece there is a loud failure.
 *
 * @module
 */

/** A Debian package the suite or the benchmarks use. */
export interface Package {
  name: string;
  /** Commands it provides that the suite looks for. */
  tools: readonly string[];
  /** Who needs it, for the README. */
  usedBy: string;
}

/** Every Debian package the tests and benchmarks use (install: `deno task deps`). */
export const PACKAGES: readonly Package[] = Object.freeze([
  {
    name: "openssh-client",
    tools: ["ssh", "ssh-keygen", "ssh-agent", "ssh-add", "scp"],
    usedBy: "OpenSSH interop, e2e",
  },
  { name: "openssh-server", tools: ["sshd"], usedBy: "OpenSSH interop, benchmarks" },
  { name: "openssl", tools: ["openssl"], usedBy: "certificate checks, e2e" },
  { name: "curl", tools: ["curl"], usedBy: "web API and e2e tests" },
  { name: "passwd", tools: ["useradd"], usedBy: "test OS users (as root)" },
  {
    name: "util-linux",
    tools: ["setpriv", "prlimit", "runuser"],
    usedBy: "sessions as other users, flood test",
  },
  { name: "bsdutils", tools: ["script"], usedBy: "PTY tests with the stock ssh" },
  { name: "coreutils", tools: ["timeout", "sha256sum"], usedBy: "e2e tests" },
  { name: "iproute2", tools: ["ip", "ss"], usedBy: "network namespace topologies (as root)" },
  { name: "nftables", tools: ["nft"], usedBy: "firewalls in the topologies (as root)" },
  { name: "tinyproxy", tools: ["tinyproxy"], usedBy: "HTTP CONNECT tests, topologies" },
  { name: "haproxy", tools: ["haproxy"], usedBy: "load balancer topology" },
  { name: "squid", tools: ["squid"], usedBy: "bench:proxy (a second CONNECT proxy)" },
  { name: "tmux", tools: ["tmux"], usedBy: "terminal tests in a real terminal (resize)" },
  { name: "procps", tools: ["pkill"], usedBy: "signals through the pid file (pkill -L -F)" },
  {
    name: "postgresql-15",
    tools: ["/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl"],
    usedBy: "the PostgreSQL backend tests and bench:backend",
  },
  {
    name: "chromium",
    tools: ["chromium"],
    usedBy: "web UI tests in a real browser, screenshots, bench:web",
  },
  {
    name: "systemd",
    tools: ["systemd-analyze"],
    usedBy: "the systemd unit (systemd-analyze verify)",
  },
]);

/** A group of tests that needs something from the machine. */
export interface TestGroup {
  /** Name in `skipGroup()` calls. */
  id: string;
  /** What the group covers. */
  title: string;
  /** Its test files (repo relative). */
  files: readonly string[];
  /** Runs only as root. */
  root?: boolean;
  /** Commands that must be installed. */
  tools?: readonly string[];
}

/** The groups of tests that are skipped when something is missing. */
export const GROUPS: readonly TestGroup[] = Object.freeze([
  {
    id: "topology",
    title: "network layouts in namespaces (NAT, CONNECT proxy, haproxy, split DNS)",
    files: ["tests/e2e/topology_test.ts"],
    root: true,
    tools: ["ip", "nft", "tinyproxy", "haproxy", "curl", "ssh", "openssl", "bash", "timeout", "ss"],
  },
  {
    id: "netns-harness",
    title: "the network namespace harness",
    files: ["tests/e2e/netns_harness_test.ts"],
    root: true,
    tools: ["ip", "nft", "tinyproxy", "haproxy", "curl", "bash", "timeout"],
  },
  {
    id: "node-e2e",
    title: "node service with the stock ssh",
    files: ["tests/e2e/node_test.ts"],
    root: true,
    tools: ["ssh", "ssh-keygen", "useradd"],
  },
  {
    id: "client-addr-e2e",
    title: "signed client addresses through the proxy, with the stock ssh",
    files: ["tests/e2e/client_addr_test.ts"],
    root: true,
    tools: ["ssh", "curl", "useradd"],
  },
  {
    id: "flood-e2e",
    title: "connection floods beyond the caps under a small open-files limit",
    files: ["tests/e2e/flood_test.ts"],
    root: true,
    tools: ["prlimit", "curl", "useradd"],
  },
  {
    id: "diag-e2e",
    title: "diagnostics endpoint (/healthz, /readyz, /metrics) of real processes, with curl",
    files: ["tests/e2e/diag_test.ts"],
    tools: ["curl"],
  },
  {
    id: "proxy-e2e",
    title: "proxy service with tsh, ssh, curl and openssl",
    files: ["tests/e2e/proxy_test.ts"],
    root: true,
    tools: ["ssh", "curl", "openssl", "useradd"],
  },
  {
    id: "lb-e2e",
    title: "the proxy behind haproxy: TLS termination, --insecure-no-tls, PROXY protocol",
    files: ["tests/e2e/load_balancer_test.ts", "tests/e2e/proxy_protocol_ssh_test.ts"],
    root: true,
    tools: ["haproxy", "openssl", "curl", "useradd", "ssh"],
  },
  {
    id: "l7-lb-e2e",
    title:
      "the proxy behind haproxy mode http: tsh and tunnel agents use /webapi/connectionupgrade",
    files: ["tests/e2e/l7_lb_test.ts"],
    root: true,
    tools: ["haproxy", "openssl", "curl", "ssh", "useradd"],
  },
  {
    id: "webui",
    title: "the web UI in headless Chromium: login, terminal, recording player, audit log",
    files: ["tests/e2e/web_ui_test.ts"],
    root: true,
    tools: ["chromium", "curl", "useradd"],
  },
  {
    id: "resize-e2e",
    title: "terminal resizes in tmux with ssh -tt and tsh ssh -t, recorded and replayed",
    files: ["tests/e2e/resize_test.ts"],
    root: true,
    tools: ["tmux", "ssh", "curl", "useradd"],
  },
  {
    id: "web-api-e2e",
    title: "the web UI's API and terminal WebSocket against a real cluster",
    files: ["tests/e2e/web_api_test.ts"],
    root: true,
    tools: ["curl", "useradd"],
  },
  {
    id: "forward-e2e",
    title: "agent and remote port forwarding with the stock ssh and tsh",
    files: ["tests/e2e/forward_test.ts"],
    root: true,
    tools: ["ssh", "ssh-agent", "ssh-add", "ssh-keygen", "curl", "useradd", "bash"],
  },
  {
    id: "tsh-parity-e2e",
    title: "tsh scp and label targets through a real cluster",
    files: ["tests/e2e/tsh_parity_test.ts"],
    root: true,
    tools: ["scp", "curl", "useradd"],
  },
  {
    id: "join-e2e",
    title: "tsh sessions ls and tsh join (observer, peer, join_sessions) through a real cluster",
    files: ["tests/e2e/join_test.ts"],
    root: true,
    tools: ["curl", "useradd"],
  },
  {
    id: "newcomer",
    title: "the commands teleport start prints, pasted into bash",
    files: ["tests/e2e/newcomer_test.ts"],
    root: true,
    tools: ["bash", "ssh", "curl", "useradd", "npx"],
  },
  {
    id: "os-users",
    title: "commands and PTYs run as an OS test user",
    files: ["lib/node/os_user_test.ts", "lib/node/pty_test.ts", "lib/node/spawn_test.ts"],
    root: true,
    tools: ["useradd", "setpriv"],
  },
  {
    id: "reregister",
    title: "host certificates renewed after a public_addr change, checked by the stock ssh",
    files: ["tests/integration/reregister_test.ts"],
    tools: ["ssh"],
  },
  {
    id: "rotation",
    title: "host and user CA rotation on a running cluster, checked by the stock ssh and tsh",
    files: ["tests/integration/rotation_test.ts"],
    tools: ["ssh", "curl"],
  },
  {
    id: "openssh-sshd",
    title: "tctl certificates against a stock sshd",
    files: ["tests/e2e/openssh_test.ts"],
    tools: ["ssh", "sshd", "ssh-keygen"],
  },
  {
    id: "signals-e2e",
    title: "TERM, QUIT (drain with a live tsh ssh session), USR1 and KILL, with pkill -L",
    files: ["tests/e2e/signals_test.ts"],
    root: true,
    tools: ["pkill", "curl", "useradd"],
  },
  {
    id: "ha",
    title:
      "two auth servers on PostgreSQL and two proxies behind haproxy, kill -9 failover, HUP on PostgreSQL",
    files: ["tests/e2e/ha_test.ts"],
    root: true,
    tools: [
      "ip",
      "haproxy",
      "nft",
      "curl",
      "openssl",
      "bash",
      "timeout",
      "runuser",
      "ssh",
      "pkill",
      "useradd",
      "/usr/lib/postgresql/15/bin/initdb",
      "/usr/lib/postgresql/15/bin/pg_ctl",
    ],
  },
  {
    id: "reload",
    title: "graceful restart (SIGHUP) under load, in a network namespace, with the stock ssh",
    files: ["tests/e2e/reload_test.ts"],
    root: true,
    tools: ["ip", "ssh", "pkill", "curl"],
  },
  {
    id: "systemd-unit",
    title: "the unit teleport install systemd writes, checked by systemd-analyze verify",
    files: ["cli/start/install_test.ts"],
    tools: ["systemd-analyze"],
  },
  {
    id: "auth-e2e",
    title: "teleport start and tctl against a real auth service",
    files: ["tests/e2e/auth_cluster_test.ts"],
    tools: ["openssl", "sha256sum"],
  },
  {
    id: "tinyproxy-dial",
    title: "dialing through a real tinyproxy",
    files: ["lib/net/dial_test.ts"],
    tools: ["tinyproxy"],
  },
  {
    id: "postgres",
    title: "the PostgreSQL backend against a PostgreSQL 15 of its own (initdb as user postgres)",
    files: [
      "lib/backend/postgres_test.ts",
      "lib/events/pg_audit_log_test.ts",
      "lib/events/pg_recording_store_test.ts",
      "tests/integration/pg_storage_test.ts",
    ],
    root: true,
    tools: ["/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl", "runuser"],
  },
  {
    id: "web-client-proxy-env",
    title: "tsh's web client through HTTPS_PROXY",
    files: ["lib/client/web_test.ts"],
  },
]);

const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Path of command `name` in the system directories or on the PATH, or undefined. */
export function findCommand(name: string, path = Deno.env.get("PATH") ?? ""): string | undefined {
  if (name.startsWith("/")) {
    try {
      return Deno.statSync(name).isFile ? name : undefined;
    } catch {
      return undefined;
    }
  }
  for (const dir of [...SYSTEM_DIRS, ...path.split(":").filter((d) => d !== "")]) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The Debian package that provides command `tool`, when the table knows it. */
export function packageOf(tool: string): string | undefined {
  return PACKAGES.find((p) => p.tools.includes(tool))?.name;
}

/** Why `group` cannot run on this machine (empty when it can). */
export function missingFor(group: TestGroup): string[] {
  const reasons: string[] = [];
  if (group.root === true && Deno.uid() !== 0) reasons.push("needs root");
  const absent = (group.tools ?? []).filter((t) => findCommand(t) === undefined);
  if (absent.length > 0) {
    reasons.push(
      `needs ${
        absent.map((t) => {
          const pkg = packageOf(t);
          return pkg === undefined || pkg === t ? t : `${t} (${pkg})`;
        }).join(", ")
      }`,
    );
  }
  return reasons;
}

/** The group named `id`; throws for an unknown one (a typo in a test). */
export function groupById(id: string): TestGroup {
  const group = GROUPS.find((g) => g.id === id);
  if (group === undefined) {
    throw new Error(`Cannot find test group "${id}": add it to GROUPS in tools/prereqs.ts`);
  }
  return group;
}

/**
 * True when the tests of group `id` must be skipped here (for `ignore:`). Never in CI (`CI`
 * set): there they run and fail loudly. `deno task test` reports every skipped group.
 */
export function skipGroup(id: string): boolean {
  const group = groupById(id);
  if (Deno.env.get("CI")) return false;
  return missingFor(group).length > 0;
}
