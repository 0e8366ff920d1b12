/**
 * The web UI in a real browser (Debian's Chromium, headless, via npm:playwright-core) against
 * a real all-in-one cluster: account setup from an invite link (the QR code is decoded from the
 * page's pixels), login with password + TOTP, the node in the resource list, a terminal over
 * WSS (type, read xterm's buffer, resize the window and see `stty size`, exit with a code),
 * the recording played back, the audit log, and the account page (replace the OTP device from
 * its QR code, change the password, log in again with both). Any console error fails the test.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import decodeQR from "qr/decode.js";
import * as OTPAuth from "otpauth";
import { addUserInvite, TEST_PASSWORD } from "./_proxy.ts";
import { skipGroup } from "../../tools/prereqs.ts";
import {
  ensureOsUser,
  eventually,
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
const NEW_PASSWORD = "another horse, another battery";
const STEP_MS = 30_000;

/** The last TOTP step the auth server accepted from a device. */
interface UsedStep {
  step: number;
}

/**
 * A code of `totp` for a step after `used` (auth accepts each step of a device once, and one
 * step of clock drift): when that step is still two ahead of the clock, waits for the clock
 * to reach the next step. Records the step as used.
 */
async function nextCode(totp: OTPAuth.TOTP, used: UsedStep): Promise<string> {
  const step = Math.max(used.step + 1, Math.floor(Date.now() / STEP_MS));
  const wait = (step - 1) * STEP_MS - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait + 100));
  used.step = step;
  return totp.generate({ timestamp: step * STEP_MS });
}

/** Decodes the QR code drawn on the page's `canvas.qr` (its pixels) to a TOTP. */
async function scanQr(page: Page): Promise<OTPAuth.TOTP> {
  const image = await page.locator("canvas.qr").evaluate((el) => {
    // deno-lint-ignore no-explicit-any
    const c = el as any;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height);
    return { width: d.width as number, height: d.height as number, data: Array.from(d.data) };
  });
  const uri = decodeQR({ ...image, data: Uint8Array.from(image.data as number[]) });
  const totp = OTPAuth.URI.parse(uri);
  if (!(totp instanceof OTPAuth.TOTP)) throw new Error(`The QR code holds no TOTP URI: ${uri}`);
  return totp;
}

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
      const path = await addUserInvite({
        config,
        user: "alice",
        roles: "access,auditor",
        logins: LOGIN,
      });
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

    const used: UsedStep = { step: 0 };
    await t.step("login with password and TOTP sets the session cookie", async () => {
      await loginInBrowser(page, { base, user: "alice", totp: totp! });
      // loginInBrowser used the step after the clock's (at most this one).
      used.step = Math.floor(Date.now() / STEP_MS) + 1;
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
        // Plain characters go out from the keydown with its default prevented (keys.js: no
        // frame wait for the echo); Enter, Backspace and Ctrl keys keep xterm's own path.
        await term.evaluate(() => {
          const g = globalThis as unknown as { __keys: string[] } & typeof globalThis;
          g.__keys = [];
          g.addEventListener("keydown", (ev) => {
            const e = ev as Event & { key: string; ctrlKey: boolean };
            if (e.key.length === 1 && !e.ctrlKey) {
              g.__keys.push(e.defaultPrevented ? "sent" : e.key);
            }
          });
        });
        const command = "echo hel''lo; tty";
        await term.keyboard.type(`${command}\n`);
        const text = await showing(term, /^hello$\n^\/dev\/pts\/\d+$/);
        assert.match(text, /^hello$/m);
        const keys = await term.evaluate(() =>
          (globalThis as unknown as { __keys: string[] }).__keys
        );
        assert.deepEqual(
          keys,
          Array(command.length).fill("sent"),
          "plain keys sent from the keydown",
        );
        await term.keyboard.type("echo 'Up, ~$HOME' x");
        await term.keyboard.press("Backspace");
        await term.keyboard.press("Enter");
        await showing(term, /^Up, ~\$HOME$/);

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

    let newTotp: OTPAuth.TOTP | undefined;
    const newUsed: UsedStep = { step: 0 };
    await t.step(
      "the account page replaces the OTP device from its QR code after a current code",
      async () => {
        await page.goto(`${base}/web/account`);
        const otp = page.locator('section[aria-labelledby="otp-title"]');
        await otp.getByText("An authenticator app (TOTP) is set up").waitFor();
        await otp.getByLabel("Current password").fill(TEST_PASSWORD);
        await otp.getByLabel("Code from the current authenticator app").fill(
          await nextCode(totp!, used),
        );
        await otp.getByRole("button", { name: "Replace the device" }).click();
        await otp.locator("canvas.qr").waitFor();
        newTotp = await scanQr(page);
        assert.equal(newTotp.secret.base32, await otp.locator("#otp-secret").textContent());
        assert.notEqual(newTotp.secret.base32, totp!.secret.base32);
        const now = Date.now();
        newUsed.step = Math.floor(now / STEP_MS);
        // The confirm field has the focus: the flow goes on by keyboard.
        await page.keyboard.type(newTotp.generate({ timestamp: now }));
        await page.keyboard.press("Enter");
        await otp.getByText("The new authenticator is active").waitFor();
        assert.equal(await otp.locator("canvas.qr").count(), 0);
        noErrors();
      },
    );

    await t.step(
      "the account page changes the password; login then takes the new password and device",
      async () => {
        const form = page.locator('form[aria-labelledby="pw-title"]');
        // A wrong current password: the API's error is shown in the page.
        await form.getByLabel("Current password").fill("not the password at all");
        await form.getByLabel(/^New password/).fill(NEW_PASSWORD);
        await form.getByLabel("Repeat the new password").fill(NEW_PASSWORD);
        await form.getByRole("button", { name: "Change password" }).click();
        const status = form.getByRole("status");
        await status.filter({ hasText: "Cannot change the password:" }).waitFor();
        assert.equal(await status.getAttribute("class"), "notice error");

        await form.getByLabel("Current password").fill(TEST_PASSWORD);
        await form.getByLabel("Code from the authenticator app").fill(
          await nextCode(newTotp!, newUsed),
        );
        await form.getByRole("button", { name: "Change password" }).click();
        await status.filter({ hasText: "Password changed." }).waitFor();
        assert.equal(await status.getAttribute("class"), "notice ok");

        await page.getByRole("button", { name: "Log out" }).click();
        await page.waitForURL(/\/web\/login$/);
        const login = async (password: string, code: string) => {
          await page.getByLabel("User").fill("alice");
          await page.getByLabel("Password").fill(password);
          await page.getByLabel("Code from the authenticator app").fill(code);
          await page.getByRole("button", { name: "Log in" }).click();
        };
        // The old password with a fresh code is refused (a failure uses no code step).
        await login(TEST_PASSWORD, newTotp!.generate());
        await page.getByRole("status").filter({ hasText: "Cannot log in:" }).waitFor();
        await login(NEW_PASSWORD, await nextCode(newTotp!, newUsed));
        await page.waitForURL(/\/web\/cluster\/[^/]+\/resources$/);
        // The page's calls (node list, session renewal) finish before the next step logs out.
        await page.locator(`tr[data-node="${NODE}"]`).waitFor();
        await page.waitForLoadState("networkidle");
        // Chromium logs each refused call (the two above) as a failed resource load.
        const refused = /Failed to load resource: the server responded with a status of 40[013]/;
        assert.deepEqual(errors.splice(0).filter((e) => !refused.test(e)), [], "console errors");
      },
    );

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
