import { expectNothingLost, notAcceptedNorRefused, paymentsNotSettledFirstTime, startChaosStack, storedPayments, type ChaosStack } from '../support/chaos';
import { rule } from '../support/stack';

const TIMEOUT_MS = 2_000;

/**
 * The orchestrator's own delays, with every gateway healthy: a process that
 * stops answering for longer than the attempt timeout, and a rolling restart.
 * A gateway that answered in time was not silent, so each must end with every
 * payment SUCCESS on its first attempt: no failover, no cancel, no
 * compensation, no failure.
 */
describe('chaos: the orchestrator is slow, not the gateways', () => {
  let stack: ChaosStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  test('When the only instance is stopped (SIGSTOP) for twice the attempt timeout while gateways answer, then continued, then every payment succeeds on its first attempt', async () => {
    stack = await startChaosStack({
      rules: [rule('east', { timeoutMs: TIMEOUT_MS }), rule('west', { timeoutMs: TIMEOUT_MS })],
      // Answers take 1 s: at the stop, a second's worth of payments is in flight, and their answers reach Kafka
      // while the instance cannot read them, long before their deadlines pass on the clock.
      sandboxes: { east: { latencyMs: 1_000 }, west: { latencyMs: 1_000 } },
      instances: ['solo'],
      orchestratorEnv: { TIMEOUT_POLL_MS: '50' },
    });
    const load = stack.startLoad({ perSecond: 20 });
    await load.untilAccepted(40);
    const stoppedAt = Date.now();
    stack.pause('solo');
    // The fault itself lasts this long (nothing to wait for: the process does nothing meanwhile).
    await new Promise((resolve) => setTimeout(resolve, 2 * TIMEOUT_MS));
    const continuedAt = Date.now();
    stack.resume('solo');
    await load.untilAccepted(load.accepted.length + 40);
    const { accepted, answers } = await load.stop();

    expect(answers.filter(notAcceptedNorRefused)).toEqual([]);
    await expectNothingLost(stack, accepted);
    expect(await paymentsNotSettledFirstTime(stack, accepted)).toEqual([]);
    // The scenario did what it says: answers that reached Kafka during the stop, for attempts whose deadline
    // passed on the clock before the instance could read them.
    const caught = (await storedPayments(stack, accepted)).filter(({ attempts: [first] }) => {
      const answered = Date.parse(first?.completedAt ?? '');
      return answered > stoppedAt && answered < continuedAt && Date.parse(first?.deadline ?? '') < continuedAt;
    });
    expect(caught.length).toBeGreaterThan(5);
  }, 120_000);

  test('When two instances are restarted one after the other (SIGTERM, start again) under load, then every payment succeeds on its first attempt', async () => {
    stack = await startChaosStack({
      rules: [rule('east', { timeoutMs: TIMEOUT_MS }), rule('west', { timeoutMs: TIMEOUT_MS })],
      sandboxes: { east: { latencyMs: 30 }, west: { latencyMs: 30 } },
      instances: ['one', 'two'],
      orchestratorEnv: { TIMEOUT_POLL_MS: '50' },
    });
    const load = stack.startLoad({ perSecond: 40 });
    await load.untilAccepted(60);
    for (const id of ['one', 'two']) {
      await stack.terminate(id);
      await load.untilAccepted(load.accepted.length + 40);
      await stack.restart(id);
      await load.untilAccepted(load.accepted.length + 40);
    }
    const { accepted, answers } = await load.stop();

    expect(answers.filter(notAcceptedNorRefused)).toEqual([]);
    await expectNothingLost(stack, accepted);
    expect(await paymentsNotSettledFirstTime(stack, accepted)).toEqual([]);
  }, 150_000);
});
