/** A real haproxy for the load balancer e2e tests. */
import { eventually } from "./_helpers.ts";

/** Starts haproxy in the foreground on `cfg`; resolves once `port` accepts connections. */
export async function startHaproxy(cfg: string, port: number): Promise<AsyncDisposable> {
  const child = new Deno.Command("haproxy", {
    args: ["-db", "-f", cfg],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const errDone = (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) stderr += c;
  })();
  const exited = child.status;
  await eventually(`haproxy listening on ${port}`, async () => {
    const status = await Promise.race([exited, Promise.resolve(undefined)]);
    if (status !== undefined) throw new Error(`haproxy exited: ${stderr}`);
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return true;
    } catch {
      return undefined;
    }
  });
  return {
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await exited;
      await errDone;
    },
  };
}
