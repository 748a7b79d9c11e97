import type { Admin } from 'kafkajs';
import { topicLayoutProblems } from './create';
import { topicSpecs, type TopicSpec } from './names';

/** A topic as the brokers hold it: partitions, copies of each (the fewest counts), min.insync.replicas. */
interface HeldTopic {
  partitions: number;
  copies: number;
  minInsyncReplicas: number;
  /** A partition with fewer copies than the others (one lost replica assignment). */
  shortPartition?: { copies: number };
}

/** An admin client answering the two calls topicLayoutProblems makes (metadata and configs) from `held`, with only the fields it reads. */
function brokersHolding(held: Record<string, HeldTopic>): Admin {
  const admin = {
    fetchTopicMetadata: async ({ topics }: { topics: string[] }) => ({
      topics: topics.flatMap((name) => {
        const topic = held[name];
        if (!topic) return [];
        const partitions = Array.from({ length: topic.partitions }, (_, partitionId) => {
          const copies = partitionId === 0 && topic.shortPartition ? topic.shortPartition.copies : topic.copies;
          const replicas = Array.from({ length: copies }, (_, index) => index + 1);
          return { partitionId, leader: 1, replicas };
        });
        return [{ name, partitions }];
      }),
    }),
    describeConfigs: async ({ resources }: { resources: Array<{ name: string }> }) => ({
      resources: resources.flatMap(({ name }) =>
        held[name] ? [{ resourceName: name, configEntries: [{ configName: 'min.insync.replicas', configValue: String(held[name].minInsyncReplicas) }] }] : [],
      ),
    }),
  };
  return admin as unknown as Admin;
}

/** The cluster layout of docs/cluster.md: 6 partitions, three copies, two in sync. */
const specs: TopicSpec[] = topicSpecs('t.', ['alpha'], { paymentPartitions: 6, replicationFactor: 3, minInsyncReplicas: 2 });
const asConfigured = (overrides: Record<string, Partial<HeldTopic>> = {}) =>
  Object.fromEntries(specs.map((spec) => [spec.topic, { partitions: spec.numPartitions!, copies: 3, minInsyncReplicas: 2, ...overrides[spec.topic] }]));

describe('topicLayoutProblems (topics/create.ts)', () => {
  test('When every topic is held as configured, or more durably, then there is no problem', async () => {
    expect(await topicLayoutProblems(brokersHolding(asConfigured()), specs)).toEqual([]);
    const moreDurable = asConfigured(Object.fromEntries(specs.map((spec) => [spec.topic, { copies: 5, minInsyncReplicas: 3 }])));
    expect(await topicLayoutProblems(brokersHolding(moreDurable), specs)).toEqual([]);
  });

  test('When a topic has fewer copies than configured, even on one partition, then it is named with both counts', async () => {
    const held = asConfigured({ 't.gateway.results': { copies: 1 }, 't.payment.status': { shortPartition: { copies: 2 } } });
    expect(await topicLayoutProblems(brokersHolding(held), specs)).toEqual(['t.gateway.results: has 1 copies, configured 3', 't.payment.status: has 2 copies, configured 3']);
  });

  test('When a topic has a lower min.insync.replicas than configured, then it is named', async () => {
    const held = asConfigured({ 't.payment.attempts': { minInsyncReplicas: 1 } });
    expect(await topicLayoutProblems(brokersHolding(held), specs)).toEqual(['t.payment.attempts: min.insync.replicas is 1, configured 2']);
  });

  test('When a payment-keyed topic has another partition count, fewer or more, then it is refused: keys would move', async () => {
    const held = asConfigured({ 't.gateway.results': { partitions: 3 }, 't.payment.status': { partitions: 12 } });
    expect(await topicLayoutProblems(brokersHolding(held), specs)).toEqual([
      't.gateway.results: has 3 partitions, configured 6; changing the partition count of an existing topic is not supported',
      't.payment.status: has 12 partitions, configured 6; changing the partition count of an existing topic is not supported',
    ]);
  });

  test('When a topic is missing, then it is named', async () => {
    const held = asConfigured();
    delete held['t.deadletter'];
    expect(await topicLayoutProblems(brokersHolding(held), specs)).toEqual(['t.deadletter: missing']);
  });

  test('When the specs leave copies and min.insync.replicas to the brokers (the development layout), then only the partition count is checked', async () => {
    const development = topicSpecs('t.', ['alpha']);
    const held = Object.fromEntries(development.map((spec) => [spec.topic, { partitions: spec.numPartitions!, copies: 1, minInsyncReplicas: 1 }]));
    expect(await topicLayoutProblems(brokersHolding(held), development)).toEqual([]);
  });
});
