/**
 * The high-availability layout of issue 15 in network namespaces (tests/e2e/_netns.ts), shared
 * by tests/e2e/ha_test.ts and bench/ha.ts:
 *
 * ```
 *   db (PostgreSQL 15 on 10.5.0.2:5432)
 *   auth1, auth2 ── authlb (haproxy TCP :3025) ── proxya, proxyb, nodea (direct), nodec
 *   proxya, proxyb ── lb (haproxy TCP :3080, multiplex) ── client, nodeb (tunnel)
 * ```
 *
 * Two auth servers of one cluster share the database (state, audit log, recordings);
 * proxies and direct nodes reach auth only through `auth.example.com:3025` (authlb, which auth
 * lists in `public_addr`); the client and the tunnel node reach the proxies only through
 * `lb.example.com:3080`. Each phase is a method; callers run them as test steps or bench
 * phases.
 */
import assert from "node:assert/strict";
import type * as OTPAuth from "otpauth";
import { type PgServer, startPostgres } from "../../lib/backend/mod.ts";
import { type Host, type Lan, type Proc, startHaproxy, type Topology } from "./_netns.ts";
import {
  addToken,
  enrollUser,
  type Started,
  startTeleportIn,
  type TshClient,
  tshLogin,
  waitForTunnels,
  writeTeleportConfig,
  writeWebCert,
} from "./_topology_enroll.ts";

export const CLUSTER = "ha";
export const LOGIN = "root";
/** The proxies' public address (the web load balancer). */
export const PROXY = "lb.example.com:3080";
/** The auth servers' address behind their load balancer. */
export const AUTH = "auth.example.com:3025";
/** How long a process may take to print its banner (joins included). */
export const START_TIMEOUT_MS = 60_000;
/** haproxy's line when server `s<i>` of the (only) backend comes up again. */
export const serverUp = (i: number): RegExp => new RegExp(`b0/s${i} is UP`);
/** haproxy's line when server `s<i>` of the (only) backend goes down. */
export const serverDown = (i: number): RegExp => new RegExp(`b0/s${i} is DOWN`);

/** Resolves once `proc` printed `re` at least `count` times. */
export async function waitForCount(
  proc: Proc,
  re: RegExp,
  count: number,
  timeoutMs = 30_000,
): Promise<void> {
  await proc.waitForOutput(new RegExp(`(?:${re.source}[\\s\\S]*?){${count}}`), timeoutMs);
}

/** A teleport process of the layout: where it runs, how it was started, its current run. */
export interface Member {
  host: Host;
  args: string[];
  started?: Started;
}

/** An auth server: a {@link Member} with its config file (tctl runs with it). */
export interface AuthMember extends Member {
  config: string;
}

/** The layout; see the module doc. */
export class HaCluster {
  readonly auths: AuthMember[] = [];
  readonly proxies: Member[] = [];
  authHaproxy?: Proc;
  webHaproxy?: Proc;
  nodeA?: Started;
  tunnelNode?: Started;

  private constructor(
    readonly topo: Topology,
    readonly pg: PgServer,
    readonly hosts: {
      db: Host;
      authLb: Host;
      proxies: Host[];
      lb: Host;
      nodeA: Host;
      nodeB: Host;
      nodeC: Host;
      client: Host;
    },
    readonly out: Lan,
  ) {}

  /** Adds the hosts and starts PostgreSQL on `db`. Dispose the result before the topology. */
  static async create(topo: Topology): Promise<HaCluster> {
    const dc = await topo.addLan("dc", "10.5.0.0/24");
    const out = await topo.addLan("out", "10.6.0.0/24");
    const on = (ip: string) => ({ lans: [{ lan: dc, ip }] });
    const db = await topo.addHost("db", on("10.5.0.2"));
    const authHosts = [
      await topo.addHost("auth1", on("10.5.0.3")),
      await topo.addHost("auth2", on("10.5.0.4")),
    ];
    const authLb = await topo.addHost("authlb", on("10.5.0.5"));
    const proxies = [
      await topo.addHost("proxya", on("10.5.0.6")),
      await topo.addHost("proxyb", on("10.5.0.7")),
    ];
    // The web load balancer is the only host on both LANs, and it forwards nothing itself.
    const lb = await topo.addHost("lb", {
      lans: [{ lan: out, ip: "10.6.0.8" }, { lan: dc, ip: "10.5.0.8" }],
    });
    const nodeA = await topo.addHost("nodea", on("10.5.0.9"));
    const nodeC = await topo.addHost("nodec", on("10.5.0.11"));
    const client = await topo.addHost("client", { lans: [{ lan: out, ip: "10.6.0.10" }] });
    const nodeB = await topo.addHost("nodeb", { lans: [{ lan: out, ip: "10.6.0.20" }] });
    await topo.addNames({ "lb.example.com": lb.ip(out), "auth.example.com": authLb.ip() });
    const pg = await startPostgres({
      listen: { address: db.ip(), port: 5432, allow: "10.5.0.0/24", netns: db.ns },
    });
    const c = new HaCluster(topo, pg, {
      db,
      authLb,
      proxies,
      lb,
      nodeA,
      nodeB,
      nodeC,
      client,
    }, out);
    for (const host of authHosts) {
      const config = `${topo.dir}/${host.name}.yaml`;
      c.auths.push({ host, config, args: ["--config", config] });
    }
    return c;
  }

  /** A tsh home for `user` on the client host. */
  tshClient(user: string): TshClient {
    return { host: this.hosts.client, home: `${this.topo.dir}/tsh-${user}` };
  }

  /**
   * Both auth servers start at once on the shared database (the second does not wait for the
   * first to create the CAs); checks they serve one host CA; starts authlb.
   */
  async startAuths(): Promise<void> {
    await this.pg.psql("CREATE DATABASE audit OWNER teleport", "postgres");
    // The password comes from a file only the auth hosts read.
    const passwordFile = `${this.topo.dir}/pg-password`;
    await Deno.writeTextFile(passwordFile, `${this.pg.password}\n`, { mode: 0o600 });
    const url = new URL(this.pg.url);
    url.password = "";
    for (const a of this.auths) {
      await writeTeleportConfig(a.config, {
        nodename: a.host.name,
        dataDir: `${this.topo.dir}/${a.host.name}-data`,
        auth: {
          clusterName: CLUSTER,
          mode: "multiplex",
          storage: { connString: url.href, passwordFile },
          auditUri: url.href.replace(/\/teleport$/, "/audit"),
          // Proxies sign client addresses for the balancer's address, which auth accepts.
          publicAddr: [AUTH],
        },
      });
    }
    await Promise.all(this.auths.map((a) => this.start(a)));
    const pins = await Promise.all(this.auths.map(async (a) => {
      const r = await a.host.cli(["tctl", "-c", a.config, "status"]);
      assert.equal(r.code, 0, r.stderr);
      return /CA pin\s+(sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
    }));
    assert.ok(pins[0]);
    assert.equal(pins[1], pins[0], "both auth servers serve one host CA");
    this.authHaproxy = await startHaproxy(this.hosts.authLb, {
      // Requests on a connection to an auth server that vanished fail as soon as the health
      // check notices, instead of hanging until the client's timeout.
      serverOptions: "on-marked-down shutdown-sessions",
      frontends: [{
        bind: `${this.hosts.authLb.ip()}:3025`,
        backends: this.auths.map((a) => `${a.host.ip()}:3025`),
      }],
    });
  }

  /** (Re)starts a member with its arguments; resolves at its banner. */
  async start(m: Member): Promise<Started> {
    m.started = await startTeleportIn(m.host, m.args, {
      name: m.host.name,
      timeoutMs: START_TIMEOUT_MS,
    });
    return m.started;
  }

  /** `kill -9` of a member; resolves once it is gone. */
  async kill(m: Member): Promise<void> {
    m.started!.proc.kill("SIGKILL");
    await m.started!.proc.status;
  }

  /** Two proxies join through authlb with one web certificate; lb balances over both. */
  async startProxies(): Promise<void> {
    const auth = this.auths[0]!;
    const pair = await writeWebCert(auth.host, this.topo.dir, ["lb.example.com"]);
    for (const h of this.hosts.proxies) {
      const join = await addToken(auth.host, auth.config, "proxy");
      const config = await writeTeleportConfig(`${this.topo.dir}/${h.name}.yaml`, {
        nodename: h.name,
        dataDir: `${this.topo.dir}/${h.name}-data`,
        proxy: { webListenAddr: "0.0.0.0:3080", publicAddr: [PROXY], httpsKeyPairs: [pair] },
      });
      this.proxies.push({
        host: h,
        args: [
          "--roles=proxy",
          `--auth-server=${AUTH}`,
          `--token=${join.token}`,
          ...join.pins.map((p) => `--ca-pin=${p}`),
          `--config=${config}`,
        ],
      });
    }
    await Promise.all(this.proxies.map((p) => this.start(p)));
    this.webHaproxy = await startHaproxy(this.hosts.lb, {
      frontends: [{
        bind: `${this.hosts.lb.ip(this.out)}:3080`,
        backends: this.hosts.proxies.map((h) => `${h.ip()}:3080`),
      }],
    });
  }

  /**
   * `tctl users add` on `auth`, the invite and TOTP enrollment through the load balancer from
   * the client host, then `tsh login`; returns the user's tsh home.
   */
  async enrollAndLogin(user: string, auth = this.auths[0]!): Promise<TshClient> {
    const totp: OTPAuth.TOTP = await enrollUser({
      auth: auth.host,
      config: auth.config,
      client: this.hosts.client,
      proxy: PROXY,
      user,
      roles: "access",
      logins: LOGIN,
    });
    const c = this.tshClient(user);
    await tshLogin(c, { proxy: PROXY, user, totp });
    return c;
  }

  /** nodea joins authlb and listens on its address; nodeb joins lb and tunnels to both proxies. */
  async startNodes(): Promise<void> {
    const auth = this.auths[1]!;
    const [joinA, joinB] = [
      await addToken(auth.host, auth.config, "node"),
      await addToken(auth.host, auth.config, "node"),
    ];
    const configA = await writeTeleportConfig(`${this.topo.dir}/nodea.yaml`, {
      nodename: "nodea",
      dataDir: `${this.topo.dir}/nodea-data`,
      ssh: { listenAddr: `${this.hosts.nodeA.ip()}:3022` },
      join: { authServer: AUTH, token: joinA.token, caPins: joinA.pins },
    });
    [this.nodeA, this.tunnelNode] = await Promise.all([
      startTeleportIn(this.hosts.nodeA, ["--config", configA], {
        name: "nodea",
        timeoutMs: START_TIMEOUT_MS,
      }),
      startTeleportIn(this.hosts.nodeB, [
        "--roles=node",
        `--proxy-server=${PROXY}`,
        `--token=${joinB.token}`,
        ...joinB.pins.map((p) => `--ca-pin=${p}`),
        "--insecure",
        `--data-dir=${this.topo.dir}/nodeb-data`,
        "--nodename=nodeb",
      ], { name: "nodeb", timeoutMs: START_TIMEOUT_MS }),
    ]);
    assert.equal((await waitForTunnels(this.tunnelNode.proc, 2, START_TIMEOUT_MS)).size, 2);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.pg.stop();
  }
}
