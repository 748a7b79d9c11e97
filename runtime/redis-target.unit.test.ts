import { parseRedisTarget } from './redis';

describe('parseRedisTarget (REDIS_URL, runtime/redis.ts)', () => {
  test('When REDIS_URL names one server, then it connects there and waits for no replica', () => {
    expect(parseRedisTarget('redis://127.0.0.1:6379')).toEqual({
      options: { host: '127.0.0.1', port: 6379 },
      description: 'redis://127.0.0.1:6379',
      waitReplicas: 0,
      waitTimeoutMs: 1_000,
    });
    expect(parseRedisTarget('redis://cache.internal').options).toEqual({ host: 'cache.internal', port: 6379 });
  });

  test('When one server has a password, a database and a wait, then each is read and the password stays out of the description', () => {
    const target = parseRedisTarget('redis://app:s%40cret@10.0.0.5:6380/2?waitReplicas=1&waitTimeoutMs=250');
    expect(target.options).toEqual({ host: '10.0.0.5', port: 6380, username: 'app', password: 's@cret', db: 2 });
    expect(target).toMatchObject({ waitReplicas: 1, waitTimeoutMs: 250, description: 'redis://10.0.0.5:6380/2' });
    expect(target.description).not.toContain('cret');
    expect(parseRedisTarget('rediss://[::1]:6390').options).toEqual({ host: '::1', port: 6390, tls: {} });
  });

  test('When REDIS_URL names Sentinels, then every Sentinel, the master name and the wait are read', () => {
    const target = parseRedisTarget('redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,[fd00::3]:26380/pgo?waitReplicas=1&waitTimeoutMs=1000');
    expect(target.options).toMatchObject({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26379 },
        { host: 'fd00::3', port: 26380 },
      ],
      name: 'pgo',
      // Follows a failover as soon as the Sentinels announce it.
      failoverDetector: true,
    });
    expect(target).toMatchObject({ waitReplicas: 1, waitTimeoutMs: 1_000, description: 'redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,[fd00::3]:26380/pgo' });
  });

  test('When a Sentinel URL has no wait, a password, a user or a database, then the defaults and each part are read', () => {
    expect(parseRedisTarget('redis-sentinel://s1:26379/mymaster')).toMatchObject({ waitReplicas: 0, waitTimeoutMs: 1_000 });
    expect(parseRedisTarget('redis-sentinel://s%3Acret@s1:26379/mymaster').options).toMatchObject({ password: 's:cret' });
    expect(parseRedisTarget('redis-sentinel://:pw@s1:26379/mymaster').options).toMatchObject({ password: 'pw' });
    const target = parseRedisTarget('redis-sentinel://app:pw@s1:26379,s2:26379/my%20master/3?waitReplicas=2');
    expect(target.options).toMatchObject({ username: 'app', password: 'pw', name: 'my master', db: 3 });
    expect(target).toMatchObject({ waitReplicas: 2, waitTimeoutMs: 1_000, description: 'redis-sentinel://s1:26379,s2:26379/my%20master' });
  });

  test.each([
    ['redis-sentinel://s1:26379,s2:26379', /master name/],
    ['redis-sentinel://s1:26379,s2/pgo', /Sentinel "s2" is not host:port/],
    ['redis-sentinel://s1:26379/pgo?waitReplicas=-1', /waitReplicas must be a whole number/],
    ['redis-sentinel://s1:26379/pgo?waitReplicas=1.5', /waitReplicas must be a whole number/],
    ['redis-sentinel://s1:26379/pgo?waitReplicas=one', /waitReplicas must be a whole number/],
    ['redis://127.0.0.1:6379?waitReplicas=1&waitTimeoutMs=0', /waitTimeoutMs must be a whole number of ms/],
    ['memcached://127.0.0.1:11211', /unknown scheme memcached/],
    ['127.0.0.1:6379', /not a redis:\/\//],
  ])('When REDIS_URL is %s, then it is refused with a message saying why', (url, message) => {
    expect(() => parseRedisTarget(url)).toThrow(message);
  });
});
