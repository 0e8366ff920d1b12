/**
 * Test and bench helper: a throw-away PostgreSQL 15 server of our own (no npm package: SQL
 * goes through psql, so lib/backend/mod.ts may export it). `initdb` runs into a temporary
 * directory as the `postgres` OS user (root cannot run postgres), the server listens on
 * 127.0.0.1 on a free port with its socket in the temporary directory, and
 * {@link PgServer.stop} removes everything. Tests that use it ask `skipGroup("postgres")`.
 */

/** Binaries of Debian's `postgresql-15` package. */
export const PG_BIN = "/usr/lib/postgresql/15/bin";

/** Password of the test role {@link PgServer.url} logs in as. */
const ROLE_PASSWORD = "pg-test-password-0123";

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /**
   * TLS for the server: PEM files it serves and the CA whose client certificates it accepts
   * (`hostssl … cert` for the role). Omit for a plain-TCP server.
   *
   * @default {undefined}
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /**
   * Serve on another address than loopback, e.g. a LAN address inside a network namespace:
   * the server runs in namespace `netns` (`ip netns exec`), listens on `address:port` and
   * accepts the test role's password (or client certificate, with `tls`) from `allow` (a CIDR).
   * psql still talks to it over its Unix socket.
   *
   * @default {undefined} (127.0.0.1 on a free port, in this process's namespace)
   */
  listen?: { address: string; port: number; allow: string; netns?: string };
}

/** A running PostgreSQL server for tests. */
export interface PgServer {
  /** `postgresql://teleport:<password>@127.0.0.1:<port>/teleport` (role owns the database). */
  url: string;
  /** Host of {@link url}: 127.0.0.1 or `listen.address`. */
  host: string;
  /** The test role's password, also written to {@link passwordFile}. */
  password: string;
  /** File holding the role's password and a newline. */
  passwordFile: string;
  /** TCP port (on 127.0.0.1, or `listen.address`). */
  port: number;
  /**
   * Runs SQL with `psql` as the superuser over the Unix socket; returns the rows as
   * unaligned text (`|` between columns, one row a line).
   */
  psql(sql: string, database?: string): Promise<string>;
  /** Stops the server (fast shutdown); it keeps its data. */
  stopServer(): Promise<void>;
  /** Starts the server again on the same port. */
  startServer(): Promise<void>;
  /** Stops the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function run(cmd: string, args: string[], what: string, cwd = "/"): Promise<string> {
  // cwd "/": the postgres user may not enter the caller's directory (a 0700 checkout).
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const detail = new TextDecoder().decode(out.stderr).trim() || stdout.trim();
    throw new Error(`Cannot ${what}: ${cmd} exited with ${out.code}: ${detail}`);
  }
  return stdout;
}

/** Runs a PostgreSQL binary as the `postgres` OS user. */
function asPostgres(bin: string, args: string[], what: string): Promise<string> {
  return run("runuser", ["-u", "postgres", "--", `${PG_BIN}/${bin}`, ...args], what);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function osIds(user: string): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => {
    const out = await new Deno.Command("id", { args: [flag, user], stdout: "piped" }).output();
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  return { uid: await id("-u"), gid: await id("-g") };
}

/** Initializes and starts a PostgreSQL 15 server with a `teleport` role and database. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PgServer> {
  const dir = await Deno.makeTempDir({ prefix: "teleport_pg_" });
  const { uid, gid } = await osIds("postgres");
  await Deno.chmod(dir, 0o755);
  const data = `${dir}/data`;
  const sockets = `${dir}/sockets`;
  await Deno.mkdir(sockets);
  await Deno.chown(dir, uid, gid);
  await Deno.chown(sockets, uid, gid);
  const port = options.listen?.port ?? freePort();
  const host = options.listen?.address ?? "127.0.0.1";
  const allow = options.listen?.allow ?? "127.0.0.1/32";
  const netns = options.listen?.netns;
  let stopped = false;
  let running = false;
  const stopServer = async () => {
    if (!running) return;
    await asPostgres("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"], "stop postgres");
    running = false;
  };
  const startServer = async () => {
    const args = ["-D", data, "-l", `${dir}/server.log`, "-w", "-t", "60", "start"];
    if (netns === undefined) await asPostgres("pg_ctl", args, "start postgres");
    else {
      // The postmaster inherits the namespace of pg_ctl, so it listens on that host's LAN.
      await run(
        "/usr/sbin/ip",
        ["netns", "exec", netns, "runuser", "-u", "postgres", "--", `${PG_BIN}/pg_ctl`, ...args],
        `start postgres in namespace ${netns}`,
      );
    }
    running = true;
  };
  const psql = (sql: string, database = "teleport") =>
    run(
      `${PG_BIN}/psql`,
      ["-h", sockets, "-p", String(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1"]
        .concat(["-At", "-c", sql]),
      "run psql",
    );
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await stopServer();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
  try {
    await asPostgres(
      "initdb",
      ["-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=reject", "-E", "UTF8"]
        .concat(["--locale=C", "--no-sync"]),
      "initialize a postgres data directory",
    );
    const hba = [
      "local all all trust",
      options.tls === undefined
        ? `host all all ${allow} scram-sha-256`
        : `hostssl all all ${allow} cert`,
    ];
    await Deno.writeTextFile(`${data}/pg_hba.conf`, hba.join("\n") + "\n");
    const conf = [
      `port = ${port}`,
      `listen_addresses = '${host}'`,
      `unix_socket_directories = '${sockets}'`,
      "fsync = off",
      "max_connections = 200",
    ];
    if (options.tls !== undefined) {
      for (const [name, src] of Object.entries(options.tls)) {
        const dest = `${data}/${name}.pem`;
        await Deno.copyFile(src, dest);
        await Deno.chown(dest, uid, gid);
        await Deno.chmod(dest, 0o600);
      }
      conf.push(
        "ssl = on",
        `ssl_cert_file = '${data}/certFile.pem'`,
        `ssl_key_file = '${data}/keyFile.pem'`,
        `ssl_ca_file = '${data}/caFile.pem'`,
      );
    }
    await Deno.writeTextFile(`${data}/postgresql.conf`, conf.join("\n") + "\n", { append: true });
    await startServer();
    await psql(`CREATE ROLE teleport LOGIN PASSWORD '${ROLE_PASSWORD}'`, "postgres");
    await psql("CREATE DATABASE teleport OWNER teleport", "postgres");
    const passwordFile = `${dir}/password`;
    await Deno.writeTextFile(passwordFile, ROLE_PASSWORD + "\n");
    return {
      url: `postgresql://teleport:${ROLE_PASSWORD}@${host}:${port}/teleport`,
      host,
      password: ROLE_PASSWORD,
      passwordFile,
      port,
      psql,
      stopServer,
      startServer,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
