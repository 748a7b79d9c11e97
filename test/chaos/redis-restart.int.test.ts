import { setTimeout as waitFor } from 'node:timers/promises';
import { expectNothingLost, startChaosStack, type ChaosStack } from '../support/chaos';
import { startOwnedRedis, type OwnedRedis } from '../support/redis-server';
import { rule } from '../support/stack';

/** How long Redis stays down between its stop and its start. */
const DOWN_MS = 3_000;

const readiness = async (baseUrl: string) => (await fetch(`${baseUrl}/readyz`)).status;

/**
 * Redis restarts under steady load. The test owns that Redis (a free port,
 * the append-only file on, in a temporary directory), so the run's shared
 * Redis is never touched, and the restarted server must find every payment
 * in its append-only file.
 */
describe('chaos: Redis restarts', () => {
  let redis: OwnedRedis | undefined;
  let stack: ChaosStack | undefined;
  afterAll(async () => {
    await stack?.stop();
    await redis?.dispose();
  });

  test('When Redis is stopped and started again under load, then requests wait for it, the instance is unready meanwhile, and nothing is lost', async () => {
    redis = await startOwnedRedis();
    stack = await startChaosStack({
      redisUrl: redis.url,
      rules: [rule('east', { timeoutMs: 5_000 }), rule('west', { timeoutMs: 5_000 })],
      sandboxes: { east: { latencyMs: 20 }, west: { latencyMs: 20 } },
    });
    const [baseUrl = ''] = stack.baseUrls();
    const load = stack.startLoad({ perSecond: 20 });
    await load.untilAccepted(40);

    await redis.stop();
    const outage = { from: Date.now(), restarting: 0 };
    // Redis stays down for a fixed time; readiness is sampled in the middle of it.
    await waitFor(DOWN_MS / 2);
    const readyWhileDown = await readiness(baseUrl);
    await waitFor(outage.from + DOWN_MS - Date.now());
    outage.restarting = Date.now();
    await redis.start();

    await load.untilAccepted(load.accepted.length + 40);
    const { accepted, answers } = await load.stop();

    expect(answers.filter((answer) => answer.status !== 202 || answer.retriedOn.length > 0)).toEqual([]);
    const sentWhileDown = answers.filter((answer) => answer.sentAt >= outage.from && answer.sentAt < outage.restarting);
    expect(sentWhileDown.length).toBeGreaterThan(DOWN_MS / 100);
    // Commands wait for the connection to come back: nothing sent while Redis was down is answered before it is back.
    expect(sentWhileDown.filter((answer) => answer.sentAt + answer.elapsedMs < outage.restarting)).toEqual([]);
    expect(readyWhileDown).toBe(503);
    expect(await readiness(baseUrl)).toBe(200);

    await expectNothingLost(stack, accepted);
  }, 120_000);
});
