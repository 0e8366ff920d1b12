import assert from "node:assert/strict";
import { AccessDeniedError } from "../errors/mod.ts";
import { ensureDataDir, loadHostUuid } from "./data_dir.ts";

const modeOf = async (path: string) => ((await Deno.lstat(path)).mode ?? 0) & 0o777;

Deno.test("ensureDataDir() creates a 0700 directory and loadHostUuid() a 0600 file", async () => {
  const parent = await Deno.makeTempDir({ prefix: "tp-data-dir-" });
  try {
    const dir = `${parent}/data`;
    await ensureDataDir(dir);
    assert.equal(await modeOf(dir), 0o700);
    await loadHostUuid(dir);
    assert.equal(await modeOf(`${dir}/host_uuid`), 0o600);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("ensureDataDir() makes entries that earlier runs left readable private", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-data-dir-" });
  try {
    await Deno.chmod(dir, 0o755);
    await Deno.mkdir(`${dir}/backend`);
    await Deno.chmod(`${dir}/backend`, 0o755);
    await Deno.writeTextFile(`${dir}/host_uuid`, `${crypto.randomUUID()}\n`);
    await Deno.chmod(`${dir}/host_uuid`, 0o644);
    await Deno.writeTextFile(`${dir}-outside`, "x");
    await Deno.symlink(`${dir}-outside`, `${dir}/link`);
    await Deno.chmod(`${dir}-outside`, 0o644);
    await ensureDataDir(dir);
    assert.equal(await modeOf(dir), 0o700);
    assert.equal(await modeOf(`${dir}/backend`), 0o700);
    assert.equal(await modeOf(`${dir}/host_uuid`), 0o600);
    // A symlink's target is not the data dir's to change.
    assert.equal(await modeOf(`${dir}-outside`), 0o644);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(`${dir}-outside`).catch(() => {});
  }
});

Deno.test("ensureDataDir() refuses a directory others can write", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-data-dir-" });
  try {
    await Deno.chmod(dir, 0o777);
    await assert.rejects(ensureDataDir(dir), AccessDeniedError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
