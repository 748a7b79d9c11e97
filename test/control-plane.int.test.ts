import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintToken } from '../runtime/auth';
import { DEVELOPMENT_HEALTH_KEY, SIGNATURE_HEADER, signMessage } from '../runtime/signing';
import { loadOrchestratorConfig } from '../orchestrator/config';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main';
import { deadLetter, type GatewayHealthChanged, type RuleRemoved } from '../topics/schemas';
import { collectTopic, type TopicCollection } from './support/collect';
import { testLogger } from './support/env';
import { deposit, postPayment, rule, ruleChangedJson, signedRuleMessage, startTestStack, untilMetrics, untilRouting, type TestStack } from './support/stack';

const changed = (gatewayId: string, version: number, fields: Parameters<typeof rule>[1] = {}): string => ruleChangedJson(rule(gatewayId, fields), version, 'ann');

const removed = (gatewayId: string, version: number): string =>
  JSON.stringify({ eventId: randomUUID(), type: 'rule.removed', occurredAt: new Date().toISOString(), schemaVersion: 1, gatewayId, version, changedBy: 'ann' } satisfies RuleRemoved);

const healthEvent = (gatewayId: string, breaker: GatewayHealthChanged['breaker'], expiresInMs: number): string =>
  JSON.stringify({
    eventId: randomUUID(),
    type: 'gateway.health',
    occurredAt: new Date().toISOString(),
    schemaVersion: 1,
    gatewayId,
    breaker,
    reportedBy: 'another-instance',
    expiresAt: new Date(Date.now() + expiresInMs).toISOString(),
  } satisfies GatewayHealthChanged);

describe('the control plane only moves forward and only from its owners', () => {
  let stack: TestStack;
  let letters: TopicCollection<ReturnType<typeof deadLetter.parse>>;
  let later: RunningOrchestrator | undefined;
  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('alpha'), rule('beta'), rule('gamma'), rule('delta')] });
    letters = await collectTopic(stack.kafka, stack.topics.deadLetter, deadLetter, { groupPrefix: `${stack.env.TOPIC_PREFIX}letters-` });
  });
  afterAll(async () => {
    await later?.stop();
    await letters?.stop();
    await stack?.stop();
  });

  const send = async (topic: string, messages: Array<{ key: string; value: string | null; headers?: Record<string, string> }>) => {
    const producer = stack.kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic, messages });
    } finally {
      await producer.disconnect();
    }
  };
  const rulesLetters = () => letters.messages.filter((letter) => letter.sourceTopic === stack.topics.rules);

  test('When an older signed rule is replayed, a signed rule is re-keyed and tombstones land on the rule topic, then nothing changes on a running instance nor on one started after, and each is dead-lettered once', async () => {
    // The seed message of alpha (version 1), as an attacker would have copied it byte for byte.
    const seed = signedRuleMessage('alpha', changed('alpha', 1));
    await send(stack.topics.rules, [signedRuleMessage('alpha', changed('alpha', 2, { available: false, unavailableReason: 'maintenance' }))]);
    await untilRouting(stack.baseUrl, (routing) => routing.gateways.find((gateway) => gateway.gatewayId === 'alpha')?.available === false);

    const betaSigned = signedRuleMessage('beta', changed('beta', 5, { weight: 9 }));
    await send(stack.topics.rules, [
      seed, // replayed: version 1 is not above version 2
      { ...betaSigned, key: 'alpha' }, // re-keyed: the signature covers the key
      { key: 'gamma', value: null }, // unsigned tombstone
      signedRuleMessage('gamma', null), // a bare tombstone, even signed, is no removal
    ]);
    // A signed change after them is applied: the follower kept going past the refusals.
    await send(stack.topics.rules, [signedRuleMessage('beta', changed('beta', 2, { weight: 7 }))]);
    const view = await untilRouting(stack.baseUrl, (routing) => routing.gateways.find((gateway) => gateway.gatewayId === 'beta')?.weight === 7);
    expect(view.gateways.map((gateway) => [gateway.gatewayId, gateway.available])).toEqual([
      ['alpha', false],
      ['beta', true],
      ['delta', true],
      ['gamma', true],
    ]);
    const metrics = await untilMetrics(stack.baseUrl, /orchestrator_control_events_refused_total\{topic="rules",reason="stale-version",service="orchestrator"\} 1/);
    expect(metrics).toMatch(/orchestrator_control_events_refused_total\{topic="rules",reason="bad-signature",service="orchestrator"\} 2/);
    expect(metrics).toMatch(/orchestrator_control_events_refused_total\{topic="rules",reason="bare-tombstone",service="orchestrator"\} 1/);
    await letters.untilFound(() => (rulesLetters().length >= 4 ? true : undefined), 10_000, () => `dead letters: ${JSON.stringify(rulesLetters())}`);

    // A signed removal is honoured, and an older rule cannot bring the gateway back.
    await send(stack.topics.rules, [signedRuleMessage('delta', removed('delta', 2)), signedRuleMessage('delta', changed('delta', 1))]);
    await untilRouting(stack.baseUrl, (routing) => routing.gateways.every((gateway) => gateway.gatewayId !== 'delta'));
    await letters.untilFound(() => (rulesLetters().length >= 5 ? true : undefined), 10_000, () => `dead letters: ${JSON.stringify(rulesLetters())}`);

    // An instance started afterwards reads the whole topic: the same rules, and nothing parked twice.
    later = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'later' }), { logger: testLogger('orchestrator-later') });
    const laterUrl = `http://127.0.0.1:${later.port}`;
    const laterView = await untilRouting(laterUrl, () => true);
    expect(laterView.gateways.map((gateway) => [gateway.gatewayId, gateway.available, gateway.weight])).toEqual([
      ['alpha', false, 1],
      ['beta', true, 7],
      ['gamma', true, 1],
    ]);
    expect(laterView.rulesVersion).toBe((await untilRouting(stack.baseUrl, () => true)).rulesVersion);
    await untilMetrics(laterUrl, /orchestrator_control_events_refused_total\{topic="rules",reason="stale-version",service="orchestrator"\} 2/);

    // One more forgery while both run: both refuse it, it is parked once.
    await send(stack.topics.rules, [{ key: 'beta', value: changed('beta', 50, { weight: 0 }) }]);
    await letters.untilFound(() => (rulesLetters().length >= 6 ? true : undefined), 10_000, () => `dead letters: ${JSON.stringify(rulesLetters())}`);
    await untilMetrics(laterUrl, /orchestrator_control_events_refused_total\{topic="rules",reason="bad-signature",service="orchestrator"\} 3/);
    await sleep(1_000);
    const sources = rulesLetters().map((letter) => `${letter.partition}:${letter.offset}`);
    expect(sources).toHaveLength(6);
    expect(new Set(sources).size).toBe(6);
  });

  test('When a forged or an expired breaker state lands on the health topic, then no breaker changes, here or on an instance started after', async () => {
    const unsigned = healthEvent('alpha', 'open', 60_000);
    const expired = healthEvent('gamma', 'open', -1_000);
    await send(stack.topics.gatewayHealth, [
      { key: 'alpha', value: unsigned },
      { key: 'gamma', value: expired, headers: { [SIGNATURE_HEADER]: signMessage(DEVELOPMENT_HEALTH_KEY, 'gamma', expired) } },
      { key: 'alpha', value: unsigned, headers: { [SIGNATURE_HEADER]: signMessage('not-the-key-'.repeat(4), 'alpha', unsigned) } },
    ]);
    // A signed, fresh state from another instance after them is applied: the follower kept going.
    const fresh = healthEvent('beta', 'open', 60_000);
    await send(stack.topics.gatewayHealth, [{ key: 'beta', value: fresh, headers: { [SIGNATURE_HEADER]: signMessage(DEVELOPMENT_HEALTH_KEY, 'beta', fresh) } }]);
    for (const baseUrl of [stack.baseUrl, `http://127.0.0.1:${later?.port}`]) {
      const view = await untilRouting(baseUrl, (routing) => routing.gateways.find((gateway) => gateway.gatewayId === 'beta')?.breaker !== 'closed');
      expect(view.gateways.filter((gateway) => gateway.gatewayId !== 'beta').map((gateway) => [gateway.gatewayId, gateway.breaker])).toEqual([
        ['alpha', 'closed'],
        ['gamma', 'closed'],
      ]);
      await untilMetrics(baseUrl, /orchestrator_control_events_refused_total\{topic="health",reason="bad-signature",service="orchestrator"\} 2/);
    }

    const third = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, INSTANCE_ID: 'third' }), { logger: testLogger('orchestrator-third') });
    try {
      const view = await untilRouting(`http://127.0.0.1:${third.port}`, () => true);
      expect(view.gateways.filter((gateway) => gateway.gatewayId !== 'beta').map((gateway) => [gateway.gatewayId, gateway.breaker])).toEqual([
        ['alpha', 'closed'],
        ['gamma', 'closed'],
      ]);
    } finally {
      await third.stop();
    }
    const healthLetters = letters.messages.filter((letter) => letter.sourceTopic === stack.topics.gatewayHealth);
    expect(healthLetters.map((letter) => letter.reason)).toEqual(['bad-signature', 'bad-signature']);
  });

  test('When two clients use the same Idempotency-Key, then each gets a payment of its own, and each repeat gets its own back', async () => {
    const settings = loadOrchestratorConfig({});
    const tokenOf = (subject: string) => mintToken({ secret: settings.AUTH_JWT_SECRET, issuer: settings.AUTH_JWT_ISSUER }, subject, ['payments:write', 'payments:read']);
    const key = randomUUID();
    const as = async (subject: string) =>
      postPayment(stack.baseUrl, deposit({ region: 'EU' }), { 'Idempotency-Key': key, authorization: `Bearer ${await tokenOf(subject)}` });
    const first = await as('client-a');
    const second = await as('client-b');
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(first.body.id).not.toEqual(second.body.id);
    expect((await as('client-a')).body.id).toEqual(first.body.id);
    expect((await as('client-b')).body.id).toEqual(second.body.id);
  });
});
