import assert from "node:assert/strict";
import { selfCommand, type SelfCommandFacts, shellQuote } from "./_common.ts";

const facts = (o: Partial<SelfCommandFacts>): SelfCommandFacts => ({
  mainModule: "file:///home/ann/teleport/main.ts",
  execPath: "/home/ann/.npm/_npx/0123abcd/node_modules/deno/deno",
  denoVersion: "2.9.6",
  cwd: "/home/ann/teleport",
  path: "/usr/bin:/bin",
  ...o,
});

Deno.test("selfCommand() names npx when Deno came from the npm registry", () => {
  assert.equal(selfCommand(facts({})), "npx -y deno@2.9.6 run -A main.ts");
  // npx puts its deno on the PATH of its children: still not the user's shell's PATH.
  const bin = "/home/ann/.npm/_npx/0123abcd/node_modules/.bin";
  assert.equal(selfCommand(facts({ path: `${bin}:/usr/bin` })), "npx -y deno@2.9.6 run -A main.ts");
});

Deno.test("selfCommand() gives main.ts's absolute path outside its directory", () => {
  assert.equal(
    selfCommand(facts({ cwd: "/tmp" })),
    "npx -y deno@2.9.6 run -A /home/ann/teleport/main.ts",
  );
  assert.equal(
    selfCommand(facts({ cwd: "/home/ann", mainModule: "file:///home/ann/my%20repo/main.ts" })),
    "npx -y deno@2.9.6 run -A '/home/ann/my repo/main.ts'",
  );
});

Deno.test("selfCommand() names deno when the PATH's deno is this one, else its path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/opt`);
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/opt/deno`, "");
    await Deno.symlink(`${dir}/opt/deno`, `${dir}/bin/deno`);
    const installed = { execPath: `${dir}/opt/deno` };
    assert.equal(
      selfCommand(facts({ ...installed, path: `/usr/bin:${dir}/bin` })),
      "deno run -A main.ts",
    );
    assert.equal(
      selfCommand(facts({ ...installed, path: "/usr/bin" })),
      `${dir}/opt/deno run -A main.ts`,
    );
    assert.equal(
      selfCommand(facts({ execPath: "/opt/deno 2/deno", path: "/usr/bin" })),
      "'/opt/deno 2/deno' run -A main.ts",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("selfCommand() is teleport for a compiled binary", () => {
  assert.equal(selfCommand(facts({ mainModule: "file:///$deno$/teleport" })), "teleport");
});

Deno.test("shellQuote() leaves plain words alone and quotes the rest", () => {
  assert.equal(shellQuote("./.teleport"), "./.teleport");
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
});
