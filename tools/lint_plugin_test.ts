import assert from "node:assert/strict";
import plugin, {
  CLI_RANK,
  ENTRY_RANK,
  normalize,
  NPM_EDGES,
  npmPackageName,
  RANKS,
  repoRelative,
  RULES,
} from "./lint_plugin.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");

/** Runs the plugin on `source` as if it were the repo file `file`; returns `id: message` lines. */
function lint(file: string, source: string): string[] {
  return Deno.lint.runPlugin(plugin, file, source).map((d) => `${d.id}: ${d.message}`);
}

/** Only the diagnostics of one rule. */
function lintRule(rule: string, file: string, source: string): string[] {
  return lint(file, source).filter((line) => line.startsWith(`teleport/${rule}: `));
}

Deno.test("plugin registers every rule of RULES under the teleport prefix", () => {
  assert.equal(plugin.name, "teleport");
  assert.deepEqual(Object.keys(plugin.rules).sort(), Object.keys(RULES).sort());
  assert.deepEqual(Object.keys(RULES).sort(), ["deep-import", "layering", "no-jsr", "npm-edges"]);
});

Deno.test("layering allows a downward import through mod.ts", () => {
  assert.deepEqual(lint("lib/auth/x.ts", `import { NotFound } from "../errors/mod.ts";`), []);
  assert.deepEqual(lint("lib/auth/x.ts", `import type { Backend } from "../backend/mod.ts";`), []);
  assert.deepEqual(lint("lib/service/x.ts", `export * from "../proxy/mod.ts";`), []);
});

Deno.test("layering reports an upward import", () => {
  assert.deepEqual(lint("lib/backend/kv.ts", `import { x } from "../auth/mod.ts";`), [
    "teleport/layering: upward import: lib/backend (rank 2) must not import lib/auth (rank 5); " +
    "see DESIGN.md §3",
  ]);
  assert.equal(lintRule("layering", "lib/errors/x.ts", `import "../log/mod.ts";`).length, 1);
});

Deno.test("layering reports a same-rank import across modules", () => {
  assert.deepEqual(lint("lib/node/x.ts", `import { p } from "../proxy/mod.ts";`), [
    "teleport/layering: upward import: lib/node (rank 5) must not import lib/proxy (rank 5); " +
    "see DESIGN.md §3",
  ]);
  assert.equal(lintRule("layering", "lib/clock/x.ts", `import "../errors/mod.ts";`).length, 1);
});

Deno.test("layering allows any import within the same module", () => {
  assert.deepEqual(lint("lib/auth/x.ts", `import "./_helper.ts";`), []);
  assert.deepEqual(lint("lib/auth/sub/x.ts", `import "../server.ts";`), []);
  assert.deepEqual(lint("lib/auth/x_test.ts", `import { s } from "../auth/_server.ts";`), []);
});

Deno.test("layering matches the rank table for every pair of lib modules", () => {
  const names = Object.keys(RANKS);
  for (const from of names) {
    for (const to of names) {
      const found = lintRule("layering", `lib/${from}/a.ts`, `import "../${to}/mod.ts";`);
      const forbidden = from !== to && RANKS[to]! >= RANKS[from]!;
      assert.equal(found.length, forbidden ? 1 : 0, `lib/${from} -> lib/${to}: ${found}`);
    }
  }
});

Deno.test("layering places cli/ and the entry points above lib/", () => {
  assert.equal(CLI_RANK, 8);
  assert.equal(ENTRY_RANK, 9);
  assert.deepEqual(lint("cli/tctl/tokens.ts", `import "../../lib/service/mod.ts";`), []);
  assert.deepEqual(lint("cli/tctl/tokens.ts", `import "../tsh/login.ts";`), []);
  assert.deepEqual(lint("main.ts", `import "./cli/main.ts"; import "./lib/service/mod.ts";`), []);
  assert.deepEqual(lint("mod.ts", `export * from "./lib/client/mod.ts";`), []);
  assert.deepEqual(lint("main.ts", `import "./mod.ts";`), []);
  assert.deepEqual(lint("cli/x.ts", `import "../main.ts";`), [
    "teleport/layering: upward import: cli/ (rank 8) must not import main.ts (rank 9); " +
    "see DESIGN.md §3",
  ]);
  assert.deepEqual(lint("lib/service/x.ts", `import "../../cli/start/start.ts";`), [
    "teleport/layering: lib/service must not import cli/ (cli/start/start.ts); see DESIGN.md §3",
  ]);
});

Deno.test("layering reports lib modules without a rank", () => {
  assert.deepEqual(lint("lib/auth/x.ts", `import "../frobnicate/mod.ts";`), [
    "teleport/layering: lib/frobnicate has no rank; add it to tools/lint_plugin.ts and DESIGN.md",
  ]);
  // An unranked importer is reported once per file, not once per import.
  assert.deepEqual(lint("lib/frob/x.ts", `import "../errors/mod.ts"; import "../log/mod.ts";`), [
    "teleport/layering: lib/frob has no rank; add it to tools/lint_plugin.ts and DESIGN.md",
  ]);
});

Deno.test("layering and npm-edges skip tests/, bench/ and tools/", () => {
  assert.deepEqual(lint("tests/integration/a_test.ts", `import "../../lib/service/mod.ts";`), []);
  assert.deepEqual(lint("bench/ssh_bench.ts", `import "npm:ssh2"; import "../cli/x.ts";`), []);
  assert.deepEqual(lint("tools/x.ts", `import "yaml";`), []);
});

Deno.test("layering checks dynamic imports with a literal specifier", () => {
  const upward = "teleport/layering: upward import: lib/backend (rank 2) must not import " +
    "lib/auth (rank 5); see DESIGN.md §3";
  assert.deepEqual(lint("lib/backend/x.ts", `const m = await import("../auth/mod.ts");`), [upward]);
  assert.deepEqual(lint("lib/backend/x.ts", "const m = await import(`../auth/mod.ts`);"), [upward]);
  // A computed specifier cannot be resolved and is left alone.
  assert.deepEqual(
    lint("lib/backend/x.ts", "const n = 'auth';\nawait import(`../${n}/mod.ts`);"),
    [],
  );
});

Deno.test("layering checks export-from and import types", () => {
  assert.equal(lintRule("layering", "lib/net/x.ts", `export * from "../web/mod.ts";`).length, 1);
  assert.equal(
    lintRule("layering", "lib/net/x.ts", `export { a } from "../web/mod.ts";`).length,
    1,
  );
  assert.equal(
    lintRule("layering", "lib/net/x.ts", `export type { A } from "../web/mod.ts";`).length,
    1,
  );
  assert.equal(
    lintRule("layering", "lib/net/x.ts", `type W = typeof import("../web/mod.ts");`).length,
    1,
  );
});

Deno.test("layering resolves absolute file names inside the repo, ignores others", () => {
  assert.equal(
    lintRule("layering", `${ROOT}/lib/backend/x.ts`, `import "../auth/mod.ts";`).length,
    1,
  );
  assert.deepEqual(lint("/elsewhere/lib/backend/x.ts", `import "../auth/mod.ts";`), []);
});

Deno.test("deep-import reports an import of a module file other than mod.ts", () => {
  assert.deepEqual(lint("lib/auth/x.ts", `import { NotFound } from "../errors/errors.ts";`), [
    "teleport/deep-import: deep import into lib/errors: import lib/errors/mod.ts instead " +
    "(got lib/errors/errors.ts)",
  ]);
  assert.equal(
    lintRule("deep-import", "cli/tctl/x.ts", `import "../../lib/auth/_s.ts";`).length,
    1,
  );
  assert.equal(lintRule("deep-import", "main.ts", `import "./lib/web/static/x.ts";`).length, 1);
  assert.equal(lintRule("deep-import", "lib/auth/x.ts", `export * from "../ca/ssh.ts";`).length, 1);
});

Deno.test("deep-import applies to tests too, except tests inside the module", () => {
  assert.equal(
    lintRule("deep-import", "tests/integration/a_test.ts", `import "../../lib/auth/server.ts";`)
      .length,
    1,
  );
  assert.equal(
    lintRule("deep-import", "lib/node/x_test.ts", `import "../auth/server.ts";`).length,
    1,
  );
  assert.deepEqual(lint("lib/auth/server_test.ts", `import "./server.ts";`), []);
  assert.deepEqual(lint("tests/integration/a_test.ts", `import "../../lib/auth/mod.ts";`), []);
});

Deno.test("deep-import allows mod.ts", () => {
  assert.deepEqual(lint("lib/auth/x.ts", `import { a } from "../errors/mod.ts";`), []);
  assert.deepEqual(lint("cli/tsh/ssh.ts", `import "../../lib/client/mod.ts";`), []);
});

Deno.test("npm-edges reports an npm package outside its allowed modules", () => {
  assert.deepEqual(lint("lib/auth/x.ts", `import { Client } from "npm:ssh2@1.17.0";`), [
    "teleport/npm-edges: ssh2 may only be imported in lib/ssh (house rule 9)",
  ]);
  assert.equal(lintRule("npm-edges", "lib/auth/x.ts", `import "ssh2";`).length, 1);
  assert.equal(lintRule("npm-edges", "lib/web/x.ts", `import { parse } from "yaml";`).length, 1);
  assert.equal(
    lintRule("npm-edges", "lib/auth/x.ts", `import * as x from "@peculiar/x509";`).length,
    1,
  );
  assert.equal(lintRule("npm-edges", "lib/auth/x.ts", `import "@logtape/logtape";`).length, 1);
  assert.equal(lintRule("npm-edges", "main.ts", `import "npm:yaml@2/dist/index.js";`).length, 1);
  assert.equal(lintRule("npm-edges", "lib/auth/x.ts", `await import("npm:ssh2");`).length, 1);
});

Deno.test("npm-edges allows each package in its listed modules", () => {
  for (const [pkg, dirs] of Object.entries(NPM_EDGES)) {
    for (const dir of dirs) {
      assert.deepEqual(lint(`${dir}/x/y.ts`, `import "${pkg}";`), [], `${pkg} in ${dir}`);
      assert.deepEqual(lint(`${dir}/y.ts`, `import "npm:${pkg}@1.0.0";`), [], `${pkg} in ${dir}`);
    }
  }
  assert.deepEqual(lint("lib/auth/x.ts", `import "node:crypto"; import "reflect-metadata";`), []);
});

Deno.test("no-jsr reports jsr: specifiers anywhere", () => {
  const message = "teleport/no-jsr: jsr: specifiers are unreachable here (jsr:@std/assert); " +
    "use an npm: package or node: built-in";
  assert.deepEqual(lint("lib/auth/x_test.ts", `import { assert } from "jsr:@std/assert";`), [
    message,
  ]);
  assert.deepEqual(lint("tests/a_test.ts", `import "jsr:@std/assert";`), [message]);
  assert.deepEqual(lint("/elsewhere/a.ts", `await import("jsr:@std/assert");`), [message]);
  assert.equal(lintRule("no-jsr", "tools/x.ts", `export * from "jsr:@std/yaml@1";`).length, 1);
  assert.equal(
    lintRule("no-jsr", "tools/x.ts", `import "https://jsr.io/@std/path/mod.ts";`).length,
    1,
  );
});

Deno.test("npmPackageName() extracts the package of bare and npm: specifiers", () => {
  assert.equal(npmPackageName("ssh2"), "ssh2");
  assert.equal(npmPackageName("npm:ssh2@1.17.0"), "ssh2");
  assert.equal(npmPackageName("npm:/ssh2@1.17.0/lib/client.js"), "ssh2");
  assert.equal(npmPackageName("@peculiar/x509"), "@peculiar/x509");
  assert.equal(npmPackageName("npm:@peculiar/x509@2.2.0/foo"), "@peculiar/x509");
  assert.equal(npmPackageName("yaml/util"), "yaml");
  assert.equal(npmPackageName("node:fs"), undefined);
  assert.equal(npmPackageName("jsr:@std/yaml"), undefined);
  assert.equal(npmPackageName("./yaml.ts"), undefined);
  assert.equal(npmPackageName("https://esm.sh/yaml"), undefined);
});

Deno.test("normalize() and repoRelative() turn file names into repo paths", () => {
  assert.equal(normalize("lib/auth/../errors/./mod.ts"), "lib/errors/mod.ts");
  assert.equal(normalize("lib/../../x.ts"), undefined);
  assert.equal(repoRelative("./lib/a/b.ts", "/r"), "lib/a/b.ts");
  assert.equal(repoRelative("/r/lib/a/b.ts", "/r"), "lib/a/b.ts");
  assert.equal(repoRelative("file:///r/main.ts", "/r"), "main.ts");
  assert.equal(repoRelative("/rx/lib/a/b.ts", "/r"), undefined);
});

Deno.test("every lib/ folder in the repo has a rank", async () => {
  const unranked: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}/lib`)) {
    if (entry.isDirectory && RANKS[entry.name] === undefined) unranked.push(entry.name);
  }
  assert.deepEqual(unranked, [], "add these to RANKS in tools/lint_plugin.ts and DESIGN.md §3");
});

Deno.test("deno lint loads the plugin from a config file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lint_plugin_test_" });
  try {
    const pluginUrl = new URL("./lint_plugin.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ lint: { plugins: [pluginUrl], rules: { tags: [] } } }),
    );
    await Deno.writeTextFile(`${dir}/a.ts`, `import "jsr:@std/assert";\n`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["lint", "--json"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 1, new TextDecoder().decode(out.stderr));
    const report = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      diagnostics: { code: string }[];
    };
    assert.deepEqual(report.diagnostics.map((d) => d.code), ["teleport/no-jsr"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
