import assert from "node:assert/strict";
import { groupById, GROUPS, missingFor, packageOf, PACKAGES, skipGroup } from "./prereqs.ts";
import { skipReport } from "./test.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

/** Every `*_test.ts` under lib/, tests/, cli/ and tools/, repo relative. */
function testFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(`${ROOT}${dir}`)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      else if (e.name.endsWith("_test.ts")) out.push(path);
    }
  };
  for (const top of ["lib", "tests", "cli", "tools"]) walk(top);
  return out;
}

Deno.test("GROUPS names existing test files that ask skipGroup() for their own group", () => {
  const ids = new Set<string>();
  for (const g of GROUPS) {
    assert.ok(!ids.has(g.id), `duplicate group ${g.id}`);
    ids.add(g.id);
    for (const file of g.files) {
      const text = Deno.readTextFileSync(`${ROOT}${file}`);
      assert.ok(text.includes(`skipGroup("${g.id}")`), `${file} never asks skipGroup("${g.id}")`);
    }
    for (const tool of g.tools ?? []) {
      assert.ok(packageOf(tool) !== undefined || tool === "npx" || tool === "bash", tool);
    }
  }
});

Deno.test("every skip in a test goes through skipGroup() so that task test reports it", () => {
  for (const file of testFiles()) {
    if (file === "tools/prereqs_test.ts") continue; // names groups that do not exist
    const text = Deno.readTextFileSync(`${ROOT}${file}`);
    assert.doesNotMatch(text, /ignore:\s*(?:missing|skipNetns)\(|ignore:\s*!?has/, file);
    for (const m of text.matchAll(/skipGroup\("([a-z0-9-]+)"\)/g)) {
      const g = groupById(m[1]!);
      assert.ok(g.files.includes(file), `${file} uses group ${g.id}; list it in its files`);
    }
  }
});

Deno.test("the README lists every package and the command that installs them", () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  assert.ok(readme.includes("npx -y deno@2.9.6 task deps"), "README: the deps command");
  for (const p of PACKAGES) assert.ok(readme.includes(`\`${p.name}\``), `README: ${p.name}`);
});

Deno.test("missingFor() names root, absent commands with their package, and the address", () => {
  const g = {
    id: "x",
    title: "x",
    files: [],
    root: true,
    tools: ["td-no-such-tool", "tinyproxy-td-missing"],
  };
  const why = missingFor(g);
  if (Deno.uid() !== 0) assert.equal(why[0], "needs root");
  assert.match(why.at(-1)!, /^needs td-no-such-tool, tinyproxy-td-missing$/);
  assert.deepEqual(missingFor({ id: "y", title: "y", files: [], tools: ["sh"] }), []);
  assert.throws(() => skipGroup("no-such-group"), /add it to GROUPS in tools\/prereqs\.ts/);
});

Deno.test("skipReport() lists skipped groups with reasons and the install command", () => {
  const groups = [
    { id: "needs-x", title: "X things", files: ["tests/x_test.ts"], tools: ["td-no-such-tool"] },
    { id: "fine", title: "fine", files: ["tests/y_test.ts"], tools: ["sh"] },
  ];
  const text = skipReport(groups, false, "npx -y deno@2.9.6");
  assert.match(text, /SKIPPED: 1 group\(s\)/);
  assert.match(text, /- needs-x: X things \[tests\/x_test\.ts\]: needs td-no-such-tool/);
  assert.doesNotMatch(text, /fine/);
  assert.match(text, /npx -y deno@2\.9\.6 task deps/);
  assert.match(skipReport([groups[1]!], false, "deno"), /none skipped/);
  assert.match(skipReport(groups, true, "deno"), /none skipped \(CI/);
});
