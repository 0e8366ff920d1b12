/**
 * Teleport inside netns topologies (tests/e2e/_netns.ts): cluster and agent configs, join tokens,
 * user enrollment and `tsh login` where every call runs inside the right namespace (tctl on the
 * auth host; curl and tsh on the client host, against the proxy's public name), `tsh ssh` and the
 * stock `ssh` through `tsh config`, and readiness of tunnel agents from their logs.
 */
import * as OTPAuth from "otpauth";
import type { Host, Proc, RunResult, Topology } from "./_netns.ts";
import { TEST_PASSWORD } from "./_proxy.ts";

/** Readiness line of a tunnel agent, one per proxy: group 1 = proxy host id, 2 = address. */
export const TUNNEL_UP = /Reverse tunnel to proxy (\S+) at (\S+) is up/;

/** Options of {@link writeTeleportConfig}. */
export interface TeleportConfigOptions {
  /** `teleport.nodename`. */
  nodename: string;
  dataDir: string;
  /** Auth service settings; absent = auth disabled. */
  auth?: {
    clusterName: string;
    mode: "multiplex" | "separate";
    /** @default "0.0.0.0:3025" */
    listenAddr?: string;
    /** `teleport.storage` on PostgreSQL (password from `passwordFile`). @default Deno KV */
    storage?: { connString: string; passwordFile: string };
    /** `audit_events_uri` and `audit_sessions_uri`. @default files in the data dir */
    auditUri?: string;
    /** `auth_service.public_addr` (a load balancer in front of several auth servers). */
    publicAddr?: string[];
  };
  /** Proxy service settings; absent = proxy disabled. */
  proxy?: {
    /** @default "0.0.0.0:3080" */
    webListenAddr?: string;
    /** Proxy SSH listener (separate mode). */
    listenAddr?: string;
    /** Tunnel listener (separate mode). */
    tunnelListenAddr?: string;
    publicAddr?: string[];
    sshPublicAddr?: string[];
    tunnelPublicAddr?: string[];
    httpsKeyPairs?: { keyFile: string; certFile: string }[];
  };
  /** SSH service (a node); absent = disabled. */
  ssh?: { labels?: Record<string, string>; listenAddr?: string };
  /** Agent join settings. */
  join?: { proxyServer?: string; authServer?: string; token?: string; caPins?: string[] };
}

const yamlList = (items: string[], indent: string) =>
  items.map((i) => `\n${indent}- ${JSON.stringify(i)}`).join("");

/** Writes a `version: v3` teleport.yaml to `path`; returns the path. */
export async function writeTeleportConfig(path: string, o: TeleportConfigOptions): Promise<string> {
  const lines = [
    "version: v3",
    "teleport:",
    `  nodename: ${o.nodename}`,
    `  data_dir: ${o.dataDir}`,
  ];
  if (o.join?.proxyServer) lines.push(`  proxy_server: ${o.join.proxyServer}`);
  if (o.join?.authServer) lines.push(`  auth_server: ${o.join.authServer}`);
  if (o.join?.token) lines.push(`  auth_token: ${o.join.token}`);
  if (o.join?.caPins?.length) lines.push(`  ca_pin:${yamlList(o.join.caPins, "    ")}`);
  if (o.auth?.storage) {
    lines.push(
      "  storage:",
      "    type: postgresql",
      `    conn_string: ${JSON.stringify(o.auth.storage.connString)}`,
      `    password_file: ${o.auth.storage.passwordFile}`,
    );
  }
  if (o.auth) {
    lines.push(
      "auth_service:",
      "  enabled: true",
      `  listen_addr: ${o.auth.listenAddr ?? "0.0.0.0:3025"}`,
      `  cluster_name: ${o.auth.clusterName}`,
      `  proxy_listener_mode: ${o.auth.mode}`,
      "  authentication:",
      "    type: local",
      "    second_factor: otp",
    );
    if (o.auth.publicAddr?.length) {
      lines.push(`  public_addr:${yamlList(o.auth.publicAddr, "    ")}`);
    }
    if (o.auth.auditUri) {
      lines.push(
        `  audit_events_uri: ${JSON.stringify(o.auth.auditUri)}`,
        `  audit_sessions_uri: ${JSON.stringify(o.auth.auditUri)}`,
      );
    }
  } else {
    lines.push("auth_service:", "  enabled: false");
  }
  if (o.proxy) {
    const p = o.proxy;
    lines.push("proxy_service:", "  enabled: true");
    lines.push(`  web_listen_addr: ${p.webListenAddr ?? "0.0.0.0:3080"}`);
    if (p.listenAddr) lines.push(`  listen_addr: ${p.listenAddr}`);
    if (p.tunnelListenAddr) lines.push(`  tunnel_listen_addr: ${p.tunnelListenAddr}`);
    if (p.publicAddr?.length) lines.push(`  public_addr:${yamlList(p.publicAddr, "    ")}`);
    if (p.sshPublicAddr?.length) {
      lines.push(`  ssh_public_addr:${yamlList(p.sshPublicAddr, "    ")}`);
    }
    if (p.tunnelPublicAddr?.length) {
      lines.push(`  tunnel_public_addr:${yamlList(p.tunnelPublicAddr, "    ")}`);
    }
    if (p.httpsKeyPairs?.length) {
      lines.push("  https_keypairs:");
      for (const k of p.httpsKeyPairs) {
        lines.push(`    - key_file: ${k.keyFile}`, `      cert_file: ${k.certFile}`);
      }
    }
  } else {
    lines.push("proxy_service:", "  enabled: false");
  }
  if (o.ssh) {
    lines.push("ssh_service:", "  enabled: true");
    if (o.ssh.listenAddr) lines.push(`  listen_addr: ${o.ssh.listenAddr}`);
    const labels = Object.entries(o.ssh.labels ?? {});
    if (labels.length > 0) {
      lines.push("  labels:", ...labels.map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`));
    }
  } else {
    lines.push("ssh_service:", "  enabled: false");
  }
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** A `teleport start` running in a namespace. */
export interface Started {
  host: Host;
  proc: Proc;
  /** stdout up to and including the readiness banner. */
  banner: string;
}

/**
 * `teleport start ARGS` on `host`; resolves once the banner ("Stop with") is printed. Rejects
 * with the process's output when it exits first or `timeoutMs` passes.
 */
export async function startTeleportIn(
  host: Host,
  args: string[],
  o: { env?: Record<string, string>; name?: string; timeoutMs?: number } = {},
): Promise<Started> {
  const proc = host.teleport(["start", ...args, ...(Deno.env.get("TP_DEBUG") ? ["--debug"] : [])], {
    ...(o.env ? { env: o.env } : {}),
    name: o.name ?? "teleport",
  });
  await proc.waitForOutput(/Stop with/, o.timeoutMs ?? 60_000, "stdout");
  return { host, proc, banner: proc.stdout };
}

/** A join token and the CA pins, from `tctl tokens add --format=json` on the auth host. */
export interface JoinToken {
  token: string;
  pins: string[];
}

/** `tctl -c CONFIG tokens add --type=TYPE --format=json` on `auth`. */
export async function addToken(auth: Host, config: string, type: string): Promise<JoinToken> {
  const r = await auth.cli([
    "tctl",
    "-c",
    config,
    "tokens",
    "add",
    `--type=${type}`,
    "--format=json",
  ]);
  if (r.code !== 0) {
    throw new Error(`tctl tokens add --type=${type} failed: ${r.stderr}${r.stdout}`);
  }
  const j = JSON.parse(r.stdout) as { token: string; ca_pins: string[] };
  if (typeof j.token !== "string" || !Array.isArray(j.ca_pins) || j.ca_pins.length === 0) {
    throw new Error(`unexpected tctl tokens add output: ${r.stdout}`);
  }
  return { token: j.token, pins: j.ca_pins };
}

/** Runs curl on `client` (`-sk`); throws on a transport failure. */
async function curl(client: Host, args: string[], stdin?: string): Promise<string> {
  const r = await client.run("curl", ["-sSk", "--max-time", "20", ...args], {
    ...(stdin === undefined ? {} : { stdin }),
    name: "curl",
  });
  if (r.code !== 0) throw new Error(`curl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * Invites `user` with `tctl users add` on the auth host, then — from the client host, through the
 * proxy's public address `proxy` (`host:port`) — opens the invite page, reads the TOTP secret and
 * sets the password with the first code. Returns the TOTP.
 */
export async function enrollUser(o: {
  auth: Host;
  config: string;
  client: Host;
  proxy: string;
  user: string;
  roles: string;
  logins: string;
}): Promise<OTPAuth.TOTP> {
  const add = await o.auth.cli([
    "tctl",
    "-c",
    o.config,
    "users",
    "add",
    o.user,
    `--roles=${o.roles}`,
    `--logins=${o.logins}`,
  ]);
  const m = /\/web\/invite\/([0-9a-f]+)/.exec(add.stdout);
  if (add.code !== 0 || m === null) {
    throw new Error(`tctl users add ${o.user} failed: ${add.stderr}${add.stdout}`);
  }
  const token = m[1]!;
  const base = `https://${o.proxy}`;
  const page = await curl(o.client, [`${base}/web/invite/${token}`]);
  if (!/<html/i.test(page)) throw new Error(`no invite page at ${base}: ${page.slice(0, 300)}`);
  const details = JSON.parse(
    await curl(o.client, [`${base}/webapi/users/password/token/${token}`]),
  );
  if (details.user !== o.user || !/^otpauth:\/\/totp\//.test(details.otpauth_uri ?? "")) {
    throw new Error(`unexpected token details: ${JSON.stringify(details)}`);
  }
  const totp = OTPAuth.URI.parse(details.otpauth_uri) as OTPAuth.TOTP;
  const put = await curl(o.client, [
    "-X",
    "PUT",
    "-H",
    "Content-Type: application/json",
    "--data-binary",
    "@-",
    `${base}/webapi/users/password/token`,
  ], JSON.stringify({ token, password: TEST_PASSWORD, second_factor_token: totp.generate() }));
  if (JSON.parse(put).user !== o.user) throw new Error(`setting the password failed: ${put}`);
  return totp;
}

/** A tsh profile home on a client host. */
export interface TshClient {
  host: Host;
  /** TELEPORT_HOME. */
  home: string;
}

/** Runs `tsh ARGS` on the client with its TELEPORT_HOME. */
export function tsh(
  c: TshClient,
  args: string[],
  o: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  return c.host.cli(["tsh", ...args], {
    env: { TELEPORT_HOME: c.home, ...o.env },
    ...(o.stdin === undefined ? {} : { stdin: o.stdin }),
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
  });
}

/**
 * `tsh login --proxy=PROXY --user=USER --insecure` on the client with password + the TOTP code of
 * the next time step (enrollment used the current one). Throws with tsh's output on failure.
 */
export async function tshLogin(
  c: TshClient,
  o: { proxy: string; user: string; totp: OTPAuth.TOTP },
): Promise<RunResult> {
  const code = o.totp.generate({ timestamp: Date.now() + 30_000 });
  const r = await tsh(c, ["login", `--proxy=${o.proxy}`, `--user=${o.user}`, "--insecure"], {
    stdin: `${TEST_PASSWORD}\n${code}\n`,
  });
  if (r.code !== 0) throw new Error(`tsh login --proxy=${o.proxy} failed: ${r.stderr}${r.stdout}`);
  return r;
}

/**
 * Runs `tsh ssh LOGIN@NODE COMMAND` until it succeeds (the node's tunnel and heartbeat may lag
 * its readiness line); returns the successful result and how many attempts it took.
 */
export async function tshSshEventually(
  c: TshClient,
  target: string,
  command: string,
  timeoutMs = 30_000,
): Promise<RunResult & { attempts: number; elapsedMs: number }> {
  const start = Date.now();
  let last: RunResult | undefined;
  let attempts = 0;
  while (Date.now() - start < timeoutMs) {
    attempts++;
    const left = timeoutMs - (Date.now() - start);
    last = await tsh(c, ["ssh", target, command], { timeoutMs: Math.min(20_000, left) });
    if (last.code === 0) return { ...last, attempts, elapsedMs: Date.now() - start };
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `tsh ssh ${target} did not succeed within ${timeoutMs} ms (${attempts} attempts); last: ` +
      `exit ${last?.code}: ${last?.stderr}${last?.stdout}`,
  );
}

/**
 * The stock OpenSSH client on the client host, configured by `tsh config` (ProxyCommand runs
 * `tsh proxy ssh` in the same namespace): `ssh -F <config> LOGIN@NODE.CLUSTER COMMAND`.
 */
export async function stockSsh(
  topo: Topology,
  c: TshClient,
  target: string,
  command: string,
): Promise<RunResult> {
  const cfg = await tsh(c, ["config"]);
  if (cfg.code !== 0) throw new Error(`tsh config failed: ${cfg.stderr}`);
  const file = `${topo.dir}/ssh_config-${c.host.name}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(file, cfg.stdout);
  return await c.host.run("ssh", [
    "-F",
    file,
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "ConnectTimeout=20",
    target,
    command,
  ], { name: "ssh", timeoutMs: 40_000 });
}

/**
 * Resolves with the distinct tunnels (proxy id → address) once an agent logged `count` distinct
 * "Reverse tunnel to proxy … is up" lines.
 */
export async function waitForTunnels(
  agent: Proc,
  count: number,
  timeoutMs = 30_000,
): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tunnels = new Map(agent.matches(TUNNEL_UP).map((m) => [m[1]!, m[2]!]));
    if (tunnels.size >= count) return tunnels;
    if (agent.exitStatus !== undefined) {
      throw new Error(
        `${agent.label} exited (code ${agent.exitStatus.code}) with ${tunnels.size} of ${count} ` +
          `reverse tunnels up`,
      );
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(
        `${agent.label}: ${tunnels.size} of ${count} reverse tunnels up after ${timeoutMs} ms ` +
          `(${[...tunnels.keys()].join(", ") || "none"})`,
      );
    }
    // Wake on the next tunnel line, a repeat included (or give up at the deadline).
    const lines = agent.matches(TUNNEL_UP).length;
    await agent.waitForOutput(
      new RegExp(`(?:${TUNNEL_UP.source}[\\s\\S]*?){${lines + 1}}`),
      left,
    ).catch(() => {});
  }
}

/** Writes a self-signed web certificate for `names` (first = CN) into `dir`; returns the pair. */
export async function writeWebCert(
  host: Host,
  dir: string,
  names: string[],
): Promise<{ keyFile: string; certFile: string }> {
  const keyFile = `${dir}/web-key.pem`;
  const certFile = `${dir}/web-cert.pem`;
  await host.exec("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${names[0]}`,
    "-addext",
    `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ], { name: "openssl" });
  return { keyFile, certFile };
}
