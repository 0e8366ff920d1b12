import assert from "node:assert/strict";
import { frontAddrResolver } from "./client_addr.ts";

Deno.test("frontAddrResolver() resolves names through /etc/hosts and keeps IPs", async () => {
  const resolve = frontAddrResolver([
    { host: "localhost", port: 3025 },
    { host: "127.0.0.9", port: 443 },
    { host: "no-such-host.invalid", port: 3025 },
  ]);
  const addrs = await resolve();
  assert.ok(addrs.some((a) => a.addr === "127.0.0.1" && a.port === 3025), JSON.stringify(addrs));
  assert.ok(addrs.some((a) => a.addr === "127.0.0.9" && a.port === 443));
  assert.ok(addrs.every((a) => a.port === 3025 || a.port === 443));
});

Deno.test("frontAddrResolver() looks names up again only after ttlMs", async () => {
  let t = 0;
  const resolve = frontAddrResolver([{ host: "localhost", port: 3025 }], {
    ttlMs: 1000,
    now: () => t,
  });
  const first = resolve();
  assert.equal(resolve(), first, "the same look-up within the TTL");
  t = 1000;
  assert.notEqual(resolve(), first, "a new look-up after it");
  await first;
});
