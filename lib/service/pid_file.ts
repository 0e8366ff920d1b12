/** The pid file: written at start, removed at stop (only if it is still ours). */

/** Writes this process's pid to `path`; returns a function that removes it. */
export async function writePidFile(path: string): Promise<() => Promise<void>> {
  await Deno.writeTextFile(path, `${Deno.pid}\n`, { mode: 0o644 });
  return async () => {
    try {
      if ((await Deno.readTextFile(path)).trim() === String(Deno.pid)) await Deno.remove(path);
    } catch {
      // already gone
    }
  };
}
