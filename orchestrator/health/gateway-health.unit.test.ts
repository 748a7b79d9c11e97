import { createLogger } from '../../runtime/logger';
import type { GatewayRule } from '../../topics/schemas';
import type { Logger } from '../../runtime/logger';
import { validRule } from '../test-fixtures';
import {
  DEFAULT_WEIGHT_SETTINGS,
  createGatewayHealth,
  ejectionAllowance,
  type BreakerSettings,
  type BreakerState,
  type GatewayHealth,
  type GatewayHealthSettings,
} from './gateway-health';

type Breakers = GatewayHealth;

/**
 * The health model with consecutive-failure ejection off, so the tests of the
 * failure-rate breaker below see only opossum's window (the streak has its own tests).
 */
function createBreakers(settings: BreakerSettings, onChange: (gatewayId: string, state: BreakerState) => void, logger: Logger): Breakers {
  return createGatewayHealth(
    { breaker: settings, outlier: { consecutiveFailures: 0, maxEjectionMs: 60_000, maxEjectionPercent: 50 }, weights: DEFAULT_WEIGHT_SETTINGS },
    { onChange, rules: () => [], logger },
  );
}

// ---------------------------------------------------------------------------
// Small settings so a few outcomes move the breaker: two outcomes make the
// window trustworthy, more than half of them failing opens it, and an open
// breaker turns half-open after 100 ms of (fake) time.
// ---------------------------------------------------------------------------

const RESET_MS = 100;
const SETTINGS: BreakerSettings = { errorThresholdPercentage: 50, volumeThreshold: 2, rollingWindowMs: 10_000, resetTimeoutMs: RESET_MS };

/**
 * The time selection passes in, and how long a trial claim is held. Claims are
 * timed by the `nowMs` given, not by the breaker's (fake) timers, so tests move
 * it by hand; HOLD_MS is far longer than RESET_MS, so a claim cleared by a
 * state change is one that had not expired.
 */
const NOW = Date.parse('2024-05-01T12:00:00.000Z');
const HOLD_MS = 6_000;

/**
 * Lets the outcomes recorded so far reach the breakers.
 *
 * `record` fires the outcome through opossum, whose bookkeeping runs in
 * promise callbacks: a failure is seen two microtask turns later, a success
 * one turn later, and nothing is returned to await. `advanceTimersByTimeAsync(0)`
 * fires no fake timer but yields to the real event loop (fake-timers awaits the
 * original setImmediate), and a macrotask boundary drains the whole microtask
 * queue, however deep opossum's promise chain is. Counting `await
 * Promise.resolve()` turns would also pass today, but would break silently if
 * opossum added a `then`.
 */
const settle = () => jest.advanceTimersByTimeAsync(0);

interface Harness {
  breakers: Breakers;
  /** Every onChange call, as "gateway:state", in order. */
  reported: string[];
  /** The spy on logger.critical (the level breaker changes are logged at). */
  critical: jest.SpyInstance;
}

let current: Harness | undefined;

function harness(settings: BreakerSettings = SETTINGS): Harness {
  const logger = createLogger('breakers-test', 'silent');
  const critical = jest.spyOn(logger, 'critical');
  const reported: string[] = [];
  const breakers = createBreakers(settings, (gatewayId: string, state: BreakerState) => reported.push(`${gatewayId}:${state}`), logger);
  current = { breakers, reported, critical };
  return current;
}

/** The fields these tests check of each critical log; the reason and ejection fields have their own tests. */
const criticalFields = (critical: jest.SpyInstance) =>
  critical.mock.calls.map(([fields]: unknown[]) => {
    const { gatewayId, breaker, remote } = fields as { gatewayId: string; breaker: string; remote: boolean };
    return { gatewayId, breaker, remote };
  });

/** Records outcomes for one gateway and lets the breaker see them. */
async function given(breakers: Breakers, gatewayId: string, ...outcomes: Array<'ok' | 'technical-failure'>): Promise<void> {
  for (const outcome of outcomes) breakers.record(gatewayId, outcome);
  await settle();
}

/** A breaker for gw-a that two technical failures have opened, with the reports of that cleared. */
async function givenOpen(): Promise<Harness> {
  const opened = harness();
  await given(opened.breakers, 'gw-a', 'technical-failure', 'technical-failure');
  expect(opened.breakers.stateOf('gw-a')).toBe('open');
  opened.reported.length = 0;
  opened.critical.mockClear();
  return opened;
}

/** A breaker for gw-a that opened and waited its reset timeout: half-open, no trial out. */
async function givenHalfOpen(): Promise<Harness> {
  const halfOpen = await givenOpen();
  await jest.advanceTimersByTimeAsync(RESET_MS);
  expect(halfOpen.breakers.stateOf('gw-a')).toBe('half-open');
  halfOpen.reported.length = 0;
  halfOpen.critical.mockClear();
  return halfOpen;
}

beforeEach(() => {
  // Before any breaker exists: opossum arms its reset timer and window rotation with the (faked) globals.
  jest.useFakeTimers();
});

afterEach(() => {
  current?.breakers.shutdown();
  current = undefined;
  jest.useRealTimers();
});

// ---------------------------------------------------------------------------

describe('breakers: closed', () => {
  test('When a gateway has no outcome yet, then its breaker is closed, admits it, and nothing is reported', async () => {
    const { breakers, reported, critical } = harness();
    await settle();
    expect(breakers.stateOf('gw-a')).toBe('closed');
    expect(breakers.admits('gw-a', NOW)).toBe(true);
    expect(reported).toEqual([]);
    expect(critical).not.toHaveBeenCalled();
  });

  test('When one technical failure arrives, below the volume threshold, then the breaker stays closed', async () => {
    const { breakers, reported } = harness();
    await given(breakers, 'gw-a', 'technical-failure');
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['closed', true]);
    expect(reported).toEqual([]);
  });

  test('When the outcomes are ok, however many, then the breaker stays closed', async () => {
    const { breakers, reported } = harness();
    await given(breakers, 'gw-a', 'ok', 'ok', 'ok', 'ok', 'ok');
    expect(breakers.stateOf('gw-a')).toBe('closed');
    expect(reported).toEqual([]);
  });

  test('When business declines (recorded ok) dilute failures to exactly the threshold share, then it stays closed; one more failure opens it', async () => {
    const { breakers, reported } = harness();
    // A decline means the gateway worked: 1 failure in 2 is 50 %, not above the 50 % threshold.
    await given(breakers, 'gw-a', 'ok', 'technical-failure');
    expect(breakers.stateOf('gw-a')).toBe('closed');

    await given(breakers, 'gw-a', 'technical-failure');
    expect(breakers.stateOf('gw-a')).toBe('open');
    expect(reported).toEqual(['gw-a:open']);
  });

  test('When trials are claimed while closed, then every claim is granted and none is held: once half-open later, the breaker still admits and grants the trial', async () => {
    const { breakers } = harness();
    const claims = [0, 1, 2, 3, 4].map(() => breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS));
    expect(claims).toEqual([true, true, true, true, true]);
    expect(breakers.admits('gw-a', NOW)).toBe(true);

    await given(breakers, 'gw-a', 'technical-failure', 'technical-failure');
    await jest.advanceTimersByTimeAsync(RESET_MS);

    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', true]);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
  });

  test('When a trial is released for a closed breaker, or for a gateway never seen, then nothing changes', () => {
    const { breakers, reported, critical } = harness();
    breakers.releaseTrial('gw-a');
    breakers.releaseTrial('gw-new');
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW), breakers.stateOf('gw-new'), breakers.admits('gw-new', NOW)]).toEqual(['closed', true, 'closed', true]);
    expect(reported).toEqual([]);
    expect(critical).not.toHaveBeenCalled();
  });
});

describe('breakers: opening', () => {
  test('When technical failures reach the volume threshold above the error share, then the breaker opens, stops admitting, reports it once and logs it at critical', async () => {
    const { breakers, reported, critical } = harness();

    await given(breakers, 'gw-a', 'technical-failure', 'technical-failure');

    expect(breakers.stateOf('gw-a')).toBe('open');
    expect(breakers.admits('gw-a', NOW)).toBe(false);
    expect(reported).toEqual(['gw-a:open']);
    expect(criticalFields(critical)).toEqual([{ gatewayId: 'gw-a', breaker: 'open', remote: false }]);
  });

  test('When a trial is claimed while open, then it is refused, and the refused claim holds nothing once the breaker turns half-open', async () => {
    const { breakers } = await givenOpen();

    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(false);
    expect(breakers.tryAcquireTrial('gw-a', NOW + HOLD_MS * 10, HOLD_MS)).toBe(false);

    await jest.advanceTimersByTimeAsync(RESET_MS);
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', true]);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
  });

  test('When outcomes keep arriving while open, then they are turned away quietly: no report, no unhandled rejection, still open', async () => {
    const { breakers, reported } = await givenOpen();
    const unhandled = jest.fn();
    process.on('unhandledRejection', unhandled);
    try {
      await given(breakers, 'gw-a', 'ok', 'technical-failure', 'ok');
      expect(breakers.stateOf('gw-a')).toBe('open');
      expect(reported).toEqual([]);
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });

  test("When one gateway's breaker opens, then the others are untouched", async () => {
    const { breakers, reported } = harness();
    await given(breakers, 'gw-b', 'ok');
    await given(breakers, 'gw-a', 'technical-failure', 'technical-failure');
    expect([breakers.stateOf('gw-a'), breakers.stateOf('gw-b'), breakers.stateOf('gw-c')]).toEqual(['open', 'closed', 'closed']);
    expect([breakers.admits('gw-b', NOW), breakers.admits('gw-c', NOW)]).toEqual([true, true]);
    expect([breakers.tryAcquireTrial('gw-b', NOW, HOLD_MS), breakers.tryAcquireTrial('gw-c', NOW, HOLD_MS)]).toEqual([true, true]);
    expect(reported).toEqual(['gw-a:open']);
  });
});

describe('breakers: half-open', () => {
  test('When the reset timeout has not fully passed, then it stays open; when it has, then it is half-open, admits a trial and reports it', async () => {
    const { breakers, reported, critical } = await givenOpen();

    await jest.advanceTimersByTimeAsync(RESET_MS - 1);
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['open', false]);
    expect(reported).toEqual([]);

    await jest.advanceTimersByTimeAsync(1);
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', true]);
    expect(reported).toEqual(['gw-a:half-open']);
    expect(criticalFields(critical)).toEqual([{ gatewayId: 'gw-a', breaker: 'half-open', remote: false }]);
  });

  test('When the trial is claimed twice in a row while half-open, then the second claim is refused and the breaker admits nothing more until the claim ends', async () => {
    const { breakers } = await givenHalfOpen();

    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(false);

    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', false]);
    // Still held the last millisecond before it expires, by a claim or by selection.
    expect(breakers.tryAcquireTrial('gw-a', NOW + HOLD_MS - 1, HOLD_MS)).toBe(false);
    expect(breakers.admits('gw-a', NOW + HOLD_MS - 1)).toBe(false);
  });

  test('When a trial claim expires with no outcome (its attempt never went out), then the gateway is admitted again and the trial can be claimed anew, for a new hold', async () => {
    const { breakers } = await givenHalfOpen();
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);

    const expired = NOW + HOLD_MS;
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', expired)]).toEqual(['half-open', true]);
    expect(breakers.tryAcquireTrial('gw-a', expired, HOLD_MS)).toBe(true);

    // The new claim is held from when it was made.
    expect(breakers.admits('gw-a', expired + HOLD_MS - 1)).toBe(false);
    expect(breakers.tryAcquireTrial('gw-a', expired + HOLD_MS - 1, HOLD_MS)).toBe(false);
    expect(breakers.tryAcquireTrial('gw-a', expired + HOLD_MS, HOLD_MS)).toBe(true);
  });

  test('When a claimed trial is released (its attempt was not sent after all), then the gateway is admitted and the trial can be claimed again at once, once', async () => {
    const { breakers, reported } = await givenHalfOpen();
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);

    breakers.releaseTrial('gw-a');

    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', true]);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(false);
    expect(reported).toEqual([]);
  });

  test('When the trial succeeds, then the breaker closes, admits again and reports closed', async () => {
    const { breakers, reported, critical } = await givenHalfOpen();
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);

    await given(breakers, 'gw-a', 'ok');

    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['closed', true]);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
    expect(reported).toEqual(['gw-a:closed']);
    expect(criticalFields(critical)).toEqual([{ gatewayId: 'gw-a', breaker: 'closed', remote: false }]);
  });

  test('When the trial fails, then the breaker opens again, and after another reset timeout admits a new trial (the state changes cleared the unexpired claim)', async () => {
    const { breakers, reported } = await givenHalfOpen();
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);

    await given(breakers, 'gw-a', 'technical-failure');
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['open', false]);

    // The second ejection in a row lasts twice the first (ejection time grows with repeated ejections).
    await jest.advanceTimersByTimeAsync(2 * RESET_MS);
    // NOW is well inside the first claim's hold: only the state change can have freed it.
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', true]);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
    expect(reported).toEqual(['gw-a:open', 'gw-a:half-open']);
  });

  test('When two outcomes arrive together while half-open, then only the first is the trial (a failure first keeps it open)', async () => {
    const { breakers, reported } = await givenHalfOpen();
    await given(breakers, 'gw-a', 'technical-failure', 'ok');
    expect(breakers.stateOf('gw-a')).toBe('open');
    expect(reported).toEqual(['gw-a:open']);
  });

  test('When a business decline answers the trial, then the breaker closes (the gateway worked)', async () => {
    const { breakers } = await givenHalfOpen();
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
    await given(breakers, 'gw-a', 'ok');
    expect(breakers.stateOf('gw-a')).toBe('closed');
  });

  test("When one gateway's trial is claimed, then another half-open gateway's trial is still free", async () => {
    const { breakers } = await givenHalfOpen();
    breakers.applyRemote('gw-b', 'open');
    await jest.advanceTimersByTimeAsync(RESET_MS);
    expect([breakers.stateOf('gw-a'), breakers.stateOf('gw-b')]).toEqual(['half-open', 'half-open']);

    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);

    expect([breakers.admits('gw-a', NOW), breakers.admits('gw-b', NOW)]).toEqual([false, true]);
    expect(breakers.tryAcquireTrial('gw-b', NOW, HOLD_MS)).toBe(true);
  });
});

describe('breakers: state from other instances', () => {
  test('When another instance reports open, then this breaker opens and stops admitting without reporting it back, and logs it as remote', async () => {
    const { breakers, reported, critical } = harness();

    breakers.applyRemote('gw-a', 'open');

    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['open', false]);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(false);
    expect(reported).toEqual([]);
    expect(criticalFields(critical)).toEqual([{ gatewayId: 'gw-a', breaker: 'open', remote: true }]);
  });

  test("When a remotely opened breaker's own reset timeout passes, then it turns half-open and reports that as its own change", async () => {
    const { breakers, reported } = harness();
    breakers.applyRemote('gw-a', 'open');

    await jest.advanceTimersByTimeAsync(RESET_MS);

    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', true]);
    expect(reported).toEqual(['gw-a:half-open']);
  });

  test('When another instance reports closed for an open breaker, then it closes and admits without reporting, and its reset timer no longer fires', async () => {
    const { breakers, reported, critical } = await givenOpen();

    breakers.applyRemote('gw-a', 'closed');
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['closed', true]);

    await jest.advanceTimersByTimeAsync(RESET_MS * 3);
    expect(breakers.stateOf('gw-a')).toBe('closed');
    expect(reported).toEqual([]);
    expect(criticalFields(critical)).toEqual([{ gatewayId: 'gw-a', breaker: 'closed', remote: true }]);
  });

  test('When another instance reports closed while a trial is claimed, then the breaker closes and the claim is cleared: the next half-open admits a trial before the old claim expires', async () => {
    const { breakers, reported } = await givenHalfOpen();
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
    expect(breakers.admits('gw-a', NOW)).toBe(false);

    breakers.applyRemote('gw-a', 'closed');

    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['closed', true]);
    expect(reported).toEqual([]);

    await given(breakers, 'gw-a', 'technical-failure', 'technical-failure');
    // The second ejection in a row lasts twice the first (ejection time grows with repeated ejections).
    await jest.advanceTimersByTimeAsync(2 * RESET_MS);
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW + 1)]).toEqual(['half-open', true]);
    expect(breakers.tryAcquireTrial('gw-a', NOW + 1, HOLD_MS)).toBe(true);
  });

  test('When another instance reports open while a trial is claimed, then the claim is cleared with the change: once half-open again the trial is free at once', async () => {
    const { breakers, reported } = await givenHalfOpen();
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);

    breakers.applyRemote('gw-a', 'open');
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['open', false]);

    // The second ejection in a row lasts twice the first (ejection time grows with repeated ejections).
    await jest.advanceTimersByTimeAsync(2 * RESET_MS);
    expect([breakers.stateOf('gw-a'), breakers.admits('gw-a', NOW)]).toEqual(['half-open', true]);
    expect(breakers.tryAcquireTrial('gw-a', NOW, HOLD_MS)).toBe(true);
    expect(reported).toEqual(['gw-a:half-open']);
  });

  test('When another instance reports half-open, then it is ignored: half-open is each instance’s own timer', async () => {
    const { breakers, reported, critical } = await givenOpen();
    breakers.applyRemote('gw-a', 'half-open');
    breakers.applyRemote('gw-b', 'half-open');
    expect([breakers.stateOf('gw-a'), breakers.stateOf('gw-b')]).toEqual(['open', 'closed']);
    expect(reported).toEqual([]);
    expect(critical).not.toHaveBeenCalled();
  });

  test('When another instance reports the state this breaker is already in, then nothing is logged or reported', async () => {
    const { breakers, reported, critical } = await givenOpen();
    breakers.applyRemote('gw-a', 'open');
    breakers.applyRemote('gw-b', 'closed');
    expect([breakers.stateOf('gw-a'), breakers.stateOf('gw-b')]).toEqual(['open', 'closed']);
    expect(reported).toEqual([]);
    expect(critical).not.toHaveBeenCalled();
  });

  test('When a remote state has been applied, then later local changes are reported again', async () => {
    const { breakers, reported } = harness();
    breakers.applyRemote('gw-a', 'open');
    breakers.applyRemote('gw-a', 'closed');

    await given(breakers, 'gw-a', 'technical-failure', 'technical-failure');

    expect(breakers.stateOf('gw-a')).toBe('open');
    expect(reported).toEqual(['gw-a:open']);
  });
  test('When this instance has outcomes of its own newer than a remote state, then its own evidence decides; a newer remote state still applies', async () => {
    const { breakers } = harness();
    await given(breakers, 'gw-a', 'ok');
    breakers.applyRemote('gw-a', 'open', Date.now() - 1);
    expect(breakers.stateOf('gw-a')).toBe('closed');
    breakers.applyRemote('gw-a', 'open', Date.now() + 1);
    expect(breakers.stateOf('gw-a')).toBe('open');
  });
});

// ---------------------------------------------------------------------------
// The whole model: consecutive-failure ejection, its growth and cap, the
// region's ejection cap, and the count-window weights.
// ---------------------------------------------------------------------------

const BASE_MS = 1_000;
const MAX_MS = 2_500;

interface ModelHarness {
  health: GatewayHealth;
  reported: string[];
  critical: jest.SpyInstance;
  suppressed: string[];
}

function model(rules: GatewayRule[], overrides: Partial<GatewayHealthSettings> = {}): ModelHarness {
  const logger = createLogger('health-test', 'silent');
  const critical = jest.spyOn(logger, 'critical');
  const reported: string[] = [];
  const suppressed: string[] = [];
  const health = createGatewayHealth(
    {
      // A failure-rate window that never trips in these tests (volume far away), so only the streak ejects.
      breaker: { errorThresholdPercentage: 50, volumeThreshold: 1_000, rollingWindowMs: 60_000, resetTimeoutMs: BASE_MS },
      outlier: { consecutiveFailures: 3, maxEjectionMs: MAX_MS, maxEjectionPercent: 50 },
      weights: { windowOutcomes: 10, floor: 0.1 },
      ...overrides,
    },
    {
      onChange: (gatewayId, state, change) => reported.push(`${gatewayId}:${state}:${change.reason}`),
      onEjectionSuppressed: (gatewayId, region) => suppressed.push(`${gatewayId}@${region}`),
      rules: () => rules,
      logger,
    },
  );
  current = { breakers: health, reported, critical };
  return { health, reported, critical, suppressed };
}

const eu = (gatewayId: string, fields: Partial<GatewayRule> = {}) => validRule(gatewayId, { regions: ['EU'], ...fields });

describe('outlier ejection: consecutive technical failures', () => {
  test('When a gateway fails 3 times in a row, then it is ejected at the third failure, whatever the time between them', async () => {
    const { health, reported } = model([eu('a'), eu('b')]);
    health.record('a', 'technical-failure');
    await jest.advanceTimersByTimeAsync(50_000);
    health.record('a', 'technical-failure');
    expect(health.stateOf('a')).toBe('closed');
    expect(health.explain('a', 5_000).consecutiveFailures).toBe(2);
    await jest.advanceTimersByTimeAsync(50_000);
    health.record('a', 'technical-failure');
    expect(health.stateOf('a')).toBe('open');
    expect(reported).toEqual(['a:open:consecutive-failures']);
    expect(health.explain('a', 5_000)).toMatchObject({ state: 'open', consecutiveFailures: 0, lastChange: { reason: 'consecutive-failures', ejections: 1 } });
  });

  test('When an answer (a success or a business decline) comes between failures, then the streak starts over', async () => {
    const { health } = model([eu('a'), eu('b')]);
    health.record('a', 'technical-failure');
    health.record('a', 'technical-failure');
    health.record('a', 'ok', 200);
    health.record('a', 'technical-failure');
    health.record('a', 'technical-failure');
    await settle();
    expect(health.stateOf('a')).toBe('closed');
    expect(health.explain('a', 5_000).consecutiveFailures).toBe(2);
  });

  test('When ejected again and again, then each ejection lasts the base time more, up to the cap, and the log says why', async () => {
    const { health, reported, critical } = model([eu('a'), eu('b')]);
    const eject = async () => {
      for (let index = 0; index < 3; index++) health.record('a', 'technical-failure');
      await settle();
    };
    await eject();
    expect(health.explain('a', 5_000).lastChange).toMatchObject({ ejections: 1, ejectedUntil: new Date(Date.now() + BASE_MS).toISOString() });
    await jest.advanceTimersByTimeAsync(BASE_MS - 1);
    expect(health.stateOf('a')).toBe('open');
    await jest.advanceTimersByTimeAsync(1);
    expect(health.stateOf('a')).toBe('half-open');

    // The trial fails: 2 × base.
    health.record('a', 'technical-failure');
    await settle();
    expect(health.explain('a', 5_000).lastChange).toMatchObject({ state: 'open', reason: 'trial-failed', ejections: 2 });
    await jest.advanceTimersByTimeAsync(2 * BASE_MS - 1);
    expect(health.stateOf('a')).toBe('open');
    await jest.advanceTimersByTimeAsync(1);
    health.record('a', 'technical-failure');
    await settle();
    // Third: 3 × base is over the cap, so the cap.
    expect(health.explain('a', 5_000).lastChange).toMatchObject({ ejections: 3, ejectedUntil: new Date(Date.now() + MAX_MS).toISOString() });
    await jest.advanceTimersByTimeAsync(MAX_MS);
    health.record('a', 'ok', 100);
    await settle();
    expect(health.stateOf('a')).toBe('closed');
    expect(reported).toEqual([
      'a:open:consecutive-failures',
      'a:half-open:ejection-over',
      'a:open:trial-failed',
      'a:half-open:ejection-over',
      'a:open:trial-failed',
      'a:half-open:ejection-over',
      'a:closed:trial-succeeded',
    ]);
    expect(critical.mock.calls.every(([, message]: unknown[]) => typeof message === 'string' && message.startsWith('gateway breaker'))).toBe(true);

    // Closed for as long as the longest ejection: the next ejection starts over at the base time.
    await jest.advanceTimersByTimeAsync(MAX_MS);
    await eject();
    expect(health.explain('a', 5_000).lastChange).toMatchObject({ ejections: 1, ejectedUntil: new Date(Date.now() + BASE_MS).toISOString() });
  });

  test('When ejecting a gateway would eject more than the allowed share of its region, then it stays in, weighted down, and the refusal is shown', async () => {
    const { health, reported, suppressed } = model([eu('a'), eu('b')]);
    for (let index = 0; index < 3; index++) health.record('b', 'technical-failure');
    await settle();
    expect(health.stateOf('b')).toBe('open');

    for (let index = 0; index < 4; index++) health.record('a', 'technical-failure');
    await settle();
    expect(health.stateOf('a')).toBe('closed');
    expect(reported).toEqual(['b:open:consecutive-failures']);
    expect(suppressed).toEqual(['a@EU', 'a@EU']);
    expect(health.explain('a', 5_000)).toMatchObject({ consecutiveFailures: 4, ejectionSuppressed: { region: 'EU' } });
    expect(health.factorOf('a', 5_000)).toBeLessThan(1);
  });

  test('When the only gateway of a region fails, then it is never ejected by the streak (a region is never emptied)', async () => {
    const { health } = model([eu('a'), validRule('us', { regions: ['US'] })]);
    for (let index = 0; index < 5; index++) health.record('a', 'technical-failure');
    await settle();
    expect(health.stateOf('a')).toBe('closed');
  });

  test('When the streak count is 0, then consecutive failures never eject', async () => {
    const { health } = model([eu('a'), eu('b')], { outlier: { consecutiveFailures: 0, maxEjectionMs: MAX_MS, maxEjectionPercent: 50 } });
    for (let index = 0; index < 5; index++) health.record('a', 'technical-failure');
    await settle();
    expect(health.stateOf('a')).toBe('closed');
  });

  test.each([
    [1, 50, 0],
    [2, 50, 1],
    [3, 50, 1],
    [4, 50, 2],
    [4, 100, 3],
    [10, 10, 1],
    [5, 0, 0],
  ])('When a region has %i gateways and %i %% may be ejected, then %i may be out at once', (count, percent, allowed) => {
    expect(ejectionAllowance(count, percent)).toBe(allowed);
  });
});

describe('health weights: the last N outcomes, not a time window', () => {
  const TIMEOUT = 4_000;

  test('When a gateway has no outcomes yet, then its factor is 1 and its window is empty', () => {
    const { health } = model([eu('a')]);
    expect(health.explain('a', TIMEOUT)).toMatchObject({ factor: 1, window: { outcomes: 0, successRate: 1, meanLatencyMs: null } });
  });

  test('When a healthy gateway becomes slow (answers at 60 % of its timeout), then it is weighted down to 0.3 but never ejected', async () => {
    const { health, reported } = model([eu('a'), eu('b')]);
    for (let index = 0; index < 10; index++) health.record('a', 'ok', 0.6 * TIMEOUT);
    await settle();
    // latency factor 1 − (0.6 − 0.25) / 0.5 = 0.3; every answer a success.
    expect(health.factorOf('a', TIMEOUT)).toBeCloseTo(0.3, 10);
    expect(health.effectiveWeight('a', 10, TIMEOUT)).toBe(3);
    expect(health.stateOf('a')).toBe('closed');
    expect(reported).toEqual([]);
  });

  test('When the outcomes are minutes apart, then the factor is the same as if they were milliseconds apart', async () => {
    const { health } = model([eu('a')]);
    for (let index = 0; index < 10; index++) {
      health.record('a', index % 4 === 0 ? 'technical-failure' : 'ok', 100);
      await jest.advanceTimersByTimeAsync(60_000);
    }
    // 3 failures in 10: success 0.7 → (0.7 − 0.5) / 0.45.
    expect(health.explain('a', TIMEOUT).window).toEqual({ outcomes: 10, successRate: 0.7, meanLatencyMs: 100 });
    expect(health.factorOf('a', TIMEOUT)).toBeCloseTo(0.2 / 0.45, 10);
  });

  test('When more than N outcomes arrive, then only the last N count: a gateway that healed recovers its full weight', () => {
    const { health } = model([eu('a'), eu('b')], { outlier: { consecutiveFailures: 0, maxEjectionMs: MAX_MS, maxEjectionPercent: 50 } });
    for (let index = 0; index < 10; index++) health.record('a', 'technical-failure');
    expect(health.factorOf('a', TIMEOUT)).toBe(0.1);
    for (let index = 0; index < 10; index++) health.record('a', 'ok', 100);
    expect(health.factorOf('a', TIMEOUT)).toBe(1);
  });

  test('When a gateway times out, then the timeout counts against its success rate but not its latency', () => {
    const { health } = model([eu('a'), eu('b')]);
    health.record('a', 'technical-failure');
    health.record('a', 'ok', 200);
    expect(health.explain('a', TIMEOUT).window).toEqual({ outcomes: 2, successRate: 0.5, meanLatencyMs: 200 });
  });
});
