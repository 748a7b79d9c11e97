/**
 * Health-aware weights: a gateway whose recent success rate or latency
 * degrades gets a smaller share of traffic before its breaker opens.
 *
 * Per gateway, exponentially weighted averages of technical success (1/0) and
 * of latency (dispatch → result) are kept. The weight is multiplied by
 *   success factor = clamp((rate − 0.5) / 0.45, 0, 1)          1 at ≥ 95 %, 0 at ≤ 50 %
 *   latency factor = clamp(1 − (latency − ¼·timeout) / (½·timeout), 0, 1)   1 below a quarter of the timeout
 * and never by less than `floor`, so a degraded gateway still gets a trickle
 * that lets it prove it has healed (and recover its weight as the averages do).
 */
export interface HealthWeightSettings {
  /** Smoothing of the averages: the share of a new observation. */
  alpha: number;
  floor: number;
}

export const DEFAULT_HEALTH_WEIGHTS: HealthWeightSettings = { alpha: 0.1, floor: 0.1 };

interface GatewayHealth {
  successRate: number;
  latencyMs: number;
  observations: number;
}

const clamp = (value: number) => Math.min(1, Math.max(0, value));

export function createHealthWeights(settings: HealthWeightSettings = DEFAULT_HEALTH_WEIGHTS) {
  const health = new Map<string, GatewayHealth>();
  const factorOf = (gatewayId: string, timeoutMs: number): number => {
    const observed = health.get(gatewayId);
    if (!observed) return 1;
    const success = clamp((observed.successRate - 0.5) / 0.45);
    const latency = clamp(1 - (observed.latencyMs - timeoutMs / 4) / (timeoutMs / 2));
    return Math.max(settings.floor, success * latency);
  };
  return {
    /**
     * Records one outcome: `ok` false for timeouts and technical failures;
     * latency in ms of an answer. A timeout has no latency to give (it is
     * counted in the success rate), so a first timeout does not make a gateway
     * look as slow as its timeout.
     */
    observe(gatewayId: string, ok: boolean, latencyMs?: number): void {
      // A gateway starts out presumed healthy (all successes), so one early failure does not drop it to the floor.
      const current = health.get(gatewayId) ?? { successRate: 1, latencyMs: latencyMs ?? 0, observations: 0 };
      health.set(gatewayId, current);
      const { alpha } = settings;
      current.successRate = current.successRate * (1 - alpha) + (ok ? 1 : 0) * alpha;
      if (latencyMs !== undefined) current.latencyMs = current.latencyMs * (1 - alpha) + latencyMs * alpha;
      current.observations += 1;
    },
    factorOf,
    /** The weight selection uses: the rule's weight scaled by health, rounded to keep it explainable. */
    effectiveWeight(gatewayId: string, weight: number, timeoutMs: number): number {
      return Math.round(weight * factorOf(gatewayId, timeoutMs) * 1000) / 1000;
    },
    snapshot(gatewayId: string): Readonly<GatewayHealth> | undefined {
      return health.get(gatewayId);
    },
  };
}
export type HealthWeights = ReturnType<typeof createHealthWeights>;
