import type { AttemptCommand, AttemptRequested } from '../topics/schemas';
import { controlledSleep } from '../test/support/sleep';
import { loadGatewayConfig } from './config';
import {
  AttemptBook,
  abortableSleep,
  createSandboxAdapter,
  isFlapErrorPhase,
  planAttempt,
  sandboxSettings,
  type AttemptState,
  type CommandOutcome,
  type SandboxSettings,
} from './sandbox';

const settings = (fields: Partial<SandboxSettings> = {}): SandboxSettings => sandboxSettings.parse(fields);
/** A time at the start of a 2 s flap period (a multiple of 2000 ms since the epoch). */
const PERIOD_START = 1_700_000_000_000;
const HIT = 0.1;
const MISS = 0.9;

const success = (delayMs: number, deliveries: 1 | 2 = 1) => ({ kind: 'answer', delayMs, answer: { outcome: 'success' }, deliveries });
const failure = (delayMs: number, reasonCode: string) => ({ kind: 'answer', delayMs, answer: { outcome: 'failure', reasonCode }, deliveries: 1 });

describe('sandbox settings', () => {
  test('When nothing is given, then it is healthy with no latency, rate 1, a 2 s flap period and a 10 s late delay', () => {
    expect(settings()).toEqual({ mode: 'healthy', latencyMs: 0, rate: 1, periodMs: 2000, lateMs: 10_000 });
  });

  test.each([
    ['an unknown mode', { mode: 'chaos' }],
    ['a rate above 1', { rate: 1.5 }],
    ['a rate given as a string', { rate: '0.5' }],
    ['a null latency', { latencyMs: null }],
    ['a fractional period', { periodMs: 1.5 }],
    ['a period under 2 ms', { periodMs: 1 }],
    ['a negative late delay', { lateMs: -1 }],
    ['an unknown field', { speed: 3 }],
  ])('When the body has %s, then it is refused', (_case, body) => {
    expect(sandboxSettings.safeParse(body).success).toBe(false);
  });

  test('When the environment sets every sandbox variable, then the gateway config carries them as numbers', () => {
    const config = loadGatewayConfig({
      GATEWAY_ID: 'gw-a',
      SANDBOX_MODE: 'flap',
      SANDBOX_LATENCY_MS: '20',
      SANDBOX_RATE: '0.25',
      SANDBOX_PERIOD_MS: '4000',
      SANDBOX_LATE_MS: '15000',
    });
    expect(config).toMatchObject({ SANDBOX_MODE: 'flap', SANDBOX_LATENCY_MS: 20, SANDBOX_RATE: 0.25, SANDBOX_PERIOD_MS: 4000, SANDBOX_LATE_MS: 15_000 });
  });

  test('When the environment leaves the sandbox variables unset or empty, then the defaults apply', () => {
    const config = loadGatewayConfig({ GATEWAY_ID: 'gw-a', SANDBOX_RATE: '' });
    expect(config).toMatchObject({ SANDBOX_MODE: 'healthy', SANDBOX_LATENCY_MS: 0, SANDBOX_RATE: 1, SANDBOX_PERIOD_MS: 2000, SANDBOX_LATE_MS: 10_000, DRAIN_GRACE_MS: 1000 });
  });

  test('When an environment variable is not a number, then start-up fails naming it', () => {
    expect(() => loadGatewayConfig({ GATEWAY_ID: 'gw-a', SANDBOX_LATE_MS: 'soon' })).toThrow(/SANDBOX_LATE_MS/);
  });
});

describe('planAttempt', () => {
  test.each<[string, Partial<SandboxSettings>, number, object]>([
    ['healthy', { mode: 'healthy', latencyMs: 30 }, HIT, success(30)],
    ['slow', { mode: 'slow', latencyMs: 5000 }, HIT, success(5000)],
    ['decline, drawn', { mode: 'decline', latencyMs: 30 }, HIT, failure(30, 'insufficient_funds')],
    ['decline, not drawn', { mode: 'decline', latencyMs: 30, rate: 0.5 }, MISS, success(30)],
    ['error, drawn', { mode: 'error', latencyMs: 30 }, HIT, failure(30, 'gateway_error')],
    ['error, not drawn', { mode: 'error', latencyMs: 30, rate: 0.5 }, MISS, success(30)],
    ['hang, drawn', { mode: 'hang', latencyMs: 30 }, HIT, { kind: 'silent' }],
    ['hang, not drawn', { mode: 'hang', latencyMs: 30, rate: 0.5 }, MISS, success(30)],
    ['duplicate, drawn', { mode: 'duplicate', latencyMs: 30 }, HIT, success(30, 2)],
    ['duplicate, not drawn', { mode: 'duplicate', latencyMs: 30, rate: 0.5 }, MISS, success(30, 1)],
    ['late, drawn', { mode: 'late', latencyMs: 30, lateMs: 12_000 }, HIT, success(12_000)],
    ['late, not drawn', { mode: 'late', latencyMs: 30, lateMs: 12_000, rate: 0.5 }, MISS, success(30)],
  ])('When the mode is %s, then the plan follows it', (_case, fields, draw, plan) => {
    expect(planAttempt(settings(fields), PERIOD_START, draw)).toEqual(plan);
  });

  test('When the rate is 0, then no attempt is affected, even with the lowest draw', () => {
    expect(planAttempt(settings({ mode: 'decline', rate: 0 }), PERIOD_START, 0)).toEqual(success(0));
  });

  test('When the rate is 1, then every attempt is affected, even with the highest draw', () => {
    expect(planAttempt(settings({ mode: 'decline', rate: 1 }), PERIOD_START, 0.999_999)).toEqual(failure(0, 'insufficient_funds'));
  });

  test('When the draw equals the rate, then the attempt is not affected (a share `rate` of draws in [0, 1) is below it)', () => {
    expect(planAttempt(settings({ mode: 'error', rate: 0.3 }), PERIOD_START, 0.3)).toEqual(success(0));
  });

  test('When healthy or slow, then the rate is not used', () => {
    expect(planAttempt(settings({ mode: 'healthy', rate: 1 }), PERIOD_START, 0)).toEqual(success(0));
    expect(planAttempt(settings({ mode: 'slow', rate: 1 }), PERIOD_START, 0)).toEqual(success(0));
  });

  test.each<[number, 'error' | 'healthy']>([
    [0, 'error'],
    [999, 'error'],
    [1000, 'healthy'],
    [1999, 'healthy'],
    [2000, 'error'],
    [2999, 'error'],
    [3000, 'healthy'],
  ])('When flapping with a 2 s period, then %i ms into it is %s', (offset, phase) => {
    const plan = planAttempt(settings({ mode: 'flap', latencyMs: 5 }), PERIOD_START + offset, HIT);
    expect(plan).toEqual(phase === 'error' ? failure(5, 'gateway_error') : success(5));
  });

  test('When flapping in the erroring half, then only a share `rate` errors', () => {
    expect(planAttempt(settings({ mode: 'flap', rate: 0.5 }), PERIOD_START, MISS)).toEqual(success(0));
  });

  test('When the flap period is odd, then the erroring half is the phases below half the period', () => {
    expect([0, 1, 2].map((phase) => isFlapErrorPhase(PERIOD_START + phase - (PERIOD_START % 3), 3))).toEqual([true, true, false]);
  });

  test('When the flap period is custom, then the boundary moves with it', () => {
    expect(isFlapErrorPhase(PERIOD_START + 4999, 10_000)).toBe(true);
    expect(isFlapErrorPhase(PERIOD_START + 5000, 10_000)).toBe(false);
  });
});

describe('AttemptBook', () => {
  /** A book holding attempt `a` in the given state. */
  function bookWith(state: AttemptState | 'silent' | 'never seen'): AttemptBook {
    const book = new AttemptBook();
    if (state === 'never seen') return book;
    book.receive('a', state === 'silent');
    if (state === 'succeeded' || state === 'compensated') book.settle('a', { outcome: 'success' });
    if (state === 'failed') book.settle('a', { outcome: 'failure', reasonCode: 'gateway_error' });
    if (state === 'cancelled') book.command('cancel', 'a');
    if (state === 'compensated') book.command('compensate', 'a');
    expect(book.state('a')).toBe(state === 'silent' ? 'pending' : state);
    return book;
  }

  test.each<[AttemptState | 'silent' | 'never seen', 'cancel' | 'compensate', CommandOutcome, boolean, AttemptState | undefined]>([
    ['never seen', 'cancel', 'not-found', false, 'cancelled'],
    ['never seen', 'compensate', 'not-found', false, 'cancelled'],
    ['pending', 'cancel', 'cancelled', true, 'cancelled'],
    ['pending', 'compensate', 'cancelled', true, 'cancelled'],
    ['silent', 'cancel', 'ignored', false, 'pending'],
    ['silent', 'compensate', 'ignored', false, 'pending'],
    ['succeeded', 'cancel', 'already-succeeded', false, 'succeeded'],
    ['succeeded', 'compensate', 'compensated', false, 'compensated'],
    ['failed', 'cancel', 'cancelled', false, 'failed'],
    ['failed', 'compensate', 'cancelled', false, 'failed'],
    ['cancelled', 'cancel', 'cancelled', false, 'cancelled'],
    ['cancelled', 'compensate', 'cancelled', false, 'cancelled'],
    ['compensated', 'cancel', 'compensated', false, 'compensated'],
    ['compensated', 'compensate', 'compensated', false, 'compensated'],
  ])('When the attempt is %s and a %s arrives, then it answers %s (stop: %s) and the attempt is then %s', (state, command, outcome, stop, after) => {
    const book = bookWith(state);
    expect(book.command(command, 'a')).toEqual({ outcome, stop });
    expect(book.state('a')).toBe(after);
  });

  test('When the same command about an unknown attempt is repeated, then it answers not-found each time', () => {
    const book = new AttemptBook();
    expect(book.command('cancel', 'a').outcome).toBe('not-found');
    expect(book.command('cancel', 'a').outcome).toBe('not-found');
    expect(book.command('compensate', 'a').outcome).toBe('not-found');
  });

  test('When a pending attempt was cancelled, then its wait ending does not answer it', () => {
    const book = bookWith('pending');
    book.command('cancel', 'a');
    expect(book.settle('a', { outcome: 'success' })).toBe(false);
    expect(book.state('a')).toBe('cancelled');
  });

  test('When a pending attempt is abandoned, then it is not answered and a cancel answers cancelled', () => {
    const book = bookWith('pending');
    book.abandon('a');
    expect(book.settle('a', { outcome: 'success' })).toBe(false);
    expect(book.command('cancel', 'a').outcome).toBe('cancelled');
  });

  test('When more attempts arrive than it can hold, then it keeps the most recent ones, the oldest answering not-found', () => {
    const book = new AttemptBook(3);
    for (const id of ['a', 'b', 'c', 'd', 'e']) book.receive(id);
    expect(book.size).toBe(3);
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => book.has(id))).toEqual([false, false, true, true, true]);
    expect(book.command('cancel', 'a').outcome).toBe('not-found');
  });

  test('When an old attempt changes state, then it becomes the most recent and is kept over newer idle ones', () => {
    const book = new AttemptBook(2);
    book.receive('a');
    book.receive('b');
    book.settle('a', { outcome: 'success' });
    book.receive('c');
    expect([book.has('a'), book.has('b'), book.has('c')]).toEqual([true, false, true]);
  });

  test('When a waiting attempt was forgotten, then its wait ending still answers it and records it', () => {
    const book = new AttemptBook(1);
    book.receive('a');
    book.receive('b');
    expect(book.settle('a', { outcome: 'success' })).toBe(true);
    expect(book.state('a')).toBe('succeeded');
  });
});

const request = (attemptId: string): AttemptRequested => ({
  eventId: `ev-${attemptId}`,
  type: 'attempt.requested',
  occurredAt: new Date(PERIOD_START).toISOString(),
  schemaVersion: 1,
  paymentId: `pay-${attemptId}`,
  attemptId,
  gatewayId: 'gw-a',
  paymentType: 'deposit',
  accountId: 'acc-1',
  amount: '1000',
  currency: 'EUR',
  region: 'EU',
  deadline: new Date(PERIOD_START + 5000).toISOString(),
});

const command = (kind: 'cancel' | 'compensate', attemptId: string): AttemptCommand => ({
  eventId: `cmd-${attemptId}`,
  type: 'attempt.command',
  occurredAt: new Date(PERIOD_START).toISOString(),
  schemaVersion: 1,
  command: kind,
  paymentId: `pay-${attemptId}`,
  attemptId,
  gatewayId: 'gw-a',
  reason: 'test',
});

describe('the sandbox adapter', () => {
  const adapterWith = (fields: Partial<SandboxSettings>, draw = HIT) => {
    const sleeper = controlledSleep();
    const adapter = createSandboxAdapter(settings(fields), { random: () => draw, clock: () => new Date(PERIOD_START), sleep: sleeper.sleep });
    return { adapter, calls: sleeper.calls };
  };

  test('When an attempt arrives with latency, then it answers only once its wait is over', async () => {
    const { adapter, calls } = adapterWith({ latencyMs: 40 });
    const answer = adapter.process(request('a'));
    expect(calls.map((call) => call.ms)).toEqual([40]);
    expect(adapter.command(command('cancel', 'b'))).toBe('not-found');
    calls[0]?.wake();
    await expect(answer).resolves.toEqual({ outcome: 'success', gatewayReference: 'sbx-a', deliveries: 1 });
  });

  test('When there is no latency, then it answers without sleeping', async () => {
    const { adapter, calls } = adapterWith({ mode: 'decline' });
    await expect(adapter.process(request('a'))).resolves.toEqual({ outcome: 'failure', reasonCode: 'insufficient_funds', deliveries: 1 });
    expect(calls).toEqual([]);
  });

  test('When a late attempt is cancelled while it waits, then its sleep is woken at once and it is not answered', async () => {
    const { adapter, calls } = adapterWith({ mode: 'late', lateMs: 10_000 });
    const answer = adapter.process(request('a'));
    expect(calls.map((call) => call.ms)).toEqual([10_000]);
    expect(adapter.command(command('cancel', 'a'))).toBe('cancelled');
    expect(calls[0]?.signal.aborted).toBe(true);
    await expect(answer).resolves.toEqual({ outcome: 'no-answer', why: 'cancelled' });
    expect(adapter.command(command('cancel', 'a'))).toBe('cancelled');
  });

  test('When an attempt hangs, then it is never answered and commands about it are ignored', async () => {
    const { adapter, calls } = adapterWith({ mode: 'hang' });
    await expect(adapter.process(request('a'))).resolves.toEqual({ outcome: 'no-answer', why: 'hang' });
    expect(calls).toEqual([]);
    expect(adapter.command(command('cancel', 'a'))).toBe('ignored');
    expect(adapter.command(command('compensate', 'a'))).toBe('ignored');
  });

  test('When an attempt succeeded, then cancel answers already-succeeded and compensate answers compensated', async () => {
    const { adapter } = adapterWith({});
    await adapter.process(request('a'));
    expect(adapter.command(command('cancel', 'a'))).toBe('already-succeeded');
    expect(adapter.command(command('compensate', 'a'))).toBe('compensated');
    expect(adapter.command(command('cancel', 'a'))).toBe('compensated');
  });

  test('When duplicating, then a drawn attempt is answered twice', async () => {
    const { adapter } = adapterWith({ mode: 'duplicate' });
    await expect(adapter.process(request('a'))).resolves.toEqual({ outcome: 'success', gatewayReference: 'sbx-a', deliveries: 2 });
  });

  test('When the same settled attempt is requested again, then the same answer is given once and nothing is redone', async () => {
    const { adapter, calls } = adapterWith({ mode: 'error', latencyMs: 10 });
    const first = adapter.process(request('a'));
    calls[0]?.wake();
    await expect(first).resolves.toEqual({ outcome: 'failure', reasonCode: 'gateway_error', deliveries: 1 });
    adapter.configure(settings({ mode: 'healthy' }));
    await expect(adapter.process(request('a'))).resolves.toEqual({ outcome: 'failure', reasonCode: 'gateway_error', deliveries: 1 });
    expect(calls).toHaveLength(1);
  });

  test('When the same attempt is requested while it still waits, then the repeat is not answered', async () => {
    const { adapter, calls } = adapterWith({ latencyMs: 10 });
    const first = adapter.process(request('a'));
    await expect(adapter.process(request('a'))).resolves.toEqual({ outcome: 'no-answer', why: 'repeat' });
    calls[0]?.wake();
    await expect(first).resolves.toMatchObject({ outcome: 'success' });
  });

  test('When a cancel for an unknown attempt came first, then a later request for it is not processed', async () => {
    const { adapter, calls } = adapterWith({ latencyMs: 10 });
    expect(adapter.command(command('cancel', 'a'))).toBe('not-found');
    await expect(adapter.process(request('a'))).resolves.toEqual({ outcome: 'no-answer', why: 'cancelled' });
    expect(calls).toEqual([]);
  });

  test('When pending attempts are abandoned, then each wakes unanswered and a later cancel answers cancelled', async () => {
    const { adapter, calls } = adapterWith({ mode: 'late' });
    const answers = [adapter.process(request('a')), adapter.process(request('b'))];
    expect(adapter.abandonPending()).toBe(2);
    expect(calls.every((call) => call.signal.aborted)).toBe(true);
    await expect(Promise.all(answers)).resolves.toEqual([
      { outcome: 'no-answer', why: 'abandoned' },
      { outcome: 'no-answer', why: 'abandoned' },
    ]);
    expect(adapter.command(command('cancel', 'a'))).toBe('cancelled');
    expect(adapter.abandonPending()).toBe(0);
  });

  test('When the settings change, then an attempt already waiting keeps the plan it arrived with', async () => {
    const { adapter, calls } = adapterWith({ mode: 'decline', latencyMs: 10 });
    const answer = adapter.process(request('a'));
    adapter.configure(settings({ mode: 'healthy' }));
    expect(adapter.settings().mode).toBe('healthy');
    calls[0]?.wake();
    await expect(answer).resolves.toMatchObject({ outcome: 'failure', reasonCode: 'insufficient_funds' });
  });

  test('When flapping, then the injected clock decides the phase', async () => {
    let now = PERIOD_START;
    const adapter = createSandboxAdapter(settings({ mode: 'flap' }), { random: () => HIT, clock: () => new Date(now), sleep: controlledSleep().sleep });
    await expect(adapter.process(request('a'))).resolves.toMatchObject({ outcome: 'failure', reasonCode: 'gateway_error' });
    now = PERIOD_START + 1000;
    await expect(adapter.process(request('b'))).resolves.toMatchObject({ outcome: 'success' });
  });

  test('When the memory bound is set, then the adapter forgets attempts beyond it', async () => {
    const adapter = createSandboxAdapter(settings(), { random: () => HIT, clock: () => new Date(PERIOD_START), sleep: controlledSleep().sleep, memory: 2 });
    for (const id of ['a', 'b', 'c']) await adapter.process(request(id));
    expect(adapter.command(command('cancel', 'a'))).toBe('not-found');
    expect(adapter.command(command('cancel', 'c'))).toBe('already-succeeded');
  });
});

describe('abortableSleep', () => {
  afterEach(() => jest.useRealTimers());

  test('When the time is up, then it resolves true', async () => {
    jest.useFakeTimers();
    const slept = abortableSleep(60_000, new AbortController().signal);
    jest.advanceTimersByTime(60_000);
    await expect(slept).resolves.toBe(true);
  });

  test('When its signal aborts, then it resolves false at once and its timer is cleared', async () => {
    jest.useFakeTimers();
    const controller = new AbortController();
    const slept = abortableSleep(60_000, controller.signal);
    controller.abort();
    await expect(slept).resolves.toBe(false);
    expect(jest.getTimerCount()).toBe(0);
  });

  test('When its signal has already aborted, then it resolves false without a timer', async () => {
    jest.useFakeTimers();
    await expect(abortableSleep(60_000, AbortSignal.abort())).resolves.toBe(false);
    expect(jest.getTimerCount()).toBe(0);
  });
});
