import assert from "node:assert/strict";
import { maskSecret } from "./mod.ts";

Deno.test("maskSecret() hides short secrets entirely", () => {
  assert.equal(maskSecret("secret"), "******");
  assert.equal(maskSecret("ab"), "****");
});

Deno.test("maskSecret() keeps only the last quarter of long secrets", () => {
  const token = "0123456789abcdef0123456789abcdef";
  const masked = maskSecret(token);
  assert.equal(masked.length, 32);
  assert.equal(masked, "*".repeat(24) + "89abcdef");
  assert.ok(!masked.includes("0123456789abcdef"));
});
