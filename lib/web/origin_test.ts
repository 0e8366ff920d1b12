import assert from "node:assert/strict";
import { checkRequestOrigin, normalizeAuthority, originAuthority } from "./origin.ts";

Deno.test("normalizeAuthority() lowercases, adds the default port and rejects junk", () => {
  assert.equal(normalizeAuthority("Proxy.Example.COM", 443), "proxy.example.com:443");
  assert.equal(normalizeAuthority("proxy.example.com.:3080", 443), "proxy.example.com:3080");
  assert.equal(normalizeAuthority("[::1]:3080", 443), "[::1]:3080");
  for (const bad of ["", "a b", "host:0", "host:65536", "host:x", "user@host", "h/x"]) {
    assert.equal(normalizeAuthority(bad, 443), undefined, bad);
  }
});

Deno.test("originAuthority() accepts only https:// origins without a path", () => {
  assert.equal(originAuthority("https://proxy.example.com"), "proxy.example.com:443");
  assert.equal(originAuthority("HTTPS://proxy.example.com:3080"), "proxy.example.com:3080");
  for (const bad of ["null", "http://proxy", "https://proxy/", "https://u@proxy", "proxy"]) {
    assert.equal(originAuthority(bad), undefined, bad);
  }
});

Deno.test("checkRequestOrigin() passes no Origin, the public addresses and the request's authority", () => {
  const base = { secFetchSite: undefined, host: "10.0.0.5:3080", publicAddrs: ["p.example:443"] };
  assert.equal(checkRequestOrigin({ ...base, origin: undefined }), undefined);
  assert.equal(checkRequestOrigin({ ...base, origin: "https://p.example" }), undefined);
  assert.equal(checkRequestOrigin({ ...base, origin: "https://10.0.0.5:3080" }), undefined);
  assert.equal(
    checkRequestOrigin({ ...base, origin: "https://10.0.0.5:3080", secFetchSite: "same-site" }),
    undefined,
  );
});

Deno.test("checkRequestOrigin() refuses other sites, opaque origins and cross-site fetches", () => {
  const base = { secFetchSite: undefined, host: "p.example", publicAddrs: [] };
  assert.match(checkRequestOrigin({ ...base, origin: "https://evil.example" })!, /another site/);
  assert.match(checkRequestOrigin({ ...base, origin: "https://p.example:8443" })!, /another/);
  assert.match(checkRequestOrigin({ ...base, origin: "http://p.example" })!, /not an https/);
  assert.match(checkRequestOrigin({ ...base, origin: "null" })!, /not an https/);
  assert.match(
    checkRequestOrigin({ ...base, origin: undefined, secFetchSite: "cross-site" })!,
    /Sec-Fetch-Site/,
  );
  // Without a Host header only the configured addresses count.
  assert.match(
    checkRequestOrigin({ ...base, host: undefined, origin: "https://p.example" })!,
    /another site/,
  );
});
