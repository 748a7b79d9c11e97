import { Counter, Registry } from 'prom-client';
import { createHttpApp, listen } from '../../runtime/http';
import { createLogger } from '../../runtime/logger';
import type { Refusal } from '../admission/admission';
import { admissionGate } from './admission-gate';

const REFUSAL: Refusal = { signal: 'results-backlog', retryAfterSeconds: 3, message: 'the orchestrator is behind (results-backlog 2500 ms, over 2000 ms); retry after 3 s' };

/** An app with the gate ahead of body parsing and a route standing for POST /v1/payments that says what it got. */
async function startApp(options: { refusal: Refusal | undefined; knownKeys: string[] }) {
  const refused: string[] = [];
  const registry = new Registry();
  const rejected = new Counter({ name: 'payments_rejected_total', help: 'test', labelNames: ['reason'], registers: [registry] });
  const lookedUp: Array<{ caller: string; key: string }> = [];
  const gate = admissionGate({
    admission: { refusal: () => options.refusal, refused: (signal) => refused.push(signal) },
    store: {
      findIdempotent: async (scoped) => {
        lookedUp.push(scoped);
        return options.knownKeys.includes(scoped.key) ? { paymentId: 'p-1', requestHash: 'h' } : undefined;
      },
    },
    metrics: { paymentsRejected: rejected },
  });
  const app = createHttpApp(
    {
      logger: createLogger('gate-test', 'silent'),
      registry,
      isReady: () => true,
      isDraining: () => false,
      beforeBody: (early) =>
        early.post(
          '/v1/payments',
          (_req, res, next) => {
            res.locals.principal = { subject: 'platform', scopes: new Set(['payments:write']) };
            next();
          },
          gate,
        ),
    },
    (routes) => routes.post('/v1/payments', (req, res) => void res.status(202).json({ reachedRouteWith: req.body as unknown })),
  );
  const server = await listen(app, 0, '127.0.0.1');
  const post = (key: string | undefined, body = '{"amount":"100"}') =>
    fetch(`http://127.0.0.1:${server.port}/v1/payments`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'Idempotency-Key': key }) }, body });
  return { post, refused, lookedUp, rejected: async () => (await rejected.get()).values.find((value) => value.labels.reason === 'overloaded')?.value ?? 0, close: () => server.close() };
}

describe('admission gate (orchestrator/api/admission-gate.ts)', () => {
  test('When the orchestrator can take work, then the request goes on to the route without a Redis look-up', async () => {
    const app = await startApp({ refusal: undefined, knownKeys: [] });
    try {
      const response = await app.post('k-1');
      expect(response.status).toBe(202);
      expect(await response.json()).toEqual({ reachedRouteWith: { amount: '100' } });
      expect(app.lookedUp).toEqual([]);
    } finally {
      await app.close();
    }
  });

  test('When it is overloaded and the Idempotency-Key is new, then the answer is 503 overloaded with Retry-After in the error shape, counted, before the body is read', async () => {
    const app = await startApp({ refusal: REFUSAL, knownKeys: [] });
    try {
      // Not even valid JSON: the refusal comes before the body is parsed.
      const response = await app.post('k-new', '{"amount":');
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('3');
      expect(await response.json()).toEqual({ error: { code: 'overloaded', message: REFUSAL.message } });
      expect(app.lookedUp).toEqual([{ caller: 'platform', key: 'k-new' }]);
      expect(app.refused).toEqual(['results-backlog']);
      expect(await app.rejected()).toBe(1);
    } finally {
      await app.close();
    }
  });

  test('When it is overloaded, then a replay of an existing payment (its key known for this caller) still reaches the route and is answered', async () => {
    const app = await startApp({ refusal: REFUSAL, knownKeys: ['k-known'] });
    try {
      const response = await app.post('k-known');
      expect(response.status).toBe(202);
      expect(app.refused).toEqual([]);
      expect(await app.rejected()).toBe(0);
    } finally {
      await app.close();
    }
  });

  test('When it is overloaded and the Idempotency-Key is missing or malformed, then the route answers (its 400 names the header), nothing is looked up or counted as refused', async () => {
    const app = await startApp({ refusal: REFUSAL, knownKeys: [] });
    try {
      expect((await app.post(undefined)).status).toBe(202);
      expect((await app.post('not a key!')).status).toBe(202);
      expect(app.lookedUp).toEqual([]);
      expect(app.refused).toEqual([]);
    } finally {
      await app.close();
    }
  });
});
