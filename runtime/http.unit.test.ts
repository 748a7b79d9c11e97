import { Registry } from 'prom-client';
import { createHttpApp, listen } from './http';
import { createLogger } from './logger';
import { NotReplicatedError } from './redis';

describe('the HTTP error handler (runtime/http.ts)', () => {
  test('When a write is not confirmed by the Redis replicas, then the answer is a retryable 503 storage_unconfirmed with Retry-After, counted by status', async () => {
    const registry = new Registry();
    const app = createHttpApp({ logger: createLogger('http-test', 'silent'), registry, isReady: () => true, isDraining: () => false }, (routes) => {
      routes.post('/write', () => {
        throw new NotReplicatedError('write confirmed by 0 of 1 replica(s) within 1000 ms');
      });
    });
    const server = await listen(app, 0, '127.0.0.1');
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/write`, { method: 'POST' });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(await response.json()).toEqual({
        error: { code: 'storage_unconfirmed', message: 'the request could not be confirmed as stored on a replica; send it again with the same Idempotency-Key' },
      });
      const counted = (await registry.getSingleMetric('http_requests_total')?.get())?.values.find((value) => value.labels.route === '/write');
      expect(counted).toMatchObject({ labels: { method: 'POST', status: '503' }, value: 1 });
    } finally {
      await server.close();
    }
  });
});
