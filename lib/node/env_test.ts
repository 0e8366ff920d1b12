import assert from "node:assert/strict";
import {
  buildSessionEnv,
  checkClientEnv,
  DEFAULT_PATH,
  DEFAULT_SUPATH,
  defaultPathFor,
} from "./env.ts";
import type { OsUser } from "./os_user.ts";

const alice: OsUser = {
  name: "alice",
  uid: 1000,
  gid: 1000,
  home: "/home/alice",
  shell: "/bin/zsh",
};
const root: OsUser = { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash" };
const NO_DEFS = "/nonexistent/login.defs";

Deno.test("checkClientEnv() accepts locale and TZ variables when the value is plain", () => {
  for (const name of ["LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "COLORTERM"]) {
    assert.deepEqual(checkClientEnv(name, "en_US.UTF-8"), { accepted: true }, name);
  }
});

Deno.test("checkClientEnv() refuses loader, shell hook and node-owned variables with a reason", () => {
  const refused = [
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_BIND_NOW",
    "DYLD_INSERT_LIBRARIES",
    "BASH_ENV",
    "ENV",
    "IFS",
    "PATH",
    "HOME",
    "SHELL",
    "USER",
    "LOGNAME",
    "TERM",
    "TELEPORT_USERNAME",
    "SSH_TTY",
    "PROMPT_COMMAND",
    "lc_all",
    "EDITOR",
  ];
  for (const name of refused) {
    const v = checkClientEnv(name, "x");
    assert.equal(v.accepted, false, name);
    assert.ok(!v.accepted && v.reason.includes(name), `${name}: reason names the variable`);
  }
  const ld = checkClientEnv("LD_PRELOAD", "/tmp/evil.so");
  assert.ok(!ld.accepted && /never accepted/.test(ld.reason));
});

Deno.test("checkClientEnv() refuses bad names and values when they could confuse a shell", () => {
  assert.equal(checkClientEnv("1LANG", "x").accepted, false);
  assert.equal(checkClientEnv("LA NG", "x").accepted, false);
  assert.equal(checkClientEnv("", "x").accepted, false);
  assert.equal(checkClientEnv("LANG", "a\nb").accepted, false);
  assert.equal(checkClientEnv("LANG", "a\0b").accepted, false);
  assert.equal(checkClientEnv("LANG", "x".repeat(1025)).accepted, false);
  assert.equal(checkClientEnv("LANG", "x".repeat(1024)).accepted, true);
});

Deno.test("buildSessionEnv() sets the user's variables and nothing of the daemon's", () => {
  Deno.env.set("TD_ENV_DAEMON_ONLY", "1");
  try {
    const env = buildSessionEnv({ user: alice, loginDefsPath: NO_DEFS });
    assert.deepEqual(env, {
      HOME: "/home/alice",
      USER: "alice",
      LOGNAME: "alice",
      SHELL: "/bin/zsh",
      MAIL: "/var/mail/alice",
      PATH: DEFAULT_PATH,
    });
  } finally {
    Deno.env.delete("TD_ENV_DAEMON_ONLY");
  }
});

Deno.test("buildSessionEnv() adds pty, connection and teleport variables when given", () => {
  const env = buildSessionEnv({
    user: alice,
    term: "xterm-256color",
    ttyName: "/dev/pts/4",
    client: { addr: "10.0.0.5", port: 51234 },
    server: { addr: "10.0.0.1", port: 3022 },
    sessionId: "sid-1",
    teleportUser: "bob@example.com",
    hostId: "host-uuid",
    clusterName: "example",
    loginDefsPath: NO_DEFS,
  });
  assert.equal(env.TERM, "xterm-256color");
  assert.equal(env.SSH_TTY, "/dev/pts/4");
  assert.equal(env.SSH_CLIENT, "10.0.0.5 51234 3022");
  assert.equal(env.SSH_CONNECTION, "10.0.0.5 51234 10.0.0.1 3022");
  assert.equal(env.SSH_SESSION_ID, "sid-1");
  assert.equal(env.TELEPORT_SESSION, "sid-1");
  assert.equal(env.TELEPORT_USERNAME, "bob@example.com");
  assert.equal(env.SSH_TELEPORT_USER, "bob@example.com");
  assert.equal(env.SSH_TELEPORT_HOST_UUID, "host-uuid");
  assert.equal(env.SSH_TELEPORT_CLUSTER_NAME, "example");
  assert.equal("SSH_ORIGINAL_COMMAND" in env, false);
});

Deno.test("buildSessionEnv() sets SSH_ORIGINAL_COMMAND when a forced command replaced one", () => {
  const env = buildSessionEnv({ user: alice, originalCommand: "sftp", loginDefsPath: NO_DEFS });
  assert.equal(env.SSH_ORIGINAL_COMMAND, "sftp");
});

Deno.test("buildSessionEnv() leaves TERM out when the pty request's name is not a terminal type", () => {
  for (const term of ["", "../../tmp/x", "xterm\nPATH=/tmp", "a".repeat(65)]) {
    const env = buildSessionEnv({ user: alice, term, loginDefsPath: NO_DEFS });
    assert.equal("TERM" in env, false, JSON.stringify(term));
  }
  assert.equal(
    buildSessionEnv({ user: alice, term: "screen.xterm-256color" }).TERM,
    "screen.xterm-256color",
  );
});

Deno.test("buildSessionEnv() keeps accepted client variables and drops the rest", () => {
  const env = buildSessionEnv({
    user: alice,
    teleportUser: "bob",
    clientEnv: {
      LANG: "de_DE.UTF-8",
      LC_TIME: "C",
      TZ: "UTC",
      LD_PRELOAD: "/tmp/evil.so",
      HOME: "/tmp",
      TELEPORT_USERNAME: "mallory",
      BASH_ENV: "/tmp/x",
    },
    loginDefsPath: NO_DEFS,
  });
  assert.equal(env.LANG, "de_DE.UTF-8");
  assert.equal(env.LC_TIME, "C");
  assert.equal(env.TZ, "UTC");
  assert.equal(env.HOME, "/home/alice");
  assert.equal(env.TELEPORT_USERNAME, "bob");
  assert.equal("LD_PRELOAD" in env, false);
  assert.equal("BASH_ENV" in env, false);
});

Deno.test("defaultPathFor() uses sbin for root only when login.defs is missing", () => {
  assert.equal(defaultPathFor(root, NO_DEFS), DEFAULT_SUPATH);
  assert.equal(defaultPathFor(alice, NO_DEFS), DEFAULT_PATH);
  assert.doesNotMatch(DEFAULT_PATH, /sbin/);
});

Deno.test("defaultPathFor() reads ENV_PATH and ENV_SUPATH when login.defs has them", () => {
  const file = Deno.makeTempFileSync({ prefix: "td_env_login_defs" });
  try {
    Deno.writeTextFileSync(
      file,
      "# comment\nENV_SUPATH\tPATH=/su/bin:/bin\nENV_PATH   PATH=/user/bin:/bin\nUMASK 022\n",
    );
    assert.equal(defaultPathFor(root, file), "/su/bin:/bin");
    assert.equal(defaultPathFor(alice, file), "/user/bin:/bin");
  } finally {
    Deno.removeSync(file);
  }
});
