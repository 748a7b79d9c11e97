import { expectNothingLost, notAcceptedNorRefused, paymentsNotSettledFirstTime, startChaosStack, type ChaosStack } from '../support/chaos';
import { rule } from '../support/stack';

/**
 * Orchestrator processes SIGKILLed under steady load. The clients behave as
 * the API asks: a request that got no answer is sent again with the same
 * Idempotency-Key, so a payment created just before the kill is found again,
 * not created twice. Every gateway stays healthy, so whatever the
 * orchestrators go through, every payment must succeed on its first attempt:
 * a result that waited in Kafka for a dead instance's partitions is on time.
 */
describe('chaos: orchestrator processes killed under load', () => {
  let stack: ChaosStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  const start = (instances: string[]) =>
    startChaosStack({
      // 2 s timeouts, shorter than the consumer session timeout (6 s): the dead instance's results partitions stay
      // unread past many deadlines before the group moves them.
      rules: [rule('east', { timeoutMs: 2_000 }), rule('west', { timeoutMs: 2_000 })],
      sandboxes: { east: { latencyMs: 30 }, west: { latencyMs: 30 } },
      instances,
      orchestratorEnv: { TIMEOUT_POLL_MS: '50', OUTBOX_GRACE_MS: '500' },
    });

  test('When the only instance is SIGKILLed mid-load and restarted, then every payment is accepted exactly once and succeeds on its first attempt', async () => {
    stack = await start(['solo']);
    const load = stack.startLoad({ perSecond: 40 });
    await load.untilAccepted(80);
    await stack.kill('solo');
    await stack.restart('solo');
    await load.untilAccepted(load.accepted.length + 80);
    const { accepted, answers } = await load.stop();

    expect(answers.filter(notAcceptedNorRefused)).toEqual([]);
    // Clients that found no instance retried; the retries are what the idempotency key makes safe.
    expect(answers.some((answer) => answer.retriedOn.includes('no-answer'))).toBe(true);
    await expectNothingLost(stack, accepted);
    expect(await paymentsNotSettledFirstTime(stack, accepted)).toEqual([]);
  }, 120_000);

  test('When one of two instances is SIGKILLed mid-load, with attempt timeouts shorter than the session timeout, then the other carries the load and every payment succeeds on its first attempt: no failover, cancel or compensation', async () => {
    stack = await start(['one', 'two']);
    const load = stack.startLoad({ perSecond: 40 });
    await load.untilAccepted(80);
    await stack.kill('one');
    // Accepted while "one" is down, across the 6 s before the group moves its partitions to "two".
    await load.untilAccepted(load.accepted.length + 280);
    await stack.restart('one');
    await load.untilAccepted(load.accepted.length + 80);
    const { accepted, answers } = await load.stop();

    expect(answers.filter(notAcceptedNorRefused)).toEqual([]);
    await expectNothingLost(stack, accepted);
    expect(await paymentsNotSettledFirstTime(stack, accepted)).toEqual([]);
  }, 150_000);
});
