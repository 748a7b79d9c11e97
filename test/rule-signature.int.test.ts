import { randomUUID } from 'node:crypto';
import type { RuleChanged } from '../topics/schemas';
import { signMessage, SIGNATURE_HEADER } from '../runtime/signing';
import { publishRules, rule, ruleChangedJson, signedRuleMessage, startTestStack, untilMetrics, untilRouting, type TestStack } from './support/stack';

describe('rule events must come from the back office', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('alpha'), rule('beta')] });
  });
  afterAll(() => stack?.stop());

  const ruleEvent = (gatewayId: string, fields: Partial<RuleChanged['rule']>): string => ruleChangedJson(rule(gatewayId, fields), 99, 'mallory');

  test('When forged rule events (unsigned, wrongly signed, forged removal) land on the topic, then none is applied, each is dead-lettered and counted, and signed events still apply', async () => {
    const producer = stack.kafka.producer();
    await producer.connect();
    try {
      const unavailable = ruleEvent('alpha', { available: false });
      await producer.send({
        topic: stack.topics.rules,
        messages: [
          { key: 'alpha', value: unavailable },
          { key: 'alpha', value: unavailable, headers: { [SIGNATURE_HEADER]: signMessage('not-the-key-'.repeat(4), 'alpha', unavailable) } },
          { key: 'beta', value: null },
        ],
      });
      await untilMetrics(stack.baseUrl, /kafka_messages_dead_lettered_total\{topic="[^"]+backoffice\.rules",reason="bad-signature",service="orchestrator"\} 3/);

      // A signed change after the forgeries is applied: the follower kept going, and the forgeries changed nothing.
      await publishRules(stack.kafka, stack.topics, [rule('beta', { weight: 7 })], 2);
      const view = await untilRouting(stack.baseUrl, (routing) => routing.gateways.find((gateway) => gateway.gatewayId === 'beta')?.weight === 7);
      expect(view.gateways.map((gateway) => [gateway.gatewayId, gateway.available])).toEqual([
        ['alpha', true],
        ['beta', true],
      ]);

      // And a signed removal (a versioned event, never a bare tombstone) is honoured.
      const removal = JSON.stringify({ eventId: randomUUID(), type: 'rule.removed', occurredAt: new Date().toISOString(), schemaVersion: 1, gatewayId: 'beta', version: 3, changedBy: 'ann' });
      await producer.send({ topic: stack.topics.rules, messages: [signedRuleMessage('beta', removal)] });
      await untilRouting(stack.baseUrl, (routing) => routing.gateways.every((gateway) => gateway.gatewayId !== 'beta'));
    } finally {
      await producer.disconnect();
    }
  });
});
