/** Connection strings in messages: the password never shows. */

/**
 * The connection string with its password replaced by `***`, for logs and messages.
 *
 * ```ts
 * import { maskConnString } from "./_conn_string.ts";
 * maskConnString("postgresql://u:secret@db:5432/teleport"); // "postgresql://u:***@db:5432/teleport"
 * ```
 */
export function maskConnString(connString: string): string {
  try {
    const url = new URL(connString);
    if (url.password !== "") url.password = "***";
    return url.toString();
  } catch {
    return connString.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
}
