import assert from "node:assert/strict";
import type { ServerResource } from "../resource/mod.ts";
import { registeredWhere } from "./ssh_proxy.ts";

function node(addr: string, tunnel: boolean): ServerResource {
  return {
    kind: "node",
    version: "v2",
    metadata: { name: crypto.randomUUID() },
    spec: { addr, hostname: "n1", version: "0.1.0", ...(tunnel ? { use_tunnel: true } : {}) },
  };
}

Deno.test("registeredWhere() names the tunnel, never an empty address, when a node has none", () => {
  assert.equal(
    registeredWhere(node("10.0.0.5:3022", false)),
    "the node is registered at 10.0.0.5:3022",
  );
  for (const n of [node("", true), node("", false)]) {
    const text = registeredWhere(n);
    assert.match(text, /reverse tunnel, which is not connected; is the node running\?/);
    assert.doesNotMatch(text, /registered at \)?$/);
  }
});
