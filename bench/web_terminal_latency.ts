/**
 * Typing latency of the web terminal against the SSH round trip tsh gets, on one real cluster
 * (`teleport start`, all roles, 127.0.0.1): a keystroke goes out and the time until the node's
 * pty echoes it back is measured, for
 *
 * - tsh's path: an SSH session through the proxy (lib/client connectToNode, as `tsh ssh`);
 * - the web path: the terminal WebSocket (TLS to the proxy's web port, RFC 6455 frames with
 *   protobuf envelopes), the proxy's own SSH connection to the node as the user.
 *
 * Both run a login shell on a pty (bash readline echoes each key). The browser's own cost
 * (xterm.js rendering) is not in this number; the Chromium tests of the UI measure the page.
 * Run as root (it creates the OS user td_bench_web):
 *   npx -y deno@2.9.6 run -A bench/web_terminal_latency.ts [--keys=300]
 * Prints p50/p95 of each path and the difference. Not a test: it asserts nothing about timing.
 */
import { parseArgs } from "node:util";
import { connectToNode, openClientContext, ProfileStore } from "../lib/client/mod.ts";
import type { ClientChannel } from "../lib/ssh/mod.ts";
import { ensureOsUser, startTeleport, tempDir, writeClusterConfig } from "../tests/e2e/_helpers.ts";
import { inviteAndEnroll, TEST_PASSWORD, tshLogin } from "../tests/e2e/_proxy.ts";
import { openWebSocket, webLogin } from "../tests/e2e/_web.ts";
import { out, percentile } from "./_common.ts";

const args = parseArgs({ args: Deno.args, options: { keys: { type: "string", default: "300" } } });
const KEYS = Number(args.values.keys);
const LOGIN = "td_bench_web";
const CLUSTER = "bench-web.example";
const NODE = "bench-wnode";

/** Types KEYS letters, one at a time, each after the echo of the one before; returns ms each. */
async function typeKeys(
  send: (text: string) => void,
  output: { text: string; changed: () => Promise<void> },
): Promise<number[]> {
  const times: number[] = [];
  const waitFor = async (needle: string, from: number) => {
    while (!output.text.slice(from).includes(needle)) await output.changed();
  };
  // A prompt first.
  await waitFor("$ ", 0);
  for (let i = 0; i < KEYS + 10; i++) {
    const key = String.fromCharCode(97 + (i % 26));
    const from = output.text.length;
    const t0 = performance.now();
    send(key);
    await waitFor(key, from);
    if (i >= 10) times.push(performance.now() - t0); // the first keys warm up
    if (i % 40 === 39) {
      send("\x15"); // Ctrl-U: an empty line again
      await output.changed();
    }
  }
  return times;
}

/** Output collected from a stream of text, with a wake-up on each change. */
function collector() {
  let wake = Promise.withResolvers<void>();
  const o = {
    text: "",
    push(s: string) {
      o.text += s;
      wake.resolve();
      wake = Promise.withResolvers<void>();
    },
    changed: () => wake.promise,
  };
  return o;
}

function report(name: string, times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  out(
    `${name.padEnd(40)} p50 ${p50.toFixed(2).padStart(6)} ms  p95 ${
      percentile(sorted, 95).toFixed(2).padStart(6)
    } ms  (${times.length} keys)`,
  );
  return p50;
}

await using dir = await tempDir("tp-bench-web-");
const config = await writeClusterConfig(dir.path, { nodeName: NODE, clusterName: CLUSTER });
await using tp = await startTeleport(["-c", config]);
await ensureOsUser(LOGIN);
const totp = await inviteAndEnroll({
  config,
  webPort: tp.webPort,
  user: "bench",
  roles: "access",
  logins: LOGIN,
});
const home = `${dir.path}/tsh`;
const tsh = await tshLogin({ home, webPort: tp.webPort, user: "bench", totp });
if (tsh.code !== 0) throw new Error(`tsh login failed: ${tsh.stderr}`);
// Each TOTP code works once: the web login waits for a step neither login used.
const step = Math.floor(Date.now() / 30_000);
await new Promise((r) => setTimeout(r, (step + 1) * 30_000 - Date.now() + 500));
const web = await webLogin(
  tp.webPort,
  "bench",
  TEST_PASSWORD,
  totp.generate({ timestamp: Date.now() + 30_000 }),
);

out(`web terminal typing latency: ${KEYS} keystrokes each, bash on a pty, via the proxy`);

// tsh's path.
const ctx = await openClientContext(new ProfileStore(home), { insecure: true });
const conn = await connectToNode(ctx, { target: NODE, login: LOGIN });
const sess = await conn.client.openSession();
await sess.requestPty({ term: "xterm-256color", cols: 120, rows: 40 });
await sess.shell();
const sshOut = collector();
const ch: ClientChannel = sess.channel;
const dec = new TextDecoder();
ch.on("data", (d: Uint8Array) => sshOut.push(dec.decode(d, { stream: true })));
const sshTimes = await typeKeys((k) => ch.write(new TextEncoder().encode(k)), sshOut);
sess.close();
await conn.close();

// The web terminal.
const term = await openWebSocket(
  tp.webPort,
  `/v1/webapi/sites/${CLUSTER}/connect/ws?params=${
    encodeURIComponent(JSON.stringify({ server_id: NODE, login: LOGIN, term: { w: 120, h: 40 } }))
  }`,
  web.cookie,
);
term.ws.send(JSON.stringify({ token: web.token }));
const webOut = collector();
(async () => {
  for (let m = await term.next(); m !== undefined; m = await term.next()) {
    if (typeof m !== "string" && m.type === "r") webOut.push(m.payload);
  }
})();
const webTimes = await typeKeys((k) => term.send("r", k), webOut);
term.send("c", "");
term.ws.close();

const a = report("tsh path (SSH through the proxy)", sshTimes);
const b = report("web terminal (WebSocket, proxy SSH)", webTimes);
out(`web minus SSH at p50: ${(b - a).toFixed(2)} ms`);
