import type { ConsumerRunConfig, EachBatchPayload, Kafka } from 'kafkajs';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { createLogger } from './logger';
import { kafkaMetrics, on, startConsumer, type Publisher } from './kafka';

const TOPIC = 'results';
const INTERVAL_MS = 200;

/** A commit the test settles by hand, with the offsets it was asked to commit. */
interface PendingCommit {
  offsets: Array<{ topic: string; partition: number; offset: string }>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A kafkajs consumer that hands its run config to the test and whose commits the test settles. */
function fakeKafka() {
  const commits: PendingCommit[] = [];
  /** Offsets the broker accepted, in the order it accepted them. */
  const committed: string[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  let runConfig: ConsumerRunConfig | undefined;
  const consumer = {
    events: { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash', DISCONNECT: 'consumer.disconnect' },
    on: () => () => undefined,
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async (config: ConsumerRunConfig) => void (runConfig = config),
    disconnect: async () => undefined,
    commitOffsets: (offsets: PendingCommit['offsets']) =>
      new Promise<void>((resolve, reject) => {
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        commits.push({
          offsets,
          resolve: () => {
            inFlight--;
            committed.push(...offsets.map((entry) => entry.offset));
            resolve();
          },
          reject: (error) => {
            inFlight--;
            reject(error);
          },
        });
      }),
  };
  const admin = { connect: async () => undefined, disconnect: async () => undefined };
  const kafka = { consumer: () => consumer, admin: () => admin } as unknown as Kafka;
  return { kafka, commits, committed, mostInFlight: () => mostInFlight, runConfig: () => runConfig };
}

/** One fetched batch of one message at `offset`, through the consumer's eachBatch as kafkajs would call it. */
async function deliver(runConfig: ConsumerRunConfig | undefined, offset: number) {
  const message = { key: Buffer.from('payment-1'), value: Buffer.from('{"n":1}'), offset: String(offset), timestamp: '0', headers: {}, attributes: 0, size: 0 };
  // Only the fields the consumer reads; the rest of kafkajs' Batch is not used.
  const payload = { batch: { topic: TOPIC, partition: 0, messages: [message] }, resolveOffset: () => undefined, heartbeat: async () => undefined, isRunning: () => true, isStale: () => false } as unknown as EachBatchPayload;
  await runConfig?.eachBatch?.(payload);
}

/** A consumer of TOPIC that handles everything, taking batches by key and committing every INTERVAL_MS. */
const start = (kafka: Kafka) =>
  startConsumer({
    kafka,
    groupId: 'g',
    handlers: [on(TOPIC, z.object({ n: z.number() }), async () => undefined)],
    publisher: {} as Publisher,
    deadLetterTopic: 'deadletter',
    metrics: kafkaMetrics(new Registry()),
    logger: createLogger('test', 'silent'),
    keysConcurrently: 8,
    commitIntervalMs: INTERVAL_MS,
  });

describe('a consumer that commits its handled offsets on an interval', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('When a commit is refused only after a later commit was due, then commits never overlap and the committed offset never goes back', async () => {
    const fake = fakeKafka();
    const running = await start(fake.kafka);

    await deliver(fake.runConfig(), 0);
    await jest.advanceTimersByTimeAsync(INTERVAL_MS);
    expect(fake.commits.map((commit) => commit.offsets[0]?.offset)).toEqual(['1']);

    // While the first commit is still being retried by kafkajs, the next message is handled and the next tick comes.
    await deliver(fake.runConfig(), 1);
    await jest.advanceTimersByTimeAsync(INTERVAL_MS);
    expect(fake.commits).toHaveLength(1);

    fake.commits[0]!.reject(new Error('The coordinator is not aware of this member'));
    await jest.advanceTimersByTimeAsync(0);
    expect(fake.commits.map((commit) => commit.offsets[0]?.offset)).toEqual(['1', '2']);
    fake.commits[1]!.resolve();

    await jest.advanceTimersByTimeAsync(INTERVAL_MS * 3);
    await running.consumer.disconnect();
    expect(fake.commits).toHaveLength(2);
    expect(fake.committed).toEqual(['2']);
    expect(fake.mostInFlight()).toBe(1);
  });

  test('When the consumer is closed while a commit is in flight, then its last commit goes after that one with the offsets handled since', async () => {
    const fake = fakeKafka();
    const running = await start(fake.kafka);

    await deliver(fake.runConfig(), 0);
    await jest.advanceTimersByTimeAsync(INTERVAL_MS);
    await deliver(fake.runConfig(), 1);
    const closed = running.consumer.disconnect();
    await jest.advanceTimersByTimeAsync(0);
    expect(fake.commits).toHaveLength(1);

    fake.commits[0]!.resolve();
    await jest.advanceTimersByTimeAsync(0);
    expect(fake.commits.map((commit) => commit.offsets[0]?.offset)).toEqual(['1', '2']);
    fake.commits[1]!.resolve();
    await closed;
    expect(fake.committed).toEqual(['1', '2']);
  });
});
