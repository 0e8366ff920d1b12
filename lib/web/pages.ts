/**
 * The only HTML the proxy serves: a landing page and the account-setup page for invite and
 * reset links. Both are self-contained (inline CSS and JS, no external assets); the
 * Content-Security-Policy allows exactly these inline blocks (by hash) and requests to the
 * proxy itself. The setup page reads its token from the URL, talks to
 * `/webapi/users/password/token` and writes every server value with `textContent`.
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

const SETUP_SCRIPT = `
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const parts = location.pathname.split("/");
  const kind = parts[2] === "reset" ? "reset" : "invite";
  const token = decodeURIComponent(parts[3] || "");
  let info = null;
  const fail = (message) => {
    $("error").textContent = message;
    $("error").hidden = false;
  };
  const api = async (method, path, body) => {
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(path, {
      method, headers, cache: "no-store", credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      throw new Error((data && data.error && data.error.message) || "HTTP " + res.status);
    }
    return data;
  };
  $("title").textContent = kind === "reset" ? "Reset your password" : "Set up your account";
  api("GET", "/webapi/users/password/token/" + encodeURIComponent(token)).then((d) => {
    info = d;
    $("status").hidden = true;
    $("user").textContent = d.user;
    $("expires").textContent = new Date(d.expires).toLocaleString();
    if (d.otpauth_uri) {
      $("otp").hidden = false;
      $("otp-uri").textContent = d.otpauth_uri;
      $("otp-link").href = d.otpauth_uri;
      $("otp-secret").textContent = d.otp_secret || "";
      $("code-field").hidden = false;
      $("code").required = d.second_factor_required === true;
      $("code-optional").hidden = d.second_factor_required === true;
    }
    $("setup").hidden = false;
  }).catch((e) => {
    $("status").hidden = true;
    fail("Cannot use this link: " + e.message);
  });
  $("form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").hidden = true;
    const password = $("pw1").value;
    if (password.length < 12) return fail("The password must be at least 12 characters long.");
    if (password !== $("pw2").value) return fail("The two passwords do not match.");
    const code = $("code").value.trim();
    if (info && info.second_factor_required && code === "") {
      return fail("Enter the code your authenticator app shows.");
    }
    const body = { token, password };
    if (code !== "") body.second_factor_token = code;
    $("submit").disabled = true;
    try {
      const r = await api("PUT", "/webapi/users/password/token", body);
      $("pw1").value = "";
      $("pw2").value = "";
      $("setup").hidden = true;
      $("done").hidden = false;
      const host = location.port ? location.host : location.host + ":443";
      $("cmd").textContent = "tsh login --proxy=" + host + " --user=" + r.user;
      history.replaceState(null, "", "/web");
    } catch (e) {
      fail("Cannot set the password: " + e.message);
      $("submit").disabled = false;
    }
  });
})();
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

/** Content-Security-Policy of the account-setup page. */
export const SETUP_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${cspHash(SETUP_SCRIPT)}`,
  `style-src ${cspHash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

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

/** The account-setup page for `/web/invite/<token>` and `/web/reset/<token>` (token-free). */
export function accountSetupPage(): string {
  return page(
    "Account setup",
    `<h1 id="title">Set up your account</h1>
<p id="status" role="status">Checking the link…</p>
<section id="setup" hidden>
<p>User: <strong id="user"></strong></p>
<p class="muted">This link expires <span id="expires"></span>.</p>
<div id="otp" hidden>
<h2>Authenticator app</h2>
<p>Add this account to an authenticator app (TOTP): open the link below on your phone, or type
in the secret.</p>
<p><a id="otp-link" href="#"><code id="otp-uri"></code></a></p>
<p>Secret: <code id="otp-secret"></code></p>
</div>
<form id="form" autocomplete="off">
<label>New password (at least 12 characters)
<input id="pw1" type="password" autocomplete="new-password" minlength="12" required></label>
<label>Repeat the password
<input id="pw2" type="password" autocomplete="new-password" minlength="12" required></label>
<label id="code-field" hidden>Code from the authenticator app
<span id="code-optional" class="muted">(optional)</span>
<input id="code" inputmode="numeric" autocomplete="one-time-code"></label>
<button id="submit" type="submit">Set password</button>
</form>
</section>
<section id="done" hidden>
<p>Password set. Log in with:</p>
<pre id="cmd"></pre>
</section>
<p id="error" class="error" role="alert" hidden></p>`,
    SETUP_SCRIPT,
  );
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
 * The landing page of `/` and `/web`. `proxyAddr` comes from the proxy's configuration, never
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
<p class="muted">New users: open the invitation link your administrator gave you to set a
password first.</p>`,
    LANDING_SCRIPT,
  );
}
