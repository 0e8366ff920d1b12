/**
 * The web UI's server side against a real cluster (`teleport start`, all roles): log in through
 * the JSON API (password + TOTP), list resources, open the terminal WebSocket, type
 * `echo hello; tty`, resize, exit with a code that reaches the browser; then the session is
 * audited and recorded like a tsh session.
 */
import assert from "node:assert/strict";
import { skipGroup } from "../../tools/prereqs.ts";
import type { Envelope } from "../../lib/web/mod.ts";
import {
  ensureOsUser,
  eventually,
  startTeleport,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import { inviteAndEnroll, TEST_PASSWORD } from "./_proxy.ts";
import { openWebSocket, webCall, webLogin, type WebTerminal } from "./_web.ts";

const ALICE = "td_e2e_walice";
const CLUSTER = "e2e-web.example";
const NODE = "e2e-wnode";

interface PlayerBody {
  size: { cols: number; rows: number };
  durationMs: number;
  events: Array<{ ms: number; type: string; data?: string; cols?: number; rows?: number }>;
}

/**
 * Reads the terminal until its output matches `re`; returns the output and other frames. Fails
 * with what the terminal printed when nothing matches within `timeoutMs` (a hung shell shows up
 * as a failure with its output, not as a test that never ends).
 */
async function readUntil(
  term: WebTerminal,
  re: RegExp,
  timeoutMs = 30_000,
): Promise<{ output: string; frames: Envelope[] }> {
  let output = "";
  const frames: Envelope[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const m = await Promise.race([
      term.next(),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), deadline - Date.now())),
    ]).finally(() => clearTimeout(timer));
    if (m === "timeout") {
      throw new Error(`the terminal printed no ${re} in ${timeoutMs} ms; it printed:\n${output}`);
    }
    if (m === undefined) {
      throw new Error(`the terminal closed before ${re}; it printed:\n${output}`);
    }
    if (typeof m === "string") continue;
    if (m.type === "r") output += m.payload;
    else frames.push(m);
    if (re.test(output)) return { output, frames };
  }
}

Deno.test({
  name: "web API: login, resources, terminal WebSocket with resize and exit code, audit",
  ignore: skipGroup("web-api-e2e"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-web-");
    const config = await writeClusterConfig(dir.path, { nodeName: NODE, clusterName: CLUSTER });
    await using tp = await startTeleport(["-c", config]);
    await ensureOsUser(ALICE);
    const totp = await inviteAndEnroll({
      config,
      webPort: tp.webPort,
      user: "alice",
      roles: "access,auditor",
      logins: ALICE,
    });
    const port = tp.webPort;
    // The enrollment used the current TOTP step; each code works once.
    const login = await webLogin(
      port,
      "alice",
      TEST_PASSWORD,
      totp.generate({ timestamp: Date.now() + 30_000 }),
    );
    const auth = { cookie: login.cookie, token: login.token };

    await t.step("the login sets a __Host- cookie, separate from the bearer token", () => {
      assert.match(
        login.setCookie,
        /^__Host-session=[0-9a-f]{64}; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
      );
      assert.ok(!login.setCookie.includes(login.token));
    });

    await t.step("resources list the node with its allowed logins, paginated", async () => {
      const res = await webCall(
        port,
        "GET",
        `/v1/webapi/sites/${CLUSTER}/resources?limit=10`,
        auth,
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const page = res.body as { items: Array<Record<string, unknown>>; totalCount: number };
      assert.equal(page.totalCount, 1);
      const node = page.items[0]!;
      assert.equal(node.hostname, NODE);
      assert.equal(node.kind, "node");
      assert.equal(node.tunnel, false);
      assert.equal(node.online, true);
      assert.deepEqual(node.logins, [ALICE]);
      assert.equal(res.headers["x-content-type-options"], "nosniff");
      const noBearer = await webCall(port, "GET", `/v1/webapi/sites/${CLUSTER}/resources`, {
        cookie: login.cookie,
      });
      assert.equal(noBearer.status, 401);
    });

    const wsPath = (extra: Record<string, unknown> = {}) =>
      `/v1/webapi/sites/${CLUSTER}/connect/ws?params=${
        encodeURIComponent(JSON.stringify({
          server_id: NODE,
          login: ALICE,
          term: { w: 80, h: 24 },
          ...extra,
        }))
      }`;

    await t.step(
      "a WebSocket without the session cookie is refused before the upgrade",
      async () => {
        const term = await openWebSocket(port, wsPath());
        assert.match(term.status, /^HTTP\/1.1 401 /);
      },
    );

    await t.step("a WebSocket whose first message is a wrong token is closed", async () => {
      const term = await openWebSocket(port, wsPath(), login.cookie);
      assert.match(term.status, /^HTTP\/1.1 101 /);
      term.ws.send(JSON.stringify({ token: "0".repeat(64) }));
      const answer = JSON.parse(await term.next() as string);
      assert.deepEqual(answer, {
        type: "create_session_response",
        status: "error",
        message: "invalid token",
      });
      assert.equal((await term.ws.closed).code, 1008);
    });

    await t.step("a WebSocket that sends no token is closed after 4 s", async () => {
      const term = await openWebSocket(port, wsPath(), login.cookie);
      const answer = JSON.parse(await term.next() as string);
      assert.equal(answer.status, "error");
      assert.match(answer.message, /no token within 4000 ms/);
      assert.equal((await term.ws.closed).code, 1008);
    });

    let sid = "";
    await t.step(
      "the terminal runs a shell as the user, resizes, and reports the exit code",
      async () => {
        const term = await openWebSocket(port, wsPath(), login.cookie);
        assert.match(term.status, /^HTTP\/1.1 101 /);
        term.ws.send(JSON.stringify({ token: login.token }));
        assert.deepEqual(JSON.parse(await term.next() as string), {
          type: "create_session_response",
          status: "ok",
        });
        const first = await term.next() as Envelope;
        assert.equal(first.type, "s");
        const meta = JSON.parse(first.payload).session;
        assert.equal(meta.login, ALICE);
        assert.equal(meta.server_hostname, NODE);
        assert.match(meta.sid, /^[0-9a-f-]{36}$/);
        sid = meta.sid;
        // The quotes make the echoed command line differ from the output.
        term.send("r", "echo hel''lo; tty\r");
        const shown = await readUntil(term, /\bhello\r?\n\/dev\/pts\/\d+/);
        assert.match(shown.output, /\/dev\/pts\/\d+/);
        term.send("w", JSON.stringify({ size: "100:30" }));
        term.send("r", "stty size\r");
        await readUntil(term, /\b30 100\r?\n/);
        term.send("r", "exit 3\r");
        const end = await readUntil(term, /$^/).catch((err) => err as Error);
        assert.ok(end instanceof Error, "the socket closes after the shell exits");
        // The close frame came before the socket closed.
        assert.equal((await term.ws.closed).code, 1000);
      },
    );

    await t.step(
      "a second tab joins a running session as observer and sees its output",
      async () => {
        const open = async (extra: Record<string, unknown> = {}) => {
          const term = await openWebSocket(port, wsPath(extra), login.cookie);
          term.ws.send(JSON.stringify({ token: login.token }));
          assert.equal(JSON.parse(await term.next() as string).status, "ok");
          const meta = await term.next() as Envelope;
          assert.equal(meta.type, "s");
          return { term, session: JSON.parse(meta.payload).session };
        };
        const owner = await open();
        await readUntil(owner.term, /\$ $/);
        const active = await webCall(port, "GET", `/v1/webapi/sites/${CLUSTER}/sessions`, auth);
        const listed =
          (active.body as { sessions: Array<{ sid: string; login: string }> }).sessions;
        assert.ok(listed.some((s) => s.sid === owner.session.sid && s.login === ALICE));
        const observer = await open({ sid: owner.session.sid, mode: "observer" });
        assert.equal(observer.session.sid, owner.session.sid);
        assert.equal(observer.session.participant_mode, "observer");
        owner.term.send("r", "echo shared-$((6*7))\r");
        await readUntil(observer.term, /shared-42/);
        // An observer's keys do not reach the shell.
        observer.term.send("r", "echo observer-typed\r");
        owner.term.send("r", "exit\r");
        const ownerEnd = await readUntil(owner.term, /logout/);
        assert.doesNotMatch(ownerEnd.output, /observer-typed/);
        for (const x of [owner, observer]) {
          for (let m = await x.term.next(); m !== undefined; m = await x.term.next()) {
            /* drain */
          }
        }
      },
    );

    await t.step("the session is audited with the user's address", async () => {
      const res = await webCall(
        port,
        "GET",
        `/v1/webapi/sites/${CLUSTER}/events/search?from=${
          encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())
        }&to=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}` +
          "&include=session.start,user.login&limit=50",
        auth,
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const events = (res.body as { events: Array<Record<string, unknown>> }).events;
      const start = events.find((e) => e.event === "session.start" && e.sid === sid);
      assert.ok(start, `no session.start of ${sid}`);
      assert.equal(start.login, ALICE);
      assert.equal(start.origin, "web");
      assert.match(String(start["addr.remote"]), /^127\.0\.0\.1:/);
      const web = events.find((e) => e.event === "user.login" && e.method === "web");
      assert.ok(web, "the web login is audited with method web");
    });

    await t.step("the recording is listed and plays back with the output", async () => {
      const range = `from=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}` +
        `&to=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`;
      const list = await eventually("the session in the recordings list", async () => {
        const r = await webCall(
          port,
          "GET",
          `/v1/webapi/sites/${CLUSTER}/events/search/sessions?${range}`,
          auth,
        );
        const sessions = (r.body as { sessions?: Array<{ sid: string }> }).sessions ?? [];
        return sessions.some((s) => s.sid === sid) ? sessions : undefined;
      });
      assert.ok(list.length >= 1);
      const rec = await eventually("the uploaded recording", async () => {
        const r = await webCall(port, "GET", `/v1/webapi/sites/${CLUSTER}/recordings/${sid}`, auth);
        return r.status === 200 ? r.body as PlayerBody : undefined;
      });
      assert.deepEqual(rec.size, { cols: 80, rows: 24 });
      const printed = rec.events.filter((e) => e.type === "print")
        .map((e) =>
          new TextDecoder().decode(Uint8Array.from(atob(e.data!), (c) => c.charCodeAt(0)))
        )
        .join("");
      assert.match(printed, /\bhello\r?\n\/dev\/pts\/\d+/);
      assert.deepEqual(
        rec.events.filter((e) => e.type === "resize").map((e) => [e.cols, e.rows]),
        [[100, 30]],
      );
      const length = await webCall(
        port,
        "GET",
        `/v1/webapi/sites/${CLUSTER}/sessionlength/${sid}`,
        auth,
      );
      assert.equal((length.body as { durationMs: number }).durationMs, rec.durationMs);
      const bad = await webCall(
        port,
        "GET",
        `/v1/webapi/sites/${CLUSTER}/recordings/..%2F..%2Fetc`,
        auth,
      );
      assert.equal(bad.status, 400);
    });

    await t.step(
      "logout ends the session: the cookie is cleared and the token is dead",
      async () => {
        const out = await webCall(port, "DELETE", "/v1/webapi/sessions/web", auth);
        assert.equal(out.status, 200);
        const again = await webCall(port, "GET", `/v1/webapi/sites/${CLUSTER}/resources`, auth);
        assert.equal(again.status, 401);
      },
    );
  },
});
