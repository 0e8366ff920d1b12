import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { AuthClient } from "../../lib/authclient/mod.ts";
import { startPostgres } from "../../lib/backend/mod.ts";
import { RealClock } from "../../lib/clock/mod.ts";
import { resolveProcessConfig } from "../../lib/config/mod.ts";
import { EventType, newAuditEvent, newSessionId, RECORDING_FORMAT } from "../../lib/events/mod.ts";
import { readIdentityFile } from "../../lib/identity/mod.ts";
import { type AuthReady, TeleportProcess } from "../../lib/service/mod.ts";

/** A minimal gzip recording of session `sid`: its header and an end record. */
async function recordingOf(sid: string): Promise<Uint8Array> {
  const header = {
    format: RECORDING_FORMAT,
    version: 1,
    sid,
    cluster_name: "example",
    server_id: "s",
    user: "alice",
    login: "root",
    started: new Date().toISOString(),
    cols: 80,
    rows: 24,
  };
  const text = `${JSON.stringify(header)}\n{"t":0,"type":"end"}\n`;
  const stream = ReadableStream.from([new TextEncoder().encode(text)]).pipeThrough(
    new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Resolves once `proc`'s health reaches `state`. */
async function healthBecomes(proc: TeleportProcess, state: string): Promise<void> {
  while (proc.health.state !== state) await proc.health.changed();
}

Deno.test({
  name:
    "two auth servers share state, audit log and recordings on PostgreSQL and outlive a restart",
  ignore: skipGroup("postgres"),
  async fn() {
    await using pg = await startPostgres();
    const dirs: string[] = [];
    const procs: TeleportProcess[] = [];
    const start = async () => {
      const dataDir = await Deno.makeTempDir({ prefix: "tp-pg-" });
      dirs.push(dataDir);
      const config = resolveProcessConfig({
        flags: { roles: "auth", dataDir, clusterName: "example" },
        hostname: "testhost",
        env: {},
      });
      config.auth.listenAddr = { host: "127.0.0.1", port: 0 };
      config.connectionLimits.unauthenticatedRate = { burst: 10_000, perMinute: 10_000 };
      // The password comes from password_file, as teleport.yaml would give it.
      config.storage = {
        type: "postgresql",
        connString: pg.url.replace(`:${pg.password}@`, "@"),
        passwordFile: pg.passwordFile,
      };
      config.auth.auditEventsUri = pg.url.replace(/\/teleport$/, "/audit");
      config.auth.auditSessionsUri = pg.url.replace(/\/teleport$/, "/audit");
      const proc = await TeleportProcess.start({
        config,
        hostname: "testhost",
        healthCheckIntervalMs: 100,
      });
      procs.push(proc);
      const ready = await proc.supervisor.waitFor("auth.ready") as AuthReady;
      const admin = await readIdentityFile(ready.adminIdentityPath);
      return {
        proc,
        admin,
        client: new AuthClient({
          host: "127.0.0.1",
          port: ready.port,
          caCertPems: admin.tlsCaCertPems,
          identity: { certPem: admin.tlsCertPem, keyPem: admin.keyPem },
        }),
      };
    };
    await pg.psql("CREATE DATABASE audit OWNER teleport");
    try {
      const a = await start();
      const b = await start();
      // One cluster: the same host CA, and state written through one is read through the other.
      assert.deepEqual(b.admin.tlsCaCertPems, a.admin.tlsCaCertPems);
      const token = await a.client.createToken({ roles: ["node"], ttlMs: 600_000 });
      const seen = await b.client.getResource("token", token.metadata.name);
      assert.equal(seen.metadata.name, token.metadata.name);
      // One audit log: what A records, B finds.
      const day = { from: new Date(Date.now() - 3600_000), to: new Date(Date.now() + 3600_000) };
      const before = (await b.client.searchEvents(day)).events.length;
      await a.client.emitEvents([
        newAuditEvent(EventType.Exec, { user: "alice", command: "true" }, {
          clusterName: "example",
          clock: new RealClock(),
        }),
      ]);
      const after = await b.client.searchEvents({ ...day, types: [EventType.Exec] });
      assert.equal(after.events.length, 1);
      assert.equal(after.events[0]!.command, "true");
      assert.ok((await b.client.searchEvents(day)).events.length > before);
      // One recording store: uploaded through A, played through B; a second upload keeps it.
      const sid = newSessionId();
      const gzip = await recordingOf(sid);
      await a.client.uploadRecording(sid, ReadableStream.from([gzip]));
      assert.deepEqual(await b.client.downloadRecording(sid), gzip);
      assert.ok((await b.client.listRecordings()).includes(sid));
      await assert.rejects(b.client.uploadRecording(sid, ReadableStream.from([gzip])));

      await healthBecomes(a.proc, "ok");
      await pg.stopServer();
      await healthBecomes(a.proc, "degraded");
      await assert.rejects(b.client.listResources("token"));
      await pg.startServer();
      await healthBecomes(a.proc, "ok");
      await healthBecomes(b.proc, "ok");
      const again = await a.client.createToken({ roles: ["node"], ttlMs: 600_000 });
      const names = (await b.client.listResources("token")).map((t) => t.metadata.name);
      assert.ok(names.includes(again.metadata.name));
    } finally {
      for (const proc of procs) await proc.close();
      for (const dir of dirs) await Deno.remove(dir, { recursive: true });
    }
  },
});
