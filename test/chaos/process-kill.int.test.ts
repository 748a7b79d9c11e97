import { expectNothingLost, startChaosStack, type ChaosStack } from '../support/chaos';
import { rule } from '../support/stack';

/**
 * Orchestrator processes SIGKILLed under steady load. The clients behave as
 * the API asks: a request that got no answer is sent again with the same
 * Idempotency-Key, so a payment created just before the kill is found again,
 * not created twice.
 */
describe('chaos: orchestrator processes killed under load', () => {
  let stack: ChaosStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  const start = (instances: string[]) =>
    startChaosStack({
      // 2 s timeouts: attempts whose results wait for the dead instance's partitions may time out and fail over,
      // so late successes and compensations are part of the scenario.
      rules: [rule('east', { timeoutMs: 2_000 }), rule('west', { timeoutMs: 2_000 })],
      sandboxes: { east: { latencyMs: 30 }, west: { latencyMs: 30 } },
      instances,
      orchestratorEnv: { TIMEOUT_POLL_MS: '50', OUTBOX_GRACE_MS: '500' },
    });

  test('When the only instance is SIGKILLed mid-load and restarted, then every payment is accepted exactly once and reaches one terminal state', async () => {
    stack = await start(['solo']);
    const load = stack.startLoad({ perSecond: 40 });
    await load.untilAccepted(80);
    await stack.kill('solo');
    await stack.restart('solo');
    await load.untilAccepted(load.accepted.length + 80);
    const { accepted, answers } = await load.stop();

    expect(answers.filter((answer) => answer.status !== 202)).toEqual([]);
    // Clients that found no instance retried; the retries are what the idempotency key makes safe.
    expect(answers.some((answer) => answer.retriedOn.includes('no-answer'))).toBe(true);
    await expectNothingLost(stack, accepted);
  }, 120_000);

  test('When one of two instances is SIGKILLed mid-load and restarted, then the other carries the load meanwhile and nothing is lost', async () => {
    stack = await start(['one', 'two']);
    const load = stack.startLoad({ perSecond: 40 });
    await load.untilAccepted(80);
    await stack.kill('one');
    // Accepted while "one" is down: only "two" can have answered.
    await load.untilAccepted(load.accepted.length + 40);
    await stack.restart('one');
    await load.untilAccepted(load.accepted.length + 80);
    const { accepted, answers } = await load.stop();

    expect(answers.filter((answer) => answer.status !== 202)).toEqual([]);
    await expectNothingLost(stack, accepted);
  }, 120_000);
});
