import assert from "node:assert/strict";
import { NODE_OFFLINE_AFTER_MS, SERVER_ANNOUNCE_TTL_MS } from "../../lib/config/mod.ts";
import type { ServerResource } from "../../lib/resource/mod.ts";
import { formatNodeTable, nodeStatus } from "./ls.ts";

const NOW = Date.parse("2026-01-01T12:00:00Z");

function node(name: string, lastHeartbeat: number, tunnel: boolean): ServerResource {
  return {
    kind: "node",
    version: "v2",
    metadata: {
      name: crypto.randomUUID(),
      labels: { env: "test" },
      expires: new Date(lastHeartbeat + SERVER_ANNOUNCE_TTL_MS).toISOString(),
    },
    spec: {
      addr: tunnel ? "" : "10.0.0.5:3022",
      hostname: name,
      version: "0.1.0",
      ...(tunnel ? { use_tunnel: true } : {}),
    },
  };
}

Deno.test("formatNodeTable() shows a node offline with its last heartbeat when it stopped heartbeating", () => {
  const fresh = node("live-tunnel", NOW - 30_000, true);
  const stopped = node("gone-tunnel", NOW - 5 * 60_000, true);
  const direct = node("gone-direct", NOW - 3 * 3600_000, false);
  assert.deepEqual(nodeStatus(fresh, NOW), { online: true });
  assert.deepEqual(nodeStatus(stopped, NOW), { online: false, lastSeenMs: 5 * 60_000 });
  assert.equal(nodeStatus(node("edge", NOW - NODE_OFFLINE_AFTER_MS, true), NOW).online, true);
  const text = formatNodeTable([fresh, stopped, direct], NOW);
  const line = (name: string) => text.split("\n").find((l) => l.startsWith(name)) ?? "";
  assert.match(line("live-tunnel"), /⟵ Tunnel\s+env=test/);
  assert.doesNotMatch(line("live-tunnel"), /offline/);
  assert.match(line("gone-tunnel"), /⟵ Tunnel \(offline, last seen 5m ago\)/);
  assert.match(line("gone-direct"), /10\.0\.0\.5:3022 \(offline, last seen 3h ago\)/);
});
