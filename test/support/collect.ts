import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';

/** Anything that parses a message value (a zod schema from topics/schemas). */
export interface MessageSchema<T> {
  parse(value: unknown): T;
}

export interface CollectOptions {
  /** Start of the consumer group id (a random suffix follows), e.g. `${TOPIC_PREFIX}health-`. */
  groupPrefix?: string;
  /** What one message is called in the timeout error of `until`, e.g. 'health event'. */
  label?: string;
  /** Default timeout of `until`. */
  timeoutMs?: number;
}

export interface TopicCollection<T> {
  /** Every message read so far, parsed, in arrival order. */
  messages: T[];
  /** Resolves with the first message that matches, as soon as it arrives. */
  until(match: (message: T) => boolean, timeoutMs?: number): Promise<T>;
  /** Re-checks `find` on every message; resolves with its first result other than undefined. */
  untilFound<R>(find: () => R | undefined, timeoutMs: number, failure: () => string): Promise<R>;
  stop(): Promise<void>;
}

/**
 * Consumes a topic from its beginning in a group of its own, parsing every
 * message with `schema`, and lets a test await the messages it expects (no
 * sleeps).
 */
export async function collectTopic<T>(kafka: Kafka, topic: string, schema: MessageSchema<T>, options: CollectOptions = {}): Promise<TopicCollection<T>> {
  const { groupPrefix = 'collect-', label = 'message', timeoutMs: defaultTimeoutMs = 10_000 } = options;
  const messages: T[] = [];
  const waiters: Array<() => void> = [];
  const consumer: Consumer = kafka.consumer({ groupId: `${groupPrefix}${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      messages.push(schema.parse(JSON.parse(message.value?.toString() ?? '')));
      for (const wake of waiters.splice(0)) wake();
    },
  });
  async function untilFound<R>(find: () => R | undefined, timeoutMs: number, failure: () => string): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(failure());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  return {
    messages,
    until: (match, timeoutMs = defaultTimeoutMs) =>
      untilFound(
        () => messages.find(match),
        timeoutMs,
        () => `no matching ${label} after ${timeoutMs} ms; seen ${JSON.stringify(messages)}`,
      ),
    untilFound,
    stop: () => consumer.disconnect(),
  };
}
