/**
 * Graceful restart (SIGHUP, SIGUSR2) by a successor process on the same ports.
 *
 * Teleport passes its listening sockets to a forked child. Deno cannot hand descriptors to a
 * child, so the successor binds the same addresses itself: every fixed-port listener is bound
 * with `SO_REUSEPORT` (lib/net `listenOptions`), and the kernel spreads new connections over
 * both processes until the old one closes its listeners. Connections still queued on a
 * listener when it closes would be reset; Linux moves them to the other listener of the port
 * when `net.ipv4.tcp_migrate_req` is 1, which {@link startSuccessor} sets (as root) or asks for.
 *
 * The hand-over:
 * 1. The old process makes a private directory with a Unix socket and starts its own command
 *    line again (`/proc/self/cmdline`: same binary or `deno run` flags, same arguments, same
 *    working directory and environment) with {@link HANDOVER_ENV} naming the socket.
 * 2. The successor ({@link predecessorFromEnv}) starts its services: it skips the exclusive
 *    address check, opens the embedded backend as a successor (both processes use the KV file
 *    until the old one closes it; lib/backend kv.ts), binds with `SO_REUSEPORT`, and once every
 *    service is ready, replaces the pid file (locked) and writes `ready <pid>` to the socket.
 * 3. The old process learns the outcome: ready, or the successor exited first (a bad config,
 *    a crash), or {@link HANDOVER_TIMEOUT_MS} passed (then it stops the successor). On failure
 *    it keeps serving and logs why.
 *
 * @module
 */
import { messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";

/** Environment variable that tells a process it takes over from another (the socket path). */
export const HANDOVER_ENV = "TELEPORT_HANDOVER_SOCKET";

/** How long a successor may take to become ready (Teleport: 2 minutes). */
export const HANDOVER_TIMEOUT_MS = 120_000;

const MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req";

/** Options of {@link startSuccessor}. */
export interface StartSuccessorOptions {
  logger: Logger;
  /**
   * Time the successor has to become ready.
   *
   * @default {HANDOVER_TIMEOUT_MS}
   */
  timeoutMs?: number;
  /**
   * The successor's command line.
   *
   * @default {this process's own, from /proc/self/cmdline}
   */
  argv?: string[];
}

/** A successor that said it is ready. */
export interface Successor {
  pid: number;
}

/**
 * Starts this process's command line again as a successor and resolves once it is ready;
 * rejects (after stopping it, if it still runs) when it exits first or does not get ready in
 * time. See the module doc.
 */
export async function startSuccessor(o: StartSuccessorOptions): Promise<Successor> {
  const log = o.logger;
  await ensureQueuedConnectionsMigrate(log);
  const argv = o.argv ?? await ownCommandLine();
  const dir = await Deno.makeTempDir({ prefix: "teleport-handover-" });
  const socketPath = `${dir}/ready.sock`;
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  const timeoutMs = o.timeoutMs ?? HANDOVER_TIMEOUT_MS;
  let child: Deno.ChildProcess | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: { [HANDOVER_ENV]: socketPath },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    // The successor outlives this process; it must not keep this one from exiting either.
    child.unref();
    const pid = child.pid;
    log.info("Started the new process (pid {pid}); it takes over once ready", { pid });
    const ready = readReady(listener, pid);
    const exited = child.status.then((s) => {
      throw new Error(
        `the new process (pid ${pid}) exited with ${
          s.signal !== null ? `signal ${s.signal}` : `code ${s.code}`
        } before it was ready (its log above says why)`,
      );
    });
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `the new process (pid ${pid}) was not ready within ${
                Math.round(timeoutMs / 1000)
              } s; it was stopped`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([ready, exited, timedOut]);
    } catch (err) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      throw err;
    }
  } finally {
    clearTimeout(timer);
    listener.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Resolves when the successor `pid` writes `ready <pid>` to the socket. */
async function readReady(listener: Deno.Listener, pid: number): Promise<Successor> {
  for (;;) {
    // Throws once the listener closes: another outcome won the race by then.
    const conn = await listener.accept();
    try {
      const buf = new Uint8Array(64);
      let text = "";
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
        if (text.includes("\n") || text.length > 64) break;
      }
      if (text.trim() === `ready ${pid}`) return { pid };
    } catch {
      // a connection that says nothing useful is ignored
    } finally {
      conn.close();
    }
  }
}

/** Links a successor to the process it takes over from. */
export interface PredecessorLink {
  /** Tells the old process that every service of this one is ready. */
  notifyReady(): Promise<void>;
}

/**
 * Whether this process was started as a successor ({@link HANDOVER_ENV}); removes the variable
 * so that a later successor of this process does not inherit it.
 */
export function predecessorFromEnv(): PredecessorLink | undefined {
  const path = Deno.env.get(HANDOVER_ENV);
  if (path === undefined || path === "") return undefined;
  Deno.env.delete(HANDOVER_ENV);
  return {
    async notifyReady() {
      // A Unix socket: no Nagle delay to turn off (setNoDelay is for TCP).
      const conn = await Deno.connect({ transport: "unix", path });
      try {
        const bytes = new TextEncoder().encode(`ready ${Deno.pid}\n`);
        for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
      } finally {
        conn.close();
      }
    },
  };
}

/** This process's command line (binary or `deno` with its flags, then the arguments). */
export async function ownCommandLine(): Promise<string[]> {
  try {
    const raw = await Deno.readTextFile("/proc/self/cmdline");
    const argv = raw.split("\0");
    if (argv.at(-1) === "") argv.pop();
    if (argv.length > 0) return argv;
  } catch {
    // not Linux: rebuild it below
  }
  return [Deno.execPath(), ...Deno.args];
}

/**
 * Makes Linux move connections queued on a closing `SO_REUSEPORT` listener to the successor's
 * instead of resetting them (`net.ipv4.tcp_migrate_req=1`, per network namespace). Warns when
 * it cannot (not root): then a connection that arrives just as the old listener closes may be
 * reset.
 */
export async function ensureQueuedConnectionsMigrate(log: Logger): Promise<void> {
  let value: string;
  try {
    value = (await Deno.readTextFile(MIGRATE_REQ)).trim();
  } catch {
    return; // not Linux, or a kernel before 5.14: nothing to set
  }
  if (value === "1") return;
  try {
    await Deno.writeTextFile(MIGRATE_REQ, "1\n");
    log.info(
      "Set net.ipv4.tcp_migrate_req=1: connections queued on this process's listeners move to " +
        "the new process when they close, instead of being reset",
    );
  } catch (err) {
    log.warn(
      "Cannot set net.ipv4.tcp_migrate_req=1 ({error}): connections that arrive just as this " +
        "process closes its listeners may be reset; run: sysctl -w net.ipv4.tcp_migrate_req=1",
      { error: messageOf(err) },
    );
  }
}
