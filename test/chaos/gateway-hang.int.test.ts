import { expectNothingLost, startChaosStack, storedPayments, type ChaosStack } from '../support/chaos';
import { rule } from '../support/stack';

const TIMEOUT_MS = 1_500;
/** How late after its deadline a silent gateway's attempt may fail over: the bound docs/decisions/0015 states. */
const FAILOVER_BOUND_MS = 1_000;

/**
 * The other side of "a timeout means the gateway was silent": holding
 * deadlines until the results are read must not make a hung gateway's
 * payments wait longer than its timeout plus a small bound, under steady load.
 */
describe('chaos: a gateway hangs under steady load', () => {
  let stack: ChaosStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  test('When one of two gateways hangs, then each of its attempts fails over within its timeout plus 1 s, and every payment succeeds on the other', async () => {
    stack = await startChaosStack({
      rules: [rule('east', { timeoutMs: TIMEOUT_MS }), rule('west', { timeoutMs: TIMEOUT_MS })],
      sandboxes: { east: { mode: 'hang' }, west: { latencyMs: 20 } },
      instances: ['one', 'two'],
    });
    const load = stack.startLoad({ perSecond: 30 });
    await load.untilAccepted(150);
    const { accepted, answers } = await load.stop();

    expect(answers.filter((answer) => answer.status !== 202)).toEqual([]);
    await expectNothingLost(stack, accepted);
    const payments = await storedPayments(stack, accepted);
    expect(payments.filter((payment) => payment.status !== 'SUCCESS').map((payment) => payment.id)).toEqual([]);
    const failedOver = payments.filter((payment) => payment.attempts[0]?.gatewayId === 'east');
    expect(failedOver.length).toBeGreaterThan(0);
    const late = failedOver.flatMap(({ id, attempts: [hung, next] }) => {
      const waitedMs = Date.parse(next?.dispatchedAt ?? '') - Date.parse(hung?.deadline ?? '');
      if (hung?.status === 'timed-out' && waitedMs <= FAILOVER_BOUND_MS) return [];
      // What the orchestrators said about it (how late the timeout was acted on, a request that reached Kafka late).
      const said = ['one', 'two'].flatMap((instance) => stack?.instance(instance).output().split('\n').filter((line) => line.includes(id)) ?? []);
      return [`${id}: ${hung?.status}, next attempt ${waitedMs} ms after the deadline; ${said.join(' ')}`];
    });
    expect(late).toEqual([]);
  }, 120_000);
});
