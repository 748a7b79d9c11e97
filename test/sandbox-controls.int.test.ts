import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { attemptCommand, attemptRequested, resultMessage, type ResultMessage } from '../topics/schemas';
import { collectTopic } from './support/collect';
import { rule, startTestStack, type TestStack } from './support/stack';

const GATEWAY = 'sandboxed';

async function sandboxRequest(stack: TestStack, method: 'GET' | 'PUT', body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const port = stack.gateways.get(GATEWAY)?.port;
  const response = await fetch(`http://127.0.0.1:${port}/sandbox`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Everything on the results topic, read by a group of its own; a test awaits the message it expects (no sleeps). */
const watchResults = (stack: TestStack) =>
  collectTopic(stack.kafka, stack.topics.gatewayResults, resultMessage, { groupPrefix: `${stack.env.TOPIC_PREFIX}results-`, label: 'result', timeoutMs: 30_000 });

const envelope = <T extends string>(type: T) => ({ eventId: randomUUID(), type, occurredAt: new Date().toISOString(), schemaVersion: 1 as const });

const cancelOf = (paymentId: string, attemptId: string) =>
  attemptCommand.parse({ ...envelope('attempt.command'), command: 'cancel', paymentId, attemptId, gatewayId: GATEWAY, reason: 'test' });

const requestOf = (paymentId: string, attemptId: string) =>
  attemptRequested.parse({
    ...envelope('attempt.requested'),
    paymentId,
    attemptId,
    gatewayId: GATEWAY,
    paymentType: 'withdrawal',
    accountId: 'acc-42',
    amount: '10000',
    currency: 'EUR',
    region: 'EU',
    deadline: new Date(Date.now() + 5000).toISOString(),
  });

const isCommandResult = (attemptId: string) => (result: ResultMessage) => result.type === 'attempt.command-result' && result.attemptId === attemptId;

describe('sandbox chaos controls and commands', () => {
  let stack: TestStack;
  let producer: Producer;
  let results: Awaited<ReturnType<typeof watchResults>>;

  const send = async (key: string, values: object[]) => {
    await producer.send({ topic: stack.topics.gatewayRequests(GATEWAY), messages: values.map((value) => ({ key, value: JSON.stringify(value) })) });
  };

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule(GATEWAY)] });
    producer = stack.kafka.producer();
    await producer.connect();
    results = await watchResults(stack);
  });
  afterAll(async () => {
    await results?.stop();
    await producer?.disconnect();
    await stack?.stop();
  });

  test('When nothing was configured, then GET /sandbox shows the healthy defaults', async () => {
    expect(await sandboxRequest(stack, 'GET')).toEqual({
      status: 200,
      body: { mode: 'healthy', latencyMs: 0, rate: 1, periodMs: 2000, lateMs: 10_000 },
    });
  });

  test('When PUT /sandbox sets a mode, then it answers the whole settings and GET shows them', async () => {
    const put = await sandboxRequest(stack, 'PUT', { mode: 'flap', periodMs: 4000, rate: 0.5 });
    const settings = { mode: 'flap', latencyMs: 0, rate: 0.5, periodMs: 4000, lateMs: 10_000 };
    expect(put).toEqual({ status: 200, body: settings });
    expect(await sandboxRequest(stack, 'GET')).toEqual({ status: 200, body: settings });
  });

  test.each<[string, string, unknown]>([
    ['the mode is unknown', 'mode', { mode: 'meltdown' }],
    ['the rate is above 1', 'rate', { mode: 'error', rate: 1.5 }],
    ['the rate is a string', 'rate', { mode: 'error', rate: '0.5' }],
    ['the late delay is negative', 'lateMs', { mode: 'late', lateMs: -5 }],
    ['a field is unknown', 'burst', { mode: 'error', burst: 3 }],
  ])('When %s, then PUT /sandbox answers 400 naming %s and the settings do not change', async (_case, field, body) => {
    const before = await sandboxRequest(stack, 'GET');
    const response = await sandboxRequest(stack, 'PUT', body);
    expect(response).toEqual({ status: 400, body: { error: { code: 'invalid_request', message: expect.stringContaining(field), field } } });
    expect(await sandboxRequest(stack, 'GET')).toEqual(before);
  });

  test('When a cancel for an attempt the gateway never saw is produced on its request topic, then it answers not-found on the results topic', async () => {
    const paymentId = `pay-${randomUUID()}`;
    const attemptId = `${paymentId}-1`;
    await send(paymentId, [cancelOf(paymentId, attemptId)]);
    const answer = await results.until(isCommandResult(attemptId));
    expect(answer).toMatchObject({ type: 'attempt.command-result', command: 'cancel', paymentId, attemptId, gatewayId: GATEWAY, result: 'not-found' });
  });

  test('When an attempt waits in late mode and a cancel follows, then the gateway answers cancelled and not the attempt', async () => {
    expect((await sandboxRequest(stack, 'PUT', { mode: 'late', lateMs: 600_000 })).status).toBe(200);
    const paymentId = `pay-${randomUUID()}`;
    const attemptId = `${paymentId}-1`;
    // Same key, same partition: the gateway takes the request before the cancel.
    await send(paymentId, [requestOf(paymentId, attemptId), cancelOf(paymentId, attemptId)]);
    const answer = await results.until(isCommandResult(attemptId));
    expect(answer).toMatchObject({ command: 'cancel', paymentId, attemptId, result: 'cancelled' });
    expect(results.messages.filter((result) => result.attemptId === attemptId)).toEqual([answer]);
  });

  test('When the gateway stops with a late attempt still waiting, then it stops within the drain grace without answering it', async () => {
    const paymentId = `pay-${randomUUID()}`;
    const attemptId = `${paymentId}-1`;
    const marker = `${paymentId}-marker`;
    // The marker's not-found answer proves the gateway has taken the late attempt before it.
    await send(paymentId, [requestOf(paymentId, attemptId), cancelOf(paymentId, marker)]);
    await results.until(isCommandResult(marker));
    const started = Date.now();
    await stack.gateways.get(GATEWAY)?.stop();
    // The drain grace is 1 s; the rest is Kafka clients disconnecting. Far below the 600 s the attempt waits.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(results.messages.filter((result) => result.attemptId === attemptId)).toEqual([]);
  });
});
