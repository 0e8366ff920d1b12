/**
 * Versioned schema migrations on PostgreSQL, shared by the backend (postgres.ts) and the audit
 * log and recordings stores (lib/events): under an advisory lock, a version table records how
 * many migrations ran; the missing ones run in one transaction. A role that may not read the
 * version table or create tables gets an AccessDeniedError naming the GRANT to run; a schema
 * newer than this teleport a BadParameterError.
 *
 * @module
 */
import type postgres from "postgres";
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";

/** Options of {@link applyPostgresMigrations}. */
export interface PostgresMigrations {
  /** The version table, e.g. `teleport_schema_version`. */
  table: string;
  /** Advisory lock key serializing migrations of this schema. */
  lock: bigint;
  /** Entry i brings the schema to version i + 1. Never edit a shipped one. */
  migrations: readonly string[];
  /** What is being opened, for errors ("backend postgresql://…", with secrets masked). */
  what: string;
}

/** Applies the migrations `sql` has not run yet; see the module doc. */
export async function applyPostgresMigrations(
  sql: ReturnType<typeof postgres>,
  o: PostgresMigrations,
): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(o.table)) {
    throw new BadParameterError(`Cannot migrate ${o.what}: bad version table name ${o.table}`);
  }
  const role = (await sql<{ r: string; d: string }[]>`SELECT current_user AS r,
    current_database() AS d`)[0]!;
  const denied = (what: string, grant: string) =>
    new AccessDeniedError(
      `Cannot open ${o.what}: role ${JSON.stringify(role.r)} lacks ${what}; as an ` +
        `administrator run: ${grant}`,
    );
  const table = sql(o.table);
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${o.lock.toString()}::bigint)`;
    const exists = (await tx<{ t: string | null }[]>`
      SELECT to_regclass(${o.table})::text AS t`)[0]!.t !== null;
    let version = 0;
    if (exists) {
      const readable = (await tx<{ ok: boolean }[]>`
        SELECT has_table_privilege(${o.table}, 'SELECT') AS ok`)[0]!.ok;
      if (!readable) {
        throw denied(`SELECT on table ${o.table}`, `GRANT SELECT ON ${o.table} TO ${role.r};`);
      }
      version = (await tx<{ v: number | null }[]>`
        SELECT max(version) AS v FROM ${table}`)[0]!.v ?? 0;
    }
    if (version > o.migrations.length) {
      throw new BadParameterError(
        `Cannot open ${o.what}: the schema is at version ${version}, newer than this ` +
          `teleport knows (${o.migrations.length}); upgrade teleport`,
      );
    }
    if (version === o.migrations.length) return;
    const canCreate = (await tx<{ ok: boolean }[]>`
      SELECT has_schema_privilege(current_schema(), 'CREATE') AS ok`)[0]!.ok;
    if (!canCreate) {
      throw denied(
        `the CREATE privilege on schema public of database ${JSON.stringify(role.d)}`,
        `GRANT CREATE ON SCHEMA public TO ${role.r}; (or ALTER DATABASE ${role.d} OWNER TO ${role.r})`,
      );
    }
    if (!exists) {
      await tx`CREATE TABLE ${table} (
        version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`;
    }
    for (let v = version; v < o.migrations.length; v++) {
      await tx.unsafe(o.migrations[v]!);
      await tx`INSERT INTO ${table} (version) VALUES (${v + 1})`;
    }
  });
}
