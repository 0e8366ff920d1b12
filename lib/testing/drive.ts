/**
 * A child process driven through pipes, for tests that talk to interactive clients (ssh, tsh).
 *
 * @module
 */

/** A client process driven through pipes: write text, wait for output. */
export interface DrivenProcess extends AsyncDisposable {
  write(text: string): Promise<void>;
  /** Resolves with the first match of `re` in stdout+stderr (rejects if the process ends first). */
  waitFor(re: RegExp): Promise<RegExpExecArray>;
  /** Closes stdin and resolves with the exit code. */
  finish(): Promise<number>;
  output(): string;
}

/**
 * Starts `cmd args` with piped stdio for a test to drive: write to its stdin, wait for its
 * output, finish it; disposing kills it.
 */
export function driveProcess(
  cmd: string,
  args: string[],
  o: { env?: Record<string, string> } = {},
): DrivenProcess {
  const child = new Deno.Command(cmd, {
    args,
    ...(o.env === undefined ? {} : { env: o.env }),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let exited = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const read = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s.pipeThrough(new TextDecoderStream())) {
      out += c;
      wake();
    }
  };
  const reads = Promise.all([read(child.stdout), read(child.stderr)]);
  const status = child.status.then(async (s) => {
    await reads;
    exited = true;
    wake();
    return s.code;
  });
  const writer = child.stdin.getWriter();
  let open = true;
  const enc = new TextEncoder();
  return {
    write: (text) => writer.write(enc.encode(text)),
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m !== null) {
            waiters.delete(check);
            resolve(m);
          } else if (exited) {
            waiters.delete(check);
            reject(new Error(`${[cmd, ...args].join(" ")} exited before printing ${re}:\n${out}`));
          }
        };
        waiters.add(check);
        check();
      }),
    finish: async () => {
      if (open) {
        open = false;
        await writer.close().catch(() => {});
      }
      return await status;
    },
    output: () => out,
    [Symbol.asyncDispose]: async () => {
      if (!exited) child.kill("SIGKILL");
      await status;
    },
  };
}
