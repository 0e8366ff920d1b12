/**
 * Test helpers of lib/web (not exported from mod.ts): a scriptable fake of the auth calls, a
 * recording logger, and the web server either called through its handler (`new Request(…)`,
 * createHandlerWeb) or behind a real node:tls listener on 127.0.0.1:0 with a certificate from a
 * throwaway CA (startTestWeb).
 */
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import type { RegisterRequest, RegisterResponse, UserCerts } from "../authclient/mod.ts";
import { createX509Ca, generateTlsKeyPair, issueX509Certificate, X509_OIDS } from "../ca/mod.ts";
import { FakeClock } from "../clock/mod.ts";
import { type LoggedRecord, testLogger } from "../log/mod.ts";
import { makeProxySettings } from "./ping.ts";
import type { RateLimit } from "../net/mod.ts";
import {
  createWebServer,
  type WebConnectionInfo,
  type WebServer,
  type WebServerOptions,
} from "./server.ts";
import type {
  AuthenticateSshUserRequest,
  AuthPing,
  ChangePasswordWithTokenRequest,
  ProxySettings,
  UserTokenDetails,
  WebAuthApi,
  WebSessionRecord,
} from "./types.ts";
import { NotFoundError } from "../errors/mod.ts";

export { type LoggedRecord, testLogger } from "../log/mod.ts";

/** Everything the records hold, as one searchable string (errors and causes included). */
export function logText(records: LoggedRecord[]): string {
  return records.map((r) => `${r.level} ${r.message} ${Deno.inspect(r.properties, { depth: 8 })}`)
    .join("\n");
}

/** A result a fake call returns, or an error it throws, or a function giving either later. */
type Outcome<T> = T | Error | (() => Promise<T>);

function settle<T>(o: Outcome<T>): Promise<T> {
  if (typeof o === "function") return (o as () => Promise<T>)();
  return o instanceof Error ? Promise.reject(o) : Promise.resolve(o);
}

/** A {@link WebAuthApi} whose answers tests set and whose calls they read. */
export class FakeAuth implements WebAuthApi {
  pingOutcome: Outcome<AuthPing> = {
    cluster_name: "example",
    server_version: "0.1.0-auth",
    auth_preference: { type: "local", second_factor: "otp" },
  };
  loginOutcome: Outcome<UserCerts> = {
    sshCert: "ssh-ed25519-cert-v01@openssh.com AAAAcert alice\n",
    tlsCert: "-----BEGIN CERTIFICATE-----\nTLSCERT\n-----END CERTIFICATE-----\n",
    tlsCaCerts: ["-----BEGIN CERTIFICATE-----\nHOSTCA\n-----END CERTIFICATE-----\n"],
    hostCaKeys: ["ssh-ed25519 AAAAhostca host-ca"],
    userCaKeys: ["ssh-ed25519 AAAAuserca user-ca"],
    expires: "2026-01-01T12:00:00.000Z",
  };
  registerOutcome: Outcome<RegisterResponse> = {
    ssh_cert: "ssh-ed25519-cert-v01@openssh.com AAAAhost",
    tls_cert: "-----BEGIN CERTIFICATE-----\nHOST\n-----END CERTIFICATE-----\n",
    tls_ca_certs: ["-----BEGIN CERTIFICATE-----\nHOSTCA\n-----END CERTIFICATE-----\n"],
    ssh_ca_keys: { host: ["ssh-ed25519 AAAAhostca"], user: ["ssh-ed25519 AAAAuserca"] },
  };
  tokenOutcome: Outcome<UserTokenDetails> = {
    user: "alice",
    kind: "invite",
    expires: "2026-01-02T00:00:00.000Z",
    totp: {
      secret: "JBSWY3DPEHPK3PXP",
      uri: "otpauth://totp/example:alice?secret=JBSWY3DPEHPK3PXP&issuer=example",
      required: true,
    },
  };
  changePasswordOutcome: Outcome<string> = "alice";

  readonly pings: number[] = [];
  readonly logins: AuthenticateSshUserRequest[] = [];
  readonly registers: Array<RegisterRequest & { remote_addr?: string }> = [];
  readonly tokenLookups: string[] = [];
  readonly passwordChanges: ChangePasswordWithTokenRequest[] = [];

  ping(): Promise<AuthPing> {
    this.pings.push(this.pings.length + 1);
    return settle(this.pingOutcome);
  }
  authenticateSshUser(req: AuthenticateSshUserRequest): Promise<UserCerts> {
    this.logins.push(req);
    return settle(this.loginOutcome);
  }
  getUserTokenDetails(token: string): Promise<UserTokenDetails> {
    this.tokenLookups.push(token);
    return settle(this.tokenOutcome);
  }
  changePasswordWithToken(req: ChangePasswordWithTokenRequest): Promise<string> {
    this.passwordChanges.push(req);
    return settle(this.changePasswordOutcome);
  }
  register(req: RegisterRequest & { remote_addr?: string }): Promise<RegisterResponse> {
    this.registers.push(req);
    return settle(this.registerOutcome);
  }
  /** Web sessions as auth's backend would keep them (expiry is the proxy's check here). */
  readonly webSessions = new Map<string, WebSessionRecord>();
  upsertWebSession(session: WebSessionRecord): Promise<void> {
    this.webSessions.set(session.id, structuredClone(session));
    return Promise.resolve();
  }
  getWebSession(id: string): Promise<WebSessionRecord> {
    const s = this.webSessions.get(id);
    return s === undefined
      ? Promise.reject(new NotFoundError("the web session is not found"))
      : Promise.resolve(structuredClone(s));
  }
  deleteWebSession(id: string): Promise<void> {
    this.webSessions.delete(id);
    return Promise.resolve();
  }
}

interface ServerCert {
  caPem: string;
  certPem: string;
  keyPem: string;
}

let serverCert: Promise<ServerCert> | undefined;

/** A CA and a v3 serverAuth certificate for 127.0.0.1 / localhost (made once per process). */
export function testServerCert(): Promise<ServerCert> {
  serverCert ??= (async () => {
    const now = Date.now();
    const ca = await createX509Ca({
      commonName: "web-test-ca",
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + 86_400_000),
    });
    const keys = await generateTlsKeyPair();
    const certPem = await issueX509Certificate({
      ca,
      publicKey: keys.publicKey,
      subject: [[X509_OIDS.commonName, "localhost"]],
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
      extKeyUsage: ["serverAuth"],
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + 86_400_000),
    });
    return { caPem: ca.certPem, certPem, keyPem: keys.privateKeyPem };
  })();
  return serverCert;
}

/** The web server on a real TLS port, and a fetch client that trusts it. */
export interface TestWeb extends AsyncDisposable {
  web: WebServer;
  auth: FakeAuth;
  clock: FakeClock;
  records: LoggedRecord[];
  port: number;
  caPem: string;
  /** `https://127.0.0.1:<port><path>`. */
  url(path: string): string;
  /** fetch through a client that trusts the test CA. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** fetch with a JSON body (POST unless `method` says otherwise). */
  fetchJson(path: string, body: unknown, method?: string): Promise<Response>;
}

/** Options of {@link startTestWeb}. */
export interface TestWebOptions {
  auth?: FakeAuth;
  loginRateLimit?: RateLimit;
  proxySettings?: ProxySettings;
  extra?: Partial<WebServerOptions>;
  /** What the listener tells {@link WebServer.handleConnection} about each connection. */
  connectionInfo?: WebConnectionInfo;
}

/** The web server without sockets: its handler is called with `new Request(…)`. */
export interface HandlerWeb extends AsyncDisposable {
  web: WebServer;
  auth: FakeAuth;
  clock: FakeClock;
  records: LoggedRecord[];
  /** Calls the handler with `https://proxy.example.com:3080<path>` from `remoteAddr`. */
  request(path: string, init?: RequestInit, remoteAddr?: string): Promise<Response>;
  /** {@link request} from 127.0.0.1, as {@link TestWeb.fetch} calls it over TLS. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** {@link fetch} with a JSON body (POST unless `method` says otherwise). */
  fetchJson(path: string, body: unknown, method?: string): Promise<Response>;
}

/** {@link createWebServer} with the test options, for handler-level tests. */
export function createHandlerWeb(opts: TestWebOptions = {}): HandlerWeb {
  const { web, auth, clock, records } = makeTestWebServer(opts);
  const request = (path: string, init?: RequestInit, remoteAddr = "127.0.0.1") =>
    web.handler(new Request(`https://proxy.example.com:3080${path}`, init), { remoteAddr });
  return {
    web,
    auth,
    clock,
    records,
    request,
    fetch: (path, init) => request(path, init),
    fetchJson: (path, body, method = "POST") =>
      request(path, {
        method,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    [Symbol.asyncDispose]: () => web.close(),
  };
}

function makeTestWebServer(opts: TestWebOptions) {
  const auth = opts.auth ?? new FakeAuth();
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const { logger, records } = testLogger();
  const web = createWebServer({
    auth,
    clock,
    logger,
    serverVersion: "0.1.0-test",
    proxySettings: opts.proxySettings ?? makeProxySettings({
      ssh: {
        listen_addr: "0.0.0.0:3023",
        tunnel_listen_addr: "0.0.0.0:3024",
        web_listen_addr: "0.0.0.0:3080",
        public_addr: "proxy.example.com:3080",
        dial_timeout: 30_000_000_000,
      },
      tls_routing_enabled: true,
    }),
    ...(opts.loginRateLimit === undefined ? {} : { loginRateLimit: opts.loginRateLimit }),
    ...opts.extra,
  });
  return { web, auth, clock, records };
}

/** Starts {@link createWebServer} behind node:tls on 127.0.0.1:0. */
export async function startTestWeb(opts: TestWebOptions = {}): Promise<TestWeb> {
  const cert = await testServerCert();
  const { web, auth, clock, records } = makeTestWebServer(opts);
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem });
  server.on(
    "secureConnection",
    (sock: tls.TLSSocket) => web.handleConnection(sock, opts.connectionInfo),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const client = Deno.createHttpClient({ caCerts: [cert.caPem] });
  const url = (path: string) => `https://127.0.0.1:${port}${path}`;
  const fetchVia = (path: string, init: RequestInit = {}) => fetch(url(path), { ...init, client });
  return {
    web,
    auth,
    clock,
    records,
    port,
    caPem: cert.caPem,
    url,
    fetch: fetchVia,
    fetchJson: (path, body, method = "POST") =>
      fetchVia(path, {
        method,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    [Symbol.asyncDispose]: async () => {
      client.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await web.close();
      await closed;
    },
  };
}
