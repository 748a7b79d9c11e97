import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPublisher, kafkaMetrics, type Publisher } from '../runtime/kafka';
import { createMetricsRegistry } from '../runtime/metrics';
import { DEVELOPMENT_RULES_KEY } from '../runtime/signing';
import { topicNames } from '../topics/names';
import { deadLetter, ruleEvent, type RuleRemoved } from '../topics/schemas';
import { seedRules } from '../topics/seed-rules';
import type { Kafka, Producer } from 'kafkajs';
import { collectTopic } from './support/collect';
import { isolatedNamespace, testLogger } from './support/env';
import { prepareNamespace, rule, signedRuleMessage } from './support/stack';

/**
 * `npm start` and `npm run topics:create` seed the rule topic on every run. The seed reads the topic with the
 * same union of rule events as every other reader, so an operator's removal is neither parked as unreadable
 * nor undone by a new seed.
 */
describe('seeding the rule topic', () => {
  let kafka: Kafka;
  let publisher: Publisher & { producer: Producer };
  let prefix: string;

  beforeAll(async () => {
    const ns = isolatedNamespace();
    prefix = ns.topicPrefix;
    ({ kafka } = await prepareNamespace(ns, [rule('alpha'), rule('gamma')]));
    publisher = await createPublisher(kafka, kafkaMetrics(createMetricsRegistry('seed-test')));
  }, 60_000);
  afterAll(async () => {
    await publisher?.producer.disconnect();
  });

  const seed = () => seedRules({ kafka, publisher, topicPrefix: prefix, logger: testLogger('seed-rules'), rulesSigningKey: DEVELOPMENT_RULES_KEY }, [rule('alpha'), rule('beta'), rule('gamma')]);

  test('When the topic holds a signed rule.removed, then two seed runs dead-letter nothing, seed only the gateway that never had a rule, and never bring the removed one back', async () => {
    const topics = topicNames(prefix);
    const removal: RuleRemoved = { eventId: randomUUID(), type: 'rule.removed', occurredAt: new Date().toISOString(), schemaVersion: 1, gatewayId: 'gamma', version: 2, changedBy: 'ann' };
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: topics.rules, messages: [signedRuleMessage('gamma', JSON.stringify(removal))] });
    await producer.disconnect();

    expect(await seed()).toEqual(['beta']);
    expect(await seed()).toEqual([]);

    const letters = await collectTopic(kafka, topics.deadLetter, deadLetter, { groupPrefix: `${prefix}letters-` });
    const events = await collectTopic(kafka, topics.rules, ruleEvent, { groupPrefix: `${prefix}rules-` });
    await events.until((event) => event.type === 'rule.changed' && event.rule.gatewayId === 'beta');
    // Nothing arrives late: a dead letter of the seed's own follower would be published before the seed returned.
    await sleep(1_000);
    await Promise.all([letters.stop(), events.stop()]);
    expect(letters.messages).toEqual([]);
    const gammaEvents = events.messages.filter((event) => (event.type === 'rule.changed' ? event.rule.gatewayId : event.gatewayId) === 'gamma');
    expect(gammaEvents.map((event) => [event.type, event.version])).toEqual([
      ['rule.changed', 1],
      ['rule.removed', 2],
    ]);
    expect(events.messages.filter((event) => event.type === 'rule.changed' && event.rule.gatewayId === 'beta')).toHaveLength(1);
  }, 60_000);
});
