import { deposit, postPayment, rule, startTestStack, type TestStack } from './support/stack';
import { messageCount, redisKeyCount } from './support/inspect';

describe('bad payment requests', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('approver', { regions: ['EU'] })] });
  });
  afterAll(() => stack?.stop());

  const { type: _type, ...withoutType } = deposit();
  const cases: Array<[string, unknown, number, string]> = [
    ['a field is missing', withoutType, 400, 'type'],
    ['the amount is a JSON number', deposit({ amount: 100.5 }), 400, 'amount'],
    ['the amount is a decimal string', deposit({ amount: '100.50' }), 400, 'amount'],
    ['the amount is negative', deposit({ amount: '-100' }), 400, 'amount'],
    ['the amount is zero', deposit({ amount: '0' }), 400, 'amount'],
    ['the currency is unknown', deposit({ currency: 'XYZ' }), 400, 'currency'],
    ['the type is unknown', deposit({ type: 'transfer' }), 400, 'type'],
    ['an unknown field is sent', deposit({ amout: '1' }), 400, 'amout'],
    ['the body is malformed JSON', '{"type": "deposit",', 400, 'body'],
    ['the body is oversized', deposit({ accountId: 'x'.repeat(20_000) }), 413, 'body'],
    ['no gateway serves the region', deposit({ region: 'APAC' }), 422, 'region'],
  ];

  test.each(cases)('When %s, then it answers %i naming %s', async (_case, body, status, field) => {
    const response = await postPayment(stack.baseUrl, body);
    expect(response.status).toBe(status);
    expect(response.body).toEqual({ error: { code: expect.any(String), message: expect.any(String), field } });
  });

  test('When the Idempotency-Key header is missing, then it answers 400 naming the header', async () => {
    const response = await postPayment(stack.baseUrl, deposit(), {});
    expect(response).toEqual({ status: 400, body: { error: expect.objectContaining({ field: 'Idempotency-Key' }) } });
  });

  test('When every request was bad, then nothing was written to Redis or Kafka', async () => {
    // Runs after the cases above (jest runs a file's tests in order).
    expect(await redisKeyCount(stack)).toBe(0);
    expect(await messageCount(stack.kafka, stack.topics.paymentStatus)).toBe(0);
    expect(await messageCount(stack.kafka, stack.topics.gatewayRequests('approver'))).toBe(0);
  });
});
