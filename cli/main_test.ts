import assert from "node:assert/strict";
import { pickPersonality } from "./main.ts";

Deno.test("pickPersonality() uses argv0 symlink names first", () => {
  assert.deepEqual(pickPersonality(["status"], "/usr/local/bin/tctl"), {
    personality: "tctl",
    args: ["status"],
  });
  assert.deepEqual(pickPersonality(["ssh", "n1"], "tsh"), {
    personality: "tsh",
    args: ["ssh", "n1"],
  });
});

Deno.test("pickPersonality() falls back to the first argument, then teleport", () => {
  assert.deepEqual(pickPersonality(["tctl", "status"], "/usr/bin/deno"), {
    personality: "tctl",
    args: ["status"],
  });
  assert.deepEqual(pickPersonality(["start"], "/usr/local/bin/teleport"), {
    personality: "teleport",
    args: ["start"],
  });
});
