/**
 * Typing latency of the web terminal against the SSH round trip tsh gets, on one real cluster
 * (`teleport start`, all roles, 127.0.0.1): a keystroke goes out and the time until the node's
 * pty echoes it back is measured, for
 *
 * - tsh's path: an SSH session through the proxy (lib/client connectToNode, as `tsh ssh`);
 * - the web path: the terminal WebSocket (TLS to the proxy's web port, RFC 6455 frames with
 *   protobuf envelopes), the proxy's own SSH connection to the node as the user;
 * - the page: the web UI's terminal in headless Chromium (npm:playwright-core driving
 *   /usr/bin/chromium), one `page.keyboard.type` per key. Measured inside the page from the
 *   keydown event to xterm.js having parsed the echo into its buffer (`onWriteParsed`, the
 *   line ends with the keys typed) and to the next frame xterm renders (`onRender`); and from
 *   outside, from the `keyboard.type` call until the page says the echo is in the buffer
 *   (this one adds the DevTools protocol's round trips, which a user does not have).
 *   Typed twice: by key events, and by `term.input()` (xterm's onData without a key event),
 *   which separates the browser's own input and frame cost from the page's network path.
 *
 * All run a login shell on a pty (bash readline echoes each key), each key sent `--gap` ms
 * after the echo of the one before (a fast typist's pace: 50 ms is 20 keys a second). With
 * `--gap=0` the page path measures Chromium's frame wait instead of ours: the echo of one key
 * is still waiting to be drawn when the next key comes, and after a key event Chromium defers
 * network tasks until that frame is drawn (DeferRendererTasksAfterInput; see
 * lib/web/static/app/keys.js for what the page does about the same wait in normal typing).
 * Run as root (it creates the OS user td_bench_web):
 *   npx -y deno@2.9.6 run -A bench/web_terminal_latency.ts [--keys=300] [--gap=50]
 * Prints p50/p95/p99 of each path and each one's difference and ratio to the SSH round trip.
 * Not a test: it asserts nothing about timing.
 */
import { parseArgs } from "node:util";
import { connectToNode, openClientContext, ProfileStore } from "../lib/client/mod.ts";
import type { ClientChannel } from "../lib/ssh/mod.ts";
import { ensureOsUser, startTeleport, tempDir, writeClusterConfig } from "../tests/e2e/_helpers.ts";
import { inviteAndEnroll, tshLogin } from "../tests/e2e/_proxy.ts";
import { openWebSocket } from "../tests/e2e/_web.ts";
import { launchBrowser, loginInBrowser, newContext, watchErrors } from "../tests/e2e/_browser.ts";
import { out, percentile } from "./_common.ts";

const args = parseArgs({
  args: Deno.args,
  options: { keys: { type: "string", default: "300" }, gap: { type: "string", default: "50" } },
});
const KEYS = Number(args.values.keys);
const GAP_MS = Number(args.values.gap);
if (!Number.isInteger(KEYS) || KEYS <= 0 || !Number.isFinite(GAP_MS) || GAP_MS < 0) {
  throw new Error("Cannot run the bench: --keys takes a positive integer and --gap ms ≥ 0");
}
/** The typist's pause after an echo, before the next key. */
const pause = () => GAP_MS > 0 ? new Promise((r) => setTimeout(r, GAP_MS)) : Promise.resolve();
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
    await pause();
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

/** p50, p95 and p99 of `times`. */
function stats(times: number[]): { p50: number; p95: number; p99: number } {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
  };
}

const ms = (v: number) => v.toFixed(2).padStart(7);

/** One line per path; against the SSH round trip (`base`) unless it is the base. */
function report(name: string, times: number[], base?: { p50: number; p99: number }) {
  const s = stats(times);
  let line = `${name.padEnd(44)} p50 ${ms(s.p50)}  p95 ${ms(s.p95)}  p99 ${ms(s.p99)} ms`;
  if (base !== undefined) {
    line +=
      `  | vs SSH p50 ${s.p50 - base.p50 >= 0 ? "+" : ""}${(s.p50 - base.p50).toFixed(2)} ms` +
      ` (x${(s.p50 / base.p50).toFixed(2)}), p99 ${s.p99 - base.p99 >= 0 ? "+" : ""}${
        (s.p99 - base.p99).toFixed(2)
      } ms (x${(s.p99 / base.p99).toFixed(2)})`;
  }
  out(`${line}  (${times.length} keys)`);
  return s;
}

/**
 * Installs the in-page probe on the terminal page: for each printable keydown, the time until
 * xterm has parsed output that leaves the cursor line ending with the keys typed since the last
 * Ctrl-U (`parsed`), and until the frame after that (`rendered`). `done(n)` resolves once `n`
 * samples exist. Returns nothing; the samples stay in `globalThis.__lat`.
 */
function installProbe(): void {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const term = g.__term;
  const lat = {
    typed: "",
    t0: -1,
    renderFrom: -1,
    parsed: [] as number[],
    rendered: [] as number[],
    sentAt: -1,
    wroteAt: -1,
    toSend: [] as number[],
    toEcho: [] as number[],
    toParse: [] as number[],
    wake: null as null | (() => void),
  };
  g.__lat = lat;
  // Where the time goes: keydown → xterm's onData (the page sends), → the echo reaches
  // term.write (the WebSocket message), → parsed.
  term.onData(() => {
    if (lat.t0 >= 0 && lat.sentAt < 0) lat.sentAt = performance.now();
  });
  const write = term.write.bind(term);
  term.write = (data: unknown, cb?: () => void) => {
    if (lat.t0 >= 0 && lat.wroteAt < 0) lat.wroteAt = performance.now();
    return write(data, cb);
  };
  const line = () => {
    const buf = term.buffer.active;
    return buf.getLine(buf.baseY + buf.cursorY)?.translateToString(true) ?? "";
  };
  g.document.addEventListener("keydown", (e: { ctrlKey: boolean; key: string }) => {
    if (e.ctrlKey && e.key === "u") lat.typed = "";
    else if (e.key.length === 1 && !e.ctrlKey) {
      lat.typed += e.key;
      lat.t0 = performance.now();
    }
  }, true);
  term.onWriteParsed(() => {
    if (lat.t0 < 0 || !line().endsWith(lat.typed)) return;
    const now = performance.now();
    lat.parsed.push(now - lat.t0);
    lat.toSend.push(lat.sentAt - lat.t0);
    lat.toEcho.push(lat.wroteAt - lat.sentAt);
    lat.toParse.push(now - lat.wroteAt);
    lat.sentAt = -1;
    lat.wroteAt = -1;
    lat.renderFrom = lat.t0;
    lat.t0 = -1;
    lat.wake?.();
  });
  term.onRender(() => {
    if (lat.renderFrom < 0) return;
    lat.rendered.push(performance.now() - lat.renderFrom);
    lat.renderFrom = -1;
  });
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
// Each TOTP code works once: the web login (in the browser) waits for a step neither login
// used. The WebSocket path below uses the same web session (the cookie and the bearer token).
const step = Math.floor(Date.now() / 30_000);
await new Promise((r) => setTimeout(r, (step + 1) * 30_000 - Date.now() + 500));
const base = `https://127.0.0.1:${tp.webPort}`;
await using browser = await launchBrowser();
const context = await newContext(browser);
const errors = watchErrors(context);
const page = await context.newPage();
await loginInBrowser(page, { base, user: "bench", totp });
const cookie = (await context.cookies()).find((c) => c.name === "__Host-session");
const token = await page.evaluate(() =>
  JSON.parse(localStorage.getItem("teleport.session") ?? "{}").token as string
);
if (cookie === undefined || !token) throw new Error("The browser login left no web session");
const web = { cookie: `${cookie.name}=${cookie.value}`, token };

out(
  `web terminal typing latency: ${KEYS} keystrokes each, ${GAP_MS} ms after each echo, ` +
    "bash on a pty, via the proxy",
);

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

// The page: the terminal link of the resource list, opened in this tab.
await page.goto(`${base}/web/cluster/${CLUSTER}/resources`);
const href = await page.locator(`tr[data-node="${NODE}"]`).locator("a", { hasText: LOGIN })
  .getAttribute("href");
if (href === null) throw new Error(`The resource list has no ${LOGIN} link for ${NODE}`);
await page.goto(base + href);
await page.getByRole("status").filter({ hasText: "Connected" }).waitFor();
await page.waitForFunction(() => {
  // deno-lint-ignore no-explicit-any
  const buf = (globalThis as any).__term.buffer.active;
  return /\$ ?$/.test(buf.getLine(buf.baseY + buf.cursorY).translateToString(true));
});
await page.evaluate(installProbe);

/**
 * Types KEYS letters in the page, each after the echo of the one before: by `keyboard`
 * (DevTools key events: the browser's whole input path, a frame per key) or by `input`
 * (`term.input()`, xterm's onData without a key event: the page's network path alone).
 */
async function typeInPage(via: "keyboard" | "input") {
  await page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const lat = (globalThis as any).__lat;
    for (const k of ["parsed", "rendered", "toSend", "toEcho", "toParse"]) lat[k] = [];
    lat.typed = "";
  });
  const outer: number[] = [];
  for (let i = 0; i < KEYS + 10; i++) {
    const key = String.fromCharCode(97 + (i % 26));
    const echoed = page.evaluate((n) =>
      new Promise<void>((resolve) => {
        // deno-lint-ignore no-explicit-any
        const lat = (globalThis as any).__lat;
        const check = () => {
          if (lat.parsed.length <= n) return;
          lat.wake = null;
          resolve();
        };
        lat.wake = check;
        check();
      }), i);
    const t0 = performance.now();
    if (via === "keyboard") await page.keyboard.type(key);
    else {
      await page.evaluate((k) => {
        // deno-lint-ignore no-explicit-any
        const g = globalThis as any;
        g.__lat.typed += k;
        g.__lat.t0 = performance.now();
        g.__term.input(k, true);
      }, key);
    }
    await echoed;
    if (i >= 10) outer.push(performance.now() - t0);
    await pause();
    if (i % 40 === 39 || i === KEYS + 9) {
      await page.keyboard.press("Control+u");
      await page.waitForFunction(() => {
        // deno-lint-ignore no-explicit-any
        const buf = (globalThis as any).__term.buffer.active;
        return /\$ ?$/.test(buf.getLine(buf.baseY + buf.cursorY).translateToString(true));
      });
    }
  }
  const probe = await page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const lat = (globalThis as any).__lat;
    return {
      parsed: lat.parsed as number[],
      rendered: lat.rendered as number[],
      toSend: lat.toSend as number[],
      toEcho: lat.toEcho as number[],
      toParse: lat.toParse as number[],
    };
  });
  return { outer, probe };
}

const byKeys = await typeInPage("keyboard");
const byInput = await typeInPage("input");
await page.keyboard.press("Control+d");
await context.close();
if (errors.length > 0) throw new Error(`The page logged errors: ${errors.join("; ")}`);

const ssh = report("tsh path (SSH through the proxy)", sshTimes);
report("web terminal (WebSocket, proxy SSH)", webTimes, ssh);
for (
  const [name, from, r] of [[`key events`, "keydown", byKeys], [
    `term.input()`,
    "input",
    byInput,
  ]] as const
) {
  out(`the page, ${name}:`);
  report(`  ${from} → echo in xterm buffer`, r.probe.parsed.slice(10), ssh);
  report(`  ${from} → echo rendered`, r.probe.rendered.slice(10), ssh);
  report("  via playwright (type → buffer)", r.outer, ssh);
  report(`    ${from} → onData (sent)`, r.probe.toSend.slice(10));
  report("    sent → echo at term.write", r.probe.toEcho.slice(10));
  report("    term.write → parsed", r.probe.toParse.slice(10));
}
out("issue 14 target: the page ≤ 5 ms above the SSH round trip");
