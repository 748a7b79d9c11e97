import pino from 'pino';
import { Registry } from 'prom-client';
import type { OutgoingMessage, Publisher } from '../runtime/kafka';
import type { Logger } from '../runtime/logger';
import { topicNames } from '../topics/names';
import { commandResult, gatewayResult, resultMessage, type AttemptCommand, type AttemptRequested } from '../topics/schemas';
import { controlledSleep } from '../test/support/sleep';
import { createSandboxAdapter, sandboxSettings, type SandboxAdapter, type SandboxSettings } from './sandbox';
import { createGatewayWorker } from './worker';

const NOW = new Date('2026-01-01T10:00:00.000Z');
const topics = topicNames('unit.');

const request = (attemptId: string, gatewayId = 'gw-a'): AttemptRequested => ({
  eventId: `ev-${attemptId}`,
  type: 'attempt.requested',
  occurredAt: NOW.toISOString(),
  schemaVersion: 1,
  paymentId: `pay-${attemptId}`,
  attemptId,
  gatewayId,
  paymentType: 'withdrawal',
  accountId: 'acc-1',
  amount: '1000',
  currency: 'EUR',
  region: 'EU',
  deadline: new Date(NOW.getTime() + 5000).toISOString(),
});

const command = (kind: 'cancel' | 'compensate', attemptId: string): AttemptCommand => ({
  eventId: `cmd-${kind}-${attemptId}`,
  type: 'attempt.command',
  occurredAt: NOW.toISOString(),
  schemaVersion: 1,
  command: kind,
  paymentId: `pay-${attemptId}`,
  attemptId,
  gatewayId: 'gw-a',
  reason: 'test',
});

function setup(fields: Partial<SandboxSettings> = {}, options: { failPublish?: boolean; failPublishTimes?: number; drainGraceMs?: number } = {}) {
  const published: Array<{ topic: string } & OutgoingMessage> = [];
  let failures = 0;
  const publisher: Publisher = {
    async publish(topic, messages) {
      if (options.failPublish) throw new Error('broker unavailable');
      if (failures < (options.failPublishTimes ?? 0)) {
        failures++;
        throw new Error('The broker received an out of order sequence number');
      }
      published.push(...messages.map((message) => ({ topic, ...message })));
    },
    async publishAll(messages) {
      if (options.failPublish) throw new Error('broker unavailable');
      published.push(...messages);
    },
    flush: async () => undefined,
  };
  const logs: Array<Record<string, unknown>> = [];
  // The same custom levels as runtime/logger, writing JSON lines into `logs`.
  const logger: Logger = pino(
    { level: 'info', customLevels: { critical: 55 } },
    { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const registry = new Registry();
  const sleeper = controlledSleep();
  const adapter: SandboxAdapter = createSandboxAdapter(sandboxSettings.parse(fields), { random: () => 0.1, clock: () => NOW, sleep: sleeper.sleep });
  const worker = createGatewayWorker({
    gatewayId: 'gw-a',
    adapter,
    publisher,
    topics,
    clock: () => NOW,
    logger,
    registry,
    drainGraceMs: options.drainGraceMs ?? 60_000,
  });
  const metric = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values.map(({ labels, value }) => ({ ...labels, value }));
  return { worker, adapter, published, logs, registry, sleeps: sleeper.calls, metric };
}

/** Expects exactly one message published, on the results topic keyed by `paymentId`; returns its value. */
function onlyResult(published: Array<{ topic: string } & OutgoingMessage>, paymentId: string): unknown {
  expect(published).toHaveLength(1);
  expect(published[0]).toMatchObject({ topic: topics.gatewayResults, key: paymentId });
  return published[0]?.value;
}

describe('the gateway worker', () => {
  afterEach(() => jest.useRealTimers());

  test('When an attempt is approved, then one gateway.result is published on the results topic keyed by payment id, and logged', async () => {
    const { worker, published, logs, metric } = setup();
    await worker.handle(request('a'));
    await worker.drain();
    expect(gatewayResult.parse(onlyResult(published, 'pay-a'))).toMatchObject({
      paymentId: 'pay-a',
      attemptId: 'a',
      gatewayId: 'gw-a',
      outcome: 'success',
      gatewayReference: 'sbx-a',
      occurredAt: NOW.toISOString(),
    });
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'attempt answered', paymentId: 'pay-a', attemptId: 'a', gatewayId: 'gw-a', outcome: 'success' }));
    expect(await metric('gateway_attempts_answered_total')).toEqual([{ gateway: 'gw-a', outcome: 'success', reason: '', value: 1 }]);
  });

  test('When the request came with its Kafka timestamp, then the answer carries it as requestedAt (where the orchestrator starts the gateway latency); without one, none', async () => {
    const { worker, published } = setup();
    const requestedAtMs = NOW.getTime() - 1_500;
    await worker.handle(request('a'), requestedAtMs);
    await worker.handle(request('b'));
    await worker.drain();
    const results = published.map((message) => gatewayResult.parse(message.value));
    expect(results.find((result) => result.attemptId === 'a')?.requestedAt).toBe(new Date(requestedAtMs).toISOString());
    expect(results.find((result) => result.attemptId === 'b')).not.toHaveProperty('requestedAt');
  });

  test('When an attempt is declined, then the result carries the reason code', async () => {
    const { worker, published } = setup({ mode: 'decline' });
    await worker.handle(request('a'));
    await worker.drain();
    expect(gatewayResult.parse(published[0]?.value)).toMatchObject({ outcome: 'failure', reasonCode: 'insufficient_funds' });
  });

  test('When duplicating, then the attempt is answered twice with distinct event ids', async () => {
    const { worker, published, metric } = setup({ mode: 'duplicate' });
    await worker.handle(request('a'));
    await worker.drain();
    const results = published.map((message) => gatewayResult.parse(message.value));
    expect(results.map((result) => [result.attemptId, result.outcome])).toEqual([
      ['a', 'success'],
      ['a', 'success'],
    ]);
    expect(new Set(results.map((result) => result.eventId)).size).toBe(2);
    expect(await metric('gateway_attempts_answered_total')).toEqual([{ gateway: 'gw-a', outcome: 'success', reason: '', value: 2 }]);
  });

  test('When a cancel arrives for an unknown attempt, then a not-found command result is published keyed by payment id, counted and logged', async () => {
    const { worker, published, logs, metric } = setup();
    await worker.handle(command('cancel', 'ghost'));
    const answer = onlyResult(published, 'pay-ghost');
    expect(commandResult.parse(answer)).toMatchObject({
      type: 'attempt.command-result',
      command: 'cancel',
      paymentId: 'pay-ghost',
      attemptId: 'ghost',
      gatewayId: 'gw-a',
      result: 'not-found',
    });
    expect(resultMessage.safeParse(answer).success).toBe(true);
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'command answered', paymentId: 'pay-ghost', attemptId: 'ghost', gatewayId: 'gw-a', result: 'not-found' }));
    expect(await metric('gateway_commands_total')).toEqual([{ gateway: 'gw-a', command: 'cancel', result: 'not-found', value: 1 }]);
  });

  test('When a waiting attempt is cancelled, then its sleep is woken, cancelled is answered and the attempt never is', async () => {
    const { worker, published, sleeps, metric } = setup({ latencyMs: 30_000 });
    await worker.handle(request('a'));
    expect(sleeps).toHaveLength(1);
    await worker.handle(command('cancel', 'a'));
    expect(sleeps[0]?.signal.aborted).toBe(true);
    await worker.drain();
    expect(published.map((message) => resultMessage.parse(message.value))).toEqual([expect.objectContaining({ type: 'attempt.command-result', result: 'cancelled' })]);
    expect(await metric('gateway_attempts_answered_total')).toEqual([{ gateway: 'gw-a', outcome: 'no-answer', reason: 'cancelled', value: 1 }]);
  });

  test('When an approved attempt is cancelled and then compensated, then already-succeeded and compensated are answered', async () => {
    const { worker, published } = setup();
    await worker.handle(request('a'));
    await worker.drain();
    await worker.handle(command('cancel', 'a'));
    await worker.handle(command('compensate', 'a'));
    const answers = published.map((message) => resultMessage.parse(message.value));
    expect(answers.map((answer) => (answer.type === 'attempt.command-result' ? `${answer.command}:${answer.result}` : answer.outcome))).toEqual([
      'success',
      'cancel:already-succeeded',
      'compensate:compensated',
    ]);
  });

  test('When an attempt hangs, then neither it nor a command about it is answered, and both are counted and logged', async () => {
    const { worker, published, logs, metric } = setup({ mode: 'hang' });
    await worker.handle(request('a'));
    await worker.handle(command('cancel', 'a'));
    await worker.drain();
    expect(published).toEqual([]);
    expect(await metric('gateway_commands_total')).toEqual([{ gateway: 'gw-a', command: 'cancel', result: 'ignored', value: 1 }]);
    expect(await metric('gateway_attempts_answered_total')).toEqual([{ gateway: 'gw-a', outcome: 'no-answer', reason: 'hang', value: 1 }]);
    expect(logs).toContainEqual(expect.objectContaining({ paymentId: 'pay-a', attemptId: 'a', gatewayId: 'gw-a', result: 'ignored' }));
  });

  test('When publishing an answer fails (a broker lost), then it is published again until Kafka takes it, counted and logged: the PSP answered, so it must not look like silence', async () => {
    const { worker, published, logs, metric } = setup({}, { failPublishTimes: 2 });
    await worker.handle(request('a'));
    await worker.drain();
    expect(gatewayResult.parse(onlyResult(published, 'pay-a'))).toMatchObject({ attemptId: 'a', outcome: 'success' });
    expect(await metric('gateway_answer_publish_retries_total')).toEqual([{ gateway: 'gw-a', value: 2 }]);
    expect(logs.filter((line) => line.msg === 'publishing an answer failed; trying again')).toHaveLength(2);
  });

  test('When publishing a command result fails, then handle rejects so the command is redelivered', async () => {
    const { worker } = setup({}, { failPublish: true });
    await expect(worker.handle(command('cancel', 'a'))).rejects.toThrow('broker unavailable');
  });

  test('When a message names another gateway, then it is ignored', async () => {
    const { worker, published, sleeps } = setup({ latencyMs: 10 });
    await worker.handle(request('a', 'gw-b'));
    await worker.handle({ ...command('cancel', 'a'), gatewayId: 'gw-b' });
    await worker.drain();
    expect(published).toEqual([]);
    expect(sleeps).toEqual([]);
  });

  test('When draining with attempts that finish within the grace, then they are answered', async () => {
    const { worker, published, sleeps } = setup({ latencyMs: 50 });
    await worker.handle(request('a'));
    const drained = worker.drain();
    sleeps[0]?.wake();
    await drained;
    expect(published.map((message) => gatewayResult.parse(message.value).attemptId)).toEqual(['a']);
  });

  test('When draining with late attempts still waiting, then after the grace they are abandoned unanswered and drain resolves', async () => {
    jest.useFakeTimers();
    const { worker, published, sleeps, logs, metric } = setup({ mode: 'late' }, { drainGraceMs: 1000 });
    await worker.handle(request('a'));
    await worker.handle(request('b'));
    let done = false;
    const drained = worker.drain().then(() => (done = true));
    await jest.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    await drained;
    expect(sleeps.map((sleep) => [sleep.ms, sleep.signal.aborted])).toEqual([
      [10_000, true],
      [10_000, true],
    ]);
    expect(published).toEqual([]);
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'attempts still waiting at shutdown abandoned unanswered', abandoned: 2 }));
    expect(await metric('gateway_attempts_answered_total')).toEqual([{ gateway: 'gw-a', outcome: 'no-answer', reason: 'abandoned', value: 2 }]);
  });

  test('When draining with nothing in flight, then it resolves without waiting', async () => {
    jest.useFakeTimers();
    const { worker } = setup({ mode: 'late' });
    await worker.drain();
    expect(jest.getTimerCount()).toBe(0);
  });
});
