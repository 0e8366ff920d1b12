import assert from "node:assert/strict";
import { isWebUiPath, serveWebUi, UI_ASSETS, UI_CSP } from "./ui.ts";

const BASE = "https://proxy.example.com:3080";

function get(path: string, init: RequestInit = {}): Response {
  return serveWebUi(new Request(BASE + path, init));
}

Deno.test("serveWebUi() answers every /web path with the app page under a strict CSP", async () => {
  for (const path of ["/web", "/web/login", "/web/cluster/one/resources", "/web/invite/abc"]) {
    const res = get(path);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.headers.get("content-security-policy"), UI_CSP);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.match(res.headers.get("strict-transport-security") ?? "", /max-age=\d+/);
    const html = await res.text();
    assert.match(html, /<script type="module" src="\/web\/app\/main\.js"><\/script>/);
    // No inline script or style: every <script> has a src, and there is no <style>.
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);
    assert.doesNotMatch(html, /<style|\sstyle=/);
  }
  assert.match(UI_CSP, /script-src 'self'(;|$)/);
  assert.match(UI_CSP, /frame-ancestors 'none'/);
  assert.doesNotMatch(UI_CSP, /https?:/);
});

Deno.test("serveWebUi() serves our modules and the npm packages' files with ETags", async () => {
  for (
    const name of [
      "main.js",
      "app.css",
      "vendor/xterm.mjs",
      "vendor/xterm.css",
      "vendor/addon-fit.mjs",
      "vendor/qr.mjs",
    ]
  ) {
    const res = get(`/web/app/${name}`);
    assert.equal(res.status, 200, name);
    assert.match(
      res.headers.get("content-type") ?? "",
      name.endsWith(".css") ? /^text\/css/ : /^text\/javascript/,
    );
    assert.equal(res.headers.get("cache-control"), "no-cache");
    assert.match(res.headers.get("etag") ?? "", /^"[A-Za-z0-9_-]{27}"$/);
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(Number(res.headers.get("content-length")), body.byteLength);
    assert.ok(body.byteLength > 100, name);
  }
  const xterm = await get("/web/app/vendor/xterm.mjs").text();
  assert.match(xterm, /export\s*\{/);
  assert.doesNotMatch(xterm, /sourceMappingURL/);
});

Deno.test("serveWebUi() answers If-None-Match with 304 and HEAD without a body", async () => {
  const etag = UI_ASSETS.get("main.js")!.etag;
  const res = get("/web/app/main.js", { headers: { "if-none-match": `W/"x", ${etag}` } });
  assert.equal(res.status, 304);
  assert.equal(res.body, null);
  assert.equal(res.headers.get("etag"), etag);
  assert.equal(get("/web/app/main.js", { headers: { "if-none-match": '"other"' } }).status, 200);
  const head = get("/web/app/main.js", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.body, null);
  assert.equal(await get("/web/login", { method: "HEAD" }).text(), "");
});

Deno.test("serveWebUi() refuses unknown assets, other methods and other paths", async () => {
  for (
    const path of [
      "/web/app/nope.js",
      "/web/app/vendor%2Fxterm.mjs",
      "/web/app/vendor/",
      "/webapi/ping",
    ]
  ) {
    const res = get(path);
    assert.equal(res.status, 404, path);
    assert.match((await res.json()).error.message, /^Cannot find /);
  }
  const post = get("/web/login", { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  assert.equal(isWebUiPath("/web"), true);
  assert.equal(isWebUiPath("/webapi/ping"), false);
  assert.equal(isWebUiPath("/web/app/main.js"), true);
});
