/**
 * CA rotation on a running cluster: auth, proxy and a direct node in one process, a reverse
 * tunnel node in another, the stock `ssh` jumping through the proxy to both nodes. A host CA
 * rotation and a user CA rotation run phase by phase (manual mode), then a rollback; at every
 * phase both nodes stay reachable with the keys and certificates a client has, sessions opened
 * before the rotation keep running, and after standby the old CA pin no longer joins.
 */
import assert from "node:assert/strict";
import {
  formatAuthorizedKey,
  formatOpenSshPrivateKey,
  generateSshKeyPair,
  parseAuthorizedKey,
  parseSshCertificate,
} from "../../lib/ca/mod.ts";
import type { AuthClient } from "../../lib/authclient/mod.ts";
import { joinWithToken } from "../../lib/authclient/mod.ts";
import { resolveProcessConfig } from "../../lib/config/mod.ts";
import { type IdentityFile, readIdentityFile } from "../../lib/identity/mod.ts";
import { getComponentLogger } from "../../lib/log/mod.ts";
import {
  type CertAuthority,
  rotationOf,
  type RotationPhase,
  type ServerResource,
  trustedKeys,
} from "../../lib/resource/mod.ts";
import { type NodeReady, type ProxyReady, TeleportProcess } from "../../lib/service/mod.ts";
import { skipGroup } from "../../tools/prereqs.ts";
import { runCli } from "../e2e/_helpers.ts";
import { enrollInvite, tshLogin } from "../e2e/_proxy.ts";
import { startTestCluster } from "./_cluster.ts";

const LOGIN = Deno.env.get("USER") ?? "root";
/** How often hosts and auth check the CAs here (production: a minute). */
const REFRESH_MS = 100;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Waits until `check` holds, re-checking as the hosts' refresh loops run. */
async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, REFRESH_MS));
  }
}

/** The CA keys of a known_hosts file written by writeKnownHosts or tctl auth export. */
async function readKnown(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l.startsWith("@cert-authority"))
    .map((l) => formatAuthorizedKey(parseAuthorizedKey(l.split(/\s+/).slice(2, 4).join(" ")).blob));
}

/** A user's key and certificate files for the stock ssh. */
interface UserKeyFiles {
  key: string;
  cert: string;
}

async function login(admin: AuthClient, dir: string, name: string): Promise<UserKeyFiles> {
  const key = await generateSshKeyPair("ed25519");
  const certs = await admin.generateUserCerts({
    user: "alice",
    ttl_ms: 3_600_000,
    ssh_public_key: formatAuthorizedKey(key.publicKeyBlob),
  });
  const files = { key: `${dir}/${name}`, cert: `${dir}/${name}-cert.pub` };
  await Deno.writeTextFile(files.key, await formatOpenSshPrivateKey(key, "alice"), { mode: 0o600 });
  await Deno.writeTextFile(files.cert, certs.sshCert! + "\n");
  return files;
}

/** known_hosts trusting every host CA key the cluster trusts now (`tctl auth export`). */
async function writeKnownHosts(admin: AuthClient, path: string): Promise<string[]> {
  const ca = await admin.getResource("cert_authority", "host") as CertAuthority;
  const keys = trustedKeys(ca).ssh.map((k) => formatAuthorizedKey(parseAuthorizedKey(k).blob));
  await Deno.writeTextFile(path, keys.map((k) => `@cert-authority * ${k}\n`).join(""));
  return keys;
}

/** Arguments of the stock ssh jumping through the proxy to `node`, checking both host certs. */
function sshArgs(o: {
  proxyPort: number;
  /** The proxy's node name: its certificate lists `<name>.<cluster>`. */
  proxyName: string;
  node: string;
  user: UserKeyFiles;
  knownHosts: string;
  command: string;
}): string[] {
  const opts = [
    "BatchMode=yes",
    "StrictHostKeyChecking=yes",
    `UserKnownHostsFile=${o.knownHosts}`,
    "GlobalKnownHostsFile=/dev/null",
    "IdentitiesOnly=yes",
    "IdentityAgent=none",
    `IdentityFile=${o.user.key}`,
    `CertificateFile=${o.user.cert}`,
    "LogLevel=ERROR",
  ];
  // One option set for both hops: -J runs a second ssh with the same command-line -o's only
  // through ProxyCommand, so give it explicitly.
  const jump = [
    "ssh",
    ...opts.flatMap((x) => ["-o", x]),
    "-o",
    `HostKeyAlias=${o.proxyName}.example`,
    "-p",
    String(o.proxyPort),
    "-W",
    "%h:%p",
  ]
    .join(" ");
  return [
    "-F",
    "/dev/null",
    ...opts.flatMap((x) => ["-o", x]),
    "-o",
    `ProxyCommand=${jump} ${LOGIN}@127.0.0.1`,
    "-o",
    // tctl auth export trusts the host CA for `*.<cluster>`, the names tsh uses too.
    `HostKeyAlias=${o.node}.example`,
    `${LOGIN}@${o.node}`,
    o.command,
  ];
}

async function sshRun(o: Parameters<typeof sshArgs>[0]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("ssh", {
    args: sshArgs(o),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: text(r.stdout) + text(r.stderr) };
}

/** A session held open through the rotation: it answers a line written later. */
class HeldSession {
  readonly #child: Deno.ChildProcess;
  readonly #out: Promise<string>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly started: Promise<void>;

  constructor(o: Omit<Parameters<typeof sshArgs>[0], "command">) {
    const child = new Deno.Command("ssh", {
      args: sshArgs({ ...o, command: "echo started; read line; echo got-$line" }),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const started = Promise.withResolvers<void>();
    this.started = started.promise;
    this.#out = (async () => {
      let all = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        all += chunk;
        if (all.includes("started\n")) started.resolve();
      }
      started.reject(new Error(`the session ended before it started: ${all}`));
      return all;
    })();
  }

  /** Sends a line and returns everything the session printed; it must then exit 0. */
  async finish(line: string): Promise<string> {
    await this.#writer.write(new TextEncoder().encode(`${line}\n`));
    await this.#writer.close();
    const [out, status, err] = await Promise.all([
      this.#out,
      this.#child.status,
      new Response(this.#child.stderr).text(),
    ]);
    assert.equal(status.code, 0, err);
    return out;
  }
}

Deno.test({
  name: "CA rotation keeps a direct node, a tunnel node and the stock ssh working at every phase",
  ignore: skipGroup("rotation"),
  async fn() {
    await using cluster = await startTestCluster({
      configure: (c) => {
        c.roles.proxy = true;
        c.roles.node = true;
        const local = { host: "127.0.0.1", port: 0 };
        c.proxy.webListenAddr = local;
        c.proxy.sshListenAddr = local;
        c.proxy.tunnelListenAddr = local;
        c.ssh.listenAddr = local;
        c.caRefreshIntervalMs = REFRESH_MS;
      },
    });
    const dir = await Deno.makeTempDir({ prefix: "tp-rotation-" });
    const tunnelDir = await Deno.makeTempDir({ prefix: "tp-rotation-tunnel-" });
    const proc = cluster.proc;
    const direct = await proc.supervisor.waitFor("node.ready") as NodeReady;
    const proxy = await proc.supervisor.waitFor("proxy.ready") as ProxyReady;
    using admin = cluster.adminClient();
    const invite = await admin.createUser({
      kind: "user",
      version: "v2",
      metadata: { name: "alice" },
      spec: { roles: ["access"], traits: { logins: [LOGIN] } },
    });

    // The tunnel node joins through the proxy with the CA pin of today.
    const status = await admin.status();
    const oldPin = status.authorities.find((a) => a.type === "host")!.pins[0]!;
    const token = (await admin.createToken({ roles: ["node"], ttlMs: 600_000 })).metadata.name;
    const tunnelConfig = resolveProcessConfig({
      flags: {
        roles: "node",
        dataDir: tunnelDir,
        proxyServer: `127.0.0.1:${proxy.webPort}`,
        token,
        caPins: [oldPin],
        insecure: true,
        nodename: "tunnelnode",
      },
      hostname: "tunnelnode",
      env: {},
    });
    tunnelConfig.caRefreshIntervalMs = REFRESH_MS;
    await using tunnelProc = await TeleportProcess.start({
      config: tunnelConfig,
      hostname: "tunnelnode",
    });
    await tunnelProc.supervisor.waitFor("node.ready");
    await waitUntil(
      "the tunnel node is registered",
      async () =>
        (await admin.listResources("node") as ServerResource[]).some((n) =>
          n.spec.hostname === "tunnelnode"
        ),
    );

    // The proxy, the direct node and the tunnel node (through its tunnel and the proxy) each
    // keep one resource watch open on auth; CA events reach them over it.
    await waitUntil(
      "three resource watches on auth",
      async () => /^auth_watch_streams 3$/m.test(await cluster.proc.metrics.render()),
    );

    const identities = {
      direct: `${cluster.proc.config.dataDir}/node.identity`,
      proxy: `${cluster.proc.config.dataDir}/proxy.identity`,
      tunnel: `${tunnelDir}/node.identity`,
    };
    const readAll = () =>
      Promise.all(Object.values(identities).map((p) => readIdentityFile(p))) as Promise<
        IdentityFile[]
      >;
    const signedBy = (id: IdentityFile) =>
      formatAuthorizedKey(parseSshCertificate(id.sshCert!).signatureKeyBlob);
    const hostCa = async () => await admin.getResource("cert_authority", "host") as CertAuthority;
    const activeHostKey = async () =>
      formatAuthorizedKey(
        parseAuthorizedKey((await hostCa()).spec.active_keys.ssh[0]!.public_key).blob,
      );

    const nodes = [direct.nodeName, "tunnelnode"];
    let user = await login(admin, dir, "alice0");
    const knownAll = `${dir}/known_hosts_all`;
    await writeKnownHosts(admin, knownAll);
    const reachAll = async (phase: string, knownHosts: string) => {
      for (const node of nodes) {
        const r = await sshRun({
          proxyPort: proxy.sshPort,
          proxyName: direct.nodeName,
          node,
          user,
          knownHosts,
          command: `echo ${phase}-ok`,
        });
        assert.equal(r.code, 0, `${phase}, ${node}: ${r.out}`);
        assert.match(r.out, new RegExp(`${phase}-ok`));
      }
    };
    await reachAll("before", knownAll);

    // tsh logged in before the rotation: it must follow the host CA without a new login.
    const tshHome = `${dir}/tsh`;
    const totp = await enrollInvite({
      webPort: proxy.webPort,
      token: invite.token.token,
      user: "alice",
    });
    const tshIn = await tshLogin({ home: tshHome, webPort: proxy.webPort, user: "alice", totp });
    assert.equal(tshIn.code, 0, tshIn.stderr + tshIn.stdout);
    const tsh = (...args: string[]) =>
      runCli(["tsh", ...args], { env: { TELEPORT_HOME: tshHome } });
    const tshKnownHosts = `${tshHome}/known_hosts`;
    const tshCaKeys = async () =>
      (await Deno.readTextFile(tshKnownHosts)).split("\n").filter((l) =>
        l.startsWith("@cert-authority")
      ).map((l) => l.split(/\s+/).slice(2, 4).join(" "));
    const tshReachAll = async (phase: string) => {
      // As after a while without tsh: the cached node and proxy lists have expired.
      await Deno.remove(`${tshHome}/keys/127.0.0.1/alice-cache`, { recursive: true }).catch(
        () => {},
      );
      for (const node of nodes) {
        const r = await tsh("ssh", `${LOGIN}@${node}`, "echo", `${phase}-tsh-ok`);
        assert.equal(r.code, 0, `tsh ssh, ${phase}, ${node}: ${r.stderr}${r.stdout}`);
        assert.match(r.stdout, new RegExp(`${phase}-tsh-ok`));
      }
    };
    await tshReachAll("before");
    assert.equal((await tshCaKeys()).length, 1);

    // Sessions opened before any rotation, answered at the end.
    const held = nodes.map((node) =>
      new HeldSession({
        proxyPort: proxy.sshPort,
        proxyName: direct.nodeName,
        node,
        user,
        knownHosts: knownAll,
      })
    );
    await Promise.all(held.map((h) => h.started));

    /**
     * The admin client follows the host CA as tctl does (it reads the admin identity, which auth
     * rewrites on every host CA change), once the file trusts `caCount` CA certificates.
     */
    const followAdmin = async (caCount: number) => {
      let id: IdentityFile | undefined;
      await waitUntil(`the admin identity trusts ${caCount} host CAs`, async () => {
        id = await readIdentityFile(cluster.ready.adminIdentityPath);
        return id.tlsCaCertPems.length === caCount;
      });
      admin.setCredentials({
        caCertPems: id!.tlsCaCertPems,
        identity: { certPem: id!.tlsCertPem, keyPem: id!.keyPem },
      });
    };
    const rotate = (type: "host" | "user", phase: RotationPhase) =>
      admin.rotateCertAuthority(type, { phase, mode: "manual" });

    // ---- host CA, driven by the tctl CLI ----------------------------------------------------
    const tctl = async (...args: string[]) =>
      await runCli([
        "tctl",
        `--auth-server=127.0.0.1:${cluster.ready.port}`,
        `--identity=${cluster.ready.adminIdentityPath}`,
        ...args,
      ]);
    const init = await tctl("auth", "rotate", "--manual", "--type=host", "--phase=init");
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /Updated rotation phase of the host CA to "init"/);
    const early = await tctl("auth", "rotate", "--manual", "--type=host", "--phase=standby");
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /it is in phase init, which only update_clients or rollback/);
    await waitUntil(
      "every host trusts both host CA generations",
      async () => (await readAll()).every((id) => id.tlsCaCertPems.length === 2),
    );
    await followAdmin(2);
    const bothPins = (await admin.status()).authorities.find((a) => a.type === "host")!.pins;
    assert.equal(bothPins.length, 2);
    const statusOut = (await tctl("status")).stdout;
    assert.match(statusOut, /rotation in progress, phase init, mode manual/);
    for (const pin of bothPins) assert.match(statusOut, new RegExp(`CA pin\\s+${pin}`));
    // Clients learn both keys now: tctl auth export is the known_hosts.
    const exported = await tctl("auth", "export", "--type=host");
    assert.equal(exported.stdout.trim().split("\n").length, 2, exported.stdout);
    await Deno.writeTextFile(knownAll, exported.stdout);
    await reachAll("host-init", knownAll);
    await tshReachAll("host-init");

    const clients = await tctl(
      "auth",
      "rotate",
      "--manual",
      "--type=host",
      "--phase=update_clients",
    );
    assert.equal(clients.code, 0, clients.stderr);
    await reachAll("host-update-clients", knownAll);
    await tshReachAll("host-update-clients");

    const servers = await tctl(
      "auth",
      "rotate",
      "--manual",
      "--type=host",
      "--phase=update_servers",
    );
    assert.equal(servers.code, 0, servers.stderr);
    await followAdmin(2);
    const newHostKey = await activeHostKey();
    await waitUntil(
      "every host serves a certificate of the new host CA key",
      async () => (await readAll()).every((id) => signedBy(id) === newHostKey),
    );
    await reachAll("host-update-servers", knownAll);
    // Hosts and the auth API now present certificates of the new key: tsh refreshes its trusted
    // host CAs from the proxy and goes on, and its known_hosts (tsh config) lists both keys.
    await tshReachAll("host-update-servers");
    assert.deepEqual((await tshCaKeys()).toSorted(), (await readKnown(knownAll)).toSorted());
    assert.equal((await tshCaKeys()).length, 2);
    const tshConfig = await tsh("config");
    assert.equal(tshConfig.code, 0, tshConfig.stderr);
    assert.equal(tshConfig.stderr, "");
    await reachAll("host-update-servers-tsh-known-hosts", tshKnownHosts);

    const standby = await tctl("auth", "rotate", "--manual", "--type=host", "--phase=standby");
    assert.equal(standby.code, 0, standby.stderr);
    await waitUntil(
      "every host trusts only the new host CA",
      async () => (await readAll()).every((id) => id.tlsCaCertPems.length === 1),
    );
    await followAdmin(1);
    const knownNew = `${dir}/known_hosts_new`;
    assert.deepEqual(await writeKnownHosts(admin, knownNew), [newHostKey]);
    await reachAll("host-standby", knownNew);
    await tshReachAll("host-standby");
    // tsh config drops the old key once the cluster no longer trusts it.
    assert.equal((await tsh("config")).code, 0);
    assert.deepEqual(await tshCaKeys(), [newHostKey]);
    await reachAll("host-standby-tsh-known-hosts", tshKnownHosts);
    assert.equal(rotationOf(await hostCa()).phase, "standby");

    // The old pin no longer joins; the new one does.
    const join = (pins: string[]) =>
      joinWithToken({
        host: "127.0.0.1",
        port: cluster.ready.port,
        token: "unused-token-value-0000000000000",
        role: "node",
        hostId: crypto.randomUUID(),
        nodeName: "late",
        caPins: pins,
        additionalPrincipals: [],
        logger: getComponentLogger("test"),
      });
    await assert.rejects(join([oldPin]), /does not match the CA pin/);
    await assert.rejects(join([bothPins.find((p) => p !== oldPin)!]), /join token is invalid/);

    // ---- user CA --------------------------------------------------------------------------
    await rotate("user", "init");
    await reachAll("user-init", knownNew);
    await rotate("user", "update_clients");
    // The certificate from before still works; a new login gets one of the new key.
    await reachAll("user-update-clients-old-cert", knownNew);
    user = await login(admin, dir, "alice1");
    await reachAll("user-update-clients", knownNew);
    await rotate("user", "update_servers");
    await reachAll("user-update-servers", knownNew);
    await rotate("user", "standby");
    // Nodes and proxy drop the old user CA at their next refresh: the old certificate stops.
    const oldUser = { key: `${dir}/alice0`, cert: `${dir}/alice0-cert.pub` };
    await waitUntil("the old user certificate is refused", async () =>
      (await sshRun({
        proxyPort: proxy.sshPort,
        proxyName: direct.nodeName,
        node: direct.nodeName,
        user: oldUser,
        knownHosts: knownNew,
        command: "true",
      })).code !== 0);
    await reachAll("user-standby", knownNew);

    // ---- rollback -------------------------------------------------------------------------
    await rotate("host", "init");
    await rotate("host", "update_clients");
    await rotate("host", "update_servers");
    const rolledKey = await activeHostKey();
    await waitUntil(
      "every host moved to the third host CA key",
      async () => (await readAll()).every((id) => signedBy(id) === rolledKey),
    );
    await rotate("host", "rollback");
    await waitUntil(
      "every host went back to certificates of the previous key",
      async () => (await readAll()).every((id) => signedBy(id) === newHostKey),
    );
    await reachAll("rollback", knownNew);
    await rotate("host", "standby");
    await waitUntil(
      "every host trusts only the previous key again",
      async () => (await readAll()).every((id) => id.tlsCaCertPems.length === 1),
    );
    await reachAll("rollback-standby", knownNew);

    // The sessions opened before the first rotation are still there.
    for (const h of held) assert.match(await h.finish("end"), /started\ngot-end\n/);
    await Deno.remove(dir, { recursive: true });
    await tunnelProc.close();
    await Deno.remove(tunnelDir, { recursive: true });
  },
});

Deno.test({
  name: "semi-automatic rotation moves through its phases by the grace period and the node follows",
  ignore: skipGroup("rotation"),
  async fn() {
    await using cluster = await startTestCluster({
      configure: (c) => {
        c.roles.node = true;
        c.ssh.listenAddr = { host: "127.0.0.1", port: 0 };
        c.caRefreshIntervalMs = REFRESH_MS;
      },
    });
    await cluster.proc.supervisor.waitFor("node.ready");
    using admin = cluster.adminClient();
    const nodePath = `${cluster.proc.config.dataDir}/node.identity`;
    const signer = async () =>
      formatAuthorizedKey(
        parseSshCertificate((await readIdentityFile(nodePath)).sshCert!).signatureKeyBlob,
      );
    const before = await signer();
    const started = await runCli([
      "tctl",
      `--auth-server=127.0.0.1:${cluster.ready.port}`,
      `--identity=${cluster.ready.adminIdentityPath}`,
      "auth",
      "rotate",
      "--type=host",
      "--grace-period=3s",
    ]);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /Semi-automatic rotation \(grace period 3s\): update_clients at/);
    // last_rotated is set only by the move from update_servers to standby.
    await waitUntil("the rotation reached standby", async () => {
      const r = rotationOf(await admin.getResource("cert_authority", "host") as CertAuthority);
      return r.phase === "standby" && r.last_rotated !== undefined;
    });
    const ca = await admin.getResource("cert_authority", "host") as CertAuthority;
    const active = formatAuthorizedKey(
      parseAuthorizedKey(ca.spec.active_keys.ssh[0]!.public_key).blob,
    );
    assert.notEqual(active, before);
    await waitUntil(
      "the node serves a certificate of the new key",
      async () => (await signer()) === active,
    );
  },
});
