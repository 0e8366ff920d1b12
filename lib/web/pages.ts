/**
 * The landing page of `/`: how to log in with tsh, and a link to the web UI (ui.ts serves
 * `/web`). Self-contained (inline CSS and JS, no external assets); the
 * Content-Security-Policy allows exactly these inline blocks (by hash).
 */
import { createHash } from "node:crypto";

const STYLE = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 0; display: flex; justify-content: center; }
main { max-width: 36rem; width: 100%; padding: 2rem 1.25rem; }
h1 { font-size: 1.5rem; }
h2 { font-size: 1.1rem; margin-top: 1.5rem; }
label { display: block; margin: 0.75rem 0; }
input { display: block; width: 100%; box-sizing: border-box; padding: 0.5rem; font-size: 1rem; }
button { margin-top: 0.75rem; padding: 0.5rem 1.25rem; font-size: 1rem; }
code, pre { font-family: ui-monospace, monospace; overflow-wrap: anywhere; white-space: pre-wrap; }
pre { padding: 0.75rem; border: 1px solid #8884; border-radius: 4px; }
.muted { opacity: 0.75; }
.error { color: #c62828; font-weight: 600; }
`.trim();

/** Fills in the address the browser shows, when the server knows no public address. */
const LANDING_SCRIPT = `
"use strict";
(() => {
  const el = document.getElementById("proxy-addr");
  if (el && el.dataset.fromBrowser === "yes") {
    el.textContent = location.port ? location.host : location.host + ":443";
  }
})();
`.trim();

function cspHash(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/** Content-Security-Policy of the landing page. */
export const LANDING_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${cspHash(LANDING_SCRIPT)}`,
  `style-src ${cspHash(STYLE)}`,
  "img-src 'self'",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Content-Security-Policy of every non-HTML response. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string, script?: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
${script === undefined ? "" : `<script>${script}</script>\n`}</body>
</html>
`;
}

/** Options of {@link landingPage}. */
export interface LandingPageOptions {
  /**
   * `proxyAddr` is a placeholder: the page's script replaces it with the address the browser
   * shows (for proxies without a configured public address).
   * @default {false}
   */
  fromBrowser?: boolean;
}

/**
 * The landing page of `/`. `proxyAddr` comes from the proxy's configuration, never
 * from the request.
 */
export function landingPage(
  clusterName: string | undefined,
  proxyAddr: string,
  options: LandingPageOptions = {},
): string {
  const cluster = clusterName === undefined
    ? ""
    : `<p>Cluster: <strong>${escapeHtml(clusterName)}</strong></p>\n`;
  const fromBrowser = options.fromBrowser === true ? "yes" : "no";
  return page(
    clusterName === undefined ? "Teleport" : `Teleport: ${clusterName}`,
    `<h1>Teleport</h1>
${cluster}<p>This is the cluster's proxy. Log in from a terminal with tsh:</p>
<pre>tsh login --proxy=<span id="proxy-addr" data-from-browser="${fromBrowser}">${
      escapeHtml(proxyAddr)
    }</span> --user=&lt;your user name&gt;</pre>
<p><a href="/web">Open the web UI</a></p>
<p class="muted">New users: open the invitation link your administrator gave you to set a
password first.</p>`,
    LANDING_SCRIPT,
  );
}
