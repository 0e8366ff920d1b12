/** Small file-system helpers shared by the audit log and the recording store. */
import { BadParameterError } from "../errors/mod.ts";

/** True when `path` exists (without following a final symlink). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Checks a directory option and strips trailing slashes (`who` names the owner in errors). */
export function directoryOption(dir: unknown, who: string): string {
  if (typeof dir !== "string" || dir === "") {
    throw new BadParameterError(`${who}: options.dir must be a directory path`);
  }
  return dir.replace(/\/+$/, "") || "/";
}
