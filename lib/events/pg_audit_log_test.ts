import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { startPostgres } from "../backend/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import { testLogger } from "../log/mod.ts";
import { EventType, newAuditEvent, runAuditLogConformance } from "./mod.ts";
import { openPostgresAuditLog } from "./pg_audit_log.ts";

const ignore = skipGroup("postgres");

Deno.test({
  name: "openPostgresAuditLog() passes the audit log conformance suite",
  ignore,
  async fn(t) {
    await using pg = await startPostgres();
    let n = 0;
    await runAuditLogConformance(t, async () => {
      const db = `audit_${n++}`;
      await pg.psql(`CREATE DATABASE ${db} OWNER teleport`);
      const { logger } = testLogger();
      const uri = pg.url.replace(/\/teleport$/, `/${db}`);
      return { log: await openPostgresAuditLog({ uri, logger }), clock: new FakeClock() };
    });
  },
});

Deno.test({
  name: "openPostgresAuditLog() deletes events past retention_period and is shared",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    const { logger } = testLogger();
    const uri = `${pg.url}#retention_period=48h`;
    await using a = await openPostgresAuditLog({ uri, logger });
    // A second auth server on the same database.
    await using b = await openPostgresAuditLog({ uri: `${pg.url}#disable_cleanup=true`, logger });
    const now = Date.now();
    for (const ageH of [72, 50, 47, 1]) {
      const clock = new FakeClock(new Date(now - ageH * 3600_000));
      await a.emit(newAuditEvent(EventType.UserLogin, { user: `u${ageH}` }, { clock }));
    }
    const all = { from: new Date(0), to: new Date(now + 1000) };
    assert.equal((await b.search(all)).events.length, 4);
    assert.equal(await (a as unknown as { cleanup(): Promise<number> }).cleanup(), 2);
    assert.deepEqual((await b.search(all)).events.map((e) => e.user), ["u47", "u1"]);
    await assert.rejects(
      openPostgresAuditLog({ uri: `${pg.url}#retention_period=forever`, logger }),
      /retention_period "forever" must be a positive duration/,
    );
    await assert.rejects(
      openPostgresAuditLog({ uri: `${pg.url}#keep=1`, logger }),
      /unknown option #keep/,
    );
  },
});
