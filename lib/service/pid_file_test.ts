import assert from "node:assert/strict";
import { writePidFile } from "./pid_file.ts";

Deno.test("writePidFile() refuses a pid file another holder keeps locked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-pid-" });
  try {
    const path = `${dir}/teleport.pid`;
    const first = await writePidFile(path);
    assert.equal((await Deno.readTextFile(path)).trim(), String(Deno.pid));
    // flock locks belong to the open file, so a second open in this process conflicts too.
    await assert.rejects(
      writePidFile(path),
      new RegExp(
        `^AccessDeniedError: Cannot write pid file ${path}: another teleport process \\(pid ${Deno.pid}\\) holds it; stop that process first or choose another --pid-file$`,
      ),
    );
    // The refused attempt left the holder's pid in place.
    assert.equal((await Deno.readTextFile(path)).trim(), String(Deno.pid));
    await first.release();
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    await first.release(); // idempotent
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writePidFile() takes over a stale pid file nobody holds", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-pid-" });
  try {
    const path = `${dir}/teleport.pid`;
    // Left behind by a process killed with KILL: a longer pid, no lock.
    await Deno.writeTextFile(path, "4194303999\n");
    const pid = await writePidFile(path);
    assert.equal(await Deno.readTextFile(path), `${Deno.pid}\n`);
    pid.releaseSync();
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PidFile.release() leaves a pid file that names another process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tp-pid-" });
  try {
    const path = `${dir}/teleport.pid`;
    const pid = await writePidFile(path);
    // A successor (after a hand-over) rewrote it.
    await Deno.writeTextFile(path, "12345\n");
    await pid.release();
    assert.equal(await Deno.readTextFile(path), "12345\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
