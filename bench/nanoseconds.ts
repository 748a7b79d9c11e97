/**
 * Nanoseconds per call of `run`, on the monotonic clock, after a tenth as many calls of warm-up (for the
 * micro-benchmarks of one way of writing a hot-path step against another: object-building.ts, array-flattening.ts).
 * Every result is kept in `kept`, so no call is optimised away.
 */
export function nsPerCall(run: () => unknown, rounds: number): number {
  for (let i = 0; i < rounds / 10; i++) kept = run();
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) kept = run();
  return Number(process.hrtime.bigint() - start) / rounds;
}

export let kept: unknown;
