import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import { LAUNCHER_MARK, planLaunchers, systemdUnit, writeLaunchers } from "./install.ts";

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

Deno.test("systemdUnit() with the defaults is examples/systemd/teleport.service", async () => {
  const example = await Deno.readTextFile(
    new URL("../../examples/systemd/teleport.service", import.meta.url),
  );
  assert.equal(systemdUnit(), example);
  for (
    const line of [
      "EnvironmentFile=-/etc/default/teleport",
      "ExecStart=/usr/local/bin/teleport start --config /etc/teleport.yaml --pid-file=/run/teleport.pid",
      "PIDFile=/run/teleport.pid",
      "LimitNOFILE=524288",
    ]
  ) assert.ok(example.split("\n").includes(line), line);
});

Deno.test("systemdUnit() refuses a relative path and a small fd limit", () => {
  assert.throws(
    () => systemdUnit({ pidFile: "run/teleport.pid" }),
    /^CliError: Cannot write the systemd unit: --pid-file must be an absolute path without spaces/,
  );
  assert.throws(
    () => systemdUnit({ teleportPath: "/opt/tele port/teleport" }),
    /--teleport-path must be an absolute path/,
  );
  assert.throws(
    () => systemdUnit({ fdLimit: 100 }),
    /--fd-limit must be an integer of at least 1024, received 100/,
  );
});

Deno.test({
  name: "teleport install systemd -o writes a unit that systemd-analyze verify accepts",
  ignore: skipGroup("systemd-unit"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tp-unit-" });
    try {
      // systemd-analyze checks that ExecStart's program exists and is executable.
      const teleport = `${dir}/teleport`;
      await Deno.writeTextFile(teleport, "#!/bin/sh\n", { mode: 0o755 });
      await Deno.chmod(teleport, 0o755);
      const unit = `${dir}/teleport.service`;
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../../main.ts", import.meta.url).pathname,
          "install",
          "systemd",
          `--teleport-path=${teleport}`,
          "--env-file=/etc/default/teleport-test",
          "--pid-file=/run/teleport-test.pid",
          "--fd-limit=65536",
          "-o",
          unit,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const text = await Deno.readTextFile(unit);
      assert.ok(text.includes(`ExecStart=${teleport} start --config /etc/teleport.yaml`));
      assert.ok(text.includes("LimitNOFILE=65536"));
      const verify = await new Deno.Command("systemd-analyze", {
        args: ["verify", unit],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(verify.stderr);
      assert.equal(verify.code, 0, err);
      // Warnings (an unknown key, a value systemd ignores) do not fail verify: none allowed.
      assert.equal(err.trim(), "");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
