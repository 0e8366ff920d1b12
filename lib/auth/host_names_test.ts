import assert from "node:assert/strict";
import { isKind } from "../errors/mod.ts";
import { findNameConflict, type HostClaim, isDnsName, validateHostNames } from "./host_names.ts";

const ME = "0b9e4b36-2f5e-4c8e-8d34-7e0f4c1a2b3c";
const OTHER = "7d3f4bd0-5a43-4bde-9b1a-3f5a2b1c9e01";
const claim = (o: Partial<HostClaim> = {}): HostClaim => ({
  hostId: ME,
  role: "Node",
  nodeName: "node-1",
  names: [],
  ...o,
});

Deno.test("isDnsName() accepts host names and refuses globs, underscores and long labels", () => {
  for (const n of ["a", "node-1", "node1.example.com", "xn--bcher-kva.example"]) {
    assert.equal(isDnsName(n), true, n);
  }
  for (const n of ["", "*", "a..b", "-a", "a-", "a_b", "a b", "x".repeat(64), "a.*.b"]) {
    assert.equal(isDnsName(n), false, n);
  }
});

Deno.test("validateHostNames() allows the host's own id but refuses another's", () => {
  validateHostNames(claim({ names: [ME, `${ME}.example`, "10.0.0.1", "::1"] }));
  for (const n of [OTHER, `${OTHER}.example`, OTHER.toUpperCase()]) {
    assert.throws(
      () => validateHostNames(claim({ names: [n] })),
      (e: Error) => isKind(e, "BadParameter") && /another host's id/.test(e.message),
    );
  }
  assert.throws(() => validateHostNames(claim({ nodeName: OTHER })), /another host's id/);
});

Deno.test("findNameConflict() lets proxies share names and anyone share IPs, nothing else", () => {
  const proxy: HostClaim = {
    hostId: OTHER,
    role: "Proxy",
    nodeName: "proxy-1",
    names: ["proxy.example.com", "10.0.0.9"],
  };
  const sharing = claim({ role: "Proxy", names: ["proxy.example.com"] });
  assert.equal(findNameConflict(sharing, [proxy], "example"), undefined);
  assert.equal(findNameConflict(claim({ names: ["10.0.0.9"] }), [proxy], "example"), undefined);
  assert.equal(
    findNameConflict(claim({ names: ["proxy.example.com"] }), [proxy], "example")?.name,
    "proxy.example.com",
  );
  assert.equal(
    findNameConflict(claim({ role: "Proxy", names: ["proxy-1.example"] }), [proxy], "example")
      ?.name,
    "proxy-1.example",
  );
  // The same host re-registering is never in conflict with itself.
  assert.equal(
    findNameConflict(claim({ hostId: OTHER, names: ["proxy.example.com"] }), [proxy], "example"),
    undefined,
  );
});
