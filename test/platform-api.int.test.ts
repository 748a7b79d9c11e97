import Redis from 'ioredis';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import { startOrchestrator } from '../orchestrator/main';
import { loadOrchestratorConfig } from '../orchestrator/config';
import { authHeaders, fetchApi, testLogger } from './support/env';
import { checkPaymentInvariants } from './support/invariants';
import { messageCount, redisKeyCount } from './support/inspect';
import { pollUntil } from './support/poll';
import { deposit, postPayment, rule, startTestStack, watchStatuses, type PaymentView, type TestStack } from './support/stack';

const tokenWith = (...scopes: string[]) => mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'api-test', scopes);

describe('authentication and scopes', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('approver')] });
  });
  afterAll(() => stack?.stop());

  const routes: Array<{ method: string; path: string; scope: string; body?: unknown }> = [
    { method: 'POST', path: '/v1/payments', scope: 'payments:write', body: deposit() },
    { method: 'GET', path: '/v1/payments/some-id', scope: 'payments:read' },
    { method: 'GET', path: '/v1/payments?accountId=acc-42', scope: 'payments:read' },
    { method: 'GET', path: '/v1/reviews', scope: 'payments:read' },
    { method: 'GET', path: '/v1/routing', scope: 'payments:read' },
  ];
  const call = (route: (typeof routes)[number], authorization?: string) =>
    fetch(`${stack.baseUrl}${route.path}`, {
      method: route.method,
      headers: { 'content-type': 'application/json', 'Idempotency-Key': crypto.randomUUID(), ...(authorization ? { authorization } : {}) },
      ...(route.body ? { body: JSON.stringify(route.body) } : {}),
    });

  test.each(routes)('When $method $path has no token, then it answers 401', async (route) => {
    const response = await call(route);
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: expect.objectContaining({ code: 'unauthorized', field: 'Authorization' }) });
  });

  test.each(routes)('When $method $path has a token signed with another key, then it answers 401', async (route) => {
    const forged = await mintToken({ secret: 'x'.repeat(40), issuer: 'payment-orchestrator' }, 'mallory', ['payments:write', 'payments:read']);
    expect((await call(route, `Bearer ${forged}`)).status).toBe(401);
  });

  test.each(routes)('When $method $path has a token without $scope, then it answers 403', async (route) => {
    const other = route.scope === 'payments:write' ? 'payments:read' : 'payments:write';
    const response = await call(route, `Bearer ${await tokenWith(other)}`);
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: expect.objectContaining({ code: 'forbidden' }) });
  });

  test('When an expired token is used, then it answers 401 saying so', async () => {
    const expired = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'late', ['payments:read'], '-1m');
    const response = await call(routes[1] ?? routes[0]!, `Bearer ${expired}`);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/expired/);
  });

  test('When every refused request has run, then nothing was written to Redis or Kafka', async () => {
    expect(await redisKeyCount(stack)).toBe(0);
    expect(await messageCount(stack.kafka, stack.topics.paymentStatus)).toBe(0);
  });

  test('When production mode is configured with the development key, then the orchestrator refuses to start, naming the variable', () => {
    const ownKeys = {
      AUTH_JWT_SECRET: 'a-real-secret-of-at-least-32-characters!',
      RULES_SIGNING_KEY: 'another-real-secret-of-32-characters!!',
      HEALTH_SIGNING_KEY: 'a-third-real-secret-of-32-characters!!',
    };
    expect(() => loadOrchestratorConfig({ APP_ENV: 'production', ...ownKeys, AUTH_JWT_SECRET: undefined })).toThrow(/AUTH_JWT_SECRET/);
    expect(() => loadOrchestratorConfig({ APP_ENV: 'production', ...ownKeys, RULES_SIGNING_KEY: undefined })).toThrow(/RULES_SIGNING_KEY/);
    expect(() => loadOrchestratorConfig({ APP_ENV: 'production', ...ownKeys, HEALTH_SIGNING_KEY: undefined })).toThrow(/HEALTH_SIGNING_KEY/);
    expect(() => loadOrchestratorConfig({ APP_ENV: 'production', ...ownKeys })).not.toThrow();
  });
});

describe('idempotency', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('approver')] });
  });
  afterAll(() => stack?.stop());

  test('When 50 identical requests with one key arrive at once, then there is one payment and every answer names it', async () => {
    const key = `dup-${crypto.randomUUID()}`;
    const responses = await Promise.all(Array.from({ length: 50 }, () => postPayment(stack.baseUrl, deposit({ accountId: 'acc-dup' }), { 'Idempotency-Key': key })));
    expect(new Set(responses.map((response) => response.status))).toEqual(new Set([202]));
    expect(new Set(responses.map((response) => response.body.id)).size).toBe(1);
    const page = (await (await fetchApi(`${stack.baseUrl}/v1/payments?accountId=acc-dup`)).json()) as { payments: PaymentView[] };
    expect(page.payments).toHaveLength(1);
  });

  test('When a key is reused with a different body, then it answers 422 naming the key and writes nothing new', async () => {
    const key = `conflict-${crypto.randomUUID()}`;
    const first = await postPayment(stack.baseUrl, deposit({ accountId: 'acc-conflict' }), { 'Idempotency-Key': key });
    const second = await postPayment(stack.baseUrl, deposit({ accountId: 'acc-conflict', amount: '20000' }), { 'Idempotency-Key': key });
    expect(first.status).toBe(202);
    expect(second).toEqual({ status: 422, body: { error: expect.objectContaining({ code: 'idempotency_conflict', field: 'Idempotency-Key' }) } });
    const page = (await (await fetchApi(`${stack.baseUrl}/v1/payments?accountId=acc-conflict`)).json()) as { payments: PaymentView[] };
    expect(page.payments.map((payment) => payment.amount)).toEqual(['10000']);
  });
});

describe('Prefer: wait', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('quick', { regions: ['EU'] }), rule('slow', { regions: ['US'], currencies: ['USD'] })], sandboxes: { slow: { mode: 'slow', latencyMs: 3_000 } } });
  });
  afterAll(() => stack?.stop());

  const waitFor = (baseUrl: string, seconds: number, body: unknown) =>
    fetch(`${baseUrl}/v1/payments`, {
      method: 'POST',
      headers: { ...authHeaders(), 'content-type': 'application/json', 'Idempotency-Key': crypto.randomUUID(), Prefer: `wait=${seconds}` },
      body: JSON.stringify(body),
    });

  test('When the outcome arrives within the wait, then it answers 200 with the terminal state', async () => {
    const response = await waitFor(stack.baseUrl, 5, deposit());
    expect(response.status).toBe(200);
    expect(response.headers.get('preference-applied')).toBe('wait=5');
    expect(await response.json()).toMatchObject({ status: 'SUCCESS' });
  });

  test('When the outcome takes longer than the wait, then it answers 202 PENDING after the wait', async () => {
    const started = Date.now();
    const response = await waitFor(stack.baseUrl, 1, deposit({ region: 'US', currency: 'USD' }));
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ status: 'PENDING' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
  });

  test('When the Prefer header is malformed, then it answers 400 naming it', async () => {
    const response = await fetch(`${stack.baseUrl}/v1/payments`, {
      method: 'POST',
      headers: { ...authHeaders(), 'content-type': 'application/json', 'Idempotency-Key': crypto.randomUUID(), Prefer: 'wait=soon' },
      body: JSON.stringify(deposit()),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: expect.objectContaining({ field: 'Prefer' }) });
  });

  test('When a request waits, then its instance listens on that payment\'s channel only for the wait, and on no channel when nobody waits', async () => {
    const redis = new Redis(stack.env.REDIS_URL ?? '');
    const listening = () => redis.pubsub('CHANNELS', `${stack.env.REDIS_KEY_PREFIX ?? ''}terminal*`) as Promise<string[]>;
    try {
      // The slow gateway answers after 3 s: the wait of 2 s ends first, so the subscription is seen while it lasts.
      const waiting = waitFor(stack.baseUrl, 2, deposit({ region: 'US', currency: 'USD' }));
      const channels = await pollUntil(listening, (names) => names.length > 0, 1_500, () => 'no terminal channel was subscribed during the wait', 5);
      const response = await waiting;
      expect(response.status).toBe(202);
      const { id } = (await response.json()) as PaymentView;
      expect(channels).toEqual([`${stack.env.REDIS_KEY_PREFIX ?? ''}terminal:${id}`]);
      // The unsubscribe goes out as the wait ends, after the answer: asked again until Redis has it.
      await pollUntil(listening, (names) => names.length === 0, 2_000, (names) => `still subscribed after the wait: ${names.join(', ')}`);
    } finally {
      redis.disconnect();
    }
  });

  test('When two instances share the work, then a wait on one sees outcomes the other processed', async () => {
    const second = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'second' }), { logger: testLogger('second') });
    try {
      const secondUrl = `http://127.0.0.1:${second.port}`;
      // Results are spread over both instances' partitions, so about half of these are applied by the first one.
      const started = Date.now();
      const responses = await Promise.all(Array.from({ length: 20 }, () => waitFor(secondUrl, 10, deposit())));
      expect(responses.map((response) => response.status)).toEqual(Array.from({ length: 20 }, () => 200));
      // Woken by the terminal message, not by the end of the wait and the read after it.
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await second.stop();
    }
  });
});

describe('listing an account', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('approver')] });
  });
  afterAll(() => stack?.stop());

  const page = async (query: string) => {
    const response = await fetchApi(`${stack.baseUrl}/v1/payments?${query}`);
    expect(response.status).toBe(200);
    return (await response.json()) as { payments: PaymentView[]; nextCursor?: string };
  };

  test('When 250 payments are walked page by page, then every one appears once, newest first, and one created mid-walk shifts nothing', async () => {
    const statuses = await watchStatuses(stack);
    try {
      const ids: string[] = [];
      for (let batch = 0; batch < 10; batch++) {
        const responses = await Promise.all(Array.from({ length: 25 }, () => postPayment(stack.baseUrl, deposit({ accountId: 'acc-pages' }))));
        ids.push(...responses.map((response) => String(response.body.id)));
      }
      const seen: PaymentView[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const current = await page(`accountId=acc-pages&limit=40${cursor ? `&cursor=${cursor}` : ''}`);
        seen.push(...current.payments);
        cursor = current.nextCursor;
        if (++pages === 2) await postPayment(stack.baseUrl, deposit({ accountId: 'acc-pages' }));
      } while (cursor);

      expect(pages).toBe(7);
      expect(seen).toHaveLength(250);
      expect(new Set(seen.map((payment) => payment.id))).toEqual(new Set(ids));
      const created = seen.map((payment) => Date.parse(payment.createdAt));
      expect(created).toEqual([...created].sort((a, b) => b - a));

      await statuses.untilTerminal(ids, 30_000);
      const report = await checkPaymentInvariants({
        kafka: stack.kafka,
        topics: stack.topics,
        redisUrl: stack.env.REDIS_URL ?? '',
        redisKeyPrefix: stack.env.REDIS_KEY_PREFIX ?? '',
        acceptedIds: ids,
      });
      expect(report.violations).toEqual([]);
      const settled = await page('accountId=acc-pages&status=SUCCESS&limit=100');
      expect(settled.payments.every((payment) => payment.status === 'SUCCESS')).toBe(true);
    } finally {
      await statuses.stop();
    }
  });

  test('When the query is bad, then it answers 400 naming the field', async () => {
    for (const [query, field] of [
      ['', 'accountId'],
      ['accountId=a&limit=0', 'limit'],
      ['accountId=a&status=LOST', 'status'],
      ['accountId=a&cursor=%24%24', 'cursor'],
    ] as const) {
      const response = await fetchApi(`${stack.baseUrl}/v1/payments?${query}`);
      expect([query, response.status, ((await response.json()) as { error: { field: string } }).error.field]).toEqual([query, 400, field]);
    }
  });
});
