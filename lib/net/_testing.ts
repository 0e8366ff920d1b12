/**
 * Test helpers: a scriptable HTTP CONNECT proxy (plain or TLS) that records what it is asked,
 * and an echo server. For the tests of lib/net and of the modules dialling through it.
 */
import net, { type AddressInfo, isIP, type Socket } from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";

/** One CONNECT request as the fake proxy read it. */
export interface ConnectRequest {
  /** The request line, e.g. `CONNECT example.com:443 HTTP/1.1`. */
  line: string;
  /** The `host:port` asked for. */
  target: string;
  /** Header names lower case. */
  headers: Record<string, string>;
}

/** Options of {@linkcode startFakeConnectProxy}. */
export interface FakeConnectProxyOptions {
  /**
   * What to answer: the bytes to write (a `200` answer opens the tunnel, any bytes after its
   * header block reach the client first), `"close"` to hang up, `"hang"` to never answer.
   * @default {"HTTP/1.1 200 Connection established\r\n\r\n"}
   */
  answer?: (req: ConnectRequest) => string;
  /** Where a tunnel to `target` really goes. @default {the target itself} */
  route?: (target: string) => { host: string; port: number };
  /** Serve TLS (an `https://` proxy) with this certificate. */
  tls?: { certPem: string; keyPem: string };
  /** Address to listen on. @default {"127.0.0.1"} */
  host?: string;
}

/** A running fake proxy. */
export interface FakeConnectProxy extends AsyncDisposable {
  port: number;
  /** `http://127.0.0.1:<port>` (or `https://`). */
  url: string;
  requests: ConnectRequest[];
  close(): Promise<void>;
}

const OK = "HTTP/1.1 200 Connection established\r\n\r\n";

/** Starts a fake CONNECT proxy on port 0; see {@linkcode FakeConnectProxyOptions}. */
export async function startFakeConnectProxy(
  o: FakeConnectProxyOptions = {},
): Promise<FakeConnectProxy> {
  const requests: ConnectRequest[] = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const handle = (client: Socket) => {
    track(client);
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      client.pause();
      const [line = "", ...headerLines] = buffered.subarray(0, end).toString("latin1").split(
        "\r\n",
      );
      const headers: Record<string, string> = {};
      for (const h of headerLines) {
        const colon = h.indexOf(":");
        if (colon > 0) headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
      }
      const req = { line, target: line.split(" ")[1] ?? "", headers };
      requests.push(req);
      const answer = o.answer?.(req) ?? OK;
      if (answer === "hang") return;
      if (answer === "close") return void client.destroy();
      if (!/^HTTP\/1\.[01] 200/.test(answer)) return void client.end(answer);
      const colon = req.target.lastIndexOf(":");
      const to = o.route?.(req.target) ??
        {
          host: req.target.slice(0, colon).replace(/^\[|\]$/g, ""),
          port: Number(req.target.slice(colon + 1)),
        };
      const upstream = net.connect(to);
      track(upstream);
      let connected = false;
      upstream.once("error", () => {
        if (!connected) client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
      });
      upstream.once("connect", () => {
        connected = true;
        client.write(answer);
        const rest = buffered.subarray(end + 4);
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on("close", () => {
        if (connected) client.destroy();
      });
      client.on("close", () => upstream.destroy());
    };
    client.on("data", onData);
  };
  const server = o.tls === undefined
    ? net.createServer(handle)
    : tls.createServer({ cert: o.tls.certPem, key: o.tls.keyPem }, handle);
  await new Promise<void>((resolve) => server.listen(0, o.host ?? "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  const host = o.host ?? "127.0.0.1";
  return {
    port,
    url: `${o.tls === undefined ? "http" : "https"}://${
      host.includes(":") ? `[${host}]` : host
    }:${port}`,
    requests,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A TCP echo server on port 0. */
export async function startEchoServer(
  host = "127.0.0.1",
): Promise<AsyncDisposable & { port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return { port: (server.address() as AddressInfo).port, close, [Symbol.asyncDispose]: close };
}

/** A self-signed certificate for `names` (openssl). */
export async function selfSignedCertificate(
  names: string[],
  o: {
    /**
     * A leaf (`CA:FALSE`) rather than a CA certificate: rustls clients (`Deno.startTls`) refuse
     * a CA certificate as the server's own.
     * @default {false}
     */
    leaf?: boolean;
  } = {},
): Promise<{ certPem: string; keyPem: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        `/CN=${names[0]}`,
        "-addext",
        `subjectAltName=${san}`,
        ...(o.leaf ? ["-addext", "basicConstraints=critical,CA:FALSE"] : []),
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
    return {
      certPem: await Deno.readTextFile(`${dir}/cert.pem`),
      keyPem: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
