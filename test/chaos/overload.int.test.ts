import { expectNothingLost, paymentsNotSettledFirstTime, startChaosStack, storedPayments, type ChaosStack } from '../support/chaos';
import { redisKeyCount } from '../support/inspect';
import { rule } from '../support/stack';

const TIMEOUT_MS = 5_000;

/**
 * Far more payments offered than one instance can carry, for a while, with
 * healthy gateways: the orchestrator must refuse the excess at the door
 * (503 overloaded, nothing written) rather than slow every payment down
 * until results wait past their deadlines. The clients here do not retry a
 * 503, so every refusal shows.
 */
describe('chaos: overload', () => {
  let stack: ChaosStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  test('When payments are offered far beyond capacity, then the excess gets 503 overloaded with nothing written, and every accepted payment succeeds first time within its timeout', async () => {
    stack = await startChaosStack({
      rules: [rule('east', { timeoutMs: TIMEOUT_MS }), rule('west', { timeoutMs: TIMEOUT_MS })],
      sandboxes: { east: { latencyMs: 20 }, west: { latencyMs: 20 } },
      instances: ['solo'],
      // Capacity here is what the admission bounds say it is: results waiting over 100 ms, or an event loop
      // whose p99 delay passes 50 ms (the defaults are 2 s and 500 ms). A fixed rate "far beyond capacity" is
      // not portable: since issue 15 one instance carries more than the gateways and the load generator
      // sharing its 2 cores can follow, and offering more starves them, so answers come late and the test
      // measures the gateways. Tight bounds make the orchestrator refuse first, whatever the machine.
      orchestratorEnv: { ADMISSION_MAX_RESULTS_BACKLOG_MS: '100', ADMISSION_MAX_EVENT_LOOP_DELAY_MS: '50' },
    });
    const load = stack.startLoad({ perSecond: 400, retryForMs: 0 });
    await load.untilAccepted(200);
    // Offered for a while after the first refusal, so the refusals are a steady state, not a blip.
    await untilRefused(load.answers, 100, 60_000);
    const { accepted, answers } = await load.stop();

    const refused = answers.filter((answer) => answer.status !== 202);
    expect(refused.length).toBeGreaterThanOrEqual(100);
    expect(refused.filter((answer) => answer.status !== 503 || (answer.body as { error?: { code?: string } }).error?.code !== 'overloaded')).toEqual([]);
    // How fast a refusal is answered is measured by the benchmark (npm run bench:failover, overload scenario),
    // not here: on a shared machine a test's timings say more about the load generator than the orchestrator.

    // Nothing written for a refusal: one Idempotency-Key and one payment stored per 202, none per 503.
    expect(await redisKeyCount(stack, 'idem:*')).toBe(accepted.length);
    expect(await redisKeyCount(stack, 'payment:*')).toBe(accepted.length);
    await expectNothingLost(stack, accepted);
    expect(await paymentsNotSettledFirstTime(stack, accepted)).toEqual([]);
    const overDeadline = (await storedDurations(stack, accepted)).filter((ms) => ms > TIMEOUT_MS);
    expect(overDeadline).toEqual([]);
  }, 180_000);
});

async function untilRefused(answers: ReadonlyArray<{ status: number | 'no-answer' }>, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (answers.filter((answer) => answer.status === 503).length < count) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} refusals after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Accept to settling answer of each payment, in ms, from the stored attempts. */
async function storedDurations(stack: ChaosStack, ids: readonly string[]): Promise<number[]> {
  return (await storedPayments(stack, ids)).map((payment) => Date.parse(payment.attempts[0]?.completedAt ?? '') - Date.parse(payment.createdAt));
}
