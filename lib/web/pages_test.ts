import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  accountSetupPage,
  escapeHtml,
  LANDING_PAGE_CSP,
  landingPage,
  SETUP_PAGE_CSP,
} from "./pages.ts";
import { redactPath } from "./server.ts";

function inlineHash(html: string, tag: "script" | "style"): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html);
  assert.ok(m, `no <${tag}> in the page`);
  return `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`;
}

Deno.test("accountSetupPage() carries exactly the inline blocks its policy allows", () => {
  const html = accountSetupPage();
  assert.ok(SETUP_PAGE_CSP.includes(`script-src ${inlineHash(html, "script")}`));
  assert.ok(SETUP_PAGE_CSP.includes(`style-src ${inlineHash(html, "style")}`));
  assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=|src=|href="http/);
  assert.doesNotMatch(html, /innerHTML/);
});

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

interface FakeElement {
  id: string;
  hidden: boolean;
  textContent: string;
  value: string;
  href: string;
  required: boolean;
  disabled: boolean;
  listeners: Record<string, (ev: { preventDefault(): void }) => unknown>;
  addEventListener(type: string, fn: (ev: { preventDefault(): void }) => unknown): void;
}

/** Runs the page's script against a minimal DOM, location, history and fetch. */
function runSetupScript(path: string, answers: Array<(init: RequestInit) => Response>) {
  const html = accountSetupPage();
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
  const elements = new Map<string, FakeElement>();
  for (const m of html.matchAll(/\sid="([^"]+)"([^>]*)>/g)) {
    const id = m[1]!;
    elements.set(id, {
      id,
      hidden: /\shidden/.test(m[2]!),
      textContent: "",
      value: "",
      href: "",
      required: false,
      disabled: false,
      listeners: {},
      addEventListener(type, fn) {
        this.listeners[type] = fn;
      },
    });
  }
  const requests: Array<{ url: string; init: RequestInit }> = [];
  const settled: Promise<unknown>[] = [];
  const fakeFetch = (url: string, init: RequestInit) => {
    requests.push({ url, init });
    const answer = answers.shift();
    assert.ok(answer, `unexpected request ${url}`);
    const p = Promise.resolve(answer(init));
    settled.push(p);
    return p;
  };
  const history = {
    replaced: "" as string,
    replaceState(_s: unknown, _t: string, url: string) {
      this.replaced = url;
    },
  };
  const document = {
    getElementById: (id: string) => {
      const el = elements.get(id);
      assert.ok(el, `the script looks up a missing element #${id}`);
      return el;
    },
  };
  const location = { pathname: path, host: "proxy.example.com:3080", port: "3080" };
  new Function("document", "location", "fetch", "history", script)(
    document,
    location,
    fakeFetch,
    history,
  );
  /** Lets the script's promise chains run to the end. */
  const drain = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await Promise.allSettled(settled);
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  return { el: (id: string) => elements.get(id)!, requests, history, drain };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

Deno.test("accountSetupPage() script enrolls TOTP and sets the password", async () => {
  const token = "0123456789abcdef0123456789abcdef";
  const page = runSetupScript(`/web/invite/${token}`, [
    () =>
      json(200, {
        user: "alice",
        kind: "invite",
        expires: "2026-01-02T00:00:00.000Z",
        otpauth_uri: "otpauth://totp/example:alice?secret=JBSW",
        otp_secret: "JBSW",
        second_factor_required: true,
      }),
    (init) => {
      assert.equal(init.method, "PUT");
      assert.deepEqual(JSON.parse(String(init.body)), {
        token,
        password: "a-long-password-1",
        second_factor_token: "123456",
      });
      return json(200, { user: "alice" });
    },
  ]);
  await page.drain();
  assert.equal(page.requests[0]!.url, `/webapi/users/password/token/${token}`);
  assert.equal(page.el("user").textContent, "alice");
  assert.equal(page.el("setup").hidden, false);
  assert.equal(page.el("otp").hidden, false);
  assert.equal(page.el("otp-secret").textContent, "JBSW");
  assert.equal(page.el("otp-link").href, "otpauth://totp/example:alice?secret=JBSW");
  assert.equal(page.el("code").required, true);

  const submit = () => page.el("form").listeners["submit"]!({ preventDefault() {} });
  page.el("pw1").value = "short";
  page.el("pw2").value = "short";
  await submit();
  assert.match(page.el("error").textContent, /at least 12 characters/);
  page.el("pw1").value = "a-long-password-1";
  page.el("pw2").value = "a-long-password-2";
  await submit();
  assert.match(page.el("error").textContent, /do not match/);
  page.el("pw2").value = "a-long-password-1";
  await submit();
  assert.match(page.el("error").textContent, /authenticator/);
  page.el("code").value = " 123456 ";
  await submit();
  await page.drain();
  assert.equal(page.requests.length, 2);
  assert.equal(page.el("done").hidden, false);
  assert.equal(page.el("setup").hidden, true);
  assert.equal(page.el("pw1").value, "");
  assert.equal(
    page.el("cmd").textContent,
    "tsh login --proxy=proxy.example.com:3080 --user=alice",
  );
  assert.equal(page.history.replaced, "/web");
});

Deno.test("accountSetupPage() script shows the server's error for a bad link", async () => {
  const page = runSetupScript("/web/reset/deadbeef", [
    () => json(403, { error: { message: "Cannot use token: it expired" } }),
  ]);
  await page.drain();
  assert.equal(page.el("title").textContent, "Reset your password");
  assert.equal(page.el("setup").hidden, true);
  assert.equal(page.el("error").hidden, false);
  assert.equal(page.el("error").textContent, "Cannot use this link: Cannot use token: it expired");
});
