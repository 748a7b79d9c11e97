import { Registry } from 'prom-client';
import { z } from 'zod';
import { createPublisher, kafkaMetrics, on, startConsumer, type RunningConsumer } from '../runtime/kafka';
import { harnessKafka, isolatedNamespace, testLogger } from './support/env';
import { pollUntil } from './support/poll';

const message = z.object({ type: z.literal('test'), n: z.number() });
const COUNT = 40;

/**
 * A consumer that commits on an interval (gateway workers, commitIntervalMs)
 * commits what it handled on that interval and when it is closed, never per
 * fetched batch; a member that takes over starts after the last commit.
 */
describe('consumer committing on an interval', () => {
  const ns = isolatedNamespace();
  const kafka = harnessKafka(ns.brokers, 'test-commits');
  const topic = `${ns.topicPrefix}commits`;
  const admin = kafka.admin();
  let consumer: RunningConsumer | undefined;

  beforeAll(async () => {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await publish(0, COUNT);
  }, 60_000);
  afterAll(async () => {
    await consumer?.consumer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  const until = (ready: () => boolean | Promise<boolean>, timeoutMs: number) =>
    pollUntil(async () => ready(), (done) => done, timeoutMs, () => `not done after ${timeoutMs} ms`);
  const publish = async (from: number, count: number) => {
    const publisher = await createPublisher(kafka, kafkaMetrics(new Registry()));
    await publisher.publish(topic, Array.from({ length: count }, (_, i) => ({ key: `payment-${(from + i) % 7}`, value: { type: 'test', n: from + i } })));
    await publisher.producer.disconnect();
  };
  const committed = async (groupId: string) => {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return offsets!.partitions.reduce((sum, { offset }) => sum + Math.max(0, Number(offset)), 0);
  };
  const start = async (groupId: string, commitIntervalMs: number, seen: number[]) => {
    const publisher = await createPublisher(kafka, kafkaMetrics(new Registry()));
    return startConsumer({
      kafka,
      groupId,
      handlers: [on(topic, message, async ({ n }) => void seen.push(n))],
      publisher,
      deadLetterTopic: `${ns.topicPrefix}dead-letter`,
      metrics: kafkaMetrics(new Registry()),
      logger: testLogger('commits'),
      keysConcurrently: 8,
      commitIntervalMs,
    });
  };

  test('When every message is handled before the interval is up, then nothing is committed until the consumer closes, and then all of it', async () => {
    const groupId = `${ns.topicPrefix}long-interval`;
    const seen: number[] = [];
    consumer = await start(groupId, 600_000, seen);
    await until(() => seen.length === COUNT, 20_000);
    expect(await committed(groupId)).toBe(0);

    await consumer.consumer.disconnect();
    consumer = undefined;
    expect(await committed(groupId)).toBe(COUNT);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: COUNT }, (_, n) => n));
  }, 60_000);

  test('When the interval passes while running, then the handled offsets are committed without closing, and a new member starts after them', async () => {
    const groupId = `${ns.topicPrefix}short-interval`;
    const seen: number[] = [];
    consumer = await start(groupId, 100, seen);
    await until(() => seen.length === COUNT, 20_000);
    await until(async () => (await committed(groupId)) === COUNT, 10_000);

    // The next member of the group starts after the commit: one new message per key (so on every partition
    // that had old ones) comes after any old one it would get again, and only the new ones arrive.
    await consumer.consumer.disconnect();
    const again: number[] = [];
    consumer = await start(groupId, 100, again);
    await consumer.joined;
    await publish(COUNT, 7);
    await until(() => again.length >= 7, 20_000);
    expect([...again].sort((a, b) => a - b)).toEqual([40, 41, 42, 43, 44, 45, 46]);
  }, 60_000);
});
