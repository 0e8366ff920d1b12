import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { BadParameterError, NotFoundError } from "../errors/mod.ts";
import { ensureTestUser } from "./_os_testing.ts";
import {
  assertCanRunAs,
  isDaemonRoot,
  lookupGroupId,
  lookupOsUser,
  validateLogin,
} from "./os_user.ts";

Deno.test("lookupOsUser() returns root's entry when asked for root", async () => {
  const u = await lookupOsUser("root");
  assert.deepEqual({ uid: u.uid, gid: u.gid, name: u.name, home: u.home }, {
    uid: 0,
    gid: 0,
    name: "root",
    home: "/root",
  });
  assert.ok(u.shell.startsWith("/"));
});

Deno.test({
  name: "lookupOsUser() returns a created user's ids, home and shell when it exists",
  ignore: skipGroup("os-users"),
}, async () => {
  const u = await ensureTestUser("td_ptytest");
  assert.equal(u.name, "td_ptytest");
  assert.ok(u.uid > 0);
  assert.equal(u.home, "/home/td_ptytest");
  assert.equal(u.shell, "/bin/bash");
  const id = await new Deno.Command("id", { args: ["-u", "td_ptytest"], stdout: "piped" }).output();
  assert.equal(Number(new TextDecoder().decode(id.stdout)), u.uid);
});

Deno.test("lookupOsUser() throws NotFound naming the login when the user does not exist", async () => {
  await assert.rejects(lookupOsUser("td_pty_nosuchuser"), (err: unknown) => {
    assert.ok(err instanceof NotFoundError);
    assert.match(err.message, /OS user "td_pty_nosuchuser" does not exist on this node/);
    return true;
  });
});

Deno.test("lookupOsUser() throws BadParameter when the login is invalid", async () => {
  const bad = ["", "-rf", "a b", "../etc", "a/b", "a\0b", "x".repeat(33), "..", "a;id", "é"];
  for (const login of bad) {
    await assert.rejects(lookupOsUser(login), BadParameterError, JSON.stringify(login));
  }
});

Deno.test("validateLogin() accepts portable names when they are 32 characters or fewer", () => {
  for (
    const login of ["root", "td_ptytest", "first.last", "a-b", "_svc", "HOST$", "x".repeat(32)]
  ) {
    validateLogin(login);
  }
});

Deno.test("lookupGroupId() finds the tty group when it exists", async () => {
  assert.equal(typeof await lookupGroupId("tty"), "number");
  assert.equal(await lookupGroupId("td_pty_nosuchgroup"), undefined);
});

Deno.test("assertCanRunAs() allows any user when the daemon is root", async () => {
  assert.equal(isDaemonRoot(), Deno.uid() === 0);
  if (!isDaemonRoot()) return;
  assertCanRunAs(await lookupOsUser("root"));
  assertCanRunAs({ name: "nobody", uid: 65534, gid: 65534, home: "/", shell: "/bin/sh" });
});
