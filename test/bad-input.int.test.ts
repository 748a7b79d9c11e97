import { deposit, postPayment, rule, startTestStack, type TestStack } from './support/stack';
import { messageCount, redisKeyCount } from './support/inspect';

describe('bad payment requests', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('approver', { regions: ['EU'] })] });
  });
  afterAll(() => stack?.stop());

  const { type: _type, ...withoutType } = deposit();
  const cases: Array<[string, number, string, unknown]> = [
    ['a field is missing', 400, 'type', withoutType],
    ['the amount is a JSON number', 400, 'amount', deposit({ amount: 100.5 })],
    ['the amount is a decimal string', 400, 'amount', deposit({ amount: '100.50' })],
    ['the amount is negative', 400, 'amount', deposit({ amount: '-100' })],
    ['the amount is zero', 400, 'amount', deposit({ amount: '0' })],
    ['the currency is unknown', 400, 'currency', deposit({ currency: 'XYZ' })],
    ['the type is unknown', 400, 'type', deposit({ type: 'transfer' })],
    ['an unknown field is sent', 400, 'amout', deposit({ amout: '1' })],
    ['the body is malformed JSON', 400, 'body', '{"type": "deposit",'],
    ['the body is oversized', 413, 'body', deposit({ accountId: 'x'.repeat(20_000) })],
    ['the amount is below the currency minimum', 400, 'amount', deposit({ amount: '99' })],
    ['the amount is above the currency maximum', 400, 'amount', deposit({ amount: '100000001' })],
    ['the account id is too long', 400, 'accountId', deposit({ accountId: 'a'.repeat(65) })],
    ['no gateway serves the region', 422, 'region', deposit({ region: 'APAC' })],
  ];

  test.each(cases)('When %s, then it answers %i naming %s', async (_case, status, field, body) => {
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
