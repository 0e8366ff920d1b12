import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { ConnectionProblemError } from "../errors/mod.ts";
import { testLogger } from "./_testing.ts";
import {
  AuthPingCache,
  buildFindResponse,
  buildPingResponse,
  makeProxySettings,
  msToGoDuration,
} from "./ping.ts";
import type { AuthPing, ProxySettings } from "./types.ts";

const PING: AuthPing = {
  cluster_name: "example",
  server_version: "1.0.0",
  auth_preference: { type: "local", second_factor: "on" },
};

Deno.test("makeProxySettings() fills every field Teleport clients read", () => {
  const s = makeProxySettings({ ssh: { web_listen_addr: "0.0.0.0:3080", dial_timeout: 5e9 } });
  assert.equal(s.ssh.web_listen_addr, "0.0.0.0:3080");
  assert.equal(s.ssh.dial_timeout, 5_000_000_000);
  assert.equal(s.ssh.ssh_tunnel_public_addr, "");
  assert.deepEqual(s.kube, { enabled: false, public_addr: "", listen_addr: "" });
  assert.equal(s.db.mongo_public_addr, "");
  assert.equal(s.tls_routing_enabled, false);
});

Deno.test("makeProxySettings() rejects fields of the wrong type", () => {
  assert.throws(
    () => makeProxySettings({ ssh: { dial_timeout: "30s" as unknown as number } }),
    /ssh\.dial_timeout must be a non-negative integer/,
  );
  assert.throws(
    () => makeProxySettings({ ssh: { public_addr: 3080 as unknown as string } }),
    /ssh\.public_addr must be a string/,
  );
  assert.throws(
    () => makeProxySettings({ tls_routing_enabled: "yes" as unknown as boolean }),
    /tls_routing_enabled must be a boolean/,
  );
});

Deno.test("buildPingResponse() maps auth's preference and the proxy facts", () => {
  const proxySettings: ProxySettings = makeProxySettings({ tls_routing_enabled: true });
  const res = buildPingResponse(PING, { proxySettings, serverVersion: "2.0.0" });
  assert.equal(res.auth.preferred_local_mfa, "otp");
  assert.equal(res.auth.second_factor, "on");
  assert.equal(res.auth.default_session_ttl, msToGoDuration(12 * 3_600_000));
  assert.equal(res.server_version, "2.0.0");
  assert.equal(res.cluster_name, "example");
  assert.equal(res.proxy.tls_routing_enabled, true);
  for (const [sf, mfa] of [["otp", "otp"], ["optional", "otp"], ["off", ""], ["webauthn", ""]]) {
    const r = buildPingResponse(
      { ...PING, auth_preference: { type: "", second_factor: sf! } },
      { proxySettings, serverVersion: "2.0.0" },
    );
    assert.equal(r.auth.preferred_local_mfa, mfa);
    assert.equal(r.auth.type, "local");
  }
  const find = buildFindResponse(PING, { proxySettings, serverVersion: "2.0.0" });
  assert.deepEqual(find.auth, { signature_algorithm_suite: "" });
  assert.equal(find.cluster_name, "example");
});

Deno.test("AuthPingCache.get() shares one auth call among concurrent callers", async () => {
  const clock = new FakeClock(0);
  let calls = 0;
  const release = Promise.withResolvers<AuthPing>();
  const cache = new AuthPingCache({
    ping: () => {
      calls++;
      return release.promise;
    },
    clock,
    logger: testLogger().logger,
  });
  const all = Promise.all([cache.get(), cache.get(), cache.get()]);
  release.resolve(PING);
  assert.deepEqual(await all, [PING, PING, PING]);
  assert.equal(calls, 1);
});

Deno.test("AuthPingCache.get() serves the stale answer while auth fails and retries later", async () => {
  const clock = new FakeClock(0);
  const { logger, records } = testLogger();
  let outcome: AuthPing | Error = PING;
  let calls = 0;
  const cache = new AuthPingCache({
    ping: () => {
      calls++;
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
    },
    clock,
    logger,
    ttlMs: 1_000,
  });
  assert.equal(await cache.get(), PING);
  clock.advance(999);
  assert.equal(await cache.get(), PING);
  assert.equal(calls, 1);
  outcome = new ConnectionProblemError("refused");
  clock.advance(1);
  assert.equal(await cache.get(), PING);
  assert.equal(calls, 2);
  assert.equal(await cache.get(), PING); // within the retry pause: auth is not asked
  assert.equal(calls, 2);
  clock.advance(1_000);
  assert.equal(await cache.get(), PING);
  assert.equal(calls, 3);
  assert.equal(records.filter((r) => r.level === "warn").length, 1, "one warning per outage");
  outcome = { ...PING, cluster_name: "renamed" };
  clock.advance(1_000);
  assert.equal((await cache.get()).cluster_name, "renamed");
  assert.ok(records.some((r) => r.level === "info" && /again/.test(r.message)));
});

Deno.test("AuthPingCache.get() throws ConnectionProblemError when auth was never reached", async () => {
  const cache = new AuthPingCache({
    ping: () => Promise.reject(new Error("connect ECONNREFUSED 10.1.2.3:3025")),
    clock: new FakeClock(0),
    logger: testLogger().logger,
  });
  await assert.rejects(() => cache.get(), (err: unknown) => {
    assert.ok(err instanceof ConnectionProblemError);
    assert.match(err.message, /auth unreachable/);
    assert.doesNotMatch(err.message, /10\.1\.2\.3/);
    return true;
  });
  assert.equal(cache.cached, undefined);
});
