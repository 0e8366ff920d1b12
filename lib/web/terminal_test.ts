// The terminal WebSocket end to end in one process, without root: the web API behind a real
// TLS port, an in-process SSH server standing in for the node (it echoes keys, reports resizes
// and exits with a code), and the RFC 6455 client of lib/net.
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { generateSshKeyPair, parseAuthorizedKey, signSshCertificate } from "../ca/mod.ts";
import { connectWebSocket, type WebSocketConnection } from "../net/mod.ts";
import { AccessChecker } from "../rbac/mod.ts";
import type { ServerResource, SessionTracker } from "../resource/mod.ts";
import { startSshServer } from "../ssh/mod.ts";
import { FakeAuth, startTestWeb, type TestWeb } from "./_testing.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "./envelope.ts";
import type { WebClusterAccess } from "./types.ts";

const SID = "0b9e4b36-2f5e-4c8e-8d34-7e0f4c1a2b3c";

async function setup() {
  const userCa = await generateSshKeyPair("ed25519");
  const hostKey = await generateSshKeyPair("ed25519");
  const hostCert = await signSshCertificate({
    signer: userCa,
    publicKeyBlob: hostKey.publicKeyBlob,
    certType: "host",
    keyId: "node",
    principals: ["node"],
    validAfter: new Date(Date.now() - 60_000),
    validBefore: new Date(Date.now() + 3_600_000),
  });
  const state = { trustHostKey: true, trackers: [] as SessionTracker[] };
  // The "node": a shell that echoes, reports resizes, and exits 7 on "q".
  const logins: string[] = [];
  const node = await startSshServer<{ login: string }>({
    hostKey,
    hostCertificate: hostCert.blob,
    listen: { port: 0 },
    authenticate: (req) => {
      logins.push(req.username);
      return { ok: true, context: { login: req.username } };
    },
    handlers: {
      session: (open) => {
        open.accept((req) => {
          switch (req.type) {
            case "pty-req":
            case "env":
              return req.accept();
            case "window-change":
              return req.accept();
            case "shell": {
              // The node's tracker appears once the session runs.
              state.trackers = [tracker()];
              const ch = req.accept();
              ch.write("$ ");
              ch.on("data", (d: Uint8Array) => {
                const text = new TextDecoder().decode(d);
                if (text === "q") {
                  ch.exit(7);
                  ch.end();
                } else ch.write(text);
              });
              return;
            }
            default:
              return req.reject();
          }
        });
      },
    },
  });
  const auth = new FakeAuth();
  // Auth certifies the key the proxy generated for the web session.
  auth.loginOutcome = async () => {
    const req = auth.logins.at(-1)!;
    const cert = await signSshCertificate({
      signer: userCa,
      publicKeyBlob: parseAuthorizedKey(req.ssh_public_key!).blob,
      certType: "user",
      keyId: req.user,
      principals: ["alice"],
      validAfter: new Date(Date.now() - 60_000),
      validBefore: new Date(Date.now() + 3_600_000),
      extensions: { "permit-pty": "" },
    });
    return {
      sshCert: cert.authorizedKey,
      tlsCert: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
      tlsCaCerts: [],
      hostCaKeys: [],
      userCaKeys: [],
      expires: new Date(Date.now() + 3_600_000).toISOString(),
    };
  };
  const nodeResource: ServerResource = {
    kind: "node",
    version: "v2",
    metadata: { name: "node-uuid" },
    spec: { addr: `127.0.0.1:${node.addr.port}`, hostname: "node", version: "0.1.0" },
  };
  const tracker = (): SessionTracker => ({
    kind: "session_tracker",
    version: "v1",
    metadata: { name: SID },
    spec: {
      session_id: SID,
      kind: "ssh",
      state: "running",
      created: new Date().toISOString(),
      user: "alice",
      login: "alice",
      node_id: "node-uuid",
      hostname: "node",
      cluster_name: "example",
      participants: [],
    },
  });
  const cluster: WebClusterAccess = {
    clusterName: "example",
    certifyUser: () =>
      Promise.resolve({
        user: "alice",
        roles: [],
        traits: {},
        checker: new AccessChecker([]),
        certificate: {} as never,
      }),
    nodes: () => Promise.resolve([nodeResource]),
    hasTunnel: () => false,
    dial: () => {
      const socket = net.connect(node.addr.port, "127.0.0.1");
      socket.setNoDelay(true);
      return Promise.resolve({ node: nodeResource, socket });
    },
    verifyHostKey: (_node, key) =>
      state.trustHostKey && key.every((b, i) => b === hostKey.publicKeyBlob[i])
        ? Promise.resolve()
        : Promise.reject(new Error("Cannot trust the SSH host key of node: not the node's key")),
    userApi: () =>
      ({
        listSessionTrackers: () => Promise.resolve(state.trackers),
      }) as never,
  };
  const web = await startTestWeb({
    auth,
    extra: { cluster, terminalAuthTimeoutMs: 300, terminalPingIntervalMs: 50 },
  });
  const login = await web.fetchJson("/v1/webapi/sessions/web", { user: "alice", pass: "pw" });
  assert.equal(login.status, 200);
  const cookie = login.headers.getSetCookie()[0]!.split(";")[0]!;
  const token = (await login.json()).token as string;
  const sockets: WebSocketConnection[] = [];
  return {
    web,
    cookie,
    token,
    logins,
    sockets,
    set trustHostKey(v: boolean) {
      state.trustHostKey = v;
    },
    async [Symbol.asyncDispose]() {
      // A failed assertion leaves sockets open; the server's close waits for them.
      for (const ws of sockets) ws.close(1000, "", true);
      await web[Symbol.asyncDispose]();
      await node.close();
    },
  };
}

async function openTerminal(
  t: { web: TestWeb; cookie: string; sockets: WebSocketConnection[] },
): Promise<WebSocketConnection> {
  const { web, cookie } = t;
  const sock = tls.connect({
    host: "127.0.0.1",
    port: web.port,
    ca: web.caPem,
    servername: "localhost",
  });
  await new Promise((resolve) => sock.once("secureConnect", resolve));
  const params = encodeURIComponent(
    JSON.stringify({ server_id: "node", login: "alice", term: { w: 80, h: 24 } }),
  );
  const r = await connectWebSocket(sock, {
    path: `/v1/webapi/sites/example/connect/ws?params=${params}`,
    host: `127.0.0.1:${web.port}`,
    headers: { cookie },
  });
  assert.equal(r.status, 101, r.head);
  t.sockets.push(r.ws!);
  return r.ws!;
}

async function nextFrame(ws: WebSocketConnection): Promise<Envelope | string | undefined> {
  const m = await ws.next();
  return m === undefined || typeof m === "string" ? m : decodeEnvelope(m);
}

Deno.test("runTerminal() relays keys, output, latency and the exit code between WebSocket and SSH", async () => {
  await using t = await setup();
  const ws = await openTerminal(t);
  ws.send(JSON.stringify({ token: t.token }));
  assert.equal(JSON.parse(await nextFrame(ws) as string).status, "ok");
  const s = await nextFrame(ws) as Envelope;
  assert.equal(s.type, "s");
  assert.equal(JSON.parse(s.payload).session.sid, SID);
  assert.deepEqual(t.logins, ["alice"]);
  const send = (type: string, payload: string) =>
    ws.send(encodeEnvelope({ version: "1", type, payload }));
  send("r", "héllo");
  send("w", JSON.stringify({ size: "100:30" }));
  let output = "";
  let latency: { ws: number; ssh: number } | undefined;
  while (!output.includes("héllo") || latency === undefined) {
    const m = await nextFrame(ws) as Envelope;
    if (m.type === "r") output += m.payload;
    if (m.type === "l") latency = JSON.parse(m.payload);
  }
  assert.match(output, /^\$ héllo/);
  assert.ok(latency.ws >= 0 && latency.ssh >= 0, JSON.stringify(latency));
  send("r", "q");
  let close: Envelope | undefined;
  for (let m = await nextFrame(ws); m !== undefined; m = await nextFrame(ws)) {
    if (typeof m !== "string" && m.type === "c") close = m;
  }
  assert.deepEqual(JSON.parse(close!.payload), { node_id: "node-uuid", exit_code: 7 });
  assert.equal((await ws.closed).code, 1000);
});

Deno.test("runTerminal() closes a socket that sends no token in time, or a wrong one", async () => {
  await using t = await setup();
  const quiet = await openTerminal(t);
  const answer = JSON.parse(await nextFrame(quiet) as string);
  assert.deepEqual(answer, {
    type: "create_session_response",
    status: "error",
    message: "no token within 300 ms",
  });
  assert.equal((await quiet.closed).code, 1008);
  const wrong = await openTerminal(t);
  wrong.send(JSON.stringify({ token: "f".repeat(64) }));
  assert.equal(JSON.parse(await nextFrame(wrong) as string).message, "invalid token");
  assert.equal((await wrong.closed).code, 1008);
  assert.deepEqual(t.logins, [], "nothing was dialled");
});

Deno.test("runTerminal() refuses a node whose host key the cluster does not certify", async () => {
  await using t = await setup();
  t.trustHostKey = false;
  const ws = await openTerminal(t);
  ws.send(JSON.stringify({ token: t.token }));
  assert.equal(JSON.parse(await nextFrame(ws) as string).status, "ok");
  const e = await nextFrame(ws) as Envelope;
  assert.equal(e.type, "e");
  assert.match(JSON.parse(e.payload).message, /not the node's key/);
  assert.equal(await nextFrame(ws), undefined);
  assert.deepEqual(t.logins, [], "no login was sent to an unverified host");
});

Deno.test("WebServer.close() closes open terminals with 1001 instead of waiting for them", async () => {
  await using t = await setup();
  const ws = await openTerminal(t);
  ws.send(JSON.stringify({ token: t.token }));
  assert.equal(JSON.parse(await nextFrame(ws) as string).status, "ok");
  assert.equal((await nextFrame(ws) as Envelope).type, "s");
  await t.web.web.close();
  assert.equal((await ws.closed).code, 1001);
});
