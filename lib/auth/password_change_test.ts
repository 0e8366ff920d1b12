/** A user changing their own password through the auth API (transport-free). */
import assert from "node:assert/strict";
import * as OTPAuth from "otpauth";
import type { UserTokenDetails } from "../authclient/mod.ts";
import { LOGIN_FAILED_MESSAGE } from "./mod.ts";
import {
  callApi as call,
  newTestAuth,
  proxyIdentity,
  type TestAuth,
  userIdentity,
} from "./_testing.ts";

const OLD = "correct horse battery staple";
const NEW = "a much better passphrase 42";

async function enroll(t: TestAuth): Promise<() => string> {
  const { token } = await t.auth.createUser({
    kind: "user",
    version: "v2",
    metadata: { name: "alice" },
    spec: { roles: ["access"], traits: { logins: ["alice"] } },
  });
  const details = await call(t, "GET", `/v1/users/password/token/${token.token}`, proxyIdentity());
  const totp = new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32((details.body as UserTokenDetails).totp!.secret),
  });
  const code = () => totp.generate({ timestamp: t.clock.now().getTime() });
  await call(t, "PUT", "/v1/users/password/token", proxyIdentity(), {
    token: token.token,
    password: OLD,
    second_factor_token: code(),
  });
  // Each code works once: the next call uses the next time step.
  return () => {
    t.clock.advance(30_000);
    return code();
  };
}

Deno.test("PUT /v1/users/:user/password changes the caller's own password with old password and OTP", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const next = await enroll(t);
  const alice = userIdentity("alice", ["access"]);
  const path = "/v1/users/alice/password";
  const body = (over: Record<string, unknown> = {}) => ({
    old_password: OLD,
    new_password: NEW,
    second_factor_token: next(),
    ...over,
  });
  for (const who of [undefined, proxyIdentity(), userIdentity("mallory", ["access"])]) {
    assert.equal((await call(t, "PUT", path, who, body())).status, 403);
  }
  const wrong = await call(t, "PUT", path, alice, body({ old_password: "not it at all!" }));
  assert.equal(wrong.status, 403);
  assert.equal((wrong.body as { error: { message: string } }).error.message, LOGIN_FAILED_MESSAGE);
  const short = await call(t, "PUT", path, alice, body({ new_password: "short" }));
  assert.equal(short.status, 400);
  const noOtp = await call(t, "PUT", path, alice, body({ second_factor_token: undefined }));
  assert.equal(noOtp.status, 403);
  const ok = await call(t, "PUT", path, alice, body());
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  // The old password no longer logs in; the new one does.
  const { events } = await t.auth.searchEvents({
    from: new Date(0),
    to: new Date(t.clock.now().getTime() + 1),
    types: ["user.password_change", "user.login"],
  });
  assert.deepEqual(
    events.map((e) => [e.event, e.code, e.method ?? ""]),
    [
      ["user.login", "T1000W", "password_change"],
      ["user.login", "T1000W", "password_change"],
      ["user.password_change", "T1004I", ""],
    ],
  );
  assert.ok(!JSON.stringify(events).includes(NEW));
  const again = await call(t, "PUT", path, alice, body({ new_password: "third password here" }));
  assert.equal(again.status, 403, "the old password is no longer the current one");
});

Deno.test("a user replaces their own TOTP device: password and current code, then the new code", async () => {
  await using t = await newTestAuth({ secondFactor: "otp" });
  const next = await enroll(t);
  const alice = userIdentity("alice", ["access"]);
  const list = await call(t, "GET", "/v1/users/alice/mfa/devices", alice);
  assert.equal(list.status, 200);
  const devices = (list.body as { devices: Array<{ type: string }> }).devices;
  assert.deepEqual(devices.map((d) => d.type), ["totp"]);
  assert.ok(!JSON.stringify(list.body).includes("secret"));
  assert.equal(
    (await call(t, "GET", "/v1/users/alice/mfa/devices", userIdentity("bob", ["access"]))).status,
    403,
  );
  const begin = "/v1/users/alice/mfa/totp/replace";
  const wrong = await call(t, "POST", begin, alice, {
    password: "wrong password!!",
    second_factor_token: next(),
  });
  assert.equal(wrong.status, 403);
  const started = await call(t, "POST", begin, alice, {
    password: OLD,
    second_factor_token: next(),
  });
  assert.equal(started.status, 200, JSON.stringify(started.body));
  const { secret, uri } = started.body as { secret: string; uri: string };
  assert.match(uri, /^otpauth:\/\/totp\//);
  const fresh = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) });
  const bad = await call(t, "PUT", "/v1/users/alice/mfa/totp", alice, { code: "000000" });
  assert.equal(bad.status, 403);
  t.clock.advance(30_000);
  const done = await call(t, "PUT", "/v1/users/alice/mfa/totp", alice, {
    code: fresh.generate({ timestamp: t.clock.now().getTime() }),
  });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  // The pending key is used up; logins now take the new device's codes.
  assert.equal(
    (await call(t, "PUT", "/v1/users/alice/mfa/totp", alice, { code: "123456" })).status,
    403,
  );
  const { events } = await t.auth.searchEvents({
    from: new Date(0),
    to: new Date(t.clock.now().getTime() + 1),
    types: ["mfa.add"],
  });
  assert.deepEqual(events.map((e) => [e.code, e.user]), [["T1006I", "alice"]]);
});
