/**
 * Test-only helpers shared by the tests of every layer (never imported by production code):
 * a seeded fuzz harness with byte mutators, structure-aware generator hooks and a replayable
 * failure report, {@link exchange} to drive a server over a real connection with a
 * deadline, and {@link driveProcess} to drive an interactive client process through pipes.
 *
 * ```ts
 * import { expectKinds, fuzz } from "./mod.ts";
 * await fuzz({
 *   name: "decodeDialRequest()",
 *   corpus: [new TextEncoder().encode('{"address":"@local-node"}')],
 *   check: (input) => void expectKinds(["BadParameter"], () => JSON.parse(String(input))),
 * });
 * ```
 *
 * It sits at rank 1 of the layering (it needs only lib/errors), so tests of every module from
 * rank 2 up may import it.
 *
 * @module
 */
export { type DrivenProcess, driveProcess } from "./drive.ts";
export {
  caseSeed,
  expectKinds,
  expectKindsAsync,
  fuzz,
  fuzzInput,
  type FuzzOptions,
  type FuzzReport,
  invariant,
  mutate,
  type MutateOptions,
  Rng,
} from "./fuzz.ts";
export {
  exchange,
  type ExchangeOptions,
  type ExchangeResult,
  httpStatusOfResponse,
  isCompleteHttpResponse,
} from "./conn.ts";
