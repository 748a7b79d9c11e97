import { loadOrchestratorConfig } from '../orchestrator/config';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main';
import { testLogger } from './support/env';
import { deposit, getPayment, postPayment, rule, startTestStack, untilRouting, watchStatuses, type TestStack } from './support/stack';

// Selection walks the rules sorted by gateway id; with `random` pinned to 0 the
// first eligible one is always chosen, so 'limited' gets every payment its
// budget allows and 'spare' only the ones it had to skip.
const LIMITED = 'limited';
const SPARE = 'spare';
const PER_SECOND = 5;
const BURST_PER_INSTANCE = 20;
const firstEligible = () => 0;

async function rateLimitedCount(baseUrl: string, gatewayId: string): Promise<number> {
  const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = new RegExp(`^gateway_rate_limited_total\\{gateway="${gatewayId}"[^}]*\\} (\\d+)$`, 'm').exec(metrics);
  return Number(line?.[1] ?? 0);
}

describe('a gateway rate limit shared by two orchestrator instances', () => {
  let stack: TestStack;
  let second: RunningOrchestrator | undefined;
  let secondUrl: string;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [rule(LIMITED, { rateLimitPerSecond: PER_SECOND }), rule(SPARE)],
      orchestrator: { random: firstEligible },
    });
    second = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'second' }), {
      logger: testLogger('orchestrator-second'),
      random: firstEligible,
    });
    secondUrl = `http://127.0.0.1:${second.port}`;
    statuses = await watchStatuses(stack);
  });
  afterAll(async () => {
    await statuses?.stop();
    await second?.stop();
    await stack?.stop();
  });

  test('When a burst larger than the limit is split across both instances, then at most the limit per second goes to the gateway and the rest fail over to the other without failing', async () => {
    await untilRouting(secondUrl, (view) => view.gateways.some((gateway) => gateway.gatewayId === LIMITED && gateway.rateLimitPerSecond === PER_SECOND));
    const burst = await Promise.all(
      Array.from({ length: BURST_PER_INSTANCE * 2 }, async (_, index) => {
        const baseUrl = index % 2 === 0 ? stack.baseUrl : secondUrl;
        const accepted = await postPayment(baseUrl, deposit());
        expect(accepted.status).toBe(202);
        return { baseUrl, id: String(accepted.body.id) };
      }),
    );
    const terminals = await statuses.untilTerminal(burst.map((payment) => payment.id));
    expect(terminals.every((event) => event.status === 'SUCCESS')).toBe(true);

    const payments = await Promise.all(burst.map(({ baseUrl, id }) => getPayment(baseUrl, id)));
    const first = payments.map((payment) => payment.attempts[0]);
    expect(payments.every((payment) => payment.attempts.length === 1)).toBe(true);

    // Per second of dispatch, across both instances: never more than the limit. The burst may cross a second boundary.
    const perSecond = new Map<number, number>();
    for (const attempt of first.filter((candidate) => candidate?.gatewayId === LIMITED)) {
      const unixSecond = Math.floor(Date.parse(attempt?.dispatchedAt ?? '') / 1000);
      perSecond.set(unixSecond, (perSecond.get(unixSecond) ?? 0) + 1);
    }
    expect([...perSecond.values()].every((count) => count <= PER_SECOND)).toBe(true);
    // 40 payments in a second or two: some second had more than the limit asking, so its whole budget was used.
    expect(Math.max(...perSecond.values())).toBe(PER_SECOND);

    const skipped = first.filter((attempt) => attempt?.gatewayId === SPARE);
    expect(skipped.length).toBe(BURST_PER_INSTANCE * 2 - [...perSecond.values()].reduce((sum, count) => sum + count, 0));
    for (const attempt of skipped) {
      expect(attempt?.routing).toMatchObject({ chosen: SPARE, excluded: [{ gatewayId: LIMITED, reason: 'rate-limited' }] });
    }
    // Both instances skipped it: the budget is shared, not per instance.
    const skippedBy = (baseUrl: string) => burst.filter((payment, index) => payment.baseUrl === baseUrl && first[index]?.gatewayId === SPARE).length;
    expect(skippedBy(stack.baseUrl)).toBeGreaterThan(0);
    expect(skippedBy(secondUrl)).toBeGreaterThan(0);

    // Every skip is counted, on the instance that skipped.
    expect(await rateLimitedCount(stack.baseUrl, LIMITED)).toBe(skippedBy(stack.baseUrl));
    expect(await rateLimitedCount(secondUrl, LIMITED)).toBe(skippedBy(secondUrl));
    expect(await rateLimitedCount(stack.baseUrl, SPARE)).toBe(0);
  });
});
