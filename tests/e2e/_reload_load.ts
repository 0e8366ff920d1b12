/**
 * Load on a teleport cluster while it restarts (tests/e2e/reload_test.ts, bench/reload.ts),
 * made of stock OpenSSH clients jumping through the proxy (`ssh -J`):
 *
 * - `sessions` interactive sessions (remote PTY, `ssh -tt`) that answer a line every
 *   `pingMs` for as long as the load runs;
 * - one bulk upload of `bulkMiB` random MiB, paced over `bulkSeconds`, hashed by the node
 *   (`sha256sum`) and compared with the local hash;
 * - `rate` new connections a second (`ssh … echo ok`), each one counted as ok or failed with
 *   its exit code and error.
 *
 * Protocol on stdin/stdout: prints `sessions-ready` once every session answered, then runs
 * until a line `finish` arrives; then it stops the new connections, pings every session a last
 * time, ends them (`exit 0`), waits for the upload and prints `RESULT <json>` ({@link LoadResult}).
 *
 * Usage: deno run -A tests/e2e/_reload_load.ts '<LoadOptions as JSON>'
 *
 * @module
 */

/** What the load script is told. */
export interface LoadOptions {
  /** `-J` destination: `login@127.0.0.1:port` of the proxy; without it, `target` directly. */
  jump?: string;
  /** `login@node` (with `jump`), or `login@127.0.0.1`. */
  target: string;
  /** The target's port without `jump`. */
  port?: number;
  /** Private key (its certificate at `<key>-cert.pub`). */
  key: string;
  /** known_hosts with the cluster's host CA (`@cert-authority`). */
  knownHosts: string;
  /** HostKeyAlias for the node (`<node>.<cluster>`). */
  alias?: string;
  /** HostKeyAlias for the proxy (the jump leg). @default {alias} */
  jumpAlias?: string;
  rate: number;
  sessions: number;
  pingMs: number;
  bulkMiB: number;
  bulkSeconds: number;
}

/** What the load script reports. */
export interface LoadResult {
  connections: { attempted: number; ok: number; failed: string[] };
  sessions: { ok: number; failed: string[] };
  bulk: { ok: boolean; detail: string; mib: number; seconds: number };
  seconds: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function sshArgs(o: LoadOptions, extra: string[], command: string): string[] {
  const opt = (v: string) => ["-o", v];
  const common = [
    "-F",
    "/dev/null",
    ...opt("IdentitiesOnly=yes"),
    ...opt("BatchMode=yes"),
    ...opt("LogLevel=ERROR"),
    ...opt("StrictHostKeyChecking=yes"),
    ...opt(`UserKnownHostsFile=${o.knownHosts}`),
    ...opt("ConnectTimeout=60"),
    "-i",
    o.key,
    ...opt(`CertificateFile=${o.key}-cert.pub`),
  ];
  // The jump leg gets the same key and known_hosts through its own -o options.
  const alias = o.alias === undefined ? [] : opt(`HostKeyAlias=${o.alias}`);
  if (o.jump === undefined) {
    return [...common, "-p", String(o.port ?? 22), ...alias, ...extra, o.target, command];
  }
  // The proxy shares the node's host id in this all-in-one process, so its host certificate
  // carries the node's `<node>.<cluster>` name too.
  const jumpAlias = o.jumpAlias === undefined ? alias : opt(`HostKeyAlias=${o.jumpAlias}`);
  const jump = ["ssh", ...common, ...jumpAlias].join(" ") +
    ` -W %h:%p -p ${o.jump.split(":").at(-1)} ` + o.jump.replace(/:\d+$/, "");
  return [...common, ...opt(`ProxyCommand=${jump}`), ...alias, ...extra, o.target, command];
}

/** One interactive session: a remote PTY running a loop that answers every line. */
class Session {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #out = "";
  #err = "";
  readonly #waiters = new Set<() => void>();
  readonly done: Promise<Deno.CommandStatus>;

  constructor(o: LoadOptions, readonly id: number) {
    this.#child = new Deno.Command("ssh", {
      args: sshArgs(
        o,
        ["-tt"],
        'stty -echo; while read -r l; do [ "$l" = exit ] && exit 0; echo "got:$l"; done',
      ),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    const pump = async (s: ReadableStream<Uint8Array>, err: boolean) => {
      for await (const c of s) {
        if (err) this.#err += dec.decode(c);
        else this.#out += dec.decode(c);
        for (const w of this.#waiters) w();
      }
    };
    const pumps = Promise.all([pump(this.#child.stdout, false), pump(this.#child.stderr, true)]);
    this.done = this.#child.status.then(async (s) => {
      await pumps;
      for (const w of this.#waiters) w();
      return s;
    });
  }

  get error(): string {
    return this.#err.trim().slice(-300);
  }

  /** Sends `line` and resolves once its answer arrived (false if the session ended). */
  async ping(line: string, timeoutMs = 20_000): Promise<boolean> {
    try {
      await this.#writer.write(enc.encode(`${line}\n`));
    } catch {
      return false;
    }
    const want = `got:${line}`;
    return await new Promise<boolean>((resolve) => {
      let ended = false;
      const check = () => {
        if (this.#out.includes(want)) finish(true);
        else if (ended) finish(false);
      };
      const finish = (v: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(v);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      void this.done.then(() => {
        ended = true;
        check();
      });
      this.#waiters.add(check);
      check();
    });
  }

  async end(): Promise<number> {
    await this.#writer.write(enc.encode("exit\n")).catch(() => {});
    await this.#writer.close().catch(() => {});
    return (await this.done).code;
  }
}

/** Uploads paced random data to `sha256sum` on the node; compares the hashes. */
async function bulk(o: LoadOptions): Promise<LoadResult["bulk"]> {
  const t0 = performance.now();
  const child = new Deno.Command("ssh", {
    args: sshArgs(o, [], "sha256sum"),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  const chunk = 256 * 1024;
  const chunks = o.bulkMiB * 4;
  const pauseMs = (o.bulkSeconds * 1000) / chunks;
  const hashes: Uint8Array[] = [];
  const all = new Uint8Array(o.bulkMiB * 1024 * 1024);
  for (let i = 0; i < chunks; i++) {
    const part = all.subarray(i * chunk, (i + 1) * chunk);
    for (let off = 0; off < part.length; off += 65536) {
      crypto.getRandomValues(part.subarray(off, Math.min(off + 65536, part.length)));
    }
    hashes.push(part);
  }
  const expected = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", all)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  let writeError = "";
  for (const part of hashes) {
    try {
      await writer.write(part);
    } catch (e) {
      writeError = String(e);
      break;
    }
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  await writer.close().catch(() => {});
  const status = await child.status;
  const got = (await out).trim().split(/\s+/)[0] ?? "";
  const seconds = (performance.now() - t0) / 1000;
  const ok = status.code === 0 && got === expected && writeError === "";
  return {
    ok,
    detail: ok
      ? `sha256 ${expected} intact`
      : `exit ${status.code}, expected ${expected}, node hashed ${got || "nothing"} ${writeError} ${
        (await err).trim().slice(-300)
      }`,
    mib: o.bulkMiB,
    seconds: Math.round(seconds * 10) / 10,
  };
}

async function oneConnection(o: LoadOptions): Promise<string | undefined> {
  // -v: a failure is reported with the client's last words (LogLevel=ERROR hides some).
  const r = await new Deno.Command("ssh", {
    args: sshArgs(o, ["-v"], "echo ok"),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = dec.decode(r.stdout).trim();
  if (r.code === 0 && out === "ok") return undefined;
  const log = dec.decode(r.stderr).trim().split("\n").filter((l) =>
    !/^debug1: (Reading|identity|Local|Remote|SSH2|load_|expecting|Will|Offering|Server accepts|pledge|Requesting|kex|Authenticat|Sending env|channel \d+: new)/
      .test(l)
  );
  return `exit ${r.code}: ${log.slice(-8).join(" | ").slice(-900)}`;
}

async function main(): Promise<void> {
  const o = JSON.parse(Deno.args[0] ?? "{}") as LoadOptions;
  const t0 = performance.now();
  const say = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));
  const sessions = Array.from({ length: o.sessions }, (_, i) => new Session(o, i));
  const first = await Promise.all(sessions.map((s) => s.ping(`s${s.id}-first`, 60_000)));
  if (first.some((ok) => !ok)) {
    say(`RESULT ${JSON.stringify({ error: sessions.map((s) => s.error).join(" | ") })}`);
    Deno.exit(1);
  }
  let finishing = false;
  const failedSessions = new Set<number>();
  const pingers = sessions.map(async (s) => {
    for (let k = 0; !finishing; k++) {
      if (!(await s.ping(`s${s.id}-${k}`))) {
        failedSessions.add(s.id);
        return;
      }
      await new Promise((r) => setTimeout(r, o.pingMs));
    }
  });
  const upload = bulk(o);
  const connections = { attempted: 0, ok: 0, failed: [] as string[] };
  const inflight = new Set<Promise<void>>();
  const spawner = (async () => {
    const every = 1000 / o.rate;
    let next = performance.now();
    while (!finishing) {
      connections.attempted++;
      const p = oneConnection(o).then((err) => {
        if (err === undefined) connections.ok++;
        else connections.failed.push(err);
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      next += every;
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
  })();
  say("sessions-ready");
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buf = "";
  for await (const c of lines) {
    buf += c;
    if (buf.includes("finish")) break;
  }
  finishing = true;
  await spawner;
  await Promise.all(inflight);
  await Promise.all(pingers);
  const sessionErrors: string[] = [];
  await Promise.all(sessions.map(async (s) => {
    if (!failedSessions.has(s.id) && !(await s.ping(`s${s.id}-last`))) failedSessions.add(s.id);
    const code = await s.end();
    if (code !== 0) failedSessions.add(s.id);
    if (failedSessions.has(s.id)) sessionErrors.push(`session ${s.id}: exit ${code} ${s.error}`);
  }));
  const result: LoadResult = {
    connections,
    sessions: { ok: o.sessions - failedSessions.size, failed: sessionErrors },
    bulk: await upload,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  say(`RESULT ${JSON.stringify(result)}`);
}

if (import.meta.main) await main();
