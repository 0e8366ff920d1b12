/**
 * The browser UI under `/web`: one HTML page (the same for every `/web/...` path; the app's
 * router picks the view) and its assets under `/web/app/`. Plain ES modules, no build step
 * (docs/web-ui.md says why). Our own files live in `static/app/`; xterm.js, its fit addon and
 * the `qr` encoder are served from their npm packages as they are, under `/web/app/vendor/`.
 *
 * Every file is a text import, so `deno task bundle` inlines it and `deno compile` embeds it
 * with the module graph: nothing is read from disk at run time, nothing is copied into the repo.
 *
 * - The page: `Cache-Control: no-store` and a strict CSP: scripts only from the proxy
 *   (`script-src 'self'`, no inline script), WebSockets to the proxy, `frame-ancestors 'none'`.
 *   Styles allow `'unsafe-inline'` only because xterm.js's DOM renderer writes its theme and
 *   cell metrics into `<style>` elements and `style` attributes it creates.
 * - Assets: a strong `ETag` (SHA-256 of the content), `Cache-Control: no-cache` (the browser
 *   revalidates; an unchanged file costs a 304), and `If-None-Match` honoured.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { SECURITY_HEADERS } from "./http.ts";
import xtermJs from "@xterm/xterm/lib/xterm.mjs" with { type: "text" };
import xtermCss from "@xterm/xterm/css/xterm.css" with { type: "text" };
import fitJs from "@xterm/addon-fit/lib/addon-fit.mjs" with { type: "text" };
import qrJs from "qr" with { type: "text" };
import indexHtml from "./static/app/index.html" with { type: "text" };
import accountJs from "./static/app/account.js" with { type: "text" };
import apiJs from "./static/app/api.js" with { type: "text" };
import appCss from "./static/app/app.css" with { type: "text" };
import auditJs from "./static/app/audit.js" with { type: "text" };
import domJs from "./static/app/dom.js" with { type: "text" };
import keysJs from "./static/app/keys.js" with { type: "text" };
import loginJs from "./static/app/login.js" with { type: "text" };
import mainJs from "./static/app/main.js" with { type: "text" };
import playerJs from "./static/app/player.js" with { type: "text" };
import qrcodeJs from "./static/app/qrcode.js" with { type: "text" };
import recordingsJs from "./static/app/recordings.js" with { type: "text" };
import resourcesJs from "./static/app/resources.js" with { type: "text" };
import sessionsJs from "./static/app/sessions.js" with { type: "text" };
import setupJs from "./static/app/setup.js" with { type: "text" };
import terminalJs from "./static/app/terminal.js" with { type: "text" };
import ttyJs from "./static/app/tty.js" with { type: "text" };
import xtermThemeJs from "./static/app/xterm_theme.js" with { type: "text" };

/** Content-Security-Policy of the UI page. */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Content-Security-Policy of assets and error answers. */
const ASSET_CSP = "default-src 'none'; frame-ancestors 'none'";

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/** A bundled file ends with a source map comment whose map we do not serve: drop it. */
function withoutSourceMap(text: string): string {
  return text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
}

/** Asset path below `/web/app/` → [content type, text]. */
const SOURCES: ReadonlyArray<readonly [string, string, string]> = [
  ["app.css", CSS, appCss],
  ["account.js", JS, accountJs],
  ["api.js", JS, apiJs],
  ["audit.js", JS, auditJs],
  ["dom.js", JS, domJs],
  ["keys.js", JS, keysJs],
  ["login.js", JS, loginJs],
  ["main.js", JS, mainJs],
  ["player.js", JS, playerJs],
  ["qrcode.js", JS, qrcodeJs],
  ["recordings.js", JS, recordingsJs],
  ["resources.js", JS, resourcesJs],
  ["sessions.js", JS, sessionsJs],
  ["setup.js", JS, setupJs],
  ["terminal.js", JS, terminalJs],
  ["tty.js", JS, ttyJs],
  ["xterm_theme.js", JS, xtermThemeJs],
  ["vendor/xterm.mjs", JS, withoutSourceMap(xtermJs)],
  ["vendor/xterm.css", CSS, xtermCss],
  ["vendor/addon-fit.mjs", JS, withoutSourceMap(fitJs)],
  ["vendor/qr.mjs", JS, qrJs],
];

interface Asset {
  type: string;
  body: Uint8Array<ArrayBuffer>;
  etag: string;
}

function makeAsset(type: string, text: string): Asset {
  const body = new TextEncoder().encode(text);
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
  return { type, body, etag };
}

/** The assets, by path below `/web/app/`. */
export const UI_ASSETS: ReadonlyMap<string, Asset> = new Map(
  SOURCES.map(([name, type, text]) => [name, makeAsset(type, text)]),
);

const INDEX = makeAsset("text/html; charset=utf-8", indexHtml);

function headers(extra: Record<string, string>): Headers {
  return new Headers({ ...SECURITY_HEADERS, ...extra });
}

function errorResponse(status: number, message: string, extra: Record<string, string> = {}) {
  return new Response(JSON.stringify({ error: { message } }), {
    status,
    headers: headers({
      "content-type": "application/json",
      "content-security-policy": ASSET_CSP,
      "cache-control": "no-store",
      ...extra,
    }),
  });
}

/** True for the paths {@link serveWebUi} answers: `/web` and everything below it. */
export function isWebUiPath(path: string): boolean {
  return path === "/web" || path.startsWith("/web/");
}

/** Does `If-None-Match` name this ETag (or `*`)? */
function matches(ifNoneMatch: string | null, etag: string): boolean {
  if (ifNoneMatch === null) return false;
  return ifNoneMatch.split(",").some((t) => {
    const tag = t.trim().replace(/^W\//, "");
    return tag === "*" || tag === etag;
  });
}

/**
 * Answers a request for the UI: GET or HEAD of `/web`, `/web/...` (the page) or
 * `/web/app/<asset>`. Other paths and methods get JSON errors (404, 405).
 */
export function serveWebUi(request: Request): Response {
  const path = new URL(request.url).pathname;
  if (!isWebUiPath(path)) return errorResponse(404, `Cannot find ${path}`);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return errorResponse(405, `Cannot show the web UI: method ${request.method} is not allowed`, {
      allow: "GET, HEAD",
    });
  }
  const head = request.method === "HEAD";
  if (path.startsWith("/web/app/")) {
    const asset = UI_ASSETS.get(path.slice("/web/app/".length));
    if (asset === undefined) return errorResponse(404, `Cannot find ${path}`);
    const h = headers({
      "content-type": asset.type,
      "content-security-policy": ASSET_CSP,
      "cache-control": "no-cache",
      etag: asset.etag,
    });
    if (matches(request.headers.get("if-none-match"), asset.etag)) {
      return new Response(null, { status: 304, headers: h });
    }
    h.set("content-length", String(asset.body.byteLength));
    return new Response(head ? null : asset.body, { status: 200, headers: h });
  }
  return new Response(head ? null : INDEX.body, {
    status: 200,
    headers: headers({
      "content-type": INDEX.type,
      "content-security-policy": UI_CSP,
      "cache-control": "no-store",
      "content-length": String(INDEX.body.byteLength),
    }),
  });
}
