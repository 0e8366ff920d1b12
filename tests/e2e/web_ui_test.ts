/**
 * The web UI in a real browser (Debian's Chromium, headless, via npm:playwright-core) against
 * a real all-in-one cluster: account setup from an invite link (the QR code is decoded from the
 * page's pixels), login with password + TOTP, the node in the resource list, a terminal over
 * WSS (type, read xterm's buffer, resize the window and see `stty size`, exit with a code),
 * the recording played back, and the audit log. Any console error fails the test.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  ensureOsUser,
  eventually,
  runCli,
  startTeleport,
  tempDir,
  writeClusterConfig,
} from "./_helpers.ts";
import {
  enrollInBrowser,
  launchBrowser,
  loginInBrowser,
  newContext,
  terminalSize,
  terminalText,
  watchErrors,
} from "./_browser.ts";

const NODE = "webnode";
const CLUSTER = "web-e2e";
const LOGIN = "td_e2e_webui";

/** Waits until the terminal of `page` shows text matching `re`; returns the whole text. */
async function showing(page: Page, re: RegExp): Promise<string> {
  await page.waitForFunction(
    (source) => {
      // deno-lint-ignore no-explicit-any
      const term = (globalThis as any).__term;
      if (!term) return false;
      const buf = term.buffer.active;
      let text = "";
      for (let i = 0; i < buf.length; i++) text += buf.getLine(i).translateToString(true) + "\n";
      return new RegExp(source, "m").test(text);
    },
    re.source,
    { timeout: 20_000 },
  );
  return await terminalText(page);
}

Deno.test({
  name:
    "web UI: invite with QR code, login, terminal, resize, exit code, recording, audit, observer",
  ignore: skipGroup("webui"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using dir = await tempDir("tp-e2e-webui-");
    const config = await writeClusterConfig(dir.path, { nodeName: NODE, clusterName: CLUSTER });
    await using tp = await startTeleport(["-c", config]);
    await ensureOsUser(LOGIN);
    const base = `https://127.0.0.1:${tp.webPort}`;
    await using browser = await launchBrowser();
    const context = await newContext(browser);
    const errors = watchErrors(context);
    const page = await context.newPage();
    const noErrors = () => assert.deepEqual(errors.splice(0), [], "console errors");

    let totp: Awaited<ReturnType<typeof enrollInBrowser>> | undefined;
    await t.step("the invite page shows a QR code that scans to the TOTP secret", async () => {
      const add = await runCli([
        "tctl",
        "-c",
        config,
        "users",
        "add",
        "alice",
        "--roles=access,auditor",
        `--logins=${LOGIN}`,
      ]);
      const url = /https:\/\/\S+\/web\/invite\/[0-9a-f]+/.exec(add.stdout)?.[0];
      assert.ok(add.code === 0 && url !== undefined, add.stderr + add.stdout);
      const path = new URL(url).pathname;
      totp = await enrollInBrowser(page, base + path);
      assert.equal(totp.label, "alice");
      noErrors();
    });

    await t.step(
      "the login page asks for user, password and the authenticator's code",
      async () => {
        await page.goto(`${base}/web`);
        await page.waitForURL(/\/web\/login\?redirect=%2Fweb$/);
        await page.getByRole("button", { name: "Log in" }).waitFor();
        for (const label of ["User", "Password", "Code from the authenticator app"]) {
          assert.equal(await page.getByLabel(label).count(), 1, label);
        }
        noErrors();
      },
    );

    await t.step("login with password and TOTP sets the session cookie", async () => {
      await loginInBrowser(page, { base, user: "alice", totp: totp! });
      const cookie = (await context.cookies()).find((c) => c.name === "__Host-session");
      assert.ok(cookie !== undefined);
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.secure, true);
    });
    await t.step("the resource list shows the node with its logins, by keyboard too", async () => {
      const row = page.locator(`tr[data-node="${NODE}"]`);
      await row.waitFor();
      assert.match(await row.innerText(), /127\.0\.0\.1:\d+|Tunnel/);
      // Keyboard: the first Tab reaches the skip link, the Connect menu opens with Enter.
      await page.keyboard.press("Tab");
      assert.equal(await page.locator(":focus").textContent(), "Skip to content");
      await row.getByText("Connect").focus();
      await page.keyboard.press("Enter");
      assert.equal(await row.getByRole("link", { name: LOGIN }).count(), 1);
      await row.getByRole("link", { name: LOGIN }).waitFor();
      noErrors();
    });

    let term: Page | undefined;
    await t.step(
      "the terminal runs commands, follows the window size and shows the exit code",
      async () => {
        const row = page.locator(`tr[data-node="${NODE}"]`);
        [term] = await Promise.all([
          context.waitForEvent("page"),
          row.getByRole("link", { name: LOGIN }).click(),
        ]);
        await term.getByRole("status").filter({ hasText: "Connected" }).waitFor();
        await term.keyboard.type("echo hel''lo; tty\n");
        const text = await showing(term, /^hello$\n^\/dev\/pts\/\d+$/);
        assert.match(text, /^hello$/m);

        const before = await terminalSize(term);
        await term.setViewportSize({ width: 700, height: 420 });
        await term.waitForFunction((cols) => {
          // deno-lint-ignore no-explicit-any
          return (globalThis as any).__term.cols !== cols;
        }, before.cols);
        const after = await terminalSize(term);
        const size = `${after.rows} ${after.cols}`;
        await term.keyboard.type("stty size\n");
        await showing(term, new RegExp(`^${size}$`));

        await term.keyboard.type("exit 3\n");
        await term.getByRole("status").filter({ hasText: "exit code 3" }).waitFor();
        assert.equal(await term.locator("#terminal").getAttribute("data-exit-code"), "3");
        noErrors();
      },
    );

    await t.step("the recording plays back in the player and shows the output", async () => {
      // The node uploads the recording when the session ends: reload until it is listed.
      const play = page.getByRole("link", { name: "Play" }).first();
      await eventually("the recording in the list", async () => {
        await page.goto(`${base}/web/cluster/${CLUSTER}/recordings`);
        await page.locator("table tbody tr").first().waitFor();
        return await play.count() > 0 ? true : undefined;
      });
      await play.click();
      await page.locator("#player").waitFor();
      await page.getByLabel("Speed").selectOption("16");
      await page.getByRole("button", { name: "Play" }).click();
      await page.locator('#player[data-state="ended"]').waitFor({ timeout: 30_000 });
      assert.match(await terminalText(page), /^hello$/m);
      noErrors();
    });

    await t.step("the audit log shows the session, with its details", async () => {
      await page.goto(`${base}/web/cluster/${CLUSTER}/audit`);
      await page.getByLabel("Event types").fill("session.start");
      await page.getByRole("button", { name: "Apply" }).click();
      const event = page.locator('details.event[data-type="session.start"]').first();
      await event.waitFor();
      await event.locator("summary").click();
      const details = await event.locator("pre").innerText();
      assert.match(details, new RegExp(`"login": "${LOGIN}"`));
      assert.match(details, /"sid":/);
      noErrors();
    });
    await t.step("an active session is listed and can be joined as an observer", async () => {
      const row = page.locator(`tr[data-node="${NODE}"]`);
      await page.goto(`${base}/web/cluster/${CLUSTER}/resources`);
      await row.getByText("Connect").click();
      const [owner] = await Promise.all([
        context.waitForEvent("page"),
        row.getByRole("link", { name: LOGIN }).click(),
      ]);
      await owner.getByRole("status").filter({ hasText: "Connected" }).waitFor();
      const sid = await owner.locator("#terminal[data-sid]").getAttribute("data-sid");
      const join = page.locator(`tr[data-sid="${sid}"]`).getByRole("link", {
        name: "Join as observer",
      });
      await eventually("the session in the list", async () => {
        await page.goto(`${base}/web/cluster/${CLUSTER}/sessions`);
        await page.locator("table tbody tr").first().waitFor();
        return await join.count() > 0 ? true : undefined;
      });
      const [observer] = await Promise.all([context.waitForEvent("page"), join.click()]);
      await observer.getByRole("status").filter({ hasText: "Observing" }).waitFor();
      await owner.keyboard.type("echo seen''by the observer\n");
      await showing(observer, /^seenby the observer$/);
      await owner.keyboard.type("exit\n");
      await owner.getByRole("status").filter({ hasText: "exit code 0" }).waitFor();
      await observer.close();
      await owner.close();
      noErrors();
    });

    await t.step("logout ends the web session: the next page asks to log in", async () => {
      await page.getByRole("button", { name: "Log out" }).click();
      await page.waitForURL(/\/web\/login$/);
      await page.goto(`${base}/web/cluster/${CLUSTER}/resources`);
      await page.waitForURL(/\/web\/login\?redirect=/);
      noErrors();
    });
    await context.close();
  },
});
