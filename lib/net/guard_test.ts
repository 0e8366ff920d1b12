import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { FakeClock } from "../clock/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
import { testLogger } from "../log/mod.ts";
import {
  clientKey,
  ConnectionGuard,
  type ConnectionGuardOptions,
  countOpenFiles,
  type GuardedConnection,
  guardOf,
  listenGuarded,
  readOpenFilesLimit,
} from "./guard.ts";

function guard(opts: Partial<ConnectionGuardOptions> = {}) {
  const { logger, records } = testLogger();
  const clock = new FakeClock(0);
  const g = new ConnectionGuard({
    logger,
    clock,
    openFilesLimit: 1000,
    descriptorReserve: 100,
    countOpenFiles: () => 10,
    ...opts,
  });
  return { g, records, clock };
}

function admitted(r: GuardedConnection | string): GuardedConnection {
  assert.notEqual(typeof r, "string", `refused: ${r}`);
  return r as GuardedConnection;
}

Deno.test("clientKey() folds IPv4-mapped addresses and counts IPv6 by /64", () => {
  assert.equal(clientKey("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(clientKey("127.0.0.2"), "127.0.0.2");
  assert.equal(clientKey("2001:db8:0:1:aaaa::1"), "2001:db8:0:1::/64");
  assert.equal(clientKey("2001:db8:0:1:bbbb:cccc:dddd:eeee"), "2001:db8:0:1::/64");
  assert.equal(clientKey("2001:DB8:0000:0001:1:2:3:4"), "2001:db8:0:1::/64");
  assert.equal(clientKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(clientKey("::1"), "0:0:0:0::/64");
  assert.equal(clientKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(clientKey(undefined), "unknown");
});

Deno.test("ConnectionGuard.admit() caps pending connections per client IP", () => {
  const { g, records } = guard({ maxPendingPerIp: 2 });
  const a = admitted(g.admit("web", "127.0.0.2"));
  admitted(g.admit("web", "127.0.0.2"));
  assert.equal(g.admit("web", "127.0.0.2"), "pending-per-ip");
  // Another address is not affected.
  admitted(g.admit("web", "127.0.0.1"));
  // Established connections no longer count as pending.
  a.established();
  admitted(g.admit("web", "127.0.0.2"));
  assert.equal(g.stats.pending, 3);
  assert.equal(g.stats.refused["pending-per-ip"], 1);
  const warn = records.filter((r) => r.level === "warn");
  assert.equal(warn.length, 1);
  assert.match(String(warn[0]!.properties?.reason), /still in their handshake/);
});

Deno.test("ConnectionGuard.admit() caps connections per IP and in all", () => {
  const { g } = guard({ maxConnectionsPerIp: 2, maxConnections: 3 });
  const a = admitted(g.admit("ssh", "10.0.0.1"));
  admitted(g.admit("ssh", "10.0.0.1"));
  assert.equal(g.admit("ssh", "10.0.0.1"), "per-ip");
  admitted(g.admit("ssh", "10.0.0.2"));
  assert.equal(g.admit("ssh", "10.0.0.3"), "total");
  g.release(a);
  g.release(a); // idempotent
  admitted(g.admit("ssh", "10.0.0.3"));
  assert.equal(g.stats.connections, 3);
});

Deno.test("ConnectionGuard.admit() keeps the descriptor reserve free", () => {
  let open = 878;
  const { g, clock } = guard({ countOpenFiles: () => open });
  // limit 1000 - reserve 100 = 900 usable; 878 counted + what the guard hands out + 3 for the
  // next connection (what a pass-through may cost).
  const conns: GuardedConnection[] = [];
  for (let i = 0; i < 20; i++) {
    const c = admitted(g.admit("auth", `10.0.${i}.1`));
    c.established(); // (pending connections count as three: see the next test)
    conns.push(c);
  }
  assert.equal(g.admit("auth", "10.1.0.1"), "descriptors");
  // A release is believed only when the next count shows it (closing may lag)…
  g.release(conns.pop()!);
  assert.equal(g.admit("auth", "10.1.0.1"), "descriptors");
  clock.advance(100);
  open = 897;
  admitted(g.admit("auth", "10.1.0.1")).established();
  // An upstream socket counts at once (897 counted + 1 admitted + 1 held + 3 > 900).
  conns[0]!.holdDescriptor();
  assert.equal(g.admit("auth", "10.1.0.3"), "descriptors");
  // Descriptors freed elsewhere are seen at the next count.
  open = 500;
  clock.advance(1000);
  admitted(g.admit("auth", "10.1.0.2"));
  assert.equal(g.stats.refused.descriptors, 3);
});

Deno.test("ConnectionGuard counts a connection in its handshake as a possible pass-through", () => {
  const { g } = guard({ countOpenFiles: () => 800 });
  // 800 counted; each pending connection counts 3 (it may still dial auth): 800 + 3n + 3 ≤ 900.
  const conns: GuardedConnection[] = [];
  for (let i = 0; i < 33; i++) conns.push(admitted(g.admit("proxy web", `10.2.${i}.1`)));
  assert.equal(g.admit("proxy web", "10.3.0.1"), "descriptors");
  // Once established, only what it really holds counts (1 each here).
  for (const c of conns) c.established();
  admitted(g.admit("proxy web", "10.3.0.1"));
});

Deno.test("ConnectionGuard logs a flood of refusals once per 10 s with a count", () => {
  const { g, records, clock } = guard({ maxConnectionsPerIp: 1 });
  admitted(g.admit("web", "10.0.0.9"));
  for (let i = 0; i < 500; i++) g.admit("web", "10.0.0.9");
  assert.equal(records.filter((r) => r.level === "warn").length, 1);
  clock.advance(10_000);
  g.admit("web", "10.0.0.9");
  const warn = records.filter((r) => r.level === "warn");
  assert.equal(warn.length, 2);
  assert.equal(warn[1]!.properties?.count, 500);
});

Deno.test("GuardedConnection.rekey() moves the charge to the real client address", () => {
  const { g } = guard({ maxPendingPerIp: 1 });
  const viaProxy = admitted(g.admit("auth", "127.0.0.1"));
  assert.equal(viaProxy.rekey("10.9.9.9"), true);
  assert.equal(viaProxy.clientAddr, "10.9.9.9");
  // The proxy's address is free again; the client's is now full.
  const other = admitted(g.admit("auth", "127.0.0.1"));
  assert.equal(other.rekey("10.9.9.9"), false);
  assert.equal(other.clientAddr, "127.0.0.1");
});

Deno.test("new ConnectionGuard() throws BadParameterError for bad limits", () => {
  const { logger } = testLogger();
  for (
    const bad of [
      { maxPendingPerIp: 0 },
      { maxConnections: -1 },
      { openFilesLimit: 100, descriptorReserve: 100 },
      { maxConnectionsPerIp: 1.5 },
    ]
  ) {
    assert.throws(() => new ConnectionGuard({ logger, ...bad }), BadParameterError);
  }
});

Deno.test("readOpenFilesLimit() and countOpenFiles() read this process", () => {
  const limit = readOpenFilesLimit();
  assert.ok(limit !== undefined && limit > 0);
  const n = countOpenFiles();
  assert.ok(n !== undefined && n > 2 && n < limit);
});

function dial(port: number, localAddress = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, localAddress });
    s.setNoDelay(true);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    s.on("error", () => {});
    s.once("close", () => resolve());
    s.resume();
  });
}

Deno.test("listenGuarded() closes connections not established in time, keeps established ones", async () => {
  const { logger, records } = testLogger();
  const g = new ConnectionGuard({ logger });
  const accepted: Socket[] = [];
  const got = Promise.withResolvers<void>();
  await using l = await listenGuarded({
    host: "127.0.0.1",
    port: 0,
    name: "test",
    guard: g,
    logger,
    handshakeTimeoutMs: 200,
    onConnection: (s) => {
      accepted.push(s);
      if (accepted.length === 2) got.resolve();
    },
  });
  const silent = await dial(l.addr.port);
  const talker = await dial(l.addr.port);
  await got.promise;
  guardOf(accepted[1]!)!.established();
  await closed(silent);
  assert.ok(records.some((r) => r.message.includes("no handshake within")));
  assert.equal(talker.destroyed, false);
  assert.equal(g.stats.connections, 1);
  assert.equal(g.stats.pending, 0);
  talker.destroy();
  await closed(accepted[1]!);
  assert.equal(g.stats.connections, 0);
});

Deno.test("listenGuarded() closes refused connections at once and serves other addresses", async () => {
  const { logger } = testLogger();
  const g = new ConnectionGuard({ logger, maxPendingPerIp: 3 });
  let n = 0;
  await using l = await listenGuarded({
    host: "127.0.0.1",
    port: 0,
    name: "test",
    guard: g,
    logger,
    handshakeTimeoutMs: 60_000,
    onConnection: () => n++,
  });
  const flood = await Promise.all(Array.from({ length: 20 }, () => dial(l.addr.port, "127.0.0.2")));
  // Refused ones are closed by the server; the 3 admitted stay open.
  const seventeen = Promise.withResolvers<void>();
  let gone = 0;
  for (const s of flood) void closed(s).then(() => ++gone === 17 && seventeen.resolve());
  await seventeen.promise;
  assert.equal(flood.filter((s) => !s.destroyed).length, 3);
  assert.equal(g.stats.refused["pending-per-ip"], 17);
  const other = await dial(l.addr.port, "127.0.0.1");
  assert.equal(g.stats.pending, 4);
  assert.equal(n, 4);
  for (const s of [...flood, other]) s.destroy();
});

Deno.test("readOpenFilesLimit() sees the soft limit raised to the hard limit at start", async () => {
  // Deno raises RLIMIT_NOFILE's soft limit to the hard one when it starts; the guard and the
  // operator docs (LimitNOFILE=) rely on it. A child started with 256:4096 must see 4096.
  const script = `import { readOpenFilesLimit } from ${
    JSON.stringify(new URL("./guard.ts", import.meta.url).href)
  }; console.log(readOpenFilesLimit());`;
  const out = await new Deno.Command("prlimit", {
    args: ["--nofile=256:4096", Deno.execPath(), "eval", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "4096");
});

Deno.test("ConnectionGuard.link() establishes the client when its pass-through is established", () => {
  const { g } = guard();
  const client = admitted(g.admit("proxy web", "10.0.0.7", {}, 5555));
  const unlink = g.link("127.0.0.1", 40000, client);
  const upstream = admitted(g.admit("auth API", "127.0.0.1", {}, 40000));
  assert.equal(client.isEstablished, false);
  upstream.established();
  assert.equal(client.isEstablished, true);
  assert.equal(g.stats.pending, 0);
  unlink();
});

Deno.test("GuardedConnection.rekey() of a linked pass-through does not charge the client twice", () => {
  const { g } = guard({ maxPendingPerIp: 1 });
  const client = admitted(g.admit("proxy web", "10.0.0.7", {}, 5555));
  g.link("127.0.0.1", 40001, client);
  const upstream = admitted(g.admit("auth API", "127.0.0.1", {}, 40001));
  assert.equal(upstream.rekey("10.0.0.7"), true);
  assert.equal(upstream.clientAddr, "internal");
  // 127.0.0.1 is free again for real clients.
  admitted(g.admit("auth API", "127.0.0.1", {}, 40002));
});

Deno.test("ConnectionGuard.stats counts open connections by listener", () => {
  const { g } = guard({});
  const a = admitted(g.admit("proxy web", "10.0.0.1"));
  admitted(g.admit("proxy web", "10.0.0.2"));
  const c = admitted(g.admit("node SSH", "10.0.0.1"));
  assert.deepEqual(g.stats.byListener, { "proxy web": 2, "node SSH": 1 });
  g.release(a);
  g.release(c);
  g.release(c); // idempotent
  assert.deepEqual(g.stats.byListener, { "proxy web": 1 });
});

Deno.test("ConnectionGuard counts a held descriptor on top of real counts until it is opened", () => {
  // Usable: limit 1000 - reserve 100 = 900; a new connection needs room for 3.
  let open = 896;
  const { g, clock } = guard({ countOpenFiles: () => open });
  const conn = admitted(g.admit("proxy web", "10.0.0.1"));
  conn.established();
  const hold = conn.holdDescriptor(); // the upstream dial is under way
  clock.advance(1000);
  open = 897; // the real count sees the connection, not the dial
  assert.equal(g.admit("proxy web", "10.0.0.2"), "descriptors"); // 897 + 1 unopened + 3 > 900
  hold.opened();
  hold.release(); // closed again: the next count shows it
  clock.advance(1000);
  open = 897;
  admitted(g.admit("proxy web", "10.0.0.3")); // 897 + 3 = 900
});
