/**
 * Clock: real and fake. The only module that reads the wall clock.
 *
 * ```ts
 * import { FakeClock } from "./mod.ts";
 * const clock = new FakeClock(0);
 * clock.advance(1000); // clock.now().getTime() === 1000
 * ```
 *
 * @module
 */
export { type Clock, FakeClock, RealClock } from "./clock.ts";
