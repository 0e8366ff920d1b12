/**
 * Admission control for every listener of the process (issue 11 finding 1): one
 * {@linkcode ConnectionGuard} is shared by all listeners and decides, at accept time, whether a
 * connection may live; {@linkcode listenGuarded} and {@linkcode guardServer} put it in front of
 * node:net / node:https servers.
 *
 * What the guard enforces:
 * - **Descriptors.** The process never lets accepted connections use its last descriptors: a
 *   connection is refused (accepted and closed at once, so it costs a descriptor for
 *   microseconds, never more) while `open files + 3 > limit - reserve` (3: what a pass-through
 *   to auth in this process costs; a connection still in its handshake counts as 3 for the same
 *   reason, since it may yet become one). The open-files count is
 *   read from `/proc/self/fd` at most once per `recountIntervalMs` and moved by the
 *   descriptors the guard hands out in between, so a flood cannot outrun it. Deno panics when it
 *   runs out of descriptors (the stack-size probe opens /proc/self/maps), which takes every
 *   service of the process down: the reserve is what keeps it alive.
 * - **Pending connections per client IP.** A connection is *pending* until its protocol layer
 *   calls {@linkcode GuardedConnection.established} (TLS handshake and first request done, SSH
 *   authenticated). Pending connections are capped per client IP (`maxPendingPerIp`) and must
 *   become established within the listener's deadline, or they are closed. This is what bounds
 *   unauthenticated clients, while reverse-tunnel agents behind one NAT address may still hold
 *   thousands of established connections.
 * - **Connections per client IP** (`maxConnectionsPerIp`, Teleport's `max_connections`) and in
 *   all (`maxConnections`).
 *
 * IPv6 clients are counted by /64 prefix (one host usually owns a whole /64); IPv4-mapped
 * addresses count as their IPv4 address. Refusals are logged at warn: the first at once, then
 * one summary per listener and reason every 10 s while they last, so a flood cannot flood the log.
 *
 * @module
 */
import type { Server, Socket } from "node:net";
import { createServer } from "node:net";
import type { Duplex } from "node:stream";
import { type Clock, RealClock } from "../clock/mod.ts";
import { BadParameterError, messageOf } from "../errors/mod.ts";
import type { Logger } from "../log/mod.ts";

/** Options of {@linkcode ConnectionGuard}. */
export interface ConnectionGuardOptions {
  logger: Logger;
  /** @default {new RealClock()} */
  clock?: Clock;
  /** Most connections open at once, over every listener. @default {Infinity} */
  maxConnections?: number;
  /** Most connections from one client IP (or IPv6 /64). @default {15000} */
  maxConnectionsPerIp?: number;
  /** Most pending (not yet established) connections from one client IP. @default {512} */
  maxPendingPerIp?: number;
  /**
   * The process's open-files limit.
   * @default {the soft `Max open files` of /proc/self/limits, else 1024}
   */
  openFilesLimit?: number;
  /**
   * Descriptors kept free for everything that is not an accepted connection (backend files,
   * dials to nodes and auth, child processes, the runtime itself).
   * @default {max(256, 10% of openFilesLimit), at most half of it}
   */
  descriptorReserve?: number;
  /**
   * Counts the descriptors the process has open; undefined when it cannot tell.
   * @default {the entries of /proc/self/fd}
   */
  countOpenFiles?: () => number | undefined;
  /** How often the open descriptors are really counted, in ms. @default {1000} */
  recountIntervalMs?: number;
}

/** A connection the guard admitted. */
export interface GuardedConnection {
  /** The client address it is counted under (normalised IP). */
  readonly clientAddr: string;
  /** The listener that accepted it. */
  readonly listener: string;
  /** True once {@linkcode GuardedConnection.established} was called. */
  readonly isEstablished: boolean;
  /**
   * Declares the handshake done (TLS handshake and first request; SSH authentication): the
   * deadline stops and the connection no longer counts as pending. Idempotent.
   */
  established(): void;
  /**
   * Re-arms the deadline: the connection must become established within `ms` from now (a
   * router handing a connection to a protocol with a longer login, such as SSH). No-op once
   * established.
   */
  setDeadline(ms: number): void;
  /**
   * Accounts one more descriptor held for this connection (an upstream socket), from before it
   * is opened: call `opened()` once the socket exists (until then it counts on top of every
   * real count) and `release()` when it is closed (idempotent; everything is released when the
   * connection closes anyway).
   */
  holdDescriptor(): DescriptorHold;
  /**
   * Moves the per-IP charge to the client's real address (learned from a verified PROXY header).
   * Returns false, and changes nothing, when that address is over its caps: close the connection.
   */
  rekey(addr: string): boolean;
}

/** A descriptor held for a guarded connection (see {@linkcode GuardedConnection.holdDescriptor}). */
export interface DescriptorHold {
  /** The socket exists now: real counts of open descriptors include it from here on. */
  opened(): void;
  release(): void;
}

/** Counters for diagnostics and tests. */
export interface ConnectionGuardStats {
  connections: number;
  pending: number;
  /** Descriptors held by admitted connections (connections and their upstreams). */
  heldDescriptors: number;
  /** The estimate of open descriptors the last decision used. */
  openFiles: number;
  openFilesLimit: number;
  descriptorReserve: number;
  /** Refused connections since start, by reason. */
  refused: Record<RefusalReason, number>;
  /** Open connections by listener name. */
  byListener: Record<string, number>;
}

/** Why a connection was refused. */
export type RefusalReason = "descriptors" | "total" | "per-ip" | "pending-per-ip" | "closing";

const REFUSAL_TEXT: Record<RefusalReason, string> = {
  "descriptors": "the process is near its open-files limit",
  "total": "the connection limit of the process is reached",
  "per-ip": "the client address has too many connections",
  "pending-per-ip": "the client address has too many connections still in their handshake",
  "closing": "the listener is closing",
};

const LOG_SUMMARY_MS = 10_000;

/**
 * Descriptors a new connection is assumed to need when admitted: a pass-through to auth in this
 * process costs three (the client, the upstream and auth's side of it).
 */
const ADMISSION_COST = 3;

/** Where this process's connections to itself are counted (no per-address caps). */
const INTERNAL_KEY = "internal";

function endpointKey(addr: string | undefined, port: number | undefined): string {
  return `${clientKey(addr)}|${port ?? 0}`;
}
const FORCED_RECOUNT_MS = 100;

/** `::ffff:1.2.3.4` → `1.2.3.4`; IPv6 → its /64 prefix; the key connections are counted by. */
export function clientKey(address: string | undefined): string {
  const addr = address?.trim().toLowerCase() ?? "";
  if (addr === "") return "unknown";
  if (addr.startsWith("::ffff:") && addr.includes(".")) return addr.slice(7);
  if (!addr.includes(":")) return addr;
  const zone = addr.indexOf("%");
  const bare = zone === -1 ? addr : addr.slice(0, zone);
  const [head = "", tail = ""] = bare.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = bare.includes("::")
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") +
    "::/64";
}

/** The soft open-files limit from /proc/self/limits, or undefined. */
export function readOpenFilesLimit(): number | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
    if (m === null) return undefined;
    return m[1] === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** The number of open descriptors (entries of /proc/self/fd), or undefined. */
export function countOpenFiles(): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n - 1; // the directory handle itself
  } catch {
    return undefined;
  }
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (value !== Infinity && (!Number.isInteger(value) || value <= 0)) {
    throw new BadParameterError(
      `Cannot create connection guard: ${name} must be a positive integer, received ${value}`,
    );
  }
  return value;
}

class Admitted implements GuardedConnection {
  readonly listener: string;
  clientAddr: string;
  isEstablished = false;
  descriptors = 1;
  closed = false;
  /** The peer's `address|port`, for {@linkcode ConnectionGuard.link}. */
  readonly endpoint: string;
  readonly #guard: ConnectionGuard;
  readonly #hooks: ConnectionHooks;

  constructor(
    guard: ConnectionGuard,
    listener: string,
    addr: string,
    hooks: ConnectionHooks,
    endpoint: string,
  ) {
    this.#guard = guard;
    this.listener = listener;
    this.clientAddr = addr;
    this.#hooks = hooks;
    this.endpoint = endpoint;
  }

  established(): void {
    if (this.isEstablished || this.closed) return;
    this.isEstablished = true;
    this.#guard._established(this);
    this.#hooks.onEstablished?.();
  }

  setDeadline(ms: number): void {
    if (this.isEstablished || this.closed) return;
    this.#hooks.onSetDeadline?.(ms);
  }

  /** Holds not opened yet. */
  readonly unopened: Set<object> = new Set();

  holdDescriptor(): DescriptorHold {
    if (this.closed) return { opened() {}, release() {} };
    this.descriptors++;
    const token = {};
    this.unopened.add(token);
    this.#guard._hold(1, true);
    let released = false;
    return {
      opened: () => {
        if (released || this.closed || !this.unopened.delete(token)) return;
        this.#guard._opened();
      },
      release: () => {
        if (released || this.closed) return;
        released = true;
        this.descriptors--;
        this.#guard._hold(-1, this.unopened.delete(token));
      },
    };
  }

  rekey(addr: string): boolean {
    return this.#guard._rekey(this, clientKey(addr));
  }
}

/** What the listener does when its connection changes state. */
export interface ConnectionHooks {
  onEstablished?: () => void;
  onSetDeadline?: (ms: number) => void;
}

interface IpCount {
  open: number;
  pending: number;
}

/** The process-wide admission state (see the module doc). */
export class ConnectionGuard {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #maxConnections: number;
  readonly #maxPerIp: number;
  readonly #maxPendingPerIp: number;
  readonly #limit: number;
  readonly #reserve: number;
  readonly #count: () => number | undefined;
  readonly #recountMs: number;
  readonly #byIp = new Map<string, IpCount>();
  #connections = 0;
  #pending = 0;
  #held = 0;
  #counted: number | undefined;
  /** Descriptors handed out since the last real count (releases wait for the next count). */
  #addedSinceCount = 0;
  /** Descriptors promised to holds whose sockets are not open yet (no real count sees them). */
  #unopened = 0;
  #countedAt = -Infinity;
  #refused: Record<RefusalReason, number> = {
    "descriptors": 0,
    "total": 0,
    "per-ip": 0,
    "pending-per-ip": 0,
    "closing": 0,
  };
  readonly #logState = new Map<string, { at: number; since: number }>();
  readonly #links = new Map<string, GuardedConnection>();
  readonly #byListener = new Map<string, number>();

  constructor(opts: ConnectionGuardOptions) {
    this.#log = opts.logger;
    this.#clock = opts.clock ?? new RealClock();
    this.#maxConnections = positiveInt(opts.maxConnections, Infinity, "maxConnections");
    this.#maxPerIp = positiveInt(opts.maxConnectionsPerIp, 15000, "maxConnectionsPerIp");
    this.#maxPendingPerIp = positiveInt(opts.maxPendingPerIp, 512, "maxPendingPerIp");
    this.#limit = positiveInt(
      opts.openFilesLimit,
      readOpenFilesLimit() ?? 1024,
      "openFilesLimit",
    );
    const reserve = opts.descriptorReserve ??
      Math.min(Math.floor(this.#limit / 2), Math.max(256, Math.floor(this.#limit / 10)));
    if (!Number.isInteger(reserve) || reserve < 0 || reserve >= this.#limit) {
      throw new BadParameterError(
        `Cannot create connection guard: descriptorReserve must be an integer from 0 to ` +
          `${this.#limit - 1} (below the open-files limit), received ${reserve}`,
      );
    }
    this.#reserve = reserve;
    this.#count = opts.countOpenFiles ?? countOpenFiles;
    this.#recountMs = opts.recountIntervalMs ?? 1000;
  }

  /** Current counters. */
  get stats(): ConnectionGuardStats {
    return {
      connections: this.#connections,
      pending: this.#pending,
      heldDescriptors: this.#held,
      openFiles: this.#openFiles(),
      openFilesLimit: this.#limit,
      descriptorReserve: this.#reserve,
      refused: { ...this.#refused },
      byListener: Object.fromEntries(this.#byListener),
    };
  }

  /**
   * Decides on a connection from `remoteAddr` accepted by `listener`. Returns the admitted
   * connection, or the reason it must be closed (the caller closes it; the refusal is logged).
   * `hooks` are told when the connection is declared established or its deadline moves.
   */
  admit(
    listener: string,
    remoteAddr: string | undefined,
    hooks: ConnectionHooks = {},
    remotePort?: number,
  ): GuardedConnection | RefusalReason {
    const key = clientKey(remoteAddr);
    const why = this.#check(key, ADMISSION_COST);
    if (why !== undefined) {
      this.refused(listener, why, key);
      return why;
    }
    const conn = new Admitted(this, listener, key, hooks, endpointKey(remoteAddr, remotePort));
    const c = this.#ip(key);
    c.open++;
    c.pending++;
    this.#connections++;
    this.#byListener.set(listener, (this.#byListener.get(listener) ?? 0) + 1);
    this.#pending++;
    this.#held++;
    this.#addedSinceCount++;
    return conn;
  }

  /**
   * Links a connection this process opens to one of its own listeners (the proxy passing a
   * client through to auth) to the client connection it serves: when the listener declares its
   * side established, the client's connection is established too, so the client stays under the
   * handshake deadline and its address's pending cap until the far end saw a real request.
   * `localAddr`/`localPort` are the outgoing socket's own address. Returns the unlink.
   */
  link(
    localAddr: string | undefined,
    localPort: number | undefined,
    to: GuardedConnection,
  ): () => void {
    const key = endpointKey(localAddr, localPort);
    this.#links.set(key, to);
    return () => {
      if (this.#links.get(key) === to) this.#links.delete(key);
    };
  }

  /** Forgets a closed connection (idempotent). */
  release(conn: GuardedConnection): void {
    const a = conn as Admitted;
    if (a.closed) return;
    a.closed = true;
    const c = this.#ip(a.clientAddr);
    c.open--;
    if (!a.isEstablished) {
      c.pending--;
      this.#pending--;
    }
    if (c.open <= 0) this.#byIp.delete(a.clientAddr);
    const left = (this.#byListener.get(a.listener) ?? 1) - 1;
    if (left > 0) this.#byListener.set(a.listener, left);
    else this.#byListener.delete(a.listener);
    this.#connections--;
    this.#held -= a.descriptors;
    this.#unopened -= a.unopened.size;
    a.unopened.clear();
  }

  /** Logs a refusal: the first at once, then a summary every 10 s per listener and reason. */
  refused(listener: string, why: RefusalReason, key: string): void {
    this.#refused[why]++;
    const logKey = `${listener}\0${why}`;
    const now = this.#clock.now().getTime();
    const state = this.#logState.get(logKey);
    if (state !== undefined && now - state.at < LOG_SUMMARY_MS) {
      state.since++;
      return;
    }
    const count = (state?.since ?? 0) + 1;
    this.#logState.set(logKey, { at: now, since: 0 });
    const s = this.stats;
    this.#log.warn(
      "Refusing connections on {listener}: {reason} ({count} refused since the last report; " +
        "last from {client}; {connections} open, {pending} in handshake, about {openFiles} of " +
        "{limit} descriptors in use, {reserve} kept in reserve)",
      {
        listener,
        reason: REFUSAL_TEXT[why],
        count,
        client: key,
        connections: s.connections,
        pending: s.pending,
        openFiles: s.openFiles,
        limit: s.openFilesLimit,
        reserve: s.descriptorReserve,
      },
    );
  }

  /** @internal */
  _established(conn: Admitted): void {
    this.#ip(conn.clientAddr).pending--;
    this.#pending--;
    this.#links.get(conn.endpoint)?.established();
  }

  /** @internal */
  _hold(n: number, unopened: boolean): void {
    this.#held += n;
    if (unopened) this.#unopened += Math.sign(n);
  }

  /** @internal */
  _opened(): void {
    this.#unopened--;
    this.#addedSinceCount++;
  }

  /** @internal */
  _rekey(conn: Admitted, addr: string): boolean {
    // This process's own pass-through: the client's connection on the other listener carries
    // the per-address charge already; this side only holds descriptors.
    const key = this.#links.has(conn.endpoint) ? INTERNAL_KEY : addr;
    if (conn.closed || key === conn.clientAddr) return true;
    const next = key === INTERNAL_KEY ? undefined : this.#byIp.get(key);
    if (next !== undefined) {
      if (next.open >= this.#maxPerIp) return this.#refuseRekey(conn, "per-ip", key);
      if (!conn.isEstablished && next.pending >= this.#maxPendingPerIp) {
        return this.#refuseRekey(conn, "pending-per-ip", key);
      }
    }
    const old = this.#ip(conn.clientAddr);
    old.open--;
    if (!conn.isEstablished) old.pending--;
    if (old.open <= 0) this.#byIp.delete(conn.clientAddr);
    const c = this.#ip(key);
    c.open++;
    if (!conn.isEstablished) c.pending++;
    conn.clientAddr = key;
    return true;
  }

  #refuseRekey(conn: Admitted, why: RefusalReason, key: string): false {
    this.refused(conn.listener, why, key);
    return false;
  }

  #ip(key: string): IpCount {
    let c = this.#byIp.get(key);
    if (c === undefined) {
      c = { open: 0, pending: 0 };
      this.#byIp.set(key, c);
    }
    return c;
  }

  #check(key: string, cost: number): RefusalReason | undefined {
    if (this.#connections >= this.#maxConnections) return "total";
    const c = this.#byIp.get(key);
    if (c !== undefined) {
      if (c.open >= this.#maxPerIp) return "per-ip";
      if (c.pending >= this.#maxPendingPerIp) return "pending-per-ip";
    }
    if (this.#openFiles() + cost > this.#limit - this.#reserve) {
      // Recount before refusing (descriptors closed since the last count are free again), but
      // not on every refusal of a flood: counting reads a directory of thousands of entries.
      const now = this.#clock.now().getTime();
      if (now - this.#countedAt >= FORCED_RECOUNT_MS) this.#countedAt = -Infinity;
      if (this.#openFiles() + cost > this.#limit - this.#reserve) return "descriptors";
    }
    return undefined;
  }

  /**
   * Open descriptors: the last real count plus what the guard handed out since. Releases are
   * not subtracted until the next count: a socket closed in JavaScript may keep its descriptor
   * for a while (more so under load), and an estimate that runs low is what lets a flood
   * through.
   */
  #openFiles(): number {
    const now = this.#clock.now().getTime();
    if (now - this.#countedAt >= this.#recountMs) {
      this.#countedAt = now;
      const n = this.#count();
      if (n !== undefined) {
        this.#counted = n;
        this.#addedSinceCount = 0;
      }
    }
    // A connection still in its handshake may yet become a pass-through to auth in this
    // process (three descriptors): it counts as that until it is established or closed, so a
    // flood of handshakes cannot outgrow the reserve once its dials start.
    const pendingGrowth = (ADMISSION_COST - 1) * this.#pending;
    if (this.#counted === undefined) return this.#held + pendingGrowth;
    return this.#counted + this.#addedSinceCount + this.#unopened + pendingGrowth;
  }
}

const GUARDED = new WeakMap<object, GuardedConnection>();

/** The guarded connection a socket (or a stream derived from it) belongs to. */
export function guardOf(socket: object): GuardedConnection | undefined {
  return GUARDED.get(socket) ??
    // node:https hands request handlers the TLSSocket; its raw socket is `_parent`.
    GUARDED.get((socket as { _parent?: object })._parent ?? {});
}

/** Records that `derived` (a TLSSocket built on a guarded socket) belongs to `conn`. */
export function attachGuard(derived: object, conn: GuardedConnection): void {
  GUARDED.set(derived, conn);
}

/** Options of {@linkcode guardServer}. */
export interface GuardServerOptions {
  guard: ConnectionGuard;
  /** Names the listener in logs ("auth API", "proxy web", "node SSH"). */
  name: string;
  logger: Logger;
  /**
   * Time from accept until the connection is established; then it is closed.
   * @default {5000}
   */
  handshakeTimeoutMs?: number;
  /**
   * Time a connection may stay without reading or writing anything, once established; 0 keeps
   * idle connections (protocols with their own keepalives).
   * @default {0}
   */
  idleTimeoutMs?: number;
}

/** Live counters of one guarded server. */
export interface GuardedServerHandle {
  /** Connections of this server still open. */
  readonly connections: number;
  /** Destroys the connections that are still pending (on close). */
  destroyPending(): void;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

/**
 * Puts `guard` in front of a node:net (or node:tls / node:https) server: its own `connection`
 * listener runs first and closes refused sockets; admitted ones get a deadline until
 * {@linkcode GuardedConnection.established}. The server's own handlers must skip sockets that are
 * already destroyed (node:https does).
 */
export function guardServer(server: Server, opts: GuardServerOptions): GuardedServerHandle {
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new BadParameterError(
      `Cannot guard ${opts.name}: handshakeTimeoutMs must be a positive integer, received ` +
        `${timeoutMs}`,
    );
  }
  const idleMs = opts.idleTimeoutMs ?? 0;
  const open = new Set<Socket>();
  server.prependListener("connection", (raw: Socket) => {
    raw.setNoDelay(true);
    raw.on("error", (err: Error) => {
      opts.logger.debug("Connection from {remote} to {listener} failed: {error}", {
        remote: raw.remoteAddress,
        listener: opts.name,
        error: messageOf(err),
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number) => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        opts.logger.debug(
          "Closed connection from {remote} to {listener}: no handshake within {ms} ms",
          { remote: raw.remoteAddress, listener: opts.name, ms },
        );
        raw.destroy();
      }, ms);
    };
    const conn = opts.guard.admit(opts.name, raw.remoteAddress, {
      onEstablished: () => {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        if (idleMs > 0) {
          raw.setTimeout(idleMs, () => {
            opts.logger.debug("Closed idle connection from {remote} to {listener}", {
              remote: raw.remoteAddress,
              listener: opts.name,
            });
            raw.destroy();
          });
        }
      },
      onSetDeadline: (ms) => {
        if (!raw.destroyed) arm(ms);
      },
    }, raw.remotePort);
    if (typeof conn === "string") {
      raw.destroy();
      return;
    }
    GUARDED.set(raw, conn);
    open.add(raw);
    arm(timeoutMs);
    raw.once("close", () => {
      if (timer !== undefined) clearTimeout(timer);
      open.delete(raw);
      opts.guard.release(conn);
    });
  });
  return {
    get connections() {
      return open.size;
    },
    destroyPending() {
      for (const raw of open) if (!(guardOf(raw)?.isEstablished ?? true)) raw.destroy();
    },
  };
}

/** Options of {@linkcode listenGuarded}. */
export interface ListenGuardedOptions extends GuardServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Gets each admitted socket (no-delay set, guarded). */
  onConnection: (socket: Socket) => void;
}

/** A listening guarded server. */
export interface GuardedListener extends AsyncDisposable {
  /** The bound address. */
  readonly addr: { host: string; port: number };
  /** Connections accepted and still open (handed over or not). */
  readonly connections: number;
  /**
   * Stops accepting and destroys connections still pending; established connections belong to
   * their handlers, which close them.
   */
  close(): Promise<void>;
  /**
   * Stops accepting only (graceful stop): connections already accepted go on through their
   * handshake, under their deadline.
   */
  stopAccepting(): Promise<void>;
}

/**
 * Listen options for a server's fixed address: a fixed port is bound with `SO_REUSEPORT`, so
 * that a successor process (graceful restart, SIGHUP) can bind it too while this one still
 * serves; the kernel spreads new connections over both until this one closes. Port 0 (tests)
 * stays exclusive. A second teleport started by mistake is still refused: the start checks
 * each address with an exclusive bind first (lib/service checkListenAddrs).
 */
export function listenOptions(host: string, port: number): {
  host: string;
  port: number;
  reusePort?: boolean;
} {
  return port === 0 ? { host, port } : { host, port, reusePort: true };
}

/** Binds a node:net server guarded by `guard`; resolves once it listens. */
export async function listenGuarded(opts: ListenGuardedOptions): Promise<GuardedListener> {
  const server = createServer();
  const handle = guardServer(server, opts);
  server.on("connection", (socket: Socket) => {
    if (socket.destroyed) return;
    opts.onConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenOptions(opts.host, opts.port), () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err: Error) => {
    opts.logger.error("{listener} listener failed: {error}", {
      listener: opts.name,
      error: messageOf(err),
    });
  });
  const a = server.address();
  if (a === null || typeof a === "string") {
    server.close();
    throw new BadParameterError(`Cannot listen for ${opts.name}: the listener has no TCP address`);
  }
  let stopped = false;
  const stopAccepting = () => {
    // node:net calls back once every accepted socket is closed; those belong to handlers, so
    // only the stop of accepting matters here.
    if (!stopped) server.close(() => {});
    stopped = true;
    return Promise.resolve();
  };
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= stopAccepting().then(() => handle.destroyPending());
    return closed;
  };
  return {
    addr: { host: a.address, port: a.port },
    get connections() {
      return handle.connections;
    },
    close,
    stopAccepting,
    [Symbol.asyncDispose]: close,
  };
}

/** Declares the guarded connection behind `socket` (if any) established. */
export function markEstablished(socket: Duplex | object): void {
  guardOf(socket)?.established();
}
