import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { escapeHtml, LANDING_PAGE_CSP, landingPage } from "./pages.ts";
import { redactPath } from "./server.ts";

function inlineHash(html: string, tag: "script" | "style"): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html);
  assert.ok(m, `no <${tag}> in the page`);
  return `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`;
}

Deno.test("landingPage() escapes the cluster name and the proxy address", () => {
  const html = landingPage("<b>x</b>", 'evil"host:443');
  assert.ok(html.includes("&#60;b&#62;x&#60;/b&#62;"));
  assert.ok(!html.includes("<b>x</b>"));
  assert.ok(html.includes("evil&#34;host:443"));
  assert.doesNotMatch(landingPage(undefined, "p:443"), /Cluster:/);
});

Deno.test("landingPage() carries exactly the inline blocks its policy allows", () => {
  for (const fromBrowser of [false, true]) {
    const html = landingPage("c", "p:443", { fromBrowser });
    assert.ok(LANDING_PAGE_CSP.includes(`script-src ${inlineHash(html, "script")}`));
    assert.ok(LANDING_PAGE_CSP.includes(`style-src ${inlineHash(html, "style")}`));
    assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=|src=|href="http/);
    assert.match(html, new RegExp(`data-from-browser="${fromBrowser ? "yes" : "no"}"`));
  }
});

Deno.test("escapeHtml() escapes the five HTML metacharacters", () => {
  assert.equal(
    escapeHtml(`<a href="x" title='y'>&</a>`),
    "&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;&#38;&#60;/a&#62;",
  );
});

Deno.test("redactPath() masks token segments and long hex runs", () => {
  const token = "0123456789abcdef0123456789abcdef";
  for (
    const path of [
      `/web/invite/${token}`,
      `/web/reset/${token}`,
      `/webapi/users/password/token/${token}`,
      `/webapi/nope/${token}/x`,
    ]
  ) {
    const out = redactPath(path);
    assert.ok(!out.includes(token), out);
    assert.ok(out.endsWith("cdef") || out.endsWith("/x"), out);
  }
  assert.equal(redactPath("/webapi/ping"), "/webapi/ping");
  assert.ok(!redactPath("/web/invite/short-secret").includes("short-secret"));
});
