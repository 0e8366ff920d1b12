import assert from "node:assert/strict";
import { BadParameterError } from "../errors/mod.ts";
import { caseSeed, expectKinds, fuzz, fuzzInput, type FuzzOptions, mutate, Rng } from "./mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const quiet = { report: () => {} };

Deno.test("Rng gives the same stream for the same seed and stays in range", () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 1000; i++) {
    const n = a.int(7);
    assert.equal(n, b.int(7));
    assert.ok(n >= 0 && n < 7);
  }
  assert.notEqual(new Rng(1).u32(), new Rng(2).u32());
  assert.notEqual(caseSeed(1, 0), caseSeed(1, 1));
});

Deno.test("mutate() never exceeds maxLength and changes its input", () => {
  const rng = new Rng(7);
  const opts = { corpus: [enc("GET / HTTP/1.1\r\n\r\n"), enc("x")], dictionary: ["\r\n"] };
  let changed = 0;
  for (let i = 0; i < 5000; i++) {
    const out = mutate(rng, { ...opts, maxLength: 24 });
    assert.ok(out.length <= 24);
    if (!opts.corpus.some((c) => c.length === out.length && c.every((b, j) => out[j] === b))) {
      changed++;
    }
  }
  assert.ok(changed > 4000, `${changed}`);
});

Deno.test("fuzzInput() makes each case from the seed and its index alone", () => {
  const opts: FuzzOptions = {
    name: "t",
    corpus: [enc("hello world")],
    generators: [(rng) => rng.bytes(3)],
    check: () => {},
  };
  assert.deepEqual(fuzzInput(opts, 5, 99).input, fuzzInput(opts, 5, 99).input);
});

Deno.test("fuzz() runs every case and reports the worst one", async () => {
  let n = 0;
  const report = await fuzz({
    name: "count",
    corpus: [enc("abc")],
    cases: 1000,
    check: () => void n++,
    ...quiet,
  });
  assert.equal(n, 1000);
  assert.equal(report.cases, 1000);
  assert.ok(report.worstCase >= 0 && report.worstCase < 1000);
});

Deno.test("fuzz() fails with the seed, case index and input when a check throws", async () => {
  await assert.rejects(
    fuzz({
      name: "crashy",
      corpus: [enc("abc")],
      seed: 1234,
      cases: 1000,
      check: (input) => {
        if (input.length > 5) throw new TypeError("boom");
      },
      ...quiet,
    }),
    (err: Error) => {
      assert.match(err.message, /fuzz crashy: case \d+ of seed 1234 crashed/);
      assert.match(err.message, /FUZZ_SEED=1234 FUZZ_CASE=\d+/);
      assert.match(err.message, /TypeError: boom/);
      assert.match(err.message, /hex [0-9a-f]+/);
      return true;
    },
  );
});

Deno.test("fuzz() runs async checks concurrently", async () => {
  let inFlight = 0;
  let most = 0;
  await fuzz({
    name: "async",
    corpus: [enc("abc")],
    cases: 200,
    concurrency: 8,
    check: async () => {
      most = Math.max(most, ++inFlight);
      await Promise.resolve();
      inFlight--;
    },
    ...quiet,
  });
  assert.equal(most, 8);
});

Deno.test("expectKinds() allows only the listed kinds", () => {
  assert.equal(expectKinds(["BadParameter"], () => 5), 5);
  assert.equal(
    expectKinds(["BadParameter"], () => {
      throw new BadParameterError("no");
    }),
    undefined,
  );
  assert.throws(() =>
    expectKinds(["NotFound"], () => {
      throw new BadParameterError("no");
    }), BadParameterError);
  assert.throws(() =>
    expectKinds(["BadParameter"], () => {
      throw new TypeError("x");
    }), TypeError);
});
