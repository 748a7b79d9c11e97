import { MAX_HEADER_BYTES } from '../runtime/http';
import { authHeaders, fetchApi } from './support/env';
import { deposit, postPayment, rule, startTestStack, type TestStack } from './support/stack';

/** The sum of `http_requests_total` over every series with all the given labels (0 when none exists yet). */
async function requestCount(baseUrl: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const series = text.split('\n').filter((line) => line.startsWith('http_requests_total{'));
  const matching = series.filter((line) => Object.entries(labels).every(([name, value]) => line.includes(`${name}="${value}"`)));
  return matching.reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** Runs `request` and says how much it moved the request counter of `labels`. */
async function counted(baseUrl: string, labels: Record<string, string>, request: () => Promise<void>): Promise<number> {
  const before = await requestCount(baseUrl, labels);
  await request();
  return (await requestCount(baseUrl, labels)) - before;
}

const bearerToken = () => authHeaders().authorization!.slice('Bearer '.length);

describe('API edges', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('approver')] });
  });
  afterAll(() => stack?.stop());

  test.each(['bearer', 'BEARER', 'BeArEr'])('When the auth scheme is written %s, then the token is accepted', async (scheme) => {
    const response = await fetch(`${stack.baseUrl}/v1/reviews`, { headers: { authorization: `${scheme} ${bearerToken()}` } });
    expect(response.status).toBe(200);
  });

  test('When the auth scheme is not Bearer, then it answers 401 in the error shape and counts it', async () => {
    const labels = { method: 'GET', route: '/v1/reviews', status: '401' };
    const delta = await counted(stack.baseUrl, labels, async () => {
      const response = await fetch(`${stack.baseUrl}/v1/reviews`, { headers: { authorization: `Basic ${bearerToken()}` } });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: { code: 'unauthorized', message: 'a bearer token is required', field: 'Authorization' } });
    });
    expect(delta).toBe(1);
  });

  test.each([
    // Express sees the request: the method is known.
    ['just over the limit (refused by the app)', MAX_HEADER_BYTES + 100, 'GET'],
    // Node's parser gave up before the method was read: the server's clientError answer counts it.
    ['far over what the server parses (refused by the HTTP parser)', MAX_HEADER_BYTES * 8, 'unknown'],
  ])('When the header set is %s, then it answers 431 in the error shape and counts it', async (_case, size, method) => {
    const delta = await counted(stack.baseUrl, { method, route: 'unmatched', status: '431' }, async () => {
      const response = await fetchApi(`${stack.baseUrl}/v1/reviews`, { headers: { 'x-padding': 'p'.repeat(size) } });
      expect(response.status).toBe(431);
      expect(await response.json()).toEqual({
        error: { code: 'headers_too_large', message: `request headers are too large: at most ${MAX_HEADER_BYTES} bytes`, field: 'headers' },
      });
    });
    expect(delta).toBe(1);
  });

  test('When the header set is just under the limit, then the request is served', async () => {
    const response = await fetchApi(`${stack.baseUrl}/v1/reviews`, { headers: { 'x-padding': 'p'.repeat(MAX_HEADER_BYTES - 1024) } });
    expect(response.status).toBe(200);
  });

  test('When the Idempotency-Key is too long, then it answers 400 saying so and naming the header', async () => {
    const delta = await counted(stack.baseUrl, { method: 'POST', route: '/v1/payments', status: '400' }, async () => {
      const response = await postPayment(stack.baseUrl, deposit(), { 'Idempotency-Key': 'k'.repeat(101) });
      expect(response).toEqual({
        status: 400,
        body: { error: { code: 'invalid_request', message: 'Idempotency-Key: too long: at most 100 characters', field: 'Idempotency-Key' } },
      });
    });
    expect(delta).toBe(1);
  });

  test('When the Idempotency-Key is missing, then the message still says it is required', async () => {
    const response = await postPayment(stack.baseUrl, deposit(), {});
    expect(response.body).toEqual({ error: { code: 'invalid_request', message: 'Idempotency-Key: required header', field: 'Idempotency-Key' } });
  });

  test.each(['1e1', '0x10', '10.0', '+10', ' 10', '-1'])('When limit is %p, then it answers 400 naming limit', async (limit) => {
    const delta = await counted(stack.baseUrl, { method: 'GET', route: '/v1/payments', status: '400' }, async () => {
      const response = await fetchApi(`${stack.baseUrl}/v1/payments?accountId=acc-42&limit=${encodeURIComponent(limit)}`);
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ error: { code: 'invalid_request', message: expect.stringMatching(/^limit: /), field: 'limit' } });
    });
    expect(delta).toBe(1);
  });

  test('When limit is plain digits, then the page is served', async () => {
    const response = await fetchApi(`${stack.baseUrl}/v1/payments?accountId=acc-42&limit=10`);
    expect(response.status).toBe(200);
  });

  test('When a body key is duplicated, then it answers 400 naming that key, and no payment is made', async () => {
    const body = '{"type":"deposit","accountId":"acc-dup","amount":"99999","amount":"10000","currency":"EUR","region":"EU"}';
    const delta = await counted(stack.baseUrl, { method: 'POST', status: '400' }, async () => {
      const response = await postPayment(stack.baseUrl, body);
      expect(response).toEqual({
        status: 400,
        body: { error: { code: 'invalid_request', message: 'amount: duplicated key; send each field once', field: 'amount' } },
      });
    });
    expect(delta).toBe(1);
    const page = (await (await fetchApi(`${stack.baseUrl}/v1/payments?accountId=acc-dup`)).json()) as { payments: unknown[] };
    expect(page.payments).toEqual([]);
  });

  test('When the same key appears in two different objects, then it is not a duplicate', async () => {
    const response = await postPayment(stack.baseUrl, '{"type":"deposit","accountId":"acc-ok","amount":"10000","currency":"EUR","region":"EU","x":{"amount":"1"}}');
    // Refused for the unknown field, not for a duplicate.
    expect(response.body).toEqual({ error: expect.objectContaining({ field: 'x' }) });
  });
});
