import pino from 'pino';
import type { Logger } from '../runtime/logger';
import { deposit, fetchPayment, postPayment, rule, startTestStack, watchStatuses, type TestStack } from './support/stack';

describe('one payment end to end on real Kafka and Redis', () => {
  let stack: TestStack;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;
  // The orchestrator's log lines at info, as operators read them (the same custom levels as runtime/logger).
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info', customLevels: { critical: 55 } }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) }) as Logger;
  const linesOf = (paymentId: string) => logs.filter((line) => line.paymentId === paymentId);

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [
        rule('approver', { regions: ['EU'] }),
        rule('decliner', { regions: ['US'], currencies: ['USD'] }),
      ],
      sandboxes: { decliner: { mode: 'decline', rate: 1 } },
      orchestrator: { logger },
    });
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await stack?.stop();
  });

  test('When the gateway approves, then the payment ends SUCCESS, GET shows the attempt, and the log has one line per stored change', async () => {
    const accepted = await postPayment(stack.baseUrl, deposit());
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({ status: 'PENDING', amount: '10000', currency: 'EUR' });
    const id = String(accepted.body.id);

    const [terminal] = await statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'approver' });

    const fetched = await fetchPayment(stack.baseUrl, id);
    expect(fetched.status).toBe(200);
    expect(fetched.body).toMatchObject({ id, status: 'SUCCESS' });
    expect(fetched.body.attempts).toEqual([
      expect.objectContaining({ gatewayId: 'approver', status: 'succeeded', number: 1 }),
    ]);
    // One line per stored change, each with the payment and attempt ids: accepted (dispatched, PENDING), then settled.
    const attemptId = (fetched.body.attempts as Array<{ id: string }>)[0]?.id;
    expect(linesOf(id)).toEqual([
      expect.objectContaining({ level: 30, msg: 'payment accepted', attemptId, gatewayId: 'approver', status: 'PENDING' }),
      expect.objectContaining({ level: 30, msg: 'outcome applied', attemptId, gatewayId: 'approver', outcome: 'success', status: 'SUCCESS' }),
    ]);
  });

  test('When the gateway declines, then the payment ends FAILURE with the decline reason, in GET and in the log', async () => {
    const accepted = await postPayment(stack.baseUrl, deposit({ region: 'US', currency: 'USD' }));
    expect(accepted.status).toBe(202);
    const id = String(accepted.body.id);

    const [terminal] = await statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'FAILURE', reason: 'insufficient_funds', gatewayId: 'decliner' });
    const fetched = await fetchPayment(stack.baseUrl, id);
    expect(fetched.body).toMatchObject({ status: 'FAILURE', reason: 'insufficient_funds' });
    expect(fetched.body.attempts).toEqual([expect.objectContaining({ status: 'failed', reasonCode: 'insufficient_funds' })]);
    expect(linesOf(id).map(({ msg, status, reason }) => ({ msg, status, reason }))).toEqual([
      { msg: 'payment accepted', status: 'PENDING', reason: undefined },
      { msg: 'outcome applied', status: 'FAILURE', reason: 'insufficient_funds' },
    ]);
  });

  test('When a payment is accepted, then the status topic carries PENDING before the terminal event', async () => {
    const accepted = await postPayment(stack.baseUrl, deposit({ accountId: 'acc-order' }));
    const id = String(accepted.body.id);
    await statuses.untilTerminal([id]);
    const mine = statuses.events.filter((event) => event.paymentId === id);
    expect(mine.map((event) => [event.status, event.sequence])).toEqual([
      ['PENDING', 1],
      ['SUCCESS', 2],
    ]);
  });

  test('When the payment id is unknown, then GET answers 404', async () => {
    const fetched = await fetchPayment(stack.baseUrl, 'no-such-payment');
    expect(fetched.status).toBe(404);
    expect(fetched.body).toEqual({ error: expect.objectContaining({ code: 'not_found', field: 'id' }) });
  });
});
