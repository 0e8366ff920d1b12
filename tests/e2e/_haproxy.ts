/** haproxy for the load balancer e2e tests: a self-signed certificate and a foreground run. */
import assert from "node:assert/strict";
import { eventually, run } from "./_helpers.ts";

/** Options of {@link writeHaproxyConfig}. */
export interface HaproxyConfigOptions {
  /** `tcp` (layer 4) or `http` (layer 7: `timeout tunnel 1h` for upgraded connections). */
  mode: "tcp" | "http";
  /** The `frontend` and `backend` sections. */
  sections: string;
}

/**
 * Writes `DIR/haproxy.cfg`: a small global section, defaults for `mode` (5 s connect, 60 s
 * client and server timeouts) and the given sections; returns its path.
 */
export async function writeHaproxyConfig(dir: string, o: HaproxyConfigOptions): Promise<string> {
  const path = `${dir}/haproxy.cfg`;
  const preamble = [
    "global",
    "  maxconn 200",
    "defaults",
    `  mode ${o.mode}`,
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    ...(o.mode === "http" ? ["  timeout tunnel 1h"] : []),
  ];
  await Deno.writeTextFile(path, `${preamble.join("\n")}\n${o.sections.trimEnd()}\n`);
  return path;
}

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

/** A self-signed certificate and key for haproxy (`crt` wants them in one file). */
export async function lbCertificate(dir: string): Promise<string> {
  const r = await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout",
    `${dir}/lb.key`,
    "-out",
    `${dir}/lb.crt`,
  ]);
  assert.equal(r.code, 0, r.err);
  const pem = `${dir}/lb.pem`;
  await Deno.writeTextFile(
    pem,
    (await Deno.readTextFile(`${dir}/lb.crt`)) + (await Deno.readTextFile(`${dir}/lb.key`)),
  );
  return pem;
}
