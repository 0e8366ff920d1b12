/**
 * Test helpers for lib/client: a throwaway cluster (SSH host and user CAs, TLS host CA), a fake
 * proxy web API on node:https (ping and ssh/certs, port 0) and a fake proxy SSH server that
 * routes `proxy:<host>:<port>` to in-process node servers.
 */
import https from "node:https";
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import {
  createX509Ca,
  formatAuthorizedKey,
  generateSshKeyPair,
  generateTlsKeyPair,
  issueX509Certificate,
  parseAuthorizedKey,
  parseSshCertificate,
  signSshCertificate,
  type SshKeyPair,
  verifySshCertificate,
  type X509Ca,
} from "../ca/mod.ts";
import { identityToSubject } from "../identity/mod.ts";
import type { ProxyResource, ServerResource, SessionTracker } from "../resource/mod.ts";
import { NotFoundError } from "../errors/mod.ts";
import { type SshServer, startSshServer } from "../ssh/mod.ts";
import type { ClusterApi } from "./cluster.ts";
import { copyingStream } from "../ssh/mod.ts";

/** A cluster's CAs. */
export interface TestCluster {
  name: string;
  hostCa: SshKeyPair;
  userCa: SshKeyPair;
  tlsCa: X509Ca;
  /** authorized_keys line of the host CA key. */
  hostCaLine: string;
  /** Signs a host certificate; returns its authorized_keys line. */
  hostCert(o: {
    key: SshKeyPair;
    principals: string[];
    role: "Node" | "Proxy";
    cluster?: string;
    ca?: SshKeyPair;
  }): Promise<string>;
  /** Signs a user certificate for `publicKeyBlob`; returns its authorized_keys line. */
  userCert(
    publicKeyBlob: Uint8Array,
    user: string,
    logins: string[],
    ttlMs?: number,
  ): Promise<string>;
}

const MINUTE = 60_000;

/** Creates the CAs of cluster `name`. */
export async function testCluster(name = "c1"): Promise<TestCluster> {
  const now = Date.now();
  const [hostCa, userCa, tlsCa] = await Promise.all([
    generateSshKeyPair("ed25519"),
    generateSshKeyPair("ed25519"),
    createX509Ca({
      commonName: name,
      notBefore: new Date(now - MINUTE),
      notAfter: new Date(now + 24 * 60 * MINUTE),
    }),
  ]);
  return {
    name,
    hostCa,
    userCa,
    tlsCa,
    hostCaLine: formatAuthorizedKey(hostCa.publicKeyBlob),
    hostCert: async (o) =>
      (await signSshCertificate({
        signer: o.ca ?? hostCa,
        publicKeyBlob: o.key.publicKeyBlob,
        certType: "host",
        keyId: o.principals[0] ?? "host",
        principals: o.principals,
        validAfter: new Date(Date.now() - MINUTE),
        validBefore: "forever",
        extensions: { "x-teleport-role": o.role, "x-teleport-authority": o.cluster ?? name },
      })).authorizedKey,
    userCert: async (publicKeyBlob, user, logins, ttlMs = 60 * MINUTE) =>
      (await signSshCertificate({
        signer: userCa,
        publicKeyBlob,
        certType: "user",
        keyId: user,
        principals: logins,
        validAfter: new Date(Date.now() - MINUTE),
        validBefore: new Date(Date.now() + ttlMs),
        extensions: { "permit-pty": "", "permit-port-forwarding": "" },
      })).authorizedKey,
  };
}

/** A TLS server certificate for 127.0.0.1/localhost, from its own CA. */
export async function webCertificate(): Promise<
  { certPem: string; keyPem: string; caPem: string }
> {
  const now = Date.now();
  const ca = await createX509Ca({
    commonName: "web test CA",
    notBefore: new Date(now - MINUTE),
    notAfter: new Date(now + 24 * 60 * MINUTE),
  });
  const key = await generateTlsKeyPair();
  const certPem = await issueX509Certificate({
    ca,
    publicKeyPem: key.publicKeyPem,
    subject: [["2.5.4.3", "localhost"]],
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    extKeyUsage: ["serverAuth"],
    notBefore: new Date(now - MINUTE),
    notAfter: new Date(now + 24 * 60 * MINUTE),
  });
  return { certPem, keyPem: key.privateKeyPem, caPem: ca.certPem };
}

/** A fake proxy web API. */
export interface FakeWebProxy extends AsyncDisposable {
  port: number;
  /** Requests seen: method, path and parsed body. */
  requests: Array<{ method: string; path: string; body: Record<string, unknown> | undefined }>;
  close(): Promise<void>;
}

/** Options of {@link startFakeWebProxy}. */
export interface FakeWebProxyOptions {
  cluster: TestCluster;
  tls: { certPem: string; keyPem: string };
  password: string;
  /** `auth.second_factor` of ping. @default {"off"} */
  secondFactor?: string;
  /** The OTP code to require when second factor is on. */
  otp?: string;
  tlsRouting?: boolean;
  /** Roles and logins put in the certificates. */
  roles?: string[];
  logins?: string[];
  /** What `GET /webapi/hostca` lists. @default {the cluster's host CA key and certificate} */
  hostCas?: () => { sshKeys: string[]; tlsCerts: string[] };
}

function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/** Starts the fake web API on 127.0.0.1:0. */
export async function startFakeWebProxy(o: FakeWebProxyOptions): Promise<FakeWebProxy> {
  const requests: FakeWebProxy["requests"] = [];
  const sockets = new Set<Socket>();
  const send = (res: import("node:http").ServerResponse, status: number, value: unknown) => {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  };
  const server = https.createServer({ cert: o.tls.certPem, key: o.tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const body = text === "" ? undefined : JSON.parse(text);
      requests.push({ method: req.method ?? "", path: req.url ?? "", body });
      try {
        if (req.method === "GET" && req.url === "/webapi/ping") {
          return send(res, 200, {
            auth: { type: "local", second_factor: o.secondFactor ?? "off" },
            proxy: {
              ssh: { listen_addr: "0.0.0.0:3023", web_listen_addr: "0.0.0.0:3080" },
              tls_routing_enabled: o.tlsRouting === true,
            },
            cluster_name: o.cluster.name,
            server_version: "0.1.0",
          });
        }
        if (req.method === "POST" && req.url === "/webapi/ssh/certs") {
          const sf = o.secondFactor ?? "off";
          if (body.password !== o.password || (sf !== "off" && body.otp_token !== o.otp)) {
            return send(res, 403, { error: { message: "invalid credentials" } });
          }
          const sshPub = parseAuthorizedKey(Buffer.from(body.ssh_pub_key, "base64").toString());
          const tlsPubPem = Buffer.from(body.tls_pub_key, "base64").toString();
          const ttlMs = Math.floor(body.ttl / 1_000_000);
          const logins = o.logins ?? [body.user];
          const cert = await o.cluster.userCert(sshPub.blob, body.user, logins, ttlMs);
          const now = Date.now();
          const tlsCert = await issueX509Certificate({
            ca: o.cluster.tlsCa,
            publicKeyPem: tlsPubPem,
            subject: identityToSubject({
              kind: "user",
              username: body.user,
              clusterName: o.cluster.name,
              roles: o.roles ?? ["access"],
              logins,
              traits: {},
            }),
            extKeyUsage: ["clientAuth"],
            notBefore: new Date(now - MINUTE),
            notAfter: new Date(now + ttlMs),
          });
          return send(res, 200, {
            username: body.user,
            cert: b64(cert),
            tls_cert: b64(tlsCert),
            host_signers: [{
              domain_name: o.cluster.name,
              checking_keys: [b64(o.cluster.hostCaLine)],
              tls_certs: [b64(o.cluster.tlsCa.certPem)],
            }],
          });
        }
        if (req.method === "GET" && req.url === "/webapi/hostca") {
          const cas = o.hostCas?.() ??
            { sshKeys: [o.cluster.hostCaLine], tlsCerts: [o.cluster.tlsCa.certPem] };
          return send(res, 200, {
            host_signers: [{
              domain_name: o.cluster.name,
              checking_keys: cas.sshKeys.map(b64),
              tls_certs: cas.tlsCerts.map(b64),
            }],
          });
        }
        send(res, 404, { error: { message: "not found" } });
      } catch (err) {
        send(res, 500, { error: { message: String(err) } });
      }
    });
  });
  server.on("connection", (s: Socket) => {
    s.setNoDelay(true);
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("secureConnection", (s: Socket) => s.setNoDelay(true));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port, requests, close, [Symbol.asyncDispose]: close };
}

/** An in-process node: SSH server fed through `handleSocket`, plus its heartbeat resource. */
export interface FakeNode {
  uuid: string;
  resource: ServerResource;
  server: SshServer<{ login: string }>;
}

/** Starts a node that runs `exec` requests by echoing `<login> ran <command>`. */
export async function startFakeNode(
  cluster: TestCluster,
  o: { uuid?: string; hostname: string; addr?: string; hostCert?: string; key?: SshKeyPair },
): Promise<FakeNode> {
  const uuid = o.uuid ?? crypto.randomUUID();
  const key = o.key ?? await generateSshKeyPair("ed25519");
  const ownCert = await cluster.hostCert({ key, principals: [uuid, o.hostname], role: "Node" });
  const server = await startSshServer<{ login: string }>({
    hostKey: key,
    hostCertificate: parseSshCertificate(ownCert).blob,
    authenticate: async ({ username, certificate }) => {
      try {
        await verifySshCertificate(certificate, {
          trustedCaKeys: [cluster.userCa.publicKeyBlob],
          certType: "user",
          principal: username,
          now: new Date(),
        });
        return { ok: true, context: { login: username } };
      } catch (err) {
        return { ok: false, reason: String(err) };
      }
    },
    handlers: {
      session: (open) => {
        open.accept((req) => {
          if (req.type === "exec") {
            const ch = req.accept();
            ch.write(`${open.conn.context.login} ran ${req.command}\n`);
            ch.exit(req.command === "fail" ? 3 : 0);
            ch.end();
          } else if (req.type === "pty-req" || req.type === "env") {
            req.accept();
          } else {
            req.reject();
          }
        });
      },
    },
  });
  return {
    uuid,
    server,
    resource: {
      kind: "node",
      version: "v2",
      metadata: { name: uuid, labels: { env: "test" } },
      spec: {
        addr: o.addr ?? "10.0.0.1:3022",
        hostname: o.hostname,
        version: "0.1.0",
        host_cert: o.hostCert ?? ownCert,
      },
    },
  };
}

/** A fake proxy SSH server: certificate logins, `proxy:<uuid>:<port>` to the fake nodes. */
export interface FakeSshProxy extends AsyncDisposable {
  server: SshServer<{ login: string }>;
  resource: ProxyResource;
  /** Subsystem names requested. */
  subsystems: string[];
  close(): Promise<void>;
}

/** Starts the fake proxy SSH server (listening on 127.0.0.1:0 unless `listen` is false). */
export async function startFakeSshProxy(
  cluster: TestCluster,
  nodes: FakeNode[],
  o: { hostCert?: string; listen?: boolean } = {},
): Promise<FakeSshProxy> {
  const key = await generateSshKeyPair("ed25519");
  const uuid = crypto.randomUUID();
  const ownCert = await cluster.hostCert({ key, principals: [uuid, "localhost"], role: "Proxy" });
  const subsystems: string[] = [];
  const server = await startSshServer<{ login: string }>({
    hostKey: key,
    hostCertificate: parseSshCertificate(ownCert).blob,
    ...(o.listen === false ? {} : { listen: { hostname: "127.0.0.1", port: 0 } }),
    authenticate: ({ username }) => ({ ok: true, context: { login: username } }),
    handlers: {
      session: (open) => {
        open.accept((req) => {
          if (req.type !== "subsystem") return req.reject();
          subsystems.push(req.name);
          const [, host] = req.name.split(":");
          const node = nodes.find((n) => n.uuid === host || n.resource.spec.hostname === host);
          if (node === undefined) return req.reject({ stderr: `no node ${host}\r\n` });
          node.server.handleSocket(copyingStream(req.accept()));
        });
      },
    },
  });
  const close = async () => {
    await server.close();
    for (const n of nodes) await n.server.close();
  };
  return {
    server,
    subsystems,
    resource: {
      kind: "proxy",
      version: "v2",
      metadata: { name: uuid },
      spec: {
        addr: "127.0.0.1:3080",
        hostname: "proxy",
        version: "0.1.0",
        host_cert: o.hostCert ?? ownCert,
      },
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A ClusterApi over fixed lists. */
export function fakeClusterApi(
  nodes: ServerResource[],
  proxies: ProxyResource[],
  recordings: Record<string, Uint8Array> = {},
  sessions: SessionTracker[] = [],
): ClusterApi & { closed: boolean } {
  const api = {
    closed: false,
    listNodes: () => Promise.resolve(nodes),
    listProxies: () => Promise.resolve(proxies),
    listSessionTrackers: () => Promise.resolve(sessions),
    getSessionTracker: (sid: string) => {
      const found = sessions.find((s) => s.metadata.name === sid);
      return found === undefined
        ? Promise.reject(new NotFoundError(`session "${sid}" is not running`))
        : Promise.resolve(found);
    },
    downloadRecording: (sid: string) => {
      const r = recordings[sid];
      return r === undefined
        ? Promise.reject(new Error(`no recording ${sid}`))
        : Promise.resolve(r);
    },
    close: () => {
      api.closed = true;
    },
  };
  return api;
}
