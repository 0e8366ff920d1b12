import assert from "node:assert/strict";
import { FakeClock } from "../clock/mod.ts";
import { BadParameterError } from "../errors/mod.ts";
import {
  type AuditEvent,
  EVENT_CODES,
  EventType,
  fitAuditEvent,
  isSecretFieldName,
  maskSecretFields,
  MAX_EVENT_BYTES,
  newAuditEvent,
  validateAuditEvent,
} from "./mod.ts";

const clock = new FakeClock(Date.UTC(2026, 10, 21, 10, 0, 0, 123));
const TOKEN = "0123456789abcdef0123456789abcdef";

function good(): AuditEvent {
  return newAuditEvent(EventType.SessionStart, { user: "alice", sid: "x" }, { clock });
}

Deno.test("EVENT_CODES uses Teleport's event names and codes", () => {
  assert.deepEqual(EVENT_CODES, {
    "session.start": { success: "T2000I" },
    "session.end": { success: "T2004I" },
    "session.join": { success: "T2001I" },
    "session.leave": { success: "T2003I" },
    "session.upload": { success: "T2005I" },
    "exec": { success: "T3002I", failure: "T3002E" },
    "port": { success: "T3003I", failure: "T3003E" },
    "subsystem": { success: "T3001I", failure: "T3001E" },
    "auth": { success: "T3007W", failure: "T3007W" },
    "user.login": { success: "T1000I", failure: "T1000W" },
    "user.password_change": { success: "T1004I" },
    "mfa.add": { success: "T1006I" },
    "instance.join": { success: "TJ002I", failure: "TJ002E" },
    "join_token.create": { success: "TJT00I" },
    "resize": { success: "T2002I" },
    "client.disconnect": { success: "T3006I" },
  });
});

Deno.test("newAuditEvent() fills uid, code, time and cluster_name", () => {
  const e = newAuditEvent(EventType.Exec, { command: "ls", exitCode: 0 }, {
    clock,
    clusterName: "example.com",
  });
  assert.equal(e.event, "exec");
  assert.equal(e.code, "T3002I");
  assert.equal(e.time, "2026-11-21T10:00:00.123Z");
  assert.equal(e.cluster_name, "example.com");
  assert.match(e.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(e.command, "ls");
  assert.notEqual(newAuditEvent(EventType.Exec, {}, { clock }).uid, e.uid);
});

Deno.test("newAuditEvent() uses the failure code when failure is set", () => {
  assert.equal(newAuditEvent("exec", {}, { clock, failure: true }).code, "T3002E");
  assert.equal(newAuditEvent("port", {}, { clock, failure: true }).code, "T3003E");
  assert.equal(newAuditEvent("user.login", {}, { clock, failure: true }).code, "T1000W");
  assert.equal(newAuditEvent("instance.join", {}, { clock, failure: true }).code, "TJ002E");
  assert.equal(newAuditEvent("auth", {}, { clock }).code, "T3007W");
  assert.throws(() => newAuditEvent("resize", {}, { clock, failure: true }), BadParameterError);
});

Deno.test("newAuditEvent() needs an explicit code for an unknown type", () => {
  assert.throws(() => newAuditEvent("my.event", {}, { clock }), BadParameterError);
  assert.equal(newAuditEvent("my.event", {}, { clock, code: "X0001I" }).code, "X0001I");
  assert.throws(
    () => newAuditEvent("my.event", {}, { clock, code: "bad code" }),
    BadParameterError,
  );
  assert.throws(() => newAuditEvent("Bad Name", {}, { clock, code: "X1I" }), BadParameterError);
});

Deno.test("newAuditEvent() keeps its own event, uid, code and time over fields", () => {
  const e = newAuditEvent(EventType.Exec, {
    event: "user.login",
    uid: "u",
    code: "T1000I",
    time: "2000-01-01T00:00:00.000Z",
    cluster_name: "from-fields",
  }, { clock, clusterName: "from-options" });
  assert.equal(e.event, "exec");
  assert.equal(e.code, "T3002I");
  assert.notEqual(e.uid, "u");
  assert.equal(e.time, "2026-11-21T10:00:00.123Z");
  assert.equal(e.cluster_name, "from-fields");
});

Deno.test("newAuditEvent() masks token-like fields", () => {
  const e = newAuditEvent(EventType.JoinTokenCreate, { token: TOKEN, roles: ["Node"] }, {
    clock,
  });
  assert.equal(e.token, "************************89abcdef");
  assert.deepEqual(e.roles, ["Node"]);
});

Deno.test("maskSecretFields() masks strings under secret keys at any depth, idempotently", () => {
  const input = {
    token: TOKEN,
    join_token: "short",
    Password: "hunter2",
    client_secret: TOKEN,
    private_key: "-----BEGIN",
    otp: "123456",
    token_ttl: 3600,
    nested: { auth_token: TOKEN, list: [{ password: "pw" }] },
    tokens: ["abcd", "efgh"],
    user: "alice",
    command: "echo token",
  };
  const masked = maskSecretFields(input);
  assert.deepEqual(masked, {
    token: "************************89abcdef",
    join_token: "*****",
    Password: "*******",
    client_secret: "************************89abcdef",
    private_key: "**********",
    otp: "******",
    token_ttl: 3600,
    nested: { auth_token: "************************89abcdef", list: [{ password: "****" }] },
    tokens: ["****", "****"],
    user: "alice",
    command: "echo token",
  });
  assert.deepEqual(maskSecretFields(masked), masked);
  assert.equal(input.token, TOKEN); // the input is not changed
  assert.ok(isSecretFieldName("x-token") && !isSecretFieldName("login"));
});

Deno.test("validateAuditEvent() accepts well-formed events and returns a masked copy", () => {
  const e = { ...good(), token: TOKEN, extra: { a: [1, 2, { b: null }] } };
  const v = validateAuditEvent(e);
  assert.equal(v.token, "************************89abcdef");
  assert.equal(e.token, TOKEN);
  assert.deepEqual(v.extra, e.extra);
  // Unknown but well-formed names and offsets in time are fine.
  validateAuditEvent({ ...good(), event: "app.session.start", time: "2026-11-21T12:00:00+02:00" });
  validateAuditEvent(JSON.parse(JSON.stringify(good())));
});

Deno.test("validateAuditEvent() rejects what is not an event", () => {
  const base = good();
  const cases: [string, unknown][] = [
    ["null", null],
    ["a string", "session.start"],
    ["an array", [base]],
    ["a class instance", Object.assign(new (class X {})(), base)],
    ["an uppercase name", { ...base, event: "Session.Start" }],
    ["a name with a slash", { ...base, event: "../etc" }],
    ["a name with a space", { ...base, event: "session start" }],
    ["an empty name", { ...base, event: "" }],
    ["no uid", { ...base, uid: undefined }],
    ["a uid with a slash", { ...base, uid: "a/b" }],
    ["a lowercase code", { ...base, code: "t2000i" }],
    ["a date without time", { ...base, time: "2026-11-21" }],
    ["an impossible date", { ...base, time: "2026-13-45T99:00:00Z" }],
    ["a number time", { ...base, time: 1234 }],
    ["a numeric user", { ...base, user: 1 }],
    ["an object sid", { ...base, sid: {} }],
    ["NaN", { ...base, n: NaN }],
    ["a function", { ...base, f: () => 1 }],
    ["a bigint", { ...base, n: 1n }],
    ["a Date", { ...base, d: new Date() }],
    ["too deep", { ...base, a: { b: { c: { d: { e: { f: 1 } } } } } }],
    ["too deep in arrays", { ...base, a: [[[[[1]]]]] }],
    ["a __proto__ key", JSON.parse(`{"__proto__":{"x":1},${JSON.stringify(base).slice(1)}`)],
  ];
  for (const [what, x] of cases) {
    assert.throws(() => validateAuditEvent(x), BadParameterError, what);
  }
});

Deno.test("validateAuditEvent() accepts nesting up to the limit", () => {
  validateAuditEvent({ ...good(), a: { b: { c: { d: 1 } } } });
  validateAuditEvent({ ...good(), a: [[[1]]] });
});

Deno.test("validateAuditEvent() leaves size to the store", () => {
  const big = { ...good(), data: "x".repeat(MAX_EVENT_BYTES) };
  assert.equal(validateAuditEvent(big).data, big.data);
});

Deno.test("fitAuditEvent() returns an event that fits unchanged", () => {
  const e = good();
  const fit = fitAuditEvent(e);
  assert.equal(fit.event, e);
  assert.equal(fit.truncated, false);
  assert.equal(fit.bytes, new TextEncoder().encode(JSON.stringify(e)).length);
});

Deno.test("fitAuditEvent() cuts the longest strings first and marks the event truncated", () => {
  const e = newAuditEvent(EventType.InstanceJoin, {
    node_name: "n".repeat(60_000),
    nested: { error: "e".repeat(30_000), list: ["l".repeat(20_000), "short"] },
    host_id: "keep-me",
  }, { clock });
  const fit = fitAuditEvent(e, 16 * 1024);
  const out = fit.event as unknown as Record<string, unknown> & {
    nested: { error: string; list: string[] };
  };
  assert.equal(fit.truncated, true);
  assert.equal(out.truncated, true);
  assert.ok(fit.bytes > 110_000);
  assert.ok(new TextEncoder().encode(JSON.stringify(out)).length <= 16 * 1024);
  for (const k of ["event", "uid", "code", "time", "cluster_name"] as const) {
    assert.equal(out[k], e[k]);
  }
  assert.equal(out.host_id, "keep-me");
  assert.equal(out.nested.list[1], "short");
  assert.ok((out.node_name as string).startsWith("nnn"));
  assert.equal(e.node_name, "n".repeat(60_000), "the original is not changed");
});

Deno.test("fitAuditEvent() never splits a surrogate pair", () => {
  const e = newAuditEvent(EventType.Exec, { command: "\u{1F600}".repeat(40_000) }, { clock });
  const fit = fitAuditEvent(e);
  const command = fit.event.command as string;
  assert.ok(command.length > 0 && command.length % 2 === 0);
  assert.ok(!/[\ud800-\udbff]$/.test(command));
  assert.ok(new TextEncoder().encode(JSON.stringify(fit.event)).length <= MAX_EVENT_BYTES);
});

Deno.test("fitAuditEvent() keeps only the standard fields when cutting strings is not enough", () => {
  const many: Record<string, unknown> = { user: "alice" };
  for (let i = 0; i < 20_000; i++) many[`f${i}`] = i;
  const e = newAuditEvent(EventType.Exec, many, { clock });
  const fit = fitAuditEvent(e);
  assert.deepEqual(fit.event, {
    event: e.event,
    uid: e.uid,
    code: e.code,
    time: e.time,
    truncated: true,
    user: "alice",
  });
});
