import type { Kafka } from 'kafkajs';
import { Registry } from 'prom-client';
import { createLogger } from './logger';
import { kafkaMetrics, startConsumer, type Publisher } from './kafka';

/** A kafkajs consumer whose events the test emits by hand, counting the calls the code makes. */
function fakeKafka() {
  const listeners = new Map<string, Set<(event: unknown) => void>>();
  const calls = { connect: 0, run: 0, disconnect: 0 };
  const consumer = {
    events: { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash', DISCONNECT: 'consumer.disconnect' },
    on(name: string, listener: (event: unknown) => void) {
      const set = listeners.get(name) ?? new Set();
      set.add(listener);
      listeners.set(name, set);
      return () => set.delete(listener);
    },
    connect: async () => void calls.connect++,
    subscribe: async () => undefined,
    run: async () => void calls.run++,
    disconnect: async () => void calls.disconnect++,
  };
  const emit = (name: string, payload: unknown) => {
    for (const listener of listeners.get(name) ?? []) listener({ payload });
  };
  return { kafka: { consumer: () => consumer } as unknown as Kafka, consumer, calls, emit };
}

const crash = (restart: boolean) => ({ error: new Error('Failed to find group coordinator'), groupId: 'g', restart });

async function started() {
  const fake = fakeKafka();
  const running = await startConsumer({
    kafka: fake.kafka,
    groupId: 'g',
    handlers: [],
    publisher: {} as Publisher,
    deadLetterTopic: 'deadletter',
    metrics: kafkaMetrics(new Registry()),
    logger: createLogger('test', 'silent'),
    // Committing groups also get a lag watcher, which needs a real broker.
    autoCommit: false,
  });
  return { ...fake, running };
}

describe('a consumer that kafkajs gives up on', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('When kafkajs crashes a consumer without restarting it, then it is started again after a pause and is ready once it rejoins', async () => {
    const { running, calls, emit } = await started();
    expect(calls).toEqual({ connect: 1, run: 1, disconnect: 0 });

    emit('consumer.crash', crash(false));
    expect(running.isHealthy()).toBe(false);
    await jest.advanceTimersByTimeAsync(999);
    expect(calls.run).toBe(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(calls).toEqual({ connect: 2, run: 2, disconnect: 0 });

    emit('consumer.group_join', {});
    expect(running.isHealthy()).toBe(true);
  });

  test('When kafkajs restarts a crashed consumer itself, then it is not started a second time', async () => {
    const { running, calls, emit } = await started();
    emit('consumer.crash', crash(true));
    await jest.advanceTimersByTimeAsync(10_000);
    expect(calls).toEqual({ connect: 1, run: 1, disconnect: 0 });
    expect(running.isHealthy()).toBe(true);
  });

  test('When the consumer is closed while its restart is pending, then it is not started again', async () => {
    const { running, calls, emit } = await started();
    emit('consumer.crash', crash(false));
    await running.consumer.disconnect();
    await jest.advanceTimersByTimeAsync(10_000);
    expect(calls).toEqual({ connect: 1, run: 1, disconnect: 1 });
  });

  test('When starting it again fails, then it is tried again after another pause', async () => {
    const { running, consumer, calls, emit } = await started();
    const connect = consumer.connect;
    consumer.connect = async () => {
      calls.connect++;
      throw new Error('Connection error: connect ECONNREFUSED');
    };
    emit('consumer.crash', crash(false));
    await jest.advanceTimersByTimeAsync(1_000);
    expect(calls).toEqual({ connect: 2, run: 1, disconnect: 0 });

    consumer.connect = connect;
    await jest.advanceTimersByTimeAsync(1_000);
    expect(calls).toEqual({ connect: 3, run: 2, disconnect: 0 });
    await running.consumer.disconnect();
  });
});
