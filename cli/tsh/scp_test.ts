import assert from "node:assert/strict";
import { quoteRemotePath } from "../../lib/client/mod.ts";
import { CliError } from "../_common.ts";
import { linePrefixer, parseLabelTarget } from "./_labels.ts";
import { parseScpLocation, planScp } from "./scp.ts";

Deno.test("parseScpLocation() tells remote NODE:PATH from local paths with colons", () => {
  assert.deepEqual(parseScpLocation("alice@web1:/tmp/x"), {
    kind: "remote",
    login: "alice",
    node: "web1",
    path: "/tmp/x",
  });
  assert.deepEqual(parseScpLocation("web1:"), { kind: "remote", node: "web1", path: "" });
  assert.deepEqual(parseScpLocation("./a:b"), { kind: "local", path: "./a:b" });
  assert.deepEqual(parseScpLocation("/x:y"), { kind: "local", path: "/x:y" });
  assert.deepEqual(parseScpLocation("plain"), { kind: "local", path: "plain" });
  assert.throws(() => parseScpLocation("alice@:x"), CliError);
});

Deno.test("planScp() picks the direction and refuses two remote or two local sides", () => {
  const up = planScp(["a", "b", "bob@n1:dir"], undefined, () => "me");
  assert.deepEqual(up, {
    direction: "upload",
    node: "n1",
    login: "bob",
    sources: ["a", "b"],
    target: "dir",
  });
  const down = planScp(["n1:x", "n1:y", "."], "root", () => "me");
  assert.deepEqual(down, {
    direction: "download",
    node: "n1",
    login: "root",
    sources: ["x", "y"],
    target: ".",
  });
  assert.equal(planScp(["n1:x", "."], undefined, () => "me").login, "me");
  assert.throws(() => planScp(["a", "b"], undefined, () => "me"), /one side must be remote/);
  assert.throws(() => planScp(["n1:a", "n2:b"], undefined, () => "me"), /two nodes/);
  assert.throws(() => planScp(["n1:a", "n2:b", "."], undefined, () => "me"), /same LOGIN@NODE/);
  assert.throws(() => planScp(["n1:a"], undefined, () => "me"), /a destination/);
});

Deno.test("quoteRemotePath() quotes for the shell and keeps ~/ expandable", () => {
  assert.equal(quoteRemotePath(""), ".");
  assert.equal(quoteRemotePath("/tmp/it's"), `'/tmp/it'\\''s'`);
  assert.equal(quoteRemotePath("~/a b"), "~/'a b'");
  assert.equal(quoteRemotePath("$(reboot)"), "'$(reboot)'");
});

Deno.test("parseLabelTarget() reads KEY=VALUE lists and refuses other parts", () => {
  assert.deepEqual(parseLabelTarget("env=prod,tier=db"), [["env", "prod"], ["tier", "db"]]);
  assert.deepEqual(parseLabelTarget("env="), [["env", ""]]);
  assert.throws(() => parseLabelTarget("env=prod,oops"), /"oops" .* is not a label/);
});

Deno.test("linePrefixer() prefixes whole lines across chunks and flushes the rest", async () => {
  const lines: string[] = [];
  const p = linePrefixer("web1", (l) => {
    lines.push(new TextDecoder().decode(l));
    return Promise.resolve();
  });
  const enc = new TextEncoder();
  await p.push(enc.encode("one\ntw"));
  await p.push(enc.encode("o\nthr"));
  await p.flush();
  assert.deepEqual(lines, ["[web1] one\n", "[web1] two\n", "[web1] thr\n"]);
});
