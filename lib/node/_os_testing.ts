/**
 * Test helpers for lib/node: real OS test users (created once, race-safely, never deleted),
 * running code as one of them from any checkout location, and waiting for expected output
 * without fixed sleeps.
 *
 * @module
 */

import type { Readable } from "node:stream";
import { lookupOsUser, type OsUser } from "./os_user.ts";

async function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/**
 * Makes sure OS user `name` exists (`useradd -m -s /bin/bash -G users name`) and returns it.
 * Idempotent and safe against parallel test processes: an existing user is fine, a locked
 * /etc/passwd is retried. Needs root.
 */
export async function ensureTestUser(name: string): Promise<OsUser> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if ((await run("id", ["-u", name])).code === 0) return await lookupOsUser(name);
    const r = await run("useradd", ["-m", "-s", "/bin/bash", "-G", "users", name]);
    if (r.code === 0 || r.code === 9) return await lookupOsUser(name); // 9: already exists
    // 1 / 10: cannot lock or update passwd/group (another useradd runs): retry.
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
  }
  throw new Error(`cannot create OS test user "${name}" with useradd`);
}

/** What {@link runDenoAsUser} saw. */
export interface RunAsUserResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the TypeScript module `source` with Deno as OS user `user` (uid, gid, a clean env), from
 * a copy that user can read wherever the checkout is: root bundles `source` (its imports are
 * absolute `file://` URLs into the checkout, which may sit in a 0700 home or `mktemp -d`) into
 * one file in a fresh 0755 temp dir beside a link to (or a copy of) the deno binary, which
 * lives under root's home too. Needs root.
 */
export async function runDenoAsUser(user: OsUser, source: string): Promise<RunAsUserResult> {
  const dir = await Deno.makeTempDir({ prefix: "td_as_user" });
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  try {
    await Deno.chmod(dir, 0o755);
    const deno = `${dir}/deno`;
    try {
      await Deno.link(Deno.execPath(), deno);
    } catch {
      await Deno.copyFile(Deno.execPath(), deno);
    }
    await Deno.writeTextFile(`${dir}/entry.ts`, source);
    const bundled = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "-o", `${dir}/entry.js`, `${dir}/entry.ts`],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!bundled.success) {
      throw new Error(`cannot bundle the code to run as ${user.name}: ${decode(bundled.stderr)}`);
    }
    await Deno.chmod(`${dir}/entry.js`, 0o644);
    await Deno.mkdir(`${dir}/cache`);
    await Deno.chown(`${dir}/cache`, user.uid, user.gid);
    const out = await new Deno.Command(deno, {
      args: ["run", "--no-config", "-A", "entry.js"],
      cwd: dir,
      uid: user.uid,
      gid: user.gid,
      clearEnv: true,
      env: { DENO_DIR: `${dir}/cache`, HOME: user.home, PATH: "/usr/bin:/bin", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Collects text from `stream` until `pattern` matches the accumulated text; resolves with all
 * text so far. Rejects after `timeoutMs` with what arrived.
 */
export function waitForOutput(
  stream: Readable,
  pattern: RegExp,
  timeoutMs = 5000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const decoder = new TextDecoder();
    const cleanup = () => {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
    };
    const onData = (chunk: Uint8Array) => {
      text += decoder.decode(chunk, { stream: true });
      if (pattern.test(text)) {
        cleanup();
        resolve(text);
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`stream ended before ${pattern} matched; got ${JSON.stringify(text)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${pattern}; got ${JSON.stringify(text)}`));
    }, timeoutMs);
    stream.on("data", onData);
    stream.on("end", onEnd);
  });
}

/** All text of `stream` until it ends (or closes). */
export function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    stream.on("data", (c: Uint8Array) => chunks.push(c));
    const done = () => {
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let off = 0;
      for (const c of chunks) {
        all.set(c, off);
        off += c.length;
      }
      resolve(new TextDecoder().decode(all));
    };
    stream.on("end", done);
    stream.on("close", done);
    stream.on("error", reject);
  });
}

/** Polls `cond` every 10 ms until true; rejects after `timeoutMs` with `what`. */
export async function waitUntil(
  cond: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
