import { createAttemptStats } from './attempt-stats';

const MINUTE = 60_000;

describe('attempt stats', () => {
  test('When outcomes are recorded, then the summary counts them per gateway and class', () => {
    const stats = createAttemptStats(5 * MINUTE);
    const now = 10 * MINUTE;
    stats.record('alpha', 'success', now);
    stats.record('alpha', 'success', now);
    stats.record('alpha', 'timeout', now);
    stats.record('beta', 'final', now);
    stats.record('beta', 'retryable', now);
    expect(stats.summary(now)).toEqual([
      { gatewayId: 'alpha', successes: 2, declines: 0, failures: 0, timeouts: 1 },
      { gatewayId: 'beta', successes: 0, declines: 1, failures: 1, timeouts: 0 },
    ]);
    expect(stats.windowSeconds).toBe(300);
  });

  test('When outcomes are older than the window, then they leave the summary', () => {
    const stats = createAttemptStats(5 * MINUTE);
    stats.record('alpha', 'success', 0);
    stats.record('alpha', 'retryable', 4 * MINUTE);
    expect(stats.summary(4 * MINUTE)).toEqual([{ gatewayId: 'alpha', successes: 1, declines: 0, failures: 1, timeouts: 0 }]);
    expect(stats.summary(6 * MINUTE)).toEqual([{ gatewayId: 'alpha', successes: 0, declines: 0, failures: 1, timeouts: 0 }]);
    expect(stats.summary(10 * MINUTE)).toEqual([]);
  });
});
