/**
 * The data directory: created 0700; an existing one that group or others can
 * write is refused (anyone who can write it can replace keys or the backend).
 * What it holds is private: files 0600, directories 0700; entries that earlier
 * versions left more open are tightened on start (each store keeps the files
 * inside its own directory private, see lib/backend and lib/events).
 */
import { AccessDeniedError, BadParameterError } from "../errors/mod.ts";

/** Creates `path` (0700) or checks an existing one and makes its entries private. */
export async function ensureDataDir(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await Deno.mkdir(path, { recursive: true, mode: 0o700 });
    await Deno.chmod(path, 0o700);
    return;
  }
  if (!info.isDirectory) {
    throw new BadParameterError(`Cannot use data dir "${path}": it is not a directory`);
  }
  const mode = (info.mode ?? 0) & 0o777;
  if ((mode & 0o022) !== 0) {
    throw new AccessDeniedError(
      `Cannot use data dir "${path}": its mode ${
        mode.toString(8).padStart(4, "0")
      } lets other users write to it; run "chmod 700 ${path}"`,
    );
  }
  const uid = Deno.uid();
  if (uid !== null && info.uid !== null && info.uid !== uid && uid !== 0) {
    throw new AccessDeniedError(
      `Cannot use data dir "${path}": it belongs to uid ${info.uid}, not to this user (uid ${uid})`,
    );
  }
  if ((mode & 0o077) !== 0) await Deno.chmod(path, 0o700);
  for await (const entry of Deno.readDir(path)) {
    if (!entry.isFile && !entry.isDirectory) continue; // symlinks are not followed
    const file = `${path}/${entry.name}`;
    const entryMode = ((await Deno.lstat(file)).mode ?? 0) & 0o777;
    if ((entryMode & 0o077) === 0) continue;
    try {
      await Deno.chmod(file, entry.isDirectory ? 0o700 : 0o600);
    } catch (err) {
      throw new AccessDeniedError(
        `Cannot use data dir "${path}": ${entry.name} has mode ${
          entryMode.toString(8).padStart(4, "0")
        } and cannot be made private; run "chmod go= ${file}"`,
        { cause: err },
      );
    }
  }
}

/** Reads the host UUID from the data dir, creating it on first start. */
export async function loadHostUuid(dataDir: string): Promise<string> {
  const path = `${dataDir}/host_uuid`;
  try {
    const text = (await Deno.readTextFile(path)).trim();
    if (!/^[0-9a-f-]{36}$/.test(text)) {
      throw new BadParameterError(`Cannot read ${path}: "${text}" is not a UUID`);
    }
    return text;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    const id = crypto.randomUUID();
    await Deno.writeTextFile(path, id + "\n", { mode: 0o600 });
    return id;
  }
}
