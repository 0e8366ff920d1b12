/**
 * The kernel mechanism under the HUP hand-over (lib/service/handover.ts): two SO_REUSEPORT listeners on one
 * port, as an old and a new process would hold them. The kernel spreads new connections over
 * both; listener A never accepts (an old process that stops accepting), then closes. Counts the
 * clients queued on A that are reset versus served by B, under the current
 * `net.ipv4.tcp_migrate_req` (1 = Linux moves A's queued connections to B on close).
 *
 *   npx -y deno@2.9.6 run -A --unstable-net bench/reuseport_migrate.ts [clients]
 *
 * Measured here (Deno 2.9.6, Linux, loopback, 60 clients): tcp_migrate_req=0 → 29 reset,
 * 31 served; tcp_migrate_req=1 → 0 reset, 60 served. node:net `listen({ reusePort: true })`
 * (what lib/net's listeners use) binds a second listener on the same port too.
 */
import { out } from "./_common.ts";

const clients = Number(Deno.args[0] ?? 60);
const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (probe.addr as Deno.NetAddr).port;
probe.close();
const a = Deno.listen({ hostname: "127.0.0.1", port, reusePort: true });
const b = Deno.listen({ hostname: "127.0.0.1", port, reusePort: true });
const conns = await Promise.all(
  Array.from({ length: clients }, async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.setNoDelay(true);
    return c;
  }),
);
a.close();
const serving = (async () => {
  for await (const c of b) {
    c.setNoDelay(true);
    await c.write(new TextEncoder().encode("B")).catch(() => 0);
    c.close();
  }
})();
let served = 0;
let reset = 0;
let other = 0;
await Promise.all(conns.map(async (c) => {
  try {
    if ((await c.read(new Uint8Array(1))) === 1) served++;
    else reset++;
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionReset) reset++;
    else other++;
  }
  c.close();
}));
b.close();
await serving.catch(() => {});
const migrate = Deno.readTextFileSync("/proc/sys/net/ipv4/tcp_migrate_req").trim();
out(
  `tcp_migrate_req=${migrate} clients=${clients} served_by_new=${served} reset=${reset} other=${other}`,
);
