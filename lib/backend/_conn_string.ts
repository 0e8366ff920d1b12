/**
 * PostgreSQL connection strings: parsed into npm:postgres options (no import of the driver
 * here, so the KV graph stays free of npm packages) and masked for messages.
 */

import { BadParameterError, messageOf } from "../errors/mod.ts";

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

/** TLS settings for the driver, from `sslmode` and the PEM files. */
export type PostgresTls =
  | false
  | "allow"
  | "prefer"
  | {
    ca?: string;
    cert?: string;
    key?: string;
    rejectUnauthorized: boolean;
    checkServerIdentity?: () => undefined;
  };

/** A parsed connection string: npm:postgres options plus a masked form for messages. */
export interface ParsedConn {
  /** The URL without the parameters consumed here and without its fragment. */
  url: string;
  /** The connection string with the password masked. */
  masked: string;
  /** Parameters after `#` (Teleport's audit options: `retention_period`, `disable_cleanup`). */
  fragment: URLSearchParams;
  /** Options for `postgres(url, options)`. */
  options: {
    ssl: PostgresTls;
    max: number;
    connect_timeout: number;
    connection: { application_name: string };
    onnotice: () => void;
    fetch_types: boolean;
    prepare: boolean;
    password?: string;
  };
}

/** Options of {@link parsePostgresConnString}. */
export interface ParseConnStringOptions {
  /** What is being opened, for messages ("backend", "audit log"). */
  what: string;
  /**
   * File holding the password (trailing newline ignored); wins over one in the URL.
   *
   * @default {undefined}
   */
  passwordFile?: string;
}

async function readPem(path: string, param: string, thing: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new BadParameterError(
      `Cannot open ${thing}: cannot read ${param} ${JSON.stringify(path)}: ${messageOf(err)}`,
    );
  }
}

const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/**
 * Parses `postgresql://user[:password]@host[:port]/database?params#fragment` into driver
 * options, reading the PEM files and the password file. Understood params: `sslmode`
 * (disable, allow, prefer, require, verify-ca, verify-full), `sslrootcert`, `sslcert`,
 * `sslkey`, `pool_max_conns`, `connect_timeout` (seconds), `application_name`. Every error is
 * a BadParameterError that shows the string with its password masked.
 */
export async function parsePostgresConnString(
  connString: string,
  opts: ParseConnStringOptions,
): Promise<ParsedConn> {
  const masked = maskConnString(connString);
  const thing = `${opts.what} ${masked}`;
  let url: URL;
  try {
    url = new URL(connString);
  } catch {
    throw new BadParameterError(
      `Cannot open ${thing}: not a URL; expected postgresql://user@host:port/database`,
    );
  }
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    throw new BadParameterError(
      `Cannot open ${thing}: scheme must be postgresql://, received ${url.protocol}//`,
    );
  }
  if (url.hostname === "" || url.pathname.length <= 1) {
    throw new BadParameterError(
      `Cannot open ${thing}: host and database are required, as in ` +
        "postgresql://teleport@db.example.com:5432/teleport",
    );
  }
  const fragment = new URLSearchParams(url.hash.slice(1));
  url.hash = "";
  const params = url.searchParams;
  const take = (name: string) => {
    const value = params.get(name) ?? undefined;
    params.delete(name);
    return value;
  };
  const sslmode = take("sslmode");
  const rootcert = take("sslrootcert");
  const certFile = take("sslcert");
  const keyFile = take("sslkey");
  const poolMax = take("pool_max_conns");
  const connectTimeout = take("connect_timeout");
  const appName = take("application_name");
  const unknown = [...params.keys()];
  if (unknown.length > 0) {
    throw new BadParameterError(
      `Cannot open ${thing}: unknown parameter ${JSON.stringify(unknown[0])}; ` +
        "known: sslmode, sslrootcert, sslcert, sslkey, pool_max_conns, connect_timeout, " +
        "application_name",
    );
  }
  if (sslmode !== undefined && !SSL_MODES.includes(sslmode)) {
    throw new BadParameterError(
      `Cannot open ${thing}: sslmode ${JSON.stringify(sslmode)} is not one of ${
        SSL_MODES.join(", ")
      }`,
    );
  }
  const positive = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new BadParameterError(
        `Cannot open ${thing}: ${name} must be a positive integer, received ${
          JSON.stringify(value)
        }`,
      );
    }
    return n;
  };
  const tlsFiles: { ca?: string; cert?: string; key?: string } = {};
  if (rootcert !== undefined) tlsFiles.ca = await readPem(rootcert, "sslrootcert", thing);
  if (certFile !== undefined) tlsFiles.cert = await readPem(certFile, "sslcert", thing);
  if (keyFile !== undefined) tlsFiles.key = await readPem(keyFile, "sslkey", thing);
  const mode = sslmode ?? (Object.keys(tlsFiles).length > 0 ? "require" : "disable");
  if ((mode === "verify-ca" || mode === "verify-full") && tlsFiles.ca === undefined) {
    throw new BadParameterError(
      `Cannot open ${thing}: sslmode=${mode} needs sslrootcert=<CA file>`,
    );
  }
  let ssl: PostgresTls;
  if (mode === "disable") ssl = false;
  else if (mode === "allow" || mode === "prefer") ssl = mode;
  else if (mode === "verify-full") ssl = { ...tlsFiles, rejectUnauthorized: true };
  else if (mode === "verify-ca" || tlsFiles.ca !== undefined) {
    ssl = { ...tlsFiles, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  } else ssl = { ...tlsFiles, rejectUnauthorized: false };
  let password: string | undefined;
  if (opts.passwordFile !== undefined) {
    try {
      password = (await Deno.readTextFile(opts.passwordFile)).replace(/\r?\n$/, "");
    } catch (err) {
      throw new BadParameterError(
        `Cannot open ${thing}: cannot read password_file ${JSON.stringify(opts.passwordFile)}: ${
          messageOf(err)
        }`,
      );
    }
  }
  const options: ParsedConn["options"] = {
    ssl,
    max: positive("pool_max_conns", poolMax, 10),
    connect_timeout: positive("connect_timeout", connectTimeout, 10),
    connection: { application_name: appName ?? "teleport" },
    onnotice: () => {},
    fetch_types: false,
    prepare: true,
  };
  if (password !== undefined) options.password = password;
  return { url: url.toString(), masked, fragment, options };
}
