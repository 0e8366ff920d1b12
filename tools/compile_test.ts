import assert from "node:assert/strict";
import {
  compileArgs,
  CompileError,
  findDenort,
  type FindDenortOptions,
  noDenortMessage,
} from "./compile.ts";

const ZIP = "/cache/deno/dl/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip";

/** A fake file system: path → mode. */
function options(
  files: Record<string, number>,
  overrides: Partial<FindDenortOptions> = {},
): FindDenortOptions {
  return {
    denortBin: undefined,
    denoDir: "/cache/deno",
    version: "2.9.6",
    target: "x86_64-unknown-linux-gnu",
    execPath: "/usr/bin/deno",
    stat: (path) => path in files ? { isFile: true, mode: files[path]! } : undefined,
    realPath: (path) => path === "/usr/local/bin/deno" ? "/usr/bin/deno" : path,
    reachable: () => Promise.resolve(false),
    ...overrides,
  };
}

async function rejection(promise: Promise<unknown>): Promise<CompileError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof CompileError, String(error));
    return error;
  }
  assert.fail("expected a CompileError");
}

Deno.test("findDenort() uses an executable DENORT_BIN", async () => {
  const found = await findDenort(options({ "/opt/denort": 0o755 }, { denortBin: "/opt/denort" }));
  assert.deepEqual(found, { kind: "bin", path: "/opt/denort" });
});

Deno.test("findDenort() rejects a DENORT_BIN that is missing, not executable or deno", async () => {
  const missing = await rejection(findDenort(options({}, { denortBin: "/opt/denort" })));
  assert.equal(
    missing.message,
    "Cannot compile dist/teleport: DENORT_BIN=/opt/denort does not exist",
  );
  const plain = await rejection(
    findDenort(options({ "/opt/denort": 0o644 }, { denortBin: "/opt/denort" })),
  );
  assert.match(plain.message, /is not an executable file/);
  const deno = await rejection(
    findDenort(options({ "/usr/local/bin/deno": 0o755 }, { denortBin: "/usr/local/bin/deno" })),
  );
  assert.match(deno.message, /is the deno CLI itself, not denort/);
});

Deno.test("findDenort() uses the cached runtime zip when DENORT_BIN is unset", async () => {
  assert.deepEqual(await findDenort(options({ [ZIP]: 0o644 })), { kind: "cached", path: ZIP });
  assert.deepEqual(await findDenort(options({ [ZIP]: 0o644 }, { denortBin: "" })), {
    kind: "cached",
    path: ZIP,
  });
});

Deno.test("findDenort() lets deno compile download when the release server answers", async () => {
  const found = await findDenort(options({}, { reachable: () => Promise.resolve(true) }));
  assert.deepEqual(found, {
    kind: "download",
    url: "https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip",
    cachePath: ZIP,
  });
});

Deno.test("findDenort() explains the way out when there is no runtime", async () => {
  const error = await rejection(findDenort(options({})));
  assert.equal(error.code, 1);
  assert.equal(error.message, noDenortMessage("2.9.6", "x86_64-unknown-linux-gnu", ZIP));
  assert.match(error.message, /denort runtime for Deno 2\.9\.6/);
  assert.match(error.message, /cannot reach it/);
  assert.match(error.message, /Set DENORT_BIN to a denort binary for Deno 2\.9\.6/);
  assert.match(error.message, /`deno task bundle`/);
  assert.match(error.message, /`deno run -A dist\/teleport\.js`/);
});

Deno.test("compileArgs() builds dist/teleport from main.ts with KV and the assets", () => {
  assert.deepEqual(compileArgs([]), [
    "compile",
    "-A",
    "--unstable-kv",
    "--output",
    "dist/teleport",
    "main.ts",
  ]);
  assert.deepEqual(compileArgs(["lib/web/static"]).slice(-3), [
    "--include",
    "lib/web/static",
    "main.ts",
  ]);
});

/** Runs tools/compile.ts in a clean DENO_DIR where the release server is unreachable. */
async function runCompile(env: Record<string, string>): Promise<Deno.CommandOutput> {
  const denoDir = await Deno.makeTempDir({ prefix: "compile_test_" });
  try {
    return await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", new URL("./compile.ts", import.meta.url).pathname],
      cwd: denoDir,
      env: {
        DENO_DIR: denoDir,
        // A dead proxy makes the release server unreachable even on a connected machine.
        HTTPS_PROXY: "http://127.0.0.1:9",
        HTTP_PROXY: "http://127.0.0.1:9",
        NO_PROXY: "",
        DENORT_BIN: "",
        NO_COLOR: "1",
        ...env,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

Deno.test("tools/compile.ts exits 1 with one message when denort is unavailable", async () => {
  const out = await runCompile({});
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, stderr);
  assert.match(stderr, /^Cannot compile dist\/teleport: deno compile needs the denort runtime/);
  assert.match(stderr, /use `deno task bundle`/);
  assert.doesNotMatch(stderr, /Stack|\n\s+at /);
  assert.equal(stderr.trimEnd().split("\n").length, 2, stderr);
});

Deno.test("tools/compile.ts refuses DENORT_BIN pointing at the deno CLI", async () => {
  const out = await runCompile({ DENORT_BIN: Deno.execPath() });
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, stderr);
  assert.match(stderr, /is the deno CLI itself, not denort/);
  assert.doesNotMatch(stderr, /Stack|\n\s+at /);
});
