import { DEFAULT_HEALTH_WEIGHTS, createHealthWeights, type HealthWeights } from './weights';

const TIMEOUT_MS = 4_000;
/** Latency well inside a quarter of the timeout: no latency penalty. */
const FAST = 200;

/** Feeds `count` outcomes of one kind at one latency. */
function observe(weights: HealthWeights, gatewayId: string, count: number, ok: boolean, latencyMs = FAST): void {
  for (let seen = 0; seen < count; seen++) weights.observe(gatewayId, ok, latencyMs);
}

/**
 * The factor of a gateway whose averages are exactly `successRate` and
 * `latencyMs`: with smoothing share 1 − rate, a success then a failure leave
 * the rate at 1·rate + 0·(1 − rate), and two equal latencies leave the latency.
 */
function factorAt(successRate: number, latencyMs: number): number {
  const weights = createHealthWeights({ alpha: 1 - successRate, floor: 0 });
  weights.observe('gw-a', true, latencyMs);
  weights.observe('gw-a', false, latencyMs);
  expect(weights.snapshot('gw-a')?.successRate).toBeCloseTo(successRate, 12);
  return weights.factorOf('gw-a', TIMEOUT_MS);
}

describe('health weights: defaults and unknown gateways', () => {
  test('When nothing was observed for a gateway, then its factor is 1 and its effective weight is its rule weight', () => {
    const weights = createHealthWeights();
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBe(1);
    expect(weights.effectiveWeight('gw-a', 7, TIMEOUT_MS)).toBe(7);
    expect(weights.snapshot('gw-a')).toBeUndefined();
  });

  test('When no settings are given, then the defaults are a 0.1 smoothing share and a 0.1 floor', () => {
    expect(DEFAULT_HEALTH_WEIGHTS).toEqual({ alpha: 0.1, floor: 0.1 });
  });

  test('When a gateway is healthy and fast, then its weight is untouched', () => {
    const weights = createHealthWeights();
    observe(weights, 'gw-a', 50, true);
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBe(1);
    expect(weights.effectiveWeight('gw-a', 3, TIMEOUT_MS)).toBe(3);
  });
});

describe('health weights: the averages', () => {
  test('When outcomes are observed, then the success rate and latency are exponentially weighted averages, the rate starting from a presumed 1 and the latency from the first observation', () => {
    const weights = createHealthWeights({ alpha: 0.5, floor: 0.1 });

    weights.observe('gw-a', true, 100);
    expect(weights.snapshot('gw-a')).toEqual({ successRate: 1, latencyMs: 100, observations: 1 });

    weights.observe('gw-a', false, 300);
    expect(weights.snapshot('gw-a')).toEqual({ successRate: 0.5, latencyMs: 200, observations: 2 });

    weights.observe('gw-a', false, 200);
    expect(weights.snapshot('gw-a')).toEqual({ successRate: 0.25, latencyMs: 200, observations: 3 });
  });

  test('When the first outcome of a gateway is a failure, then it is blended into a presumed-healthy rate of 1, not taken as is', () => {
    const weights = createHealthWeights({ alpha: 0.5, floor: 0.1 });

    weights.observe('gw-a', false, 100);
    expect(weights.snapshot('gw-a')).toEqual({ successRate: 0.5, latencyMs: 100, observations: 1 });

    weights.observe('gw-a', true, 300);
    expect(weights.snapshot('gw-a')).toEqual({ successRate: 0.75, latencyMs: 200, observations: 2 });
  });

  test('When a new gateway times out once, then with the default smoothing it keeps most of its weight instead of dropping to the floor', () => {
    const weights = createHealthWeights();
    weights.observe('gw-a', false, FAST);
    // Rate 1 · 0.9 + 0 · 0.1 = 0.9: factor (0.9 − 0.5) / 0.45, well above the 0.1 floor.
    expect(weights.snapshot('gw-a')?.successRate).toBeCloseTo(0.9, 12);
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBeCloseTo(0.4 / 0.45, 10);
    expect(weights.effectiveWeight('gw-a', 10, TIMEOUT_MS)).toBe(8.889);
  });

  test('When the first outcome of a gateway is slow, then the latency average starts at that latency (not blended with zero)', () => {
    const weights = createHealthWeights();
    weights.observe('gw-a', true, TIMEOUT_MS / 2);
    expect(weights.snapshot('gw-a')).toEqual({ successRate: 1, latencyMs: TIMEOUT_MS / 2, observations: 1 });
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBeCloseTo(0.5, 10);
  });

  test('When outcomes of one gateway are observed, then the health of others is untouched', () => {
    const weights = createHealthWeights();
    observe(weights, 'gw-a', 10, false, TIMEOUT_MS);
    expect(weights.snapshot('gw-b')).toBeUndefined();
    expect(weights.effectiveWeight('gw-b', 5, TIMEOUT_MS)).toBe(5);
  });
});

describe('health weights: the success factor', () => {
  test.each([
    [1, 1],
    [0.95, 1],
    [0.725, 0.5],
    [0.5, 0],
    [0.3, 0],
  ])('When the success rate is %p with no latency penalty, then the factor is %p (1 at ≥ 95 %%, 0 at ≤ 50 %%, linear between)', (rate, factor) => {
    expect(factorAt(rate, FAST)).toBeCloseTo(factor, 10);
  });
});

describe('health weights: the latency factor', () => {
  test.each([
    [0, 1],
    [TIMEOUT_MS / 4, 1],
    [TIMEOUT_MS / 2, 0.5],
    [(TIMEOUT_MS * 3) / 4, 0],
    [TIMEOUT_MS, 0],
  ])('When the average latency is %p ms of a 4000 ms timeout with every outcome ok, then the factor is %p', (latencyMs, factor) => {
    expect(factorAt(1, latencyMs)).toBeCloseTo(factor, 10);
  });

  test('When success rate and latency both degrade, then the factors multiply', () => {
    // success (0.725 − 0.5) / 0.45 = 0.5; latency at half the timeout = 0.5.
    expect(factorAt(0.725, TIMEOUT_MS / 2)).toBeCloseTo(0.25, 10);
  });

  test('When the same latency is judged against a longer timeout, then it is penalised less', () => {
    const weights = createHealthWeights({ alpha: 1, floor: 0 });
    weights.observe('gw-a', true, 2_000);
    expect(weights.factorOf('gw-a', 4_000)).toBeCloseTo(0.5, 10);
    expect(weights.factorOf('gw-a', 8_000)).toBe(1);
  });
});

describe('health weights: floor and recovery', () => {
  test('When a gateway fails everything, then its factor never drops below the floor, so it keeps a trickle of traffic', () => {
    const weights = createHealthWeights({ alpha: 0.1, floor: 0.1 });
    observe(weights, 'gw-a', 100, false, TIMEOUT_MS);
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBe(0.1);
    expect(weights.effectiveWeight('gw-a', 10, TIMEOUT_MS)).toBe(1);
  });

  test('When a custom floor is set, then it is the lower bound', () => {
    const weights = createHealthWeights({ alpha: 0.1, floor: 0.25 });
    observe(weights, 'gw-a', 5, false);
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBe(0.25);
  });

  test('When a degraded gateway starts succeeding again, then its weight climbs back step by step to full', () => {
    const weights = createHealthWeights({ alpha: 0.1, floor: 0.1 });
    observe(weights, 'gw-a', 30, false, TIMEOUT_MS);
    const seen: number[] = [weights.effectiveWeight('gw-a', 10, TIMEOUT_MS)];
    for (let round = 0; round < 8; round++) {
      observe(weights, 'gw-a', 5, true);
      seen.push(weights.effectiveWeight('gw-a', 10, TIMEOUT_MS));
    }

    expect(seen[0]).toBe(1);
    for (let index = 1; index < seen.length; index++) expect(seen[index]).toBeGreaterThanOrEqual(seen[index - 1] ?? 0);
    expect(seen.at(-1)).toBe(10);
    // Gradual, not a jump back: some rounds sit strictly between the floor and full weight.
    expect(seen.some((weight) => weight > 1 && weight < 10)).toBe(true);
  });

  test('When a healthy gateway starts failing, then it is weighted down gradually, before it would be cut off', () => {
    const weights = createHealthWeights({ alpha: 0.1, floor: 0.1 });
    observe(weights, 'gw-a', 40, true);
    weights.observe('gw-a', false, FAST);
    // One failure in a healthy history: rate 0.9, factor (0.9 − 0.5) / 0.45.
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBeCloseTo(0.4 / 0.45, 10);
    observe(weights, 'gw-a', 2, false);
    const afterThree = weights.factorOf('gw-a', TIMEOUT_MS);
    expect(afterThree).toBeGreaterThan(0.1);
    expect(afterThree).toBeLessThan(0.4 / 0.45);
  });
});

describe('health weights: effective weight', () => {
  test('When the weight is scaled, then it is rounded to three decimals so it stays explainable', () => {
    const weights = createHealthWeights({ alpha: 1, floor: 0 });
    weights.observe('gw-a', true, TIMEOUT_MS / 3);
    // Latency factor 1 − (1333.3 − 1000) / 2000 = 0.8333…
    expect(weights.factorOf('gw-a', TIMEOUT_MS)).toBeCloseTo(5 / 6, 10);
    expect(weights.effectiveWeight('gw-a', 1, TIMEOUT_MS)).toBe(0.833);
    expect(weights.effectiveWeight('gw-a', 7, TIMEOUT_MS)).toBe(5.833);
  });

  test('When the rule weight is 0, then the effective weight is 0 whatever the health', () => {
    const weights = createHealthWeights();
    observe(weights, 'gw-a', 3, false);
    expect(weights.effectiveWeight('gw-a', 0, TIMEOUT_MS)).toBe(0);
    expect(weights.effectiveWeight('gw-b', 0, TIMEOUT_MS)).toBe(0);
  });

  test('When the effective weight is computed, then it is never above the rule weight nor below floor × weight', () => {
    const weights = createHealthWeights({ alpha: 0.3, floor: 0.1 });
    const pattern = [true, false, true, true, false, false, false, true, true, true];
    for (const [index, ok] of pattern.entries()) {
      weights.observe('gw-a', ok, (index * 997) % (TIMEOUT_MS * 2));
      const effective = weights.effectiveWeight('gw-a', 20, TIMEOUT_MS);
      expect(effective).toBeLessThanOrEqual(20);
      expect(effective).toBeGreaterThanOrEqual(2);
    }
  });
});
