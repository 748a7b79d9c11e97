import { IncomingMessage, ServerResponse } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { Registry } from 'prom-client';
import { createHttpApp, firstDuplicateKey, listen } from './http';
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

describe('the HTTP server of an app (runtime/http.ts, serverFor)', () => {
  // V8's own test of whether an object keeps its properties in a hidden class (fast) or went to a dictionary (slow);
  // written in V8's native syntax, which only a Function body can hold.
  setFlagsFromString('--allow-natives-syntax');
  const hasFastProperties = new Function('object', 'return %HasFastProperties(object)') as (object: unknown) => boolean;

  test("When requests arrive, then express never has to change a request's or a response's prototype, both stay fast objects, and its helpers still answer", async () => {
    const slow: string[] = [];
    const app = createHttpApp({ logger: createLogger('http-test', 'silent'), registry: new Registry(), isReady: () => true, isDraining: () => false }, (routes) => {
      routes.post('/echo', (req, res) => {
        if (!hasFastProperties(req)) slow.push('request');
        if (!hasFastProperties(res)) slow.push('response');
        res.status(201).location('/echo/1').json({ got: req.body as unknown, contentType: req.get('content-type'), sameApp: req.app === app });
      });
    });
    const server = await listen(app, 0, '127.0.0.1');
    // Record the prototype changes express asks for (application.js app.handle), without stopping them.
    const changed: string[] = [];
    const setPrototypeOf = Object.setPrototypeOf;
    const spy = jest.spyOn(Object, 'setPrototypeOf').mockImplementation((target: object, prototype: object | null) => {
      if (target instanceof IncomingMessage && Object.getPrototypeOf(target) !== prototype) changed.push('request');
      if (target instanceof ServerResponse && Object.getPrototypeOf(target) !== prototype) changed.push('response');
      return setPrototypeOf(target, prototype) as object;
    });
    try {
      for (let round = 0; round < 3; round++) {
        const response = await fetch(`http://127.0.0.1:${server.port}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ round }) });
        expect(response.status).toBe(201);
        expect(response.headers.get('location')).toBe('/echo/1');
        expect(await response.json()).toEqual({ got: { round }, contentType: 'application/json', sameApp: true });
      }
      // express did ask, once per request and response: the answer is that nothing had to change.
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(6);
      expect(changed).toEqual([]);
      expect(slow).toEqual([]);
    } finally {
      spy.mockRestore();
      await server.close();
    }
  });
});

describe('the duplicate-key scan of a JSON body (runtime/http.ts, firstDuplicateKey)', () => {
  test.each([
    ['a key twice at the top', '{"type":"deposit","amount":"1","amount":"2"}', 'amount'],
    ['a key twice, once written with an escape', '{"amount":"1","amo\\u0075nt":"2"}', 'amount'],
    ['a key twice inside a nested object', '{"rule":{"currencies":["EUR"],"currencies":["USD"]}}', 'rule.currencies'],
    ['a key twice in an object inside an array', '{"items":[{"id":"a"},{"id":"b","id":"c"}]}', 'items.1.id'],
    ['values that hold quotes, backslashes and braces', '{"note":"say \\"hi\\" {\\\\}","note":"x"}', 'note'],
    ['the same key in sibling objects', '{"a":{"id":"1"},"b":{"id":"2"}}', undefined],
    ['keys that differ only in an escape', '{"a\\"b":"1","a\\\\b":"2"}', undefined],
    ['no duplicate', '{"type":"deposit","accountId":"acc-1","amount":"100","currency":"EUR","region":"EU"}', undefined],
  ])('When the body has %s, then the duplicate it names is %s', (_case, text, path) => {
    expect(firstDuplicateKey(text)).toBe(path);
  });
});
