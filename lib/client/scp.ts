/**
 * `tsh scp`: file copy with a node over the scp protocol (what `scp -O` speaks and what
 * Teleport's tsh uses). The node runs the stock `scp` in server mode through an `exec` request
 * — `scp -t TARGET` to receive (upload), `scp -f SOURCE` to send (download) — so the node's
 * `ssh_file_copy` check, the audit `exec` event and OS permissions apply as for OpenSSH's scp.
 *
 * The protocol: the receiving side acknowledges every line with one byte (0 = ok, 1 = warning,
 * 2 = fatal, the last two followed by a message line). The sending side sends `T<mtime> 0
 * <atime> 0` (times, with -p), `C<mode> <size> <name>` followed by the bytes and a 0 byte,
 * `D<mode> 0 <name>` to enter a directory and `E` to leave it.
 *
 * Names received from the node are checked (no `/`, `.` or `..`), so a hostile node cannot
 * write outside the target (CVE-2019-6111 in OpenSSH's scp).
 *
 * @module
 */
import type { Readable } from "node:stream";
import { AccessDeniedError, BadParameterError, messageOf, NotFoundError } from "../errors/mod.ts";
import type { ClientChannel, SshClient } from "../ssh/mod.ts";

/** Options for {@link scpUpload} and {@link scpDownload}. */
export interface ScpOptions {
  /** Copy directories recursively. @default {false} */
  recursive?: boolean;
  /** Keep modification and access times, and modes exactly (not masked by umask). @default {false} */
  preserve?: boolean;
  /** Called with each file copied (its local path) and its size. */
  onFile?: (path: string, size: number) => void;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const MAX_LINE = 64 * 1024;
const CHUNK = 64 * 1024;

/**
 * Quotes `path` for the node's shell. An empty path is the login's home directory; a leading
 * `~/` stays unquoted so the shell expands it.
 */
export function quoteRemotePath(path: string): string {
  if (path === "" || path === "~") return ".";
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  if (path.startsWith("~/")) return path.length === 2 ? "~/" : `~/${q(path.slice(2))}`;
  return q(path);
}

/** Reads an scp byte stream: lines, exact byte counts and acknowledgements. */
class ScpReader {
  #it: AsyncIterator<Uint8Array>;
  #buf = new Uint8Array(0);
  #eof = false;

  constructor(stream: Readable) {
    this.#it = stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const r = await this.#it.next();
    if (r.done) {
      this.#eof = true;
      return false;
    }
    const chunk = r.value as Uint8Array;
    const next = new Uint8Array(this.#buf.length + chunk.length);
    next.set(this.#buf);
    next.set(chunk, this.#buf.length);
    this.#buf = next;
    return true;
  }

  /** One byte, or undefined at the end of the stream. */
  async byte(): Promise<number | undefined> {
    while (this.#buf.length === 0) if (!await this.#fill()) return undefined;
    const b = this.#buf[0]!;
    this.#buf = this.#buf.subarray(1);
    return b;
  }

  /** A line without its newline; undefined at the end of the stream. */
  async line(): Promise<string | undefined> {
    for (;;) {
      const nl = this.#buf.indexOf(0x0a);
      if (nl >= 0) {
        const text = dec.decode(this.#buf.subarray(0, nl));
        this.#buf = this.#buf.subarray(nl + 1);
        return text;
      }
      if (this.#buf.length > MAX_LINE) {
        throw new BadParameterError("Cannot copy files: the node sent an overlong scp line");
      }
      if (!await this.#fill()) {
        if (this.#buf.length === 0) return undefined;
        const rest = dec.decode(this.#buf);
        this.#buf = new Uint8Array(0);
        return rest;
      }
    }
  }

  /** Up to `max` bytes (at least one); undefined at the end of the stream. */
  async some(max: number): Promise<Uint8Array | undefined> {
    while (this.#buf.length === 0) if (!await this.#fill()) return undefined;
    const n = Math.min(max, this.#buf.length);
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
}

/** The node closed the channel while we still had to write: its stderr says why. */
class ChannelGoneError extends BadParameterError {
  constructor() {
    super("Cannot copy files: the node closed the copy channel");
    this.name = "ChannelGoneError";
  }
}

/** Writes to the channel, waiting for drain when its buffer is full. */
async function send(ch: ClientChannel, data: Uint8Array | string): Promise<void> {
  if (ch.destroyed || ch.writableEnded) throw new ChannelGoneError();
  if (!ch.write(typeof data === "string" ? enc.encode(data) : data)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        ch.off("drain", done);
        ch.off("close", done);
        resolve();
      };
      ch.once("drain", done);
      ch.once("close", done);
    });
  }
}

/** An error the scp server reported (its message, e.g. "scp: /x: No such file or directory"). */
function remoteError(message: string): Error {
  const text = message.replace(/^scp: /, "").trim();
  if (/No such file or directory/.test(text)) {
    return new NotFoundError(`Cannot copy files: ${text}`);
  }
  if (/Permission denied/.test(text)) return new AccessDeniedError(`Cannot copy files: ${text}`);
  return new BadParameterError(`Cannot copy files: ${text}`);
}

/** Waits for the receiver's acknowledgement; throws its error. */
async function expectAck(r: ScpReader, stderr: () => string): Promise<void> {
  const b = await r.byte();
  if (b === 0) return;
  if (b === 1 || b === 2) throw remoteError((await r.line()) ?? "");
  if (b === undefined) throw closedEarly(stderr());
  throw new BadParameterError(
    `Cannot copy files: the node answered with byte ${b}, not an scp acknowledgement ` +
      `(${JSON.stringify((await r.line()) ?? "")})`,
  );
}

function closedEarly(stderr: string): Error {
  const why = stderr.trim();
  if (/not permitted|ssh_file_copy/.test(why)) return new AccessDeniedError(why);
  return new BadParameterError(
    "Cannot copy files: the node ended the copy early" + (why === "" ? "" : ` (${why})`) +
      (/not found/.test(why) ? "; is scp installed on the node?" : ""),
  );
}

/** Runs `command` on the node and hands the channel to `body`; checks the exit status. */
async function withScpServer<T>(
  client: SshClient,
  command: string,
  body: (ch: ClientChannel, r: ScpReader, stderr: () => string) => Promise<T>,
): Promise<T> {
  const session = await client.openSession();
  const ch = session.channel;
  let errText = "";
  ch.stderr.on("data", (d: Uint8Array) => {
    if (errText.length < MAX_LINE) errText += dec.decode(d);
  });
  const reader = new ScpReader(ch);
  if (!await session.exec(command)) {
    session.close();
    throw new AccessDeniedError(`Cannot copy files: the node refused to run "${command}"`);
  }
  let result: T;
  try {
    result = await body(ch, reader, () => errText);
  } catch (err) {
    if (err instanceof ChannelGoneError) {
      // The exit status comes after the stderr that explains it; the channel closes once
      // its output is read to the end.
      while (await reader.some(CHUNK) !== undefined) { /* discard */ }
      await ch.exitStatus;
      throw closedEarly(errText);
    }
    ch.destroy();
    session.close();
    throw err;
  }
  if (!ch.writableEnded) ch.end();
  // Drain what is left so the channel can close.
  while (await reader.some(CHUNK) !== undefined) { /* discard */ }
  const status = await ch.exitStatus;
  if (status.kind === "code" && status.code !== 0) {
    throw closedEarly(errText === "" ? `scp exited with status ${status.code}` : errText);
  }
  return result;
}

function modeString(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * Copies local `sources` to `target` on the node (`scp -t`). With several sources (or a
 * directory) the target must be a directory on the node. Throws NotFoundError for a missing
 * local file, BadParameterError for a directory without `recursive`.
 */
export async function scpUpload(
  client: SshClient,
  sources: string[],
  target: string,
  options: ScpOptions = {},
): Promise<void> {
  const infos: Array<[string, Deno.FileInfo]> = [];
  for (const src of sources) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(src);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new NotFoundError(`Cannot copy "${src}": no such file or directory`);
      }
      throw new AccessDeniedError(`Cannot copy "${src}": ${messageOf(err)}`);
    }
    if (info.isDirectory && options.recursive !== true) {
      throw new BadParameterError(`Cannot copy "${src}": it is a directory; use -r`);
    }
    infos.push([src, info]);
  }
  const flags = [
    "-t",
    ...(options.recursive ? ["-r"] : []),
    ...(options.preserve ? ["-p"] : []),
    ...(sources.length > 1 ? ["-d"] : []),
  ];
  await withScpServer(
    client,
    `scp ${flags.join(" ")} -- ${quoteRemotePath(target)}`,
    async (ch, r, stderr) => {
      await expectAck(r, stderr);
      for (const [src, info] of infos) await sendEntry(ch, r, stderr, src, info, options);
      ch.end();
    },
  );
}

async function sendEntry(
  ch: ClientChannel,
  r: ScpReader,
  stderr: () => string,
  path: string,
  info: Deno.FileInfo,
  o: ScpOptions,
): Promise<void> {
  const name = baseName(path);
  if (o.preserve) {
    const m = Math.floor((info.mtime?.getTime() ?? 0) / 1000);
    const a = Math.floor((info.atime?.getTime() ?? info.mtime?.getTime() ?? 0) / 1000);
    await send(ch, `T${m} 0 ${a} 0\n`);
    await expectAck(r, stderr);
  }
  if (info.isDirectory) {
    await send(ch, `D${modeString(info.mode ?? 0o755)} 0 ${name}\n`);
    await expectAck(r, stderr);
    const entries: string[] = [];
    for await (const e of Deno.readDir(path)) entries.push(e.name);
    entries.sort();
    for (const e of entries) {
      const child = `${path.replace(/\/+$/, "")}/${e}`;
      const ci = await Deno.stat(child);
      if (!ci.isFile && !ci.isDirectory) continue; // sockets, fifos, devices: as scp does
      await sendEntry(ch, r, stderr, child, ci, o);
    }
    await send(ch, "E\n");
    await expectAck(r, stderr);
    return;
  }
  using file = await Deno.open(path, { read: true });
  await send(ch, `C${modeString(info.mode ?? 0o644)} ${info.size} ${name}\n`);
  await expectAck(r, stderr);
  const buf = new Uint8Array(CHUNK);
  let left = info.size;
  while (left > 0) {
    const n = await file.read(buf.subarray(0, Math.min(CHUNK, left)));
    if (n === null) {
      throw new BadParameterError(`Cannot copy "${path}": it shrank while being copied`);
    }
    await send(ch, buf.slice(0, n));
    left -= n;
  }
  await send(ch, new Uint8Array([0]));
  await expectAck(r, stderr);
  o.onFile?.(path, info.size);
}

/** Parses `C0644 12 name` / `D0755 0 name`; checks the name. */
function parseEntryLine(line: string): { mode: number; size: number; name: string } {
  const m = /^[CD]([0-7]{4}) (\d+) (.+)$/.exec(line);
  if (m === null) {
    throw new BadParameterError(`Cannot copy files: the node sent a bad scp line "${line}"`);
  }
  const name = m[3]!;
  if (name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new AccessDeniedError(
      `Cannot copy files: the node sent the file name ${JSON.stringify(name)}, which would ` +
        "write outside the target; refused",
    );
  }
  const size = Number(m[2]!);
  if (!Number.isSafeInteger(size)) {
    throw new BadParameterError(`Cannot copy files: the node sent a bad size in "${line}"`);
  }
  return { mode: parseInt(m[1]!, 8), size, name };
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Copies `sources` from the node (`scp -f`) to local `target`: into it when it is a directory,
 * else to that name (one source only). Errors the node reports (no such file, permission) are
 * thrown after the copy ends, the first one winning.
 */
export async function scpDownload(
  client: SshClient,
  sources: string[],
  target: string,
  options: ScpOptions = {},
): Promise<void> {
  const targetIsDir = await isDir(target);
  if (sources.length > 1 && !targetIsDir) {
    throw new BadParameterError(
      `Cannot copy ${sources.length} files to "${target}": it is not a directory`,
    );
  }
  const flags = ["-f", ...(options.recursive ? ["-r"] : []), ...(options.preserve ? ["-p"] : [])];
  const command = `scp ${flags.join(" ")} -- ${sources.map(quoteRemotePath).join(" ")}`;
  const remoteErrors: Error[] = [];
  const copied = withScpServer(client, command, async (ch, r, stderr) => {
    const ack = () => send(ch, new Uint8Array([0]));
    const dirs: string[] = [];
    let times: { mtime: number; atime: number } | undefined;
    let first = true;
    await ack();
    for (;;) {
      const b = await r.byte();
      if (b === undefined) break;
      if (b === 1 || b === 2) {
        remoteErrors.push(remoteError((await r.line()) ?? ""));
        if (b === 2) break;
        continue;
      }
      const line = String.fromCharCode(b) + ((await r.line()) ?? "");
      const kind = line[0];
      if (kind === "T") {
        const m = /^T(\d+) \d+ (\d+) \d+$/.exec(line);
        if (m === null) throw new BadParameterError(`Cannot copy files: bad time line "${line}"`);
        times = { mtime: Number(m[1]), atime: Number(m[2]) };
        await ack();
        continue;
      }
      if (kind === "E") {
        const done = dirs.pop();
        if (done === undefined) throw new BadParameterError("Cannot copy files: unbalanced E");
        await ack();
        continue;
      }
      if (kind !== "C" && kind !== "D") {
        throw new BadParameterError(`Cannot copy files: the node sent a bad scp line "${line}"`);
      }
      const e = parseEntryLine(line);
      // The top-level entry lands in the target directory, or becomes the target itself.
      const parent = dirs.at(-1);
      const dest = parent !== undefined
        ? `${parent}/${e.name}`
        : targetIsDir
        ? `${target.replace(/\/+$/, "")}/${e.name}`
        : target;
      if (parent === undefined && !first && !targetIsDir) {
        throw new BadParameterError(`Cannot copy several files to "${target}": not a directory`);
      }
      first = false;
      if (kind === "D") {
        if (options.recursive !== true) {
          throw new BadParameterError("Cannot copy files: the node sent a directory without -r");
        }
        if (!await isDir(dest)) await Deno.mkdir(dest, { mode: e.mode });
        if (options.preserve) await Deno.chmod(dest, e.mode);
        dirs.push(dest);
        times = undefined;
        await ack();
        continue;
      }
      await receiveFile(r, dest, e, options, ack, stderr);
      if (options.preserve && times !== undefined) {
        await Deno.utime(dest, times.atime, times.mtime);
      }
      times = undefined;
      options.onFile?.(dest, e.size);
    }
  });
  try {
    await copied;
  } catch (err) {
    // scp exits 1 after reporting a missing source: its own message says more.
    throw remoteErrors[0] ?? err;
  }
  if (remoteErrors.length > 0) throw remoteErrors[0];
}

async function receiveFile(
  r: ScpReader,
  dest: string,
  e: { mode: number; size: number },
  o: ScpOptions,
  ack: () => Promise<void>,
  stderr: () => string,
): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(dest, { write: true, create: true, truncate: true, mode: e.mode });
  } catch (err) {
    throw new AccessDeniedError(`Cannot write "${dest}": ${messageOf(err)}`);
  }
  try {
    await ack();
    let left = e.size;
    while (left > 0) {
      const chunk = await r.some(Math.min(left, CHUNK));
      if (chunk === undefined) throw closedEarly(stderr());
      let off = 0;
      while (off < chunk.length) off += await file.write(chunk.subarray(off));
      left -= chunk.length;
    }
  } finally {
    file.close();
  }
  if (o.preserve) await Deno.chmod(dest, e.mode);
  await expectAck(r, stderr);
  await ack();
}
