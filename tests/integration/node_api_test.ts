/**
 * The auth API a node uses, in-process over mutual TLS: heartbeats with a TTL,
 * audit events (server_id pinned to the caller), searches, recording uploads,
 * and audited join attempts with the token masked.
 */
import assert from "node:assert/strict";
import { AuthClient, joinWithToken } from "../../lib/authclient/mod.ts";
import { RealClock } from "../../lib/clock/mod.ts";
import { isKind } from "../../lib/errors/mod.ts";
import { gzipRecordingFile, newAuditEvent, SessionRecorder } from "../../lib/events/mod.ts";
import { getComponentLogger } from "../../lib/log/mod.ts";
import type { ServerResource } from "../../lib/resource/mod.ts";
import { startTestCluster } from "./_cluster.ts";

const log = getComponentLogger("test");

function heartbeat(hostId: string, ttlMs: number): ServerResource {
  return {
    kind: "node",
    version: "v2",
    metadata: {
      name: hostId,
      labels: { env: "test" },
      expires: new Date(Date.now() + ttlMs).toISOString(),
    },
    spec: { addr: "127.0.0.1:3022", hostname: "n1", version: "0.1.0" },
  };
}

async function until<T>(check: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("condition not met in time");
}

Deno.test("node API: heartbeats, events, recordings and audited joins", async (t) => {
  await using cluster = await startTestCluster();
  using admin = cluster.adminClient();
  const token = (await admin.createToken({ roles: ["node"], ttlMs: 60_000 })).metadata.name;
  const hostId = crypto.randomUUID();
  const id = await joinWithToken({
    host: "127.0.0.1",
    port: cluster.ready.port,
    token,
    role: "node",
    hostId,
    nodeName: "n1",
    caPins: [],
    logger: log,
  });
  assert.ok(id.sshUserCaKeys && id.sshUserCaKeys.length === 1);
  using node = cluster.client({ identity: { certPem: id.tlsCertPem, keyPem: id.keyPem } });

  await t.step("a node announces only itself, within an hour", async () => {
    await assert.rejects(
      node.heartbeatNode(heartbeat(crypto.randomUUID(), 10_000)),
      (e) => isKind(e, "AccessDenied"),
    );
    await assert.rejects(
      node.heartbeatNode(heartbeat(hostId, 2 * 3_600_000)),
      (e) => isKind(e, "BadParameter"),
    );
  });

  await t.step("a heartbeat lists the node until its TTL runs out", async () => {
    await node.heartbeatNode(heartbeat(hostId, 1500));
    const listed = await admin.listResources("node") as ServerResource[];
    assert.deepEqual(listed.map((n) => n.metadata.labels), [{ env: "test" }]);
    await until(async () => (await admin.listResources("node")).length === 0 ? true : undefined);
  });

  await t.step("events from a node carry its own server_id; only readers search", async () => {
    const clock = new RealClock();
    const ev = newAuditEvent("session.start", {
      sid: crypto.randomUUID(),
      user: "alice",
      login: "root",
      server_id: "forged",
    }, { clock });
    await node.emitEvents([ev]);
    await assert.rejects(
      node.searchEvents({ from: new Date(Date.now() - 60_000), to: new Date() }),
      (e) => isKind(e, "AccessDenied"),
    );
    const found = await admin.searchEvents({
      from: new Date(Date.now() - 60_000),
      to: new Date(Date.now() + 1000),
      types: ["session.start"],
    });
    assert.equal(found.events.length, 1);
    assert.equal(found.events[0]!.server_id, hostId);
    assert.equal(found.events[0]!.cluster_name, "example");
    await assert.rejects(
      node.emitEvents([{ event: "x" } as never]),
      (e) => isKind(e, "BadParameter"),
    );
  });

  await t.step("a recording uploads once, downloads whole, and bad IDs are refused", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const sid = crypto.randomUUID();
      const rec = await SessionRecorder.create({
        dir,
        sid,
        clusterName: "example",
        serverId: hostId,
        user: "alice",
        login: "root",
        cols: 80,
        rows: 24,
        clock: new RealClock(),
      });
      await rec.print(new TextEncoder().encode("hello\r\n"));
      const path = await rec.close();
      const up = await node.uploadRecording(sid, await gzipRecordingFile(path));
      assert.ok(up.size > 0);
      assert.deepEqual(await admin.listRecordings(), [sid]);
      const bytes = await admin.downloadRecording(sid);
      assert.equal(bytes.length, up.size);
      await assert.rejects(
        node.uploadRecording(sid, await gzipRecordingFile(path)),
        (e) => isKind(e, "AlreadyExists"),
      );
      await assert.rejects(
        node.uploadRecording("../../etc/passwd", await gzipRecordingFile(path)),
        (e) => isKind(e, "BadParameter") || isKind(e, "NotFound"),
      );
      await assert.rejects(node.downloadRecording(sid), (e) => isKind(e, "AccessDenied"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("join attempts are audited with the token masked", async () => {
    const secret = "0123456789abcdef0123456789abcdef";
    await assert.rejects(
      joinWithToken({
        host: "127.0.0.1",
        port: cluster.ready.port,
        token: secret,
        role: "node",
        hostId: crypto.randomUUID(),
        nodeName: "n2",
        caPins: [],
        logger: log,
      }),
      (e) => isKind(e, "AccessDenied"),
    );
    const found = await admin.searchEvents({
      from: new Date(Date.now() - 60_000),
      to: new Date(Date.now() + 1000),
      types: ["instance.join", "join_token.create"],
    });
    const kinds = found.events.map((e) => `${e.event}:${e.code}`);
    assert.deepEqual(kinds, [
      "join_token.create:TJT00I",
      "instance.join:TJ002I",
      "instance.join:TJ002E",
    ]);
    assert.ok(!JSON.stringify(found.events).includes(secret));
    assert.ok(!JSON.stringify(found.events).includes(token));
  });
});

Deno.test("AuthClient refuses to be built without CA certificates", () => {
  assert.throws(() => new AuthClient({ host: "127.0.0.1", port: 1 }), /CA certificates/);
});
