import { sumOutcomeCounts, type GatewayOutcomeCounts } from '../../topics/schemas';

export type OutcomeClass = 'success' | 'final' | 'retryable' | 'timeout';

const FIELD_OF: Record<OutcomeClass, keyof Omit<GatewayOutcomeCounts, 'gatewayId'>> = {
  success: 'successes',
  final: 'declines',
  retryable: 'failures',
  timeout: 'timeouts',
};

/** Slices per window: the window slides in steps of a tenth of its length. */
const SLICES = 10;

/**
 * Attempt outcomes per gateway over a sliding window (e.g. the last five
 * minutes), kept as counts per time slice so memory stays bounded whatever
 * the traffic. Unlike the health weights' shares of each instance's last
 * outcomes, these are plain counts, which several instances' reports can be
 * summed from.
 */
export function createAttemptStats(windowMs: number) {
  const sliceMs = Math.max(1, Math.floor(windowMs / SLICES));
  /** slice number → gateway → counts */
  const slices = new Map<number, Map<string, GatewayOutcomeCounts>>();
  const oldestKept = (nowMs: number) => Math.floor(nowMs / sliceMs) - SLICES + 1;
  const prune = (nowMs: number) => {
    for (const slice of slices.keys()) if (slice < oldestKept(nowMs)) slices.delete(slice);
  };

  return {
    windowSeconds: Math.round(windowMs / 1000),

    record(gatewayId: string, outcome: OutcomeClass, atMs: number): void {
      const slice = Math.floor(atMs / sliceMs);
      const byGateway = slices.get(slice) ?? new Map<string, GatewayOutcomeCounts>();
      slices.set(slice, byGateway);
      const counts = byGateway.get(gatewayId) ?? { gatewayId, successes: 0, declines: 0, failures: 0, timeouts: 0 };
      byGateway.set(gatewayId, counts);
      counts[FIELD_OF[outcome]] += 1;
      prune(atMs);
    },

    /** Counts per gateway over the window ending now, sorted by gateway id. */
    summary(nowMs: number): GatewayOutcomeCounts[] {
      prune(nowMs);
      return sumOutcomeCounts([...slices.values()].flatMap((byGateway) => [...byGateway.values()]));
    },
  };
}
export type AttemptStats = ReturnType<typeof createAttemptStats>;
