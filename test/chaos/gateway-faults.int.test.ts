import { randomUUID } from 'node:crypto';
import { resultMessage, type ResultMessage } from '../../topics/schemas';
import { expectNothingLost, startChaosStack, type ChaosStack } from '../support/chaos';
import { deposit, rule, untilMetrics } from '../support/stack';

const GATEWAYS = ['alpha', 'beta', 'gamma'] as const;
const TIMEOUT_MS = 1_500;
/** Results injected for payments, or attempts, this stack never had. */
const STRAYS = 6;

const envelope = <T extends string>(type: T) => ({ eventId: randomUUID(), type, occurredAt: new Date().toISOString(), schemaVersion: 1 as const });

/** A schema-valid result a gateway might send: a success, or a confirmed cancel. */
const strayResult = (paymentId: string, index: number): ResultMessage =>
  resultMessage.parse(
    index % 2 === 0
      ? { ...envelope('gateway.result'), paymentId, attemptId: randomUUID(), gatewayId: 'alpha', outcome: 'success' }
      : { ...envelope('attempt.command-result'), command: 'cancel', paymentId, attemptId: randomUUID(), gatewayId: 'alpha', result: 'cancelled' },
  );

/**
 * Gateways misbehave under steady load of deposits and withdrawals, in
 * phases set through their sandbox controls: hanging, flapping, answering
 * twice and answering late. Results for payments and attempts nobody asked
 * about are produced on the results topic meanwhile. Each phase starts when
 * enough payments have been accepted, not after a fixed time.
 */
describe('chaos: gateways misbehave under load', () => {
  let stack: ChaosStack | undefined;
  afterAll(() => stack?.stop());

  test('When gateways hang, flap, answer twice, answer late and answer for unknown payments, then every payment still ends once and strays are dead-lettered', async () => {
    stack = await startChaosStack({
      rules: GATEWAYS.map((gatewayId) => rule(gatewayId, { timeoutMs: TIMEOUT_MS })),
      sandboxes: Object.fromEntries(GATEWAYS.map((gatewayId) => [gatewayId, { latencyMs: 20 }])),
      orchestratorEnv: { TIMEOUT_POLL_MS: '50' },
    });
    const running = stack;
    const configure = (modes: Record<(typeof GATEWAYS)[number], object>) =>
      Promise.all(GATEWAYS.map((gatewayId) => running.configureSandbox(gatewayId, { latencyMs: 20, ...modes[gatewayId] })));
    const injectStrays = async (paymentIdOf: (index: number) => string) => {
      const producer = running.kafka.producer();
      await producer.connect();
      const strays = Array.from({ length: STRAYS }, (_, index) => strayResult(paymentIdOf(index), index));
      await producer.send({ topic: running.topics.gatewayResults, messages: strays.map((stray) => ({ key: stray.paymentId, value: JSON.stringify(stray) })) });
      await producer.disconnect();
    };

    const load = stack.startLoad({
      perSecond: 30,
      body: (index) => deposit({ type: index % 2 === 0 ? 'deposit' : 'withdrawal', accountId: `load-${index}` }),
    });

    await configure({ alpha: { mode: 'hang' }, beta: { mode: 'flap', periodMs: 1_000 }, gamma: { mode: 'duplicate' } });
    await injectStrays(() => `unknown-${randomUUID()}`);
    await load.untilAccepted(60);

    await configure({ alpha: { mode: 'healthy' }, beta: { mode: 'duplicate' }, gamma: { mode: 'late', lateMs: TIMEOUT_MS + 1_000 } });
    await injectStrays((index) => load.accepted[index] ?? '');
    await load.untilAccepted(120);

    await configure({ alpha: {}, beta: {}, gamma: {} });
    await load.untilAccepted(180);
    const { accepted, answers } = await load.stop();

    // A 503 (every breaker open at once) is retried by the client with its key, so every payment ends up accepted.
    expect(answers.filter((answer) => answer.status !== 202)).toEqual([]);
    await expectNothingLost(stack, accepted);

    const [baseUrl = ''] = stack.baseUrls();
    const results = `topic="${stack.topics.gatewayResults}"`;
    await untilMetrics(baseUrl, new RegExp(`kafka_messages_dead_lettered_total\\{${results},reason="unknown-payment",service="orchestrator"\\} ${STRAYS}\\n`));
    await untilMetrics(baseUrl, new RegExp(`kafka_messages_dead_lettered_total\\{${results},reason="unknown-attempt",service="orchestrator"\\} ${STRAYS}\\n`));
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    const total = (pattern: RegExp) => [...metrics.matchAll(pattern)].reduce((sum, match) => sum + Number(match[1]), 0);
    expect(total(/payment_outcomes_ignored_total\{why="duplicate"[^}]*\} (\d+)/g)).toBeGreaterThan(0);
    expect(total(/payment_failovers_total\{[^}]*cause="timeout"[^}]*\} (\d+)/g)).toBeGreaterThan(0);
    expect(total(/payment_failovers_total\{[^}]*cause="failure"[^}]*\} (\d+)/g)).toBeGreaterThan(0);
    expect(total(/payment_late_successes_total\{[^}]*\} (\d+)/g)).toBeGreaterThan(0);
  }, 150_000);
});
