/**
 * Requests on a live session (RFC 4254 §6.7, §6.9): while a command runs on the node's pty,
 * `window-change` resizes the terminal (the program gets SIGWINCH and sees the new size) and
 * `signal` reaches its process group; the recording and the audit log carry the resize, and an
 * impossible size is refused without harm.
 */
import assert from "node:assert/strict";
import { formatAuthorizedKey, generateSshKeyPair, parseAuthorizedKey } from "../../lib/ca/mod.ts";
import { readRecording } from "../../lib/events/mod.ts";
import type { NodeReady } from "../../lib/service/mod.ts";
import { connectSsh } from "../../lib/ssh/mod.ts";
import { startTestCluster } from "./_cluster.ts";

const LOGIN = Deno.env.get("USER") ?? "root";

/** Polls `check` every 100 ms until it returns a value; fails after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test("window-change and signal reach a command while it runs on the node's pty", async () => {
  await using cluster = await startTestCluster({
    configure: (c) => {
      c.roles.node = true;
      c.ssh.listenAddr = { host: "127.0.0.1", port: 0 };
    },
  });
  const node = await cluster.proc.supervisor.waitFor("node.ready") as NodeReady;
  using admin = cluster.adminClient();
  await admin.createUser({
    kind: "user",
    version: "v2",
    metadata: { name: "alice" },
    spec: { roles: ["access"], traits: { logins: [LOGIN] } },
  });
  const key = await generateSshKeyPair("ed25519");
  const certs = await admin.generateUserCerts({
    user: "alice",
    ttl_ms: 3_600_000,
    ssh_public_key: formatAuthorizedKey(key.publicKeyBlob),
  });
  await using client = await connectSsh({
    host: "127.0.0.1",
    port: node.port,
    username: LOGIN,
    key,
    certificate: parseAuthorizedKey(certs.sshCert!).blob,
    verifyHostKey: () => true,
  });

  const session = await client.openSession();
  assert.equal(await session.requestPty({ cols: 80, rows: 24, term: "xterm" }), true);
  let output = "";
  const waiters: Array<() => void> = [];
  session.channel.on("data", (d: Uint8Array) => {
    output += new TextDecoder().decode(d);
    for (const w of waiters.splice(0)) w();
  });
  /** Resolves with the first match of `re` in the output so far or to come (fails after 20 s). */
  const seen = (re: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`Timed out waiting for ${re} in the output: ${output}`)),
        20_000,
      );
      const check = () => {
        const m = re.exec(output);
        if (m === null) return waiters.push(check);
        clearTimeout(timer);
        resolve(m);
      };
      check();
    });
  // `sleep & wait` keeps the shell interruptible, so traps run at once.
  assert.equal(
    await session.exec(
      `trap 'echo "winch $(stty size)"' WINCH; trap 'echo got-int; exit 42' INT; ` +
        `echo "ready $SSH_SESSION_ID $(stty size)"; while :; do sleep 5 & wait $!; done`,
    ),
    true,
  );
  const ready = await seen(/ready ([0-9a-f-]{36}) 24 80/);
  const sid = ready[1]!;

  // A size no terminal has is refused and changes nothing; the session goes on.
  session.windowChange({ cols: 70_000, rows: 30 });
  session.windowChange({ cols: 100, rows: 30 });
  const winch = await seen(/winch (\d+) (\d+)/);
  assert.deepEqual([winch[1], winch[2]], ["30", "100"]);
  session.signal("INT");
  await seen(/got-int/);
  assert.deepEqual(await session.channel.exitStatus, { kind: "code", code: 42 });

  const recording = await until("the uploaded recording", async () => {
    const sids = await admin.listRecordings();
    return sids.includes(sid) ? await admin.downloadRecording(sid) : undefined;
  });
  const reader = await readRecording(ReadableStream.from([recording]));
  assert.deepEqual([reader.header.cols, reader.header.rows], [80, 24]);
  const resizes = [];
  for await (const r of reader.records) {
    if (r.type === "resize") resizes.push([r.cols, r.rows]);
  }
  assert.deepEqual(resizes, [[100, 30]]);

  const events = await admin.searchEvents({
    from: new Date(Date.now() - 600_000),
    to: new Date(Date.now() + 60_000),
    types: ["resize"],
    sid,
  });
  assert.deepEqual(events.events.map((e) => e.size), ["100:30"]);
});
