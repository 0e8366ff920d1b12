/**
 * A real browser for the web UI tests, the screenshots and the typing bench: Debian's
 * Chromium (`/usr/bin/chromium`) driven headless by npm:playwright-core. Pages record every
 * console error and uncaught exception, so a test can require none.
 */
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import decodeQR from "qr/decode.js";
import * as OTPAuth from "otpauth";
import { TEST_PASSWORD } from "./_proxy.ts";

/** Debian's chromium package installs here. */
export const CHROMIUM = "/usr/bin/chromium";

/** A headless Chromium, closed on dispose. */
export async function launchBrowser(): Promise<Browser & AsyncDisposable> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}

/** Options of {@link newContext}. */
export interface ContextOptions {
  width?: number;
  height?: number;
  colorScheme?: "light" | "dark";
}

/** A fresh profile (own cookies and storage) that accepts the cluster's self-signed cert. */
export function newContext(browser: Browser, o: ContextOptions = {}): Promise<BrowserContext> {
  return browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: o.width ?? 1280, height: o.height ?? 800 },
    colorScheme: o.colorScheme ?? "light",
    permissions: ["clipboard-read", "clipboard-write"],
  });
}

/** Console errors and uncaught exceptions of the pages of a context. */
export function watchErrors(context: BrowserContext): string[] {
  const errors: string[] = [];
  const watch = (page: Page) => {
    page.on("console", (msg) => {
      if (msg.type() === "error") errors.push(`${page.url()}: console: ${msg.text()}`);
    });
    page.on("pageerror", (err) => errors.push(`${page.url()}: exception: ${err.message}`));
  };
  context.pages().forEach(watch);
  context.on("page", watch);
  return errors;
}

/**
 * Opens an invite link as a new user does: scans the QR code on the page (decoding the
 * canvas's pixels), sets the password with the first TOTP code; returns the TOTP.
 */
export async function enrollInBrowser(page: Page, url: string): Promise<OTPAuth.TOTP> {
  await page.goto(url);
  const canvas = page.locator("canvas.qr");
  await canvas.waitFor();
  const image = await canvas.evaluate((el) => {
    // deno-lint-ignore no-explicit-any
    const c = el as any;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height);
    return {
      width: d.width as number,
      height: d.height as number,
      data: Array.from(d.data as number[]),
    };
  });
  const uri = decodeQR({ ...image, data: Uint8Array.from(image.data) });
  const totp = OTPAuth.URI.parse(uri);
  if (!(totp instanceof OTPAuth.TOTP)) throw new Error(`The QR code holds no TOTP URI: ${uri}`);
  await page.getByLabel("New password").fill(TEST_PASSWORD);
  await page.getByLabel("Repeat the password").fill(TEST_PASSWORD);
  await page.getByLabel("Code from the authenticator app").fill(totp.generate());
  await page.getByRole("button", { name: "Set password" }).click();
  await page.getByRole("heading", { name: "Password set" }).waitFor();
  return totp;
}

/**
 * Logs in on `/web/login` with the password and the code of the next time step (the one
 * before was used up by the enrollment; auth accepts one step of drift and no replays).
 */
export async function loginInBrowser(
  page: Page,
  o: { base: string; user: string; totp: OTPAuth.TOTP },
): Promise<void> {
  await page.goto(`${o.base}/web/login`);
  await page.getByLabel("User").fill(o.user);
  await page.getByLabel("Password").fill(TEST_PASSWORD);
  await page.getByLabel("Code from the authenticator app").fill(
    o.totp.generate({ timestamp: Date.now() + 30_000 }),
  );
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(/\/web\/cluster\/[^/]+\/resources$/);
}

/** The text of an xterm.js terminal's buffer (`globalThis.__term` of the page), trimmed lines. */
export function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const term = (globalThis as any).__term;
    const buf = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
    return lines.join("\n").replace(/\n+$/, "");
  });
}

/** The size of the page's xterm.js terminal. */
export function terminalSize(page: Page): Promise<{ cols: number; rows: number }> {
  return page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const term = (globalThis as any).__term;
    return { cols: term.cols as number, rows: term.rows as number };
  });
}
