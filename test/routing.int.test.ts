import { deposit, postPayment, rule, startTestStack, watchStatuses, type TestStack } from './support/stack';
import { fetchApi } from './support/env';

describe('routing by region and weight', () => {
  let stack: TestStack;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [
        // A long timeout keeps health weighting out of this test: a loaded machine's latency must not move the split.
        rule('heavy', { regions: ['EU'], weight: 3, timeoutMs: 60_000 }),
        rule('light', { regions: ['EU'], weight: 1, timeoutMs: 60_000 }),
        rule('americas', { regions: ['US'], weight: 5 }),
      ],
    });
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await stack?.stop();
  });

  test('When 400 EU payments flow to two gateways weighted 3:1, then the split follows the weights', async () => {
    const ids: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const responses = await Promise.all(Array.from({ length: 20 }, () => postPayment(stack.baseUrl, deposit())));
      for (const response of responses) {
        expect(response.status).toBe(202);
        ids.push(String(response.body.id));
      }
    }
    const terminals = await statuses.untilTerminal(ids, 60_000);
    const byGateway = new Map<string, number>();
    for (const event of terminals) byGateway.set(String(event.gatewayId), (byGateway.get(String(event.gatewayId)) ?? 0) + 1);

    expect(terminals.every((event) => event.status === 'SUCCESS')).toBe(true);
    expect(byGateway.get('americas')).toBeUndefined();
    // Expected 300/100; the binomial standard deviation is about 8.7, so ±40 is over four of them.
    expect(byGateway.get('heavy')).toBeGreaterThanOrEqual(260);
    expect(byGateway.get('heavy')).toBeLessThanOrEqual(340);
    expect((byGateway.get('heavy') ?? 0) + (byGateway.get('light') ?? 0)).toBe(400);
  });

  test('When a payment is for the US, then only the gateway serving the US is chosen and GET explains why', async () => {
    const accepted = await postPayment(stack.baseUrl, deposit({ region: 'US', currency: 'USD' }));
    const [terminal] = await statuses.untilTerminal([String(accepted.body.id)]);
    expect(terminal?.gatewayId).toBe('americas');

    const payment = (await (await fetchApi(`${stack.baseUrl}/v1/payments/${String(accepted.body.id)}`)).json()) as {
      attempts: Array<{ routing: unknown }>;
    };
    expect(payment.attempts[0]?.routing).toEqual({
      chosen: 'americas',
      candidates: [{ gatewayId: 'americas', weight: 5 }],
      excluded: [
        { gatewayId: 'heavy', reason: 'region' },
        { gatewayId: 'light', reason: 'region' },
      ],
      rulesVersion: expect.any(String),
    });
  });
});
