/**
 * `deno task screenshots`: starts an all-in-one cluster in a temp dir, walks through the web UI
 * in headless Chromium as a new user would (invite link, login, resources, a terminal, active
 * sessions, the recording, the audit log, the account page) and saves each page at 1280×800
 * (light) and 390×844 (dark) to docs/screenshots/<page>-desktop.png / <page>-phone.png.
 * Needs root (it creates an OS user for the terminal) and /usr/bin/chromium.
 *
 * @module
 */
import type { BrowserContext, Page } from "playwright-core";
import { ensureOsUser, startTeleport, tempDir, writeClusterConfig } from "../tests/e2e/_helpers.ts";
import {
  enrollInBrowser,
  launchBrowser,
  loginInBrowser,
  newContext,
} from "../tests/e2e/_browser.ts";
import { addUserInvite } from "../tests/e2e/_proxy.ts";

const OUT = new URL("../docs/screenshots/", import.meta.url).pathname;
const CLUSTER = "example";
const LOGIN = "td_shots";

interface View {
  suffix: string;
  context: BrowserContext;
  page: Page;
}

async function shoot(views: View[], name: string, open: (v: View) => Promise<void>) {
  for (const v of views) {
    await open(v);
    await v.page.screenshot({ path: `${OUT}${name}-${v.suffix}.png` });
  }
}

/** Types into the terminal of `page` and waits until `expect` shows in its buffer. */
async function typeAndWait(page: Page, text: string, expect: string) {
  await page.keyboard.type(text);
  await page.waitForFunction((want) => {
    // deno-lint-ignore no-explicit-any
    const buf = (globalThis as any).__term.buffer.active;
    for (let i = 0; i < buf.length; i++) {
      if (buf.getLine(i).translateToString(true).includes(want)) return true;
    }
    return false;
  }, expect);
}

if (import.meta.main) {
  await Deno.mkdir(OUT, { recursive: true });
  await using dir = await tempDir("tp-shots-");
  const config = await writeClusterConfig(dir.path, {
    nodeName: "web-1",
    clusterName: CLUSTER,
    ssh: "  labels:\n    env: staging\n    team: platform\n",
  });
  await using tp = await startTeleport(["-c", config]);
  await ensureOsUser(LOGIN);
  const base = `https://127.0.0.1:${tp.webPort}`;
  await using browser = await launchBrowser();
  const desktop = await newContext(browser, { width: 1280, height: 800, colorScheme: "light" });
  const dpage = await desktop.newPage();

  const invite = await addUserInvite({
    config,
    user: "alice",
    roles: "access,auditor",
    logins: LOGIN,
  });
  const phone = await newContext(browser, { width: 390, height: 844, colorScheme: "dark" });
  const ppage = await phone.newPage();
  let views: View[] = [
    { suffix: "desktop", context: desktop, page: dpage },
    { suffix: "phone", context: phone, page: ppage },
  ];
  await shoot(views, "invite", async (v) => {
    await v.page.goto(base + invite);
    await v.page.locator("canvas.qr").waitFor();
  });
  const totp = await enrollInBrowser(dpage, base + invite);
  await shoot(views, "login", async (v) => {
    await v.page.goto(`${base}/web/login`);
    await v.page.getByRole("button", { name: "Log in" }).waitFor();
  });
  await loginInBrowser(dpage, { base, user: "alice", totp });
  // The phone shares the desktop's web session (cookie and token): one login, one TOTP code.
  await phone.close();
  const shared = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 390, height: 844 },
    colorScheme: "dark",
    storageState: await desktop.storageState(),
  });
  views = [views[0]!, { suffix: "phone", context: shared, page: await shared.newPage() }];
  const c = `${base}/web/cluster/${CLUSTER}`;
  await shoot(views, "resources", async (v) => {
    await v.page.goto(`${c}/resources`);
    await v.page.locator("tr[data-node]").first().waitFor();
    await v.page.getByText("Connect").first().click();
  });
  const terms: Page[] = [];
  await shoot(views, "terminal", async (v) => {
    const term = await v.context.newPage();
    terms.push(term);
    await term.goto(
      `${c}/console/node/${encodeURIComponent("web-1")}/${LOGIN}`,
    );
    await term.getByRole("status").filter({ hasText: "Connected" }).waitFor();
    await typeAndWait(term, "echo hello from the browser; uname -sm; stty size\n", "hello from");
    v.page = term;
  });
  await shoot(views, "sessions", async (v) => {
    v.page = await v.context.newPage();
    await v.page.goto(`${c}/sessions`);
    await v.page.getByRole("link", { name: "Join as observer" }).first().waitFor();
  });
  for (const term of terms) {
    await typeAndWait(term, "exit\n", "exit code");
    await term.close();
  }
  await shoot(views, "recordings", async (v) => {
    await v.page.goto(`${c}/recordings`);
    await v.page.getByRole("link", { name: "Play" }).first().waitFor();
  });
  await shoot(views, "player", async (v) => {
    await v.page.getByRole("link", { name: "Play" }).first().click();
    await v.page.locator("#player").waitFor();
    await v.page.getByLabel("Speed").selectOption("16");
    await v.page.getByRole("button", { name: "Play" }).click();
    await v.page.locator('#player[data-state="ended"]').waitFor({ timeout: 30_000 });
  });
  await shoot(views, "audit", async (v) => {
    await v.page.goto(`${c}/audit`);
    const first = v.page.locator("details.event").first();
    await first.waitFor();
    await first.locator("summary").click();
  });
  await shoot(views, "account", async (v) => {
    await v.page.goto(`${base}/web/account`);
    await v.page.getByRole("button", { name: "Change password" }).waitFor();
    await v.page.getByText("An authenticator app (TOTP) is set up").waitFor();
  });
  await desktop.close();
  await shared.close();
  // deno-lint-ignore no-console
  console.log(`Screenshots written to ${OUT}`);
}
