/**
 * A small, seeded fuzz harness for the parsers that face the network. Each case's input comes
 * from a PRNG seeded with `(seed, case index)` alone, so one failing case replays by itself:
 * the failure names the seed and the index, and `FUZZ_SEED=<seed> FUZZ_CASE=<index>` reruns
 * exactly that case.
 *
 * Inputs are drawn, case by case, from
 * - a mutated corpus entry: 1–4 stacked mutations out of bit flips, "interesting" byte values,
 *   byte insert/delete/duplicate, splicing two corpus entries, length-field corruption (a u8,
 *   u16 or u32 big-endian length overwritten with 0, 1, the remaining length ± 1, or a huge
 *   value), truncation, dictionary token insertion and random byte runs;
 * - a fresh random byte string;
 * - a structure-aware generator of the target, when it gives some.
 *
 * A case passes when `check` returns (or resolves); anything it throws is a crash, reported
 * with the input. Targets decide what a documented outcome is, usually with
 * {@link expectKinds}: the parser's kinded errors are fine, a TypeError is a bug.
 *
 * Environment knobs (read only here, only by tests): `FUZZ_SEED` (a number, or `random`),
 * `FUZZ_CASE` (replay one index), `FUZZ_SCALE` (multiply every case count, e.g. 10 for a
 * nightly run), `FUZZ_VERBOSE` (also print the slowest input).
 */
import { kindOf } from "../errors/mod.ts";
import type { ErrorKind } from "../errors/mod.ts";

/** A small deterministic PRNG (mulberry32); `seed` is any 32-bit value. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A uniform integer in `[0, n)`; 0 when `n <= 0`. */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
  /** A length biased towards small values: mostly < 16, sometimes up to `max`. */
  length(max: number): number {
    return this.chance(0.8) ? this.int(Math.min(16, max) + 1) : this.int(max + 1);
  }
}

/** The 32-bit PRNG seed of case `index` of a run seeded with `seed` (splitmix-style mix). */
export function caseSeed(seed: number, index: number): number {
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Byte values that often sit on a boundary. */
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x0a, 0x0d, 0x3a, 0x2c];
const UTF8 = new TextEncoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One mutation of `data`; `corpus` feeds splices, `dictionary` token inserts. */
function mutateOnce(
  rng: Rng,
  data: Uint8Array,
  corpus: readonly Uint8Array[],
  dictionary: readonly Uint8Array[],
): Uint8Array {
  const at = rng.int(data.length + 1);
  switch (rng.int(dictionary.length > 0 ? 10 : 9)) {
    case 0: { // bit flip
      if (data.length === 0) return rng.bytes(1);
      const out = data.slice();
      out[rng.int(out.length)]! ^= 1 << rng.int(8);
      return out;
    }
    case 1: { // interesting or random byte value
      if (data.length === 0) return Uint8Array.of(rng.pick(INTERESTING_BYTES));
      const out = data.slice();
      out[rng.int(out.length)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
      return out;
    }
    case 2: // insert random bytes
      return concat(data.subarray(0, at), rng.bytes(1 + rng.length(31)), data.subarray(at));
    case 3: { // delete a range
      const n = 1 + rng.length(Math.max(0, data.length - at - 1));
      return concat(data.subarray(0, at), data.subarray(Math.min(data.length, at + n)));
    }
    case 4: { // duplicate a range in place
      const n = 1 + rng.length(Math.max(0, data.length - at - 1));
      const piece = data.subarray(at, at + n);
      const times = 1 + rng.length(8);
      return concat(data.subarray(0, at), ...new Array(times).fill(piece), data.subarray(at));
    }
    case 5: { // splice: a head of this input and a tail of another corpus entry
      const other = rng.pick(corpus);
      return concat(data.subarray(0, at), other.subarray(rng.int(other.length + 1)));
    }
    case 6: { // length-field corruption: overwrite a big-endian u8/u16/u32
      const width = rng.pick([1, 2, 4]);
      if (data.length < width) return rng.bytes(width);
      const pos = rng.int(data.length - width + 1);
      const rest = data.length - pos - width;
      const value = rng.pick([
        0,
        1,
        rest,
        rest + 1,
        Math.max(0, rest - 1),
        2 ** (8 * width) - 1,
        2 ** (8 * width - 1),
        rng.u32(),
      ]) % 2 ** (8 * width);
      const out = data.slice();
      for (let i = 0; i < width; i++) {
        out[pos + i] = Math.floor(value / 2 ** (8 * (width - 1 - i))) & 0xff;
      }
      return out;
    }
    case 7: // truncate
      return data.slice(0, rng.int(data.length + 1));
    case 8: { // overwrite a run with random bytes
      const n = 1 + rng.length(31);
      const out = data.slice();
      for (let i = at; i < Math.min(out.length, at + n); i++) out[i] = rng.int(256);
      return out;
    }
    default: // dictionary token
      return concat(data.subarray(0, at), rng.pick(dictionary), data.subarray(at));
  }
}

/** Options shared by {@link mutate} and {@link fuzz}. */
export interface MutateOptions {
  /** Valid (or nearly valid) inputs to start from; at least one. */
  corpus: readonly Uint8Array[];
  /** Tokens of the input language (keywords, delimiters) that mutations may insert. */
  dictionary?: readonly (Uint8Array | string)[];
  /** Inputs are cut to this many bytes. @default {65536} */
  maxLength?: number;
}

const encodedDictionaries = new WeakMap<readonly (Uint8Array | string)[], Uint8Array[]>();

function dictionaryOf(opts: MutateOptions): readonly Uint8Array[] {
  if (opts.dictionary === undefined) return [];
  let out = encodedDictionaries.get(opts.dictionary);
  if (out === undefined) {
    out = opts.dictionary.map((d) => typeof d === "string" ? UTF8.encode(d) : d);
    encodedDictionaries.set(opts.dictionary, out);
  }
  return out;
}

/** 1–4 stacked mutations of a random corpus entry, at most `maxLength` bytes. */
export function mutate(rng: Rng, opts: MutateOptions): Uint8Array {
  const dictionary = dictionaryOf(opts);
  let data = rng.pick(opts.corpus);
  const rounds = 1 + rng.int(4);
  for (let i = 0; i < rounds; i++) data = mutateOnce(rng, data, opts.corpus, dictionary);
  const max = opts.maxLength ?? 65536;
  return data.length > max ? data.subarray(0, max) : data;
}

/** How a fuzz run went. */
export interface FuzzReport {
  name: string;
  seed: number;
  cases: number;
  /** Slowest single case, in milliseconds, and its index. */
  worstMs: number;
  worstCase: number;
  totalMs: number;
}

/** Options of {@link fuzz}. */
export interface FuzzOptions extends MutateOptions {
  /** Names the target in reports and failures, e.g. "parseClientHello()". */
  name: string;
  /** Number of cases (times `FUZZ_SCALE`). @default {100000} */
  cases?: number;
  /** PRNG seed; `FUZZ_SEED` overrides it. @default {a hash of name} */
  seed?: number;
  /** Structure-aware generators; each case picks one with probability `generatorShare`. */
  generators?: readonly ((rng: Rng) => Uint8Array)[];
  /** Share of cases made by {@link generators}. @default {0.25 when there are generators} */
  generatorShare?: number;
  /** Share of cases that are plain random bytes. @default {0.05} */
  randomShare?: number;
  /** Runs one case; throwing means a crash. The rng is for extra per-case choices. */
  check(input: Uint8Array, rng: Rng): void | Promise<void>;
  /** Cases in flight at once (async checks, e.g. over sockets). @default {1} */
  concurrency?: number;
  /** Where the one-line report goes. @default {stderr} */
  report?: (line: string) => void;
}

/** A 32-bit FNV-1a hash of a string (default seeds). */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function envNumber(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: the defaults hold
  }
}

/** The input of case `index`, exactly as {@link fuzz} makes it. */
export function fuzzInput(opts: FuzzOptions, seed: number, index: number): {
  input: Uint8Array;
  rng: Rng;
} {
  const rng = new Rng(caseSeed(seed, index));
  const generators = opts.generators ?? [];
  const genShare = generators.length === 0 ? 0 : opts.generatorShare ?? 0.25;
  const randomShare = opts.randomShare ?? 0.05;
  const roll = rng.u32() / 0x1_0000_0000;
  let input: Uint8Array;
  if (roll < genShare) input = rng.pick(generators)(rng);
  else if (roll < genShare + randomShare) input = rng.bytes(rng.length(512));
  else input = mutate(rng, opts);
  const max = opts.maxLength ?? 65536;
  return { input: input.length > max ? input.subarray(0, max) : input, rng };
}

function describe(input: Uint8Array): string {
  const shown = input.subarray(0, 512);
  const hex = Array.from(shown, (b) => b.toString(16).padStart(2, "0")).join("");
  const text = new TextDecoder("latin1").decode(shown);
  return `${input.length} bytes; hex ${hex}${input.length > 512 ? "…" : ""}\n` +
    `as text: ${JSON.stringify(text)}`;
}

/**
 * Runs `opts.cases` cases against `opts.check` and returns the report (also written as one
 * line to stderr). The first crash fails the run with the seed, the case index and the input.
 */
export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  if (opts.corpus.length === 0) throw new Error(`fuzz ${opts.name}: the corpus is empty`);
  const seedText = envNumber("FUZZ_SEED");
  const seed = seedText === undefined
    ? opts.seed ?? hash32(opts.name)
    : seedText === "random"
    ? crypto.getRandomValues(new Uint32Array(1))[0]!
    : Number(seedText) >>> 0;
  const only = envNumber("FUZZ_CASE");
  const scale = Number(envNumber("FUZZ_SCALE") ?? "1");
  const total = only === undefined
    ? Math.max(1, Math.round((opts.cases ?? 100_000) * (scale > 0 ? scale : 1)))
    : 1;
  const first = only === undefined ? 0 : Number(only);
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  let worstMs = 0;
  let worstCase = first;
  let worstInput: Uint8Array = new Uint8Array(0);
  const started = performance.now();

  const runCase = async (index: number) => {
    const { input, rng } = fuzzInput(opts, seed, index);
    const t0 = performance.now();
    try {
      const out = opts.check(input, rng);
      if (out !== undefined) await out;
    } catch (err) {
      const replay = `FUZZ_SEED=${seed} FUZZ_CASE=${index}`;
      throw new Error(
        `fuzz ${opts.name}: case ${index} of seed ${seed} crashed (replay: ${replay}): ` +
          `${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}\n` +
          `input: ${describe(input)}`,
        { cause: err },
      );
    }
    const ms = performance.now() - t0;
    if (ms > worstMs) {
      worstMs = ms;
      worstCase = index;
      worstInput = input;
    }
  };

  let next = first;
  const end = first + total;
  const lane = async () => {
    while (next < end) await runCase(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
  const report: FuzzReport = {
    name: opts.name,
    seed,
    cases: total,
    worstMs,
    worstCase,
    totalMs: performance.now() - started,
  };
  let line = `fuzz ${report.name}: ${report.cases} cases, seed ${seed}, ` +
    `${report.totalMs.toFixed(0)} ms, worst case ${worstMs.toFixed(2)} ms ` +
    `(#${worstCase}, ${worstInput.length} bytes)\n`;
  if (envNumber("FUZZ_VERBOSE") !== undefined) line += `worst input: ${describe(worstInput)}\n`;
  if (opts.report) opts.report(line);
  else Deno.stderr.writeSync(UTF8.encode(line));
  return report;
}

/**
 * Runs `fn` and returns its value, or `undefined` when it threw a kinded error of one of
 * `kinds` (the parser's documented refusal). Any other throw (TypeError, RangeError, a plain
 * Error) is rethrown: to the fuzzer that is a crash.
 */
export function expectKinds<T>(kinds: readonly ErrorKind[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    const kind = kindOf(err);
    if (kind !== undefined && kinds.includes(kind)) return undefined;
    throw err;
  }
}

/** Async form of {@link expectKinds}. */
export async function expectKindsAsync<T>(
  kinds: readonly ErrorKind[],
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const kind = kindOf(err);
    if (kind !== undefined && kinds.includes(kind)) return undefined;
    throw err;
  }
}

/** Throws a crash error unless `condition` holds (for invariants of a parser's result). */
export function invariant(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`invariant broken: ${what}`);
}
