import type { GatewayStatsReported } from '../../topics/schemas';
import { createSuccessRates } from './view';

const report = (reportedBy: string, atMs: number, gateways: GatewayStatsReported['gateways']): GatewayStatsReported => ({
  eventId: `${reportedBy}-${atMs}`,
  type: 'gateway.stats',
  occurredAt: new Date(atMs).toISOString(),
  schemaVersion: 1,
  reportedBy,
  windowSeconds: 300,
  gateways,
});
const counts = (gatewayId: string, successes: number, declines: number, failures: number, timeouts: number) => ({ gatewayId, successes, declines, failures, timeouts });

describe('success rates in the back office', () => {
  test('When two instances report a gateway, then its rate sums both reports', () => {
    const rates = createSuccessRates(30_000);
    rates.apply('orch-1', report('orch-1', 1_000, [counts('alpha', 8, 1, 0, 1)]));
    rates.apply('orch-2', report('orch-2', 2_000, [counts('alpha', 10, 0, 0, 0), counts('beta', 0, 3, 0, 0)]));
    expect(rates.of('alpha', 3_000)).toEqual({ rate: 0.9, attempts: 20, successes: 18, declines: 1, failures: 0, timeouts: 1, windowSeconds: 300 });
    expect(rates.of('beta', 3_000)).toMatchObject({ rate: 0, attempts: 3 });
  });

  test('When an instance reports again, then its new report replaces the old one', () => {
    const rates = createSuccessRates(30_000);
    rates.apply('orch-1', report('orch-1', 1_000, [counts('alpha', 1, 0, 1, 0)]));
    rates.apply('orch-1', report('orch-1', 2_000, [counts('alpha', 3, 0, 1, 0)]));
    expect(rates.of('alpha', 2_000)).toMatchObject({ rate: 0.75, attempts: 4 });
  });

  test('When an instance stopped reporting, or nothing was seen, then it no longer counts and the rate is unknown', () => {
    const rates = createSuccessRates(30_000);
    rates.apply('gone', report('gone', 0, [counts('alpha', 5, 0, 0, 0)]));
    rates.apply('idle', report('idle', 40_000, [counts('alpha', 0, 0, 0, 0)]));
    expect(rates.of('alpha', 40_000)).toBeUndefined();
    expect(rates.of('unknown', 40_000)).toBeUndefined();
  });
});
