import { startChaosStack, storedPaymentIds, untilSettled, type ChaosStack } from '../support/chaos';
import { checkPaymentInvariants } from '../support/invariants';
import type { LoadAnswer } from '../support/load';
import { pollUntil } from '../support/poll';
import { startSentinelSet, type OwnedSentinelSet } from '../support/redis-sentinel';
import { rule } from '../support/stack';

/** Reads an instance's /readyz status; 0 when it does not answer at all. */
const readiness = async (baseUrl: string) => (await fetch(`${baseUrl}/readyz`).catch(() => undefined))?.status ?? 0;

/**
 * The orchestrator reaches Redis through three Sentinels (a primary and one
 * replica), and every write waits for the replica (`WAIT 1`) before it is
 * acknowledged. Under steady load the primary is SIGKILLed: the Sentinels
 * promote the replica, the orchestrator is not ready while it has no primary
 * and follows the new one, and every payment answered 202 — before, during
 * or after the failover — is stored on the new primary and settles.
 */
describe('cluster: the Redis primary is SIGKILLed under load (Sentinel)', () => {
  let sentinel: OwnedSentinelSet | undefined;
  let stack: ChaosStack | undefined;
  beforeAll(async () => {
    sentinel = await startSentinelSet();
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await sentinel?.dispose();
  }, 60_000);

  test('When the primary dies mid-load, then the replica is promoted, the orchestrator reconnects, /readyz shows the outage, and no payment answered 202 is lost', async () => {
    const set = sentinel!;
    stack = await startChaosStack({
      rules: [rule('east'), rule('west')],
      sandboxes: { east: { latencyMs: 20 }, west: { latencyMs: 20 } },
      instances: ['one'],
      redisUrl: set.url,
    });
    const baseUrl = stack.instance('one').baseUrl;
    const load = stack.startLoad({ perSecond: 25 });
    await load.untilAccepted(50);

    const oldPrimary = await set.killPrimary();
    await pollUntil(() => readiness(baseUrl), (status) => status === 503, 10_000, (status) => `/readyz answered ${status}, not 503, with the primary dead`);
    await set.untilFailover(oldPrimary);
    // A supervisor starts the dead server again; the Sentinels make it a replica, so writes can be confirmed again.
    // On a loaded machine the Sentinels may fail over once more meanwhile (back to the restarted server): the
    // orchestrator must follow that too, so the checks below read whichever primary they name at the end.
    const primaryPort = await set.restart(oldPrimary);
    await pollUntil(() => readiness(baseUrl), (status) => status === 200, 30_000, (status) => `/readyz answered ${status}, not 200, after the failover`);
    const acceptedBefore = load.accepted.length;
    await load.untilAccepted(acceptedBefore + 50, 60_000);
    const { accepted, answers } = await load.stop();

    // A request whose write could not be confirmed on a replica was refused with a retryable 503 storage_unconfirmed (never a
    // 202, never a 500); its client sent it again with the same key, so nearly all end accepted.
    const unconfirmed = (answer: LoadAnswer) => answer.status === 503 && (answer.body as { error?: { code?: string } } | undefined)?.error?.code === 'storage_unconfirmed';
    expect(answers.filter((answer) => answer.status !== 202 && !unconfirmed(answer))).toEqual([]);
    const primaryUrl = `redis://127.0.0.1:${primaryPort}`;
    const { REDIS_KEY_PREFIX: prefix = '' } = stack.env;
    await untilSettled(primaryUrl, prefix, accepted, 60_000);
    const stored = new Set(await storedPaymentIds(primaryUrl, prefix));
    expect(accepted.filter((id) => !stored.has(id))).toEqual([]);
    const report = await checkPaymentInvariants({ kafka: stack.kafka, topics: stack.topics, redisUrl: primaryUrl, redisKeyPrefix: prefix, acceptedIds: accepted });
    expect(report.violations).toEqual([]);
    expect(report.terminal + report.flaggedForReview).toBe(accepted.length);
    expect(stack.crashes()).toEqual([]);
  }, 150_000);
});
