import assert from "node:assert/strict";
import {
  activeLock,
  loginSource,
  MAX_LOGIN_ATTEMPTS,
  recordLoginFailure,
  recordLoginSuccess,
} from "./lockout.ts";
import type { LoginAttempts } from "../services/mod.ts";

const NOW = new Date(Date.UTC(2026, 10, 21, 12));

Deno.test("loginSource() keys by IP without port, IPv6 by /64, when given host:port forms", () => {
  assert.equal(loginSource("127.0.0.5:4000"), "127.0.0.5");
  assert.equal(loginSource("127.0.0.5"), "127.0.0.5");
  assert.equal(loginSource("[2001:db8:1:2:a:b:c:d]:443"), "2001:db8:1:2::/64");
  assert.equal(loginSource("[2001:db8:1:2::9]:443"), "2001:db8:1:2::/64");
  assert.equal(loginSource("2001:DB8:0001:0002::9"), "2001:db8:1:2::/64");
  assert.equal(loginSource("[::ffff:10.1.2.3]:22"), "10.1.2.3");
  assert.equal(loginSource("[fe80::1%eth0]:22"), "fe80:0:0:0::/64");
  assert.equal(loginSource(undefined), "unknown");
  assert.equal(loginSource(""), "unknown");
});

Deno.test("recordLoginSuccess() forgets only the succeeding source's failures", () => {
  let a: LoginAttempts | undefined;
  for (let i = 0; i < 3; i++) a = recordLoginFailure(a, "10.0.0.1", NOW).attempts;
  for (let i = 0; i < 2; i++) a = recordLoginFailure(a, "10.0.0.2", NOW).attempts;
  assert.equal(a!.failures.length, 5);
  const after = recordLoginSuccess(a, "10.0.0.1", NOW)!;
  assert.deepEqual(Object.keys(after.attempts.sources!), ["10.0.0.2"]);
  assert.equal(after.attempts.failures.length, 2);
  assert.equal(recordLoginSuccess(after.attempts, "10.0.0.2", NOW), undefined);
});

Deno.test("recordLoginFailure() locks only the source when it reaches the limit", () => {
  let a: LoginAttempts | undefined;
  let locked;
  for (let i = 0; i < MAX_LOGIN_ATTEMPTS; i++) {
    const out = recordLoginFailure(a, "10.0.0.1", NOW);
    a = out.attempts;
    locked = out.locked;
  }
  assert.equal(locked?.scope, "source");
  assert.equal(activeLock(a, "10.0.0.1", NOW)?.scope, "source");
  assert.equal(activeLock(a, "10.0.0.2", NOW), undefined);
});
