/**
 * Test helpers for lib/ssh: a throwaway CA with user/host certificates, temp dirs, running
 * OpenSSH tools (missing tools fail with a clear message, never skip), a stock sshd on a free
 * high port, a TCP echo server and a started SshServer.
 */
import { createServer, type Server as NetServer } from "node:net";
import {
  formatAuthorizedKey,
  formatOpenSshPrivateKey,
  generateSshKeyPair,
  signSshCertificate,
  type SshKeyAlgorithm,
  type SshKeyPair,
} from "../ca/mod.ts";
import { type SshServer, type SshServerOptions, startSshServer } from "./server.ts";

/** A key pair with a certificate. */
export interface Certified {
  key: SshKeyPair;
  cert: Uint8Array;
  certLine: string;
}

/** A CA that issues certificates for fresh keys. */
export interface TestCa {
  ca: SshKeyPair;
  /** `@cert-authority * <ca key>` known_hosts line. */
  knownHostsLine: string;
  user(principals: string[], opts?: { keyId?: string; key?: SshKeyPair }): Promise<Certified>;
  host(principals: string[], opts?: { key?: SshKeyPair }): Promise<Certified>;
}

/** Creates a CA with keys of `alg` (also used for the keys it certifies). */
export async function testCa(alg: SshKeyAlgorithm = "ed25519"): Promise<TestCa> {
  const ca = await generateSshKeyPair(alg);
  const now = Date.now();
  const issue = async (
    certType: "user" | "host",
    principals: string[],
    keyId: string,
    key?: SshKeyPair,
  ): Promise<Certified> => {
    const k = key ?? await generateSshKeyPair(alg);
    const signed = await signSshCertificate({
      signer: ca,
      publicKeyBlob: k.publicKeyBlob,
      certType,
      keyId,
      principals,
      validAfter: new Date(now - 60_000),
      validBefore: new Date(now + 3_600_000),
      extensions: certType === "user" ? { "permit-pty": "" } : {},
    });
    return { key: k, cert: signed.blob, certLine: signed.authorizedKey };
  };
  return {
    ca,
    knownHostsLine: `@cert-authority * ${formatAuthorizedKey(ca.publicKeyBlob)}`,
    user: (principals, opts = {}) => issue("user", principals, opts.keyId ?? "test-user", opts.key),
    host: (principals, opts = {}) => issue("host", principals, "test-host", opts.key),
  };
}

/** A temporary directory removed on dispose. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "teleport_ssh_test_" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Path of an OpenSSH tool; throws (fails the test) with an install hint when it is missing. */
export function requireTool(name: "ssh" | "sshd" | "ssh-keygen" | "script"): string {
  for (const dir of ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]) {
    try {
      Deno.statSync(`${dir}/${name}`);
      return `${dir}/${name}`;
    } catch {
      // next
    }
  }
  const pkg = name === "sshd" ? "openssh-server" : "openssh-client";
  throw new Error(
    `OpenSSH interop test needs ${name}, which is not installed (apt-get install ${pkg})`,
  );
}

/** Result of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion with a clean environment (no agent, no user config). A command
 * still running after `timeoutMs` (default 20 s) is killed and the test fails, so a hang shows
 * as an error.
 */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: Uint8Array; timeoutMs?: number } = {},
): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const child = new Deno.Command(cmd, {
    args,
    env: { PATH: "/usr/bin:/bin:/usr/sbin:/sbin", LC_ALL: "C", ...opts.env },
    clearEnv: true,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(opts.stdin).catch(() => {});
    await w.close().catch(() => {});
  }
  const out = await child.output();
  clearTimeout(timer);
  const d = new TextDecoder();
  const result = { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  if (timedOut) {
    throw new Error(`${cmd} ${args.join(" ")} hung for ${timeoutMs} ms:\n${result.stderr}`);
  }
  return result;
}

/** Rejects when `promise` does not settle within `ms` (so a hang fails the test). */
export function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Writes an OpenSSH private key (0600), its certificate `-cert.pub` and returns the key path. */
export async function writeIdentity(dir: string, name: string, c: Certified): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, await formatOpenSshPrivateKey(c.key), { mode: 0o600 });
  await Deno.writeTextFile(`${path}-cert.pub`, c.certLine + "\n");
  await Deno.writeTextFile(`${path}.pub`, c.key.authorizedKey + "\n");
  return path;
}

/** Arguments for a stock `ssh` that uses only what the test gives it. */
export function sshArgs(opts: {
  port: number;
  keyPath: string;
  knownHosts: string;
  user: string;
  extra?: string[];
  /** Offer the certificate `<keyPath>-cert.pub`. @default {true} */
  certificate?: boolean;
  /** @default {"ERROR"} */
  logLevel?: string;
}): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    opts.keyPath,
    ...(opts.certificate === false ? [] : ["-o", `CertificateFile=${opts.keyPath}-cert.pub`]),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${opts.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    `LogLevel=${opts.logLevel ?? "ERROR"}`,
    "-p",
    String(opts.port),
    ...(opts.extra ?? []),
    `${opts.user}@127.0.0.1`,
  ];
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running stock sshd. */
export interface RunningSshd extends AsyncDisposable {
  port: number;
  log(): string;
}

/**
 * Starts `sshd -D -e` on a free loopback port with `hostKey` and TrustedUserCAKeys `userCa`,
 * and resolves once it logs that it listens.
 */
export async function startSshd(
  dir: string,
  hostKey: SshKeyPair,
  userCa: SshKeyPair,
): Promise<RunningSshd> {
  const sshd = requireTool("sshd");
  await Deno.writeTextFile(`${dir}/sshd_host_key`, await formatOpenSshPrivateKey(hostKey), {
    mode: 0o600,
  });
  await Deno.writeTextFile(`${dir}/user_ca.pub`, formatAuthorizedKey(userCa.publicKeyBlob) + "\n");
  if (Deno.uid() === 0) await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  for (let attempt = 0;; attempt++) {
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/sshd_config`,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${dir}/sshd_host_key`,
        `TrustedUserCAKeys ${dir}/user_ca.pub`,
        "AuthorizedKeysFile none",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        `PidFile ${dir}/sshd.pid`,
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    const child = new Deno.Command(sshd, {
      args: ["-D", "-e", "-f", `${dir}/sshd_config`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    let ready = false;
    while (!ready) {
      const { value, done } = await reader.read();
      if (done) break;
      log += value;
      ready = /Server listening on 127\.0\.0\.1 port/.test(log);
    }
    if (!ready) {
      await child.status;
      if (attempt < 3 && /Address already in use/.test(log)) continue;
      throw new Error(`sshd exited before listening:\n${log}`);
    }
    const drained = (async () => {
      for (let r = await reader.read(); !r.done; r = await reader.read()) log += r.value;
    })();
    return {
      port,
      log: () => log,
      async [Symbol.asyncDispose]() {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        await child.status;
        await drained;
      },
    };
  }
}

/** A TCP echo server on loopback. */
export async function startEchoServer(): Promise<{ port: number } & AsyncDisposable> {
  const sockets = new Set<import("node:net").Socket>();
  const server: NetServer = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const addr = server.address() as { port: number };
  return {
    port: addr.port,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Starts an SshServer on 127.0.0.1:0 with the given options. */
export function serve<T>(
  options: Omit<SshServerOptions<T>, "listen">,
): Promise<SshServer<T>> {
  return startSshServer({ ...options, listen: { hostname: "127.0.0.1", port: 0 } });
}

/** Byte equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
