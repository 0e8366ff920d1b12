/**
 * Certificate and role restrictions on sessions, checked with the stock OpenSSH clients
 * (`ssh`, `sftp`, `scp`) against an in-process NodeService on 127.0.0.1: a `force-command`
 * certificate runs its command for exec, shell and the sftp subsystem alike, and a role with
 * `ssh_file_copy: false` refuses sftp and the legacy scp protocol (`scp -O`) both ways; stock
 * ssh joins a shared session (`SetEnv TELEPORT_SESSION=…`) as observer or peer.
 */
import assert from "node:assert/strict";
import {
  formatOpenSshPrivateKey,
  generateSshKeyPair,
  signSshCertificate,
  type SshKeyPair,
} from "../ca/mod.ts";
import { RealClock } from "../clock/mod.ts";
import { NotFoundError } from "../errors/mod.ts";
import type { AuditEvent } from "../events/mod.ts";
import { getComponentLogger } from "../log/mod.ts";
import type { CertAuthority, Resource, Role, SessionTracker } from "../resource/mod.ts";
import { ACCESS_ROLE } from "../rbac/mod.ts";
import { driveProcess as drive } from "../testing/mod.ts";
import { ensureTestUser } from "./_os_testing.ts";
import { NodeService } from "./service.ts";

const LOGIN = "td_node_copy";
const CLUSTER = "example";

const NO_COPY: Role = {
  kind: "role",
  version: "v7",
  metadata: { name: "no-copy" },
  spec: {
    options: { max_session_ttl: "1h", ssh_file_copy: false },
    allow: { logins: [LOGIN], node_labels: { "*": "*" } },
    deny: {},
  },
};

/** May watch (not type into) sessions of users holding `access`. */
const WATCH: Role = {
  kind: "role",
  version: "v7",
  metadata: { name: "watch" },
  spec: {
    options: {},
    allow: {
      logins: [LOGIN],
      node_labels: { "*": "*" },
      join_sessions: [{
        name: "oversight",
        roles: ["access"],
        kinds: ["ssh"],
        modes: ["observer"],
      }],
    },
    deny: {},
  },
};

function hasTool(name: string): boolean {
  try {
    Deno.statSync(`/usr/bin/${name}`);
    return true;
  } catch {
    return false;
  }
}

const CLIENTS_MISSING = !["ssh", "sftp", "scp"].every(hasTool) && !Deno.env.get("CI");

async function run(cmd: string, args: string[], stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, out: d.decode(out.stdout), err: d.decode(out.stderr) };
}

/** Writes `<dir>/<name>` (OpenSSH private key) and `<name>-cert.pub` for a user certificate. */
async function userKeyFiles(dir: string, name: string, ca: SshKeyPair, o: {
  roles: string[];
  critical?: Record<string, string>;
  /** Teleport user name (the certificate key id). @default {name} */
  user?: string;
}): Promise<string> {
  const key = await generateSshKeyPair("ed25519");
  const now = Date.now();
  const cert = await signSshCertificate({
    signer: ca,
    publicKeyBlob: key.publicKeyBlob,
    certType: "user",
    keyId: o.user ?? name,
    principals: [LOGIN],
    validAfter: new Date(now - 60_000),
    validBefore: new Date(now + 3_600_000),
    extensions: {
      "permit-pty": "",
      "teleport-roles": JSON.stringify({ roles: o.roles }),
      "teleport-traits": JSON.stringify({ logins: [LOGIN] }),
    },
    ...(o.critical === undefined ? {} : { criticalOptions: o.critical }),
  });
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, await formatOpenSshPrivateKey(key), { mode: 0o600 });
  await Deno.writeTextFile(`${path}-cert.pub`, cert.authorizedKey + "\n");
  return path;
}

/** Options shared by ssh, sftp and scp: no config, batch mode, only this key and cert. */
function clientOptions(key: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    key,
    ...["IdentitiesOnly=yes", "BatchMode=yes", "LogLevel=ERROR", `CertificateFile=${key}-cert.pub`]
      .flatMap((o) => ["-o", o]),
    ...["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"].flatMap((o) => ["-o", o]),
  ];
}

async function startNode(hostCa: SshKeyPair, userCa: SshKeyPair, recordingsDir: string) {
  const hostKey = await generateSshKeyPair("ed25519");
  const hostId = crypto.randomUUID();
  const hostCert = await signSshCertificate({
    signer: hostCa,
    publicKeyBlob: hostKey.publicKeyBlob,
    certType: "host",
    keyId: `${hostId}.${CLUSTER}`,
    principals: [`${hostId}.${CLUSTER}`, "localhost", "127.0.0.1"],
    validAfter: new Date(Date.now() - 60_000),
    validBefore: "forever",
    extensions: { "x-teleport-role": "Node", "x-teleport-authority": CLUSTER },
  });
  const roles: Record<string, Role> = { access: ACCESS_ROLE, "no-copy": NO_COPY, watch: WATCH };
  const userCaResource: CertAuthority = {
    kind: "cert_authority",
    version: "v2",
    metadata: { name: CLUSTER },
    spec: {
      cluster_name: CLUSTER,
      type: "user",
      active_keys: { ssh: [{ public_key: userCa.authorizedKey }], tls: [] },
    },
  };
  const hostCaResource: CertAuthority = {
    ...userCaResource,
    spec: {
      ...userCaResource.spec,
      type: "host",
      active_keys: { ssh: [{ public_key: hostCa.authorizedKey }], tls: [] },
    },
  };
  const events: AuditEvent[] = [];
  const trackers = new Map<string, SessionTracker>();
  const eventWaiters = new Set<() => void>();
  /** Resolves once an event matching `pred` reached auth. */
  const waitEvent = (pred: (e: AuditEvent) => boolean) =>
    new Promise<AuditEvent>((resolve) => {
      const check = () => {
        const found = events.find(pred);
        if (found === undefined) return;
        eventWaiters.delete(check);
        resolve(found);
      };
      eventWaiters.add(check);
      check();
    });
  const node = await NodeService.start({
    keyPem: hostKey.privateKeyPem,
    sshCert: hostCert.authorizedKey,
    userCaKeys: [userCa.authorizedKey],
    hostCaKeys: [hostCa.authorizedKey],
    hostId,
    nodeName: "node1",
    // The node's view of auth: roles and the user CA from memory, events collected.
    auth: {
      getResource(kind, name): Promise<Resource> {
        if (kind === "cert_authority") {
          return Promise.resolve(name === "host" ? hostCaResource : userCaResource);
        }
        const role = roles[name];
        if (role === undefined) return Promise.reject(new NotFoundError(`role ${name}`));
        return Promise.resolve(role);
      },
      heartbeatNode: () => Promise.resolve(),
      upsertSessionTracker: (tracker) => {
        trackers.set(tracker.metadata.name, tracker);
        return Promise.resolve();
      },
      deleteSessionTracker: (sid) => {
        trackers.delete(sid);
        return Promise.resolve();
      },
      emitEvents: (batch) => {
        events.push(...batch);
        for (const w of [...eventWaiters]) w();
        return Promise.resolve();
      },
      uploadRecording: async (_sid, body) => {
        let size = 0;
        for await (const chunk of body) size += chunk.length;
        return { size };
      },
    },
    listen: { hostname: "127.0.0.1", port: 0 },
    labels: {},
    recordingsDir,
    version: "0.0.0-test",
    clock: new RealClock(),
    logger: getComponentLogger("node:test"),
  });
  return { node, events, trackers, waitEvent };
}

Deno.test({
  name: "sessions: force-command covers sftp; ssh_file_copy false refuses sftp and scp -O",
  ignore: CLIENTS_MISSING,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const user = await ensureTestUser(LOGIN);
    const dir = await Deno.makeTempDir({ prefix: "tp-node-copy-" });
    const hostCa = await generateSshKeyPair("ed25519");
    const userCa = await generateSshKeyPair("ed25519");
    const { node, events } = await startNode(hostCa, userCa, `${dir}/recordings`);
    await Deno.mkdir(`${dir}/recordings`);
    const port = String(node.addr.port);
    const home = user.home;
    const keep = `${home}/keep.txt`;
    const marker = `${home}/forced-marker`;
    const writeOwned = async (path: string, text: string) => {
      await Deno.writeTextFile(path, text);
      await Deno.chown(path, user.uid, user.gid);
    };
    const removeQuietly = (path: string) => Deno.remove(path).catch(() => {});
    // Files the steps create or expect absent (left over by an interrupted earlier run).
    const created = [keep, marker, `${home}/allowed.txt`, `${home}/refused.txt`];
    try {
      for (const f of created) await removeQuietly(f);
      await writeOwned(keep, "original content\n");
      const forced = await userKeyFiles(dir, "forced", userCa, {
        roles: ["access"],
        critical: { "force-command": 'printf "%s" "$SSH_ORIGINAL_COMMAND" > ~/forced-marker' },
      });
      const noCopy = await userKeyFiles(dir, "nocopy", userCa, { roles: ["no-copy"] });
      const mayCopy = await userKeyFiles(dir, "maycopy", userCa, { roles: ["access"] });
      const target = `${LOGIN}@127.0.0.1`;
      const ssh = (key: string, command: string) =>
        run("ssh", [...clientOptions(key), "-p", port, target, command]);
      const sftp = (key: string, batch: string) =>
        run("sftp", ["-b", "-", ...clientOptions(key), "-P", port, target], batch);
      const scp = (key: string, ...args: string[]) =>
        run("scp", [...clientOptions(key), "-P", port, ...args]);

      await t.step("force-command replaces exec and passes SSH_ORIGINAL_COMMAND", async () => {
        await removeQuietly(marker);
        const r = await ssh(forced, "cat keep.txt");
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, "", "the forced command ran instead of cat");
        assert.equal(await Deno.readTextFile(marker), "cat keep.txt");
      });

      await t.step("force-command replaces the sftp subsystem: no listing, no write", async () => {
        await removeQuietly(marker);
        const r = await sftp(
          forced,
          `ls -l\nget keep.txt ${dir}/got.txt\nput /etc/hostname keep.txt\n`,
        );
        assert.notEqual(r.code, 0, "sftp cannot speak to the forced command");
        assert.doesNotMatch(r.out, /keep\.txt/);
        assert.equal(await Deno.readTextFile(marker), "sftp", "the forced command ran");
        assert.equal(await Deno.readTextFile(keep), "original content\n");
        await assert.rejects(Deno.stat(`${dir}/got.txt`), Deno.errors.NotFound);
      });

      await t.step("scp -O works when the roles allow file copy", async () => {
        await writeOwned(`${dir}/local.txt`, "uploaded by scp\n");
        const up = await scp(mayCopy, "-O", `${dir}/local.txt`, `${target}:allowed.txt`);
        assert.equal(up.code, 0, up.err);
        assert.equal(await Deno.readTextFile(`${home}/allowed.txt`), "uploaded by scp\n");
        await removeQuietly(`${home}/allowed.txt`);
      });

      await t.step("ssh_file_copy false: scp -O upload and download are refused", async () => {
        const up = await scp(noCopy, "-O", `${dir}/local.txt`, `${target}:refused.txt`);
        assert.notEqual(up.code, 0);
        assert.match(
          up.err,
          /Cannot copy files with scp: file copy is not permitted by your roles/,
        );
        await assert.rejects(Deno.stat(`${home}/refused.txt`), Deno.errors.NotFound);

        const down = await scp(noCopy, "-O", `${target}:keep.txt`, `${dir}/down.txt`);
        assert.notEqual(down.code, 0);
        assert.match(down.err, /file copy is not permitted by your roles/);
        await assert.rejects(Deno.stat(`${dir}/down.txt`), Deno.errors.NotFound);

        // A wrapper does not get around it.
        const wrapped = await ssh(noCopy, "cd /tmp && scp -f ~/keep.txt");
        assert.equal(wrapped.code, 1);
        assert.match(wrapped.err, /file copy is not permitted/);
      });

      await t.step("ssh_file_copy false: scp in sftp mode is refused both ways", async () => {
        const up = await scp(noCopy, `${dir}/local.txt`, `${target}:refused.txt`);
        assert.notEqual(up.code, 0);
        await assert.rejects(Deno.stat(`${home}/refused.txt`), Deno.errors.NotFound);
        const down = await scp(noCopy, `${target}:keep.txt`, `${dir}/down.txt`);
        assert.notEqual(down.code, 0);
        await assert.rejects(Deno.stat(`${dir}/down.txt`), Deno.errors.NotFound);
      });

      await t.step("ssh_file_copy false: other commands still run", async () => {
        const r = await ssh(noCopy, "cat keep.txt; echo scp -t");
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, "original content\nscp -t\n");
      });
    } finally {
      await node.close();
      for (const f of created) await removeQuietly(f);
      await Deno.remove(dir, { recursive: true });
    }

    const refusedScp = events.filter((e) =>
      e.event === "exec" && e.code === "T3002E" && /scp -[tf]/.test(String(e.command))
    );
    assert.ok(refusedScp.length >= 2, "refused scp execs are audited as failures");
    const forcedStart = events.find((e) =>
      e.event === "session.start" && e.original_command === "sftp"
    );
    assert.ok(forcedStart, "the forced sftp session is audited with the original request");
  },
});

Deno.test({
  name: "sessions: stock ssh joins a shared session as observer or peer; others need a policy",
  ignore: CLIENTS_MISSING,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await ensureTestUser(LOGIN);
    const dir = await Deno.makeTempDir({ prefix: "tp-node-join-" });
    const hostCa = await generateSshKeyPair("ed25519");
    const userCa = await generateSshKeyPair("ed25519");
    await Deno.mkdir(`${dir}/recordings`);
    const { node, events, trackers, waitEvent } = await startNode(
      hostCa,
      userCa,
      `${dir}/recordings`,
    );
    const port = String(node.addr.port);
    const target = `${LOGIN}@127.0.0.1`;
    const alice = await userKeyFiles(dir, "alice", userCa, { roles: ["access"] });
    const alice2 = await userKeyFiles(dir, "alice2", userCa, { roles: ["access"], user: "alice" });
    const bob = await userKeyFiles(dir, "bob", userCa, { roles: ["access"] });
    const wendy = await userKeyFiles(dir, "wendy", userCa, { roles: ["watch"] });
    let ownerSid = "";
    const join = (key: string, sid: string, mode: string) =>
      drive("ssh", [
        ...clientOptions(key),
        ...["-o", `SetEnv=TELEPORT_SESSION=${sid} TELEPORT_PARTICIPANT_MODE=${mode}`],
        "-T",
        "-p",
        port,
        target,
      ]);
    try {
      // The owner: a shell on a PTY (ssh -tt), driven through a pipe.
      await using owner = drive("ssh", [...clientOptions(alice), "-tt", "-p", port, target]);
      await owner.write("echo SID=$TELEPORT_SESSION=\n");
      const sid = (await owner.waitFor(/SID=([0-9a-f-]{36})=/))[1]!;
      const tracker = trackers.get(sid);
      assert.equal(tracker?.spec.user, "alice");
      assert.equal(tracker?.spec.login, LOGIN);
      assert.deepEqual(tracker?.spec.participants.map((p) => p.mode), ["owner"]);

      await using observer = join(alice2, sid, "observer");
      await observer.waitFor(/joined session .* as observer/);
      await owner.waitFor(/user alice joined the session as observer/);
      assert.deepEqual(trackers.get(sid)?.spec.participants.map((p) => p.mode), [
        "owner",
        "observer",
      ]);
      await owner.write("echo owner-says-$((6*7))\n");
      await observer.waitFor(/owner-says-42/);
      // An observer's keys never reach the shell.
      await observer.write("echo observer-typed-$((5*5))\n");

      await using peer = join(alice2, sid, "peer");
      await peer.waitFor(/joined session .* as peer/);
      await peer.write("echo peer-says-$((7*7))\n");
      await owner.waitFor(/peer-says-49/);
      await observer.waitFor(/peer-says-49/);
      assert.equal(await peer.finish(), 0, peer.output());
      await owner.waitFor(/user alice left the session/);

      // Another user needs a join_sessions policy, and only for its modes.
      await using intruder = join(bob, sid, "observer");
      assert.equal(await intruder.finish(), 1);
      assert.match(intruder.output(), /belongs to another user and no role of yours allows/);
      await using wendyPeer = join(wendy, sid, "peer");
      assert.equal(await wendyPeer.finish(), 1);
      await using watcher = join(wendy, sid, "observer");
      await watcher.waitFor(/joined session .* as observer/);
      await owner.waitFor(/user wendy joined the session as observer/);
      const gone = join(alice2, "00000000-0000-4000-8000-000000000000", "peer");
      assert.equal(await gone.finish(), 1);
      assert.match(gone.output(), /is not running on this node/);

      await owner.write("exit 5\n");
      assert.equal(await owner.finish(), 5, owner.output());
      // The parties' part ends with the session, with its exit status.
      assert.equal(await observer.finish(), 5, observer.output());
      assert.equal(await watcher.finish(), 5, watcher.output());
      assert.doesNotMatch(owner.output(), /observer-typed-25/);
      assert.equal(trackers.has(sid), false, "the tracker goes with the session");
      ownerSid = sid;
      await waitEvent((e) => e.event === "session.end" && e.sid === sid);
    } finally {
      await node.close();
      await Deno.remove(dir, { recursive: true });
    }
    const end = events.find((e) => e.event === "session.end" && e.sid === ownerSid);
    assert.deepEqual(end?.participants, ["alice", "wendy"]);
    const joins = events.filter((e) => e.event === "session.join" && e.sid === ownerSid);
    assert.deepEqual(joins.map((e) => `${e.user}:${e.mode}`), [
      "alice:observer",
      "alice:peer",
      "wendy:observer",
    ]);
    assert.ok(events.some((e) => e.event === "session.leave" && e.sid === ownerSid));
  },
});
