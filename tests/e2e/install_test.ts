/**
 * `teleport install links DIR` for the install forms run by deno: a source checkout
 * (`deno run -A main.ts`) and the bundle (`deno run -A dist/teleport.js`). The launchers it
 * writes run `tsh` and `tctl` by name from any directory. (The compiled binary gets symlinks;
 * cli/start/install_test.ts covers that plan, as `deno compile` needs a runtime CI lacks.)
 */
import assert from "node:assert/strict";
import { REPO, runCli, tempDir } from "./_helpers.ts";

async function run(path: string, args: string[], cwd: string) {
  const out = await new Deno.Command(path, {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function assertLaunchersWork(bin: string, elsewhere: string): Promise<void> {
  const tsh = await run(`${bin}/tsh`, ["version"], elsewhere);
  assert.equal(tsh.code, 0, tsh.stderr);
  assert.match(tsh.stdout, /^tsh v\d+\.\d+\.\d+/);
  const tctl = await run(`${bin}/tctl`, ["--help"], elsewhere);
  assert.equal(tctl.code, 0, tctl.stderr);
  assert.match(tctl.stdout, /Usage: tctl/);
  const teleport = await run(`${bin}/teleport`, ["version"], elsewhere);
  assert.match(teleport.stdout, /^Teleport v/);
}

Deno.test("teleport install links writes launchers that work from another directory", async (t) => {
  await using dir = await tempDir();
  const elsewhere = `${dir.path}/elsewhere`;
  await Deno.mkdir(elsewhere);

  await t.step("source checkout (deno run -A main.ts)", async () => {
    const bin = `${dir.path}/bin-source`;
    await Deno.mkdir(bin);
    const r = await runCli(["install", "links", bin]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Wrote .*\/tsh/);
    assert.match(await Deno.readTextFile(`${bin}/tsh`), /--config '.*deno\.json'/);
    await assertLaunchersWork(bin, elsewhere);
    // A rerun replaces its own launchers; a foreign file is kept unless --force.
    assert.equal((await runCli(["install", "links", bin])).code, 0);
    await Deno.writeTextFile(`${bin}/tctl`, "#!/bin/sh\necho mine\n");
    const refused = await runCli(["install", "links", bin]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /tctl exists and was not written by .*--force/);
    assert.equal((await runCli(["install", "links", bin, "--force"])).code, 0);
    await assertLaunchersWork(bin, elsewhere);
  });

  await t.step("bundle (deno run -A teleport.js)", async () => {
    const bundle = `${dir.path}/dist/teleport.js`;
    await Deno.mkdir(`${dir.path}/dist`);
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${REPO}tools/bundle.ts`, bundle],
      cwd: REPO,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));
    const bin = `${dir.path}/bin-bundle`;
    await Deno.mkdir(bin);
    const r = await run(Deno.execPath(), ["run", "-A", bundle, "install", "links", bin], elsewhere);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(await Deno.readTextFile(`${bin}/tsh`), /--config/);
    await assertLaunchersWork(bin, elsewhere);
    // A symlink named tsh.js to the bundle, run by deno, is tsh too (not silently teleport).
    await Deno.symlink(bundle, `${bin}/tsh.js`);
    const viaLink = await run(
      Deno.execPath(),
      ["run", "-A", `${bin}/tsh.js`, "version"],
      elsewhere,
    );
    assert.match(viaLink.stdout, /^tsh v/);
  });

  await t.step("bad input gives one line", async () => {
    const missing = await runCli(["install", "links", `${dir.path}/nope`]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^ERROR: Cannot install links in .*nope: it does not exist; create it first\n$/,
    );
    const usage = await runCli(["install", "linkz", dir.path]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /expected "systemd" or "links DIR"/);
  });
});
