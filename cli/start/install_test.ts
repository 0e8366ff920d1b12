import assert from "node:assert/strict";
import { LAUNCHER_MARK, planLaunchers, writeLaunchers } from "./install.ts";

Deno.test("planLaunchers() links every personality to a compiled binary", () => {
  const plan = planLaunchers({
    standalone: true,
    execPath: "/opt/teleport/teleport",
    mainModule: "file:///tmp/deno-compile-teleport/main.ts",
  });
  assert.deepEqual(plan, [
    { name: "teleport", kind: "symlink", target: "/opt/teleport/teleport" },
    { name: "tsh", kind: "symlink", target: "/opt/teleport/teleport" },
    { name: "tctl", kind: "symlink", target: "/opt/teleport/teleport" },
  ]);
});

Deno.test("planLaunchers() writes sh launchers naming deno, the config and the personality", () => {
  const plan = planLaunchers({
    standalone: false,
    execPath: "/home/o'neil/deno",
    mainModule: "file:///src/tele%20port/main.ts",
    configPath: "/src/tele port/deno.json",
  });
  const tsh = plan.find((l) => l.name === "tsh");
  assert.ok(tsh?.kind === "script");
  assert.equal(
    tsh.text,
    `#!/bin/sh\n${LAUNCHER_MARK}: runs /src/tele port/main.ts as tsh\n` +
      `exec '/home/o'\\''neil/deno' run -A --config '/src/tele port/deno.json' ` +
      `'/src/tele port/main.ts' tsh "$@"\n`,
  );
  const teleport = plan.find((l) => l.name === "teleport");
  assert.ok(teleport?.kind === "script" && teleport.text.endsWith(`main.ts' "$@"\n`));
  const bundle = planLaunchers({
    standalone: false,
    execPath: "/usr/bin/deno",
    mainModule: "file:///opt/teleport.js",
  });
  assert.ok(bundle[1]?.kind === "script" && bundle[1].text.includes("--unstable-kv"));
});

Deno.test("planLaunchers() refuses a program that is not a local file", () => {
  assert.throws(
    () =>
      planLaunchers({
        standalone: false,
        execPath: "/usr/bin/deno",
        mainModule: "https://example.com/main.ts",
      }),
    /Cannot write launchers: the program was loaded from https:/,
  );
});

Deno.test("writeLaunchers() replaces its own symlinks and refuses foreign files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const plan = planLaunchers({
      standalone: true,
      execPath: "/bin/true",
      mainModule: "file:///x",
    });
    await writeLaunchers(dir, plan, false);
    assert.equal(await Deno.readLink(`${dir}/tsh`), "/bin/true");
    await writeLaunchers(dir, plan, false);
    await Deno.remove(`${dir}/tctl`);
    await Deno.symlink("/bin/false", `${dir}/tctl`);
    await assert.rejects(writeLaunchers(dir, plan, false), /tctl exists and was not written/);
    await writeLaunchers(dir, plan, true);
    assert.equal(await Deno.readLink(`${dir}/tctl`), "/bin/true");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
