/** Test helpers for lib/multiplex: a recording logger, test certificates, running tools. */
import {
  createX509Ca,
  generateTlsKeyPair,
  issueX509Certificate,
  X509_OIDS,
  type X509Ca,
} from "../ca/mod.ts";
import type { KeyPairPem } from "./multiplexer.ts";

export { type LoggedRecord, testLogger } from "../log/mod.ts";

/** Certificates for the tests: two CAs and leaves issued by them. */
export interface TestPki {
  /** The proxy's CA (PEM). */
  proxyCaPem: string;
  /** CN=proxy, DNS localhost, IP 127.0.0.1, by the proxy CA. */
  proxy: KeyPairPem;
  /** CN=wildcard, DNS *.example.test, by the proxy CA. */
  wildcard: KeyPairPem;
  /** A separate CA, standing for the auth service's. */
  authCaPem: string;
  /** CN=auth, DNS localhost, by the auth CA. */
  auth: KeyPairPem;
}

async function issue(
  ca: X509Ca,
  cn: string,
  dnsNames: string[],
  ipAddresses: string[] = [],
): Promise<KeyPairPem> {
  const key = await generateTlsKeyPair();
  const now = Date.now();
  const certPem = await issueX509Certificate({
    ca,
    publicKey: key.publicKey,
    subject: [[X509_OIDS.commonName, cn]],
    dnsNames,
    ipAddresses,
    extKeyUsage: ["serverAuth"],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
  });
  return { certPem, keyPem: key.privateKeyPem };
}

let pki: Promise<TestPki> | undefined;

/** The test certificates, made once per test process. */
export function testPki(): Promise<TestPki> {
  pki ??= (async () => {
    const now = Date.now();
    const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };
    const proxyCa = await createX509Ca({ commonName: "proxy-ca", ...validity });
    const authCa = await createX509Ca({ commonName: "auth-ca", ...validity });
    return {
      proxyCaPem: proxyCa.certPem,
      proxy: await issue(proxyCa, "proxy", ["localhost"], ["127.0.0.1"]),
      wildcard: await issue(proxyCa, "wildcard", ["*.example.test"]),
      authCaPem: authCa.certPem,
      auth: await issue(authCa, "auth", ["localhost"]),
    };
  })();
  return pki;
}

/** The outcome of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`); never throws on a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { LC_ALL: "C" },
    signal: AbortSignal.timeout(opts.timeoutMs ?? 20_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
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

/** Reads a connection to its end; a reset counts as the end. Closes the connection. */
export async function readToEnd(conn: Deno.Conn | Deno.TlsConn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(16 * 1024);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } catch {
    // ECONNRESET and friends: the peer closed.
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A temporary directory removed on disposal. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "teleport_multiplex_test_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
