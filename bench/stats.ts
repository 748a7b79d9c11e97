/** Latency percentiles of one set of measurements, in milliseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(fraction * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

const round = (ms: number, digits = 1) => Number(ms.toFixed(digits));

/** Exact percentiles: every measurement is kept (a minute at 1,000/s is 60,000 numbers), so no histogram error. */
export function summarizeLatencies(latenciesMs: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(latenciesMs).sort();
  const values = Array.from(sorted);
  return {
    count: values.length,
    p50: round(percentile(values, 0.5)),
    p95: round(percentile(values, 0.95)),
    p99: round(percentile(values, 0.99)),
    max: round(values.at(-1) ?? 0),
  };
}

/** Events per second over a window, to one decimal. */
export const perSecond = (count: number, windowMs: number) => (windowMs > 0 ? round((count * 1000) / windowMs) : 0);
