import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { FakeClock } from "../clock/mod.ts";
import { AccessDeniedError, ConnectionProblemError } from "../errors/mod.ts";
import {
  type Backend,
  type BackendEvent,
  openBackend,
  type PgServer,
  runBackendConformance,
  startPostgres,
} from "./mod.ts";
import { decodeKey, MIGRATIONS, openPostgresBackend } from "./postgres.ts";
import { maskConnString } from "./_conn_string.ts";
import { encodeKey } from "./_key_codec.ts";

const ignore = skipGroup("postgres");
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const WORKER = new URL("./_pg_worker.ts", import.meta.url).pathname;

/** A fresh database owned by the test role; returns its connection string. */
async function freshDatabase(pg: PgServer, name: string): Promise<string> {
  await pg.psql(`CREATE DATABASE ${name} OWNER teleport`);
  return pg.url.replace(/\/teleport$/, `/${name}`);
}

/** The next value of an iterator, failing after 20 s instead of hanging the run. */
async function next<T>(it: AsyncIterator<T>): Promise<IteratorResult<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("No watch event within 20 s")), 20_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function event(it: AsyncIterator<BackendEvent>): Promise<BackendEvent> {
  const result = await next(it);
  assert.equal(result.done, false, "watch ended early");
  return result.value;
}

/** A `deno run` of _pg_worker.ts whose stdout is read line by line. */
class Worker {
  #child: Deno.ChildProcess;
  #lines: AsyncIterator<string>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", WORKER, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#lines = lines(this.#child.stdout)[Symbol.asyncIterator]();
  }

  async line(): Promise<unknown> {
    const result = await next(this.#lines);
    assert.equal(result.done, false, "worker exited early");
    return JSON.parse(result.value);
  }

  async send(text: string): Promise<void> {
    await this.#stdin.write(encoder.encode(text));
  }

  async finish(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const status = await this.#child.status;
    assert.equal(status.code, 0, "worker failed");
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
    }
  }
}

Deno.test({
  name: "openPostgresBackend() passes the backend conformance suite",
  ignore,
  async fn(t) {
    await using pg = await startPostgres();
    let n = 0;
    await runBackendConformance(t, async () => {
      const connString = await freshDatabase(pg, `suite_${n++}`);
      const clock = new FakeClock();
      return { backend: await openPostgresBackend({ connString, clock }), clock };
    });
  },
});

Deno.test({
  name: "openPostgresBackend() migrates once, concurrently, and reopens without migrating",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    const opened = await Promise.all(
      [1, 2, 3].map(() => openPostgresBackend({ connString: pg.url })),
    );
    const rows = await pg.psql("SELECT version FROM teleport_schema_version ORDER BY version");
    assert.deepEqual(rows.trim().split("\n").map(Number), MIGRATIONS.map((_, i) => i + 1));
    await opened[0]!.put({ key: ["kept"], value: encoder.encode("v") });
    await Promise.all(opened.map((b) => b.close()));
    await using again = await openPostgresBackend({ connString: pg.url });
    assert.equal(decoder.decode((await again.get(["kept"])).value), "v");
  },
});

Deno.test({
  name: "openPostgresBackend() names the missing privilege when the role lacks rights",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await pg.psql("CREATE ROLE weak LOGIN PASSWORD 'weak-password-1'");
    await pg.psql("CREATE DATABASE weakdb");
    const weak = `postgresql://weak:weak-password-1@127.0.0.1:${pg.port}/weakdb`;
    await assert.rejects(openPostgresBackend({ connString: weak }), (err: unknown) => {
      assert.ok(err instanceof AccessDeniedError, String(err));
      assert.match(err.message, /role "weak" lacks the CREATE privilege on schema public/);
      assert.match(err.message, /GRANT CREATE ON SCHEMA public TO weak/);
      assert.doesNotMatch(err.message, /weak-password-1/);
      return true;
    });
    // The schema exists (made by its owner) but "weak" has no grants on its tables.
    {
      await using _owner = await openPostgresBackend({ connString: pg.url });
    }
    const onTeleport = weak.replace(/\/weakdb$/, "/teleport");
    await assert.rejects(openPostgresBackend({ connString: onTeleport }), (err: unknown) => {
      assert.ok(err instanceof AccessDeniedError, String(err));
      assert.match(err.message, /role "weak" lacks SELECT on table teleport_schema_version/);
      return true;
    });
    await pg.psql("GRANT SELECT ON teleport_schema_version TO weak");
    await assert.rejects(openPostgresBackend({ connString: onTeleport }), (err: unknown) => {
      assert.ok(err instanceof AccessDeniedError, String(err));
      assert.match(err.message, /lacks SELECT, INSERT, UPDATE, DELETE on table kv;/);
      assert.match(err.message, /GRANT SELECT, INSERT, UPDATE, DELETE ON kv TO weak/);
      return true;
    });
  },
});

Deno.test({
  name: "openPostgresBackend() reads password_file and never shows the password",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    const noPassword = pg.url.replace(`:${pg.password}@`, "@");
    {
      await using b = await openPostgresBackend({
        connString: noPassword,
        passwordFile: pg.passwordFile,
      });
      await b.put({ key: ["x"], value: encoder.encode("y") });
    }
    const wrong = pg.url.replace(pg.password, "wrong-secret-password");
    await assert.rejects(openPostgresBackend({ connString: wrong }), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.doesNotMatch(err.message, /wrong-secret-password/);
      return true;
    });
    assert.equal(
      maskConnString("postgresql://u:secret@db:5432/teleport?sslmode=verify-full"),
      "postgresql://u:***@db:5432/teleport?sslmode=verify-full",
    );
    await assert.rejects(
      openPostgresBackend({ connString: `${noPassword}?pool_size=3` }),
      /unknown parameter "pool_size"/,
    );
    await assert.rejects(
      openPostgresBackend({ connString: `${noPassword}?sslmode=verify-full` }),
      /sslmode=verify-full needs sslrootcert/,
    );
  },
});

Deno.test("decodeKey() inverts the key encoding", () => {
  for (const key of [["a"], ["a\u0000b", "\u00e9", "\u{1f600}"], ["x", "\u0000"]]) {
    const enc = encodeKey(key);
    const bytes = Uint8Array.from(enc, (c) => c.charCodeAt(0));
    assert.deepEqual([...decodeKey(bytes)], key);
  }
});

Deno.test({
  name: "compareAndSwap() has exactly one winner among three processes",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await using b = await openPostgresBackend({ connString: pg.url });
    const base = await b.put({ key: ["race"], value: encoder.encode("base") });
    const workers = [1, 2, 3].map(() => new Worker(["cas", pg.url, base.revision]));
    for (const w of workers) assert.equal(await w.line(), "ready");
    await Promise.all(workers.map((w) => w.send("go\n")));
    const results = await Promise.all(workers.map((w) => w.line()));
    await Promise.all(workers.map((w) => w.finish()));
    assert.equal(results.filter((r) => (r as { won: boolean }).won).length, 1);

    // Optimistic increments from three processes lose no update.
    await b.put({ key: ["counter"], value: encoder.encode("0") });
    const incrementers = [1, 2, 3].map(() => new Worker(["increment", pg.url, "30"]));
    for (const w of incrementers) assert.equal(await w.line(), "ready");
    await Promise.all(incrementers.map((w) => w.send("go\n")));
    for (const w of incrementers) assert.deepEqual(await w.line(), { done: 30 });
    await Promise.all(incrementers.map((w) => w.finish()));
    assert.equal(decoder.decode((await b.get(["counter"])).value), "90");
  },
});

Deno.test({
  name: "watch() sees the writes of other processes, each in order",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await using b = await openPostgresBackend({ connString: pg.url });
    const controller = new AbortController();
    const it = b.watch({ prefixes: [["seq"]], signal: controller.signal })[Symbol.asyncIterator]();
    assert.deepEqual(await event(it), { type: "init" });
    // A watcher in another process too.
    const watcher = new Worker(["watch", pg.url, "seq"]);
    assert.equal(await watcher.line(), "ready");
    const writers = ["a", "b"].map((id) => new Worker(["write", pg.url, id, "50"]));
    for (const w of writers) assert.equal(await w.line(), "ready");
    await Promise.all(writers.map((w) => w.send("go\n")));
    for (const w of writers) assert.deepEqual(await w.line(), { done: 50 });
    await Promise.all(writers.map((w) => w.finish()));
    const local: string[] = [];
    const remote: string[] = [];
    for (let i = 0; i < 100; i++) {
      const e = await event(it);
      assert.equal(e.type, "put");
      if (e.type === "put") local.push(`${e.item.key.join("/")}=${decoder.decode(e.item.value)}`);
      const r = await watcher.line() as { key: string[]; value: string };
      remote.push(`${r.key.join("/")}=${r.value}`);
    }
    // The two processes see the same commit order, and each writer's puts in its order.
    assert.deepEqual(remote, local);
    for (const id of ["a", "b"]) {
      const mine = local.filter((s) => s.startsWith(`seq/${id}=`));
      assert.deepEqual(mine, Array.from({ length: 50 }, (_, i) => `seq/${id}=${i}`));
    }
    await watcher.finish();
    controller.abort();
  },
});

Deno.test({
  name: "a backend fails fast while PostgreSQL restarts, then recovers and resyncs watches",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await using b: Backend = await openPostgresBackend({ connString: pg.url });
    await b.put({ key: ["r", "before"], value: encoder.encode("1") });
    const controller = new AbortController();
    const it = b.watch({ prefixes: [["r"]], signal: controller.signal })[Symbol.asyncIterator]();
    assert.deepEqual(await event(it), { type: "init" });
    await pg.stopServer();
    await assert.rejects(b.get(["r", "before"]), ConnectionProblemError);
    // Down: calls fail at once with ConnectionProblemError, without waiting on the network.
    await assert.rejects(b.put({ key: ["r", "x"], value: encoder.encode("x") }), (err) => {
      assert.ok(err instanceof ConnectionProblemError);
      assert.match(err.message, /unreachable/);
      assert.doesNotMatch(err.message, new RegExp(pg.password));
      return true;
    });
    await pg.startServer();
    // The watch resumes with a fresh init once its feed listens again.
    assert.deepEqual(await event(it), { type: "init" });
    // Calls succeed again once the reconnect probe got through.
    for (let attempt = 0;; attempt++) {
      try {
        await b.get(["r", "before"]);
        break;
      } catch (err) {
        assert.ok(err instanceof ConnectionProblemError, String(err));
        assert.ok(attempt < 400, "backend did not recover");
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    const after = await b.put({ key: ["r", "after"], value: encoder.encode("2") });
    const e = await event(it);
    assert.equal(e.type, "put");
    if (e.type === "put") assert.equal(e.item.revision, after.revision);
    controller.abort();
    assert.equal((await next(it)).done, true);
  },
});

/** Runs openssl; fails the test with its stderr. */
async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

/** A CA and a certificate it signs (`cn`, optional IP SAN) as PEM files under `dir`. */
async function issue(dir: string, ca: string, name: string, cn: string, ip?: string) {
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"].concat([
    "-out",
    `${dir}/${name}.key`,
  ]));
  await openssl([
    "req",
    "-new",
    "-key",
    `${dir}/${name}.key`,
    "-subj",
    `/CN=${cn}`,
    "-out",
    `${dir}/${name}.csr`,
  ]);
  const ext = `${dir}/${name}.ext`;
  await Deno.writeTextFile(
    ext,
    ip === undefined ? "basicConstraints=CA:FALSE\n" : `subjectAltName=IP:${ip}\n`,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${dir}/${name}.csr`,
    "-CA",
    `${dir}/${ca}.crt`,
    "-CAkey",
    `${dir}/${ca}.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    ext,
    "-out",
    `${dir}/${name}.crt`,
  ]);
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-subj",
    `/CN=${name}`,
    "-days",
    "2",
    "-keyout",
    `${dir}/${name}.key`,
    "-out",
    `${dir}/${name}.crt`,
  ]);
}

Deno.test({
  name: "openPostgresBackend() connects with a client certificate and sslmode=verify-full",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pg_tls_test_" });
    try {
      await makeCa(dir, "ca");
      await makeCa(dir, "otherca");
      await issue(dir, "ca", "server", "localhost", "127.0.0.1");
      await issue(dir, "ca", "client", "teleport");
      await using pg = await startPostgres({
        tls: {
          certFile: `${dir}/server.crt`,
          keyFile: `${dir}/server.key`,
          caFile: `${dir}/ca.crt`,
        },
      });
      const base = `postgresql://teleport@127.0.0.1:${pg.port}/teleport?sslmode=verify-full` +
        `&sslcert=${dir}/client.crt&sslkey=${dir}/client.key`;
      {
        await using b = await openBackend(`${base}&sslrootcert=${dir}/ca.crt`);
        await b.put({ key: ["tls"], value: encoder.encode("ok") });
        assert.equal(decoder.decode((await b.get(["tls"])).value), "ok");
      }
      // A server certificate from another CA is refused.
      await assert.rejects(openBackend(`${base}&sslrootcert=${dir}/otherca.crt`), (err) => {
        assert.ok(err instanceof ConnectionProblemError, String(err));
        assert.match(err.message, /certificate/i);
        return true;
      });
      // So is a connection without a client certificate (the server asks for one).
      await assert.rejects(
        openBackend(
          `postgresql://teleport@127.0.0.1:${pg.port}/teleport?sslmode=verify-full&sslrootcert=${dir}/ca.crt`,
        ),
        (err) => {
          assert.match(String(err), /certificate/i);
          return true;
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "watch() resyncs when events it never read were swept, not on a rolled-back gap",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    await using b = await openPostgresBackend({ connString: pg.url });
    const controller = new AbortController();
    const it = b.watch({ prefixes: [["g"]], signal: controller.signal })[Symbol.asyncIterator]();
    assert.deepEqual(await event(it), { type: "init" });
    const first = await b.put({ key: ["g", "1"], value: encoder.encode("1") });
    assert.equal(
      ((await event(it)) as { item: { revision: string } }).item.revision,
      first.revision,
    );
    // A gap of 50 ids (as rolled-back writes leave): the old events remain, nothing resyncs.
    await pg.psql("SELECT setval('kv_events_id_seq', nextval('kv_events_id_seq') + 50)");
    const second = await b.put({ key: ["g", "2"], value: encoder.encode("2") });
    assert.equal(
      ((await event(it)) as { item: { revision: string } }).item.revision,
      second.revision,
    );
    // 100 events this backend never read, then swept: the watcher gets a fresh init.
    await pg.psql(
      "SELECT setval('kv_events_id_seq', nextval('kv_events_id_seq') + 100); DELETE FROM kv_events",
    );
    await b.put({ key: ["g", "3"], value: encoder.encode("3") });
    assert.deepEqual(await event(it), { type: "init" });
    const fourth = await b.put({ key: ["g", "4"], value: encoder.encode("4") });
    assert.equal(
      ((await event(it)) as { item: { revision: string } }).item.revision,
      fourth.revision,
    );
    controller.abort();
  },
});

Deno.test({
  name: "openPostgresBackend() sweeps expired rows without events",
  ignore,
  async fn() {
    await using pg = await startPostgres();
    const clock = new FakeClock();
    await using b = await openPostgresBackend({ connString: pg.url, clock, expiryIntervalMs: 20 });
    const controller = new AbortController();
    const it = b.watch({ prefixes: [["s"]], signal: controller.signal })[Symbol.asyncIterator]();
    assert.deepEqual(await event(it), { type: "init" });
    const soon = new Date(clock.now().getTime() + 1000);
    await b.put({ key: ["s", "gone"], value: encoder.encode("x"), expires: soon });
    await b.put({ key: ["s", "kept"], value: encoder.encode("y") });
    assert.equal((await event(it)).type, "put");
    assert.equal((await event(it)).type, "put");
    clock.advance(1000);
    // The sweep runs every 20 ms of real time; wait (bounded) until the row is gone.
    for (let i = 0; (await pg.psql("SELECT count(*) FROM kv")).trim() !== "1"; i++) {
      assert.ok(i < 500, "expired row never swept");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Expiry is not a delete: the next event the watcher sees is the next write.
    const next = await b.put({ key: ["s", "after"], value: encoder.encode("z") });
    const e = await event(it);
    assert.equal(e.type === "put" ? e.item.revision : e.type, next.revision);
    controller.abort();
  },
});
