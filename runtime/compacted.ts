import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka } from 'kafkajs';
import type { z } from 'zod';
import type { Logger } from './logger';
import type { KafkaMetrics, MessageMeta, Publisher } from './kafka';
import { startConsumer, on, RejectMessage } from './kafka';
import { waitInSet, type Waiter } from './waiters';

/**
 * Right after a topic is created, or during a leader election, a KRaft broker
 * answers "not the leader" for a moment, and kafkajs' fetchTopicOffsets does
 * not retry that: retry it here, with a short backoff, for a bounded time.
 */
async function retryWhileStarting<T>(call: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delayMs = 50; ; delayMs = Math.min(delayMs * 2, 1_000)) {
    try {
      return await call();
    } catch (error) {
      const retriable = (error as { retriable?: boolean }).retriable === true;
      if (!retriable || Date.now() + delayMs > deadline) throw error;
      await sleep(delayMs);
    }
  }
}

export interface CompactedFollowerOptions<S extends z.ZodType> {
  kafka: Kafka;
  topic: string;
  schema: S;
  /** A value for a key, or null for a tombstone (the key was removed). */
  apply: (key: string, value: z.infer<S> | null, offset: string) => void | Promise<void>;
  publisher: Publisher;
  deadLetterTopic: string;
  metrics: KafkaMetrics;
  logger: Logger;
  /** Names the follower in its consumer group, which is unique per process start. */
  name: string;
  /**
   * Checks where a message came from before it is applied (e.g. a signature);
   * a reason means it is parked on the dead-letter topic and not applied.
   */
  authenticate?: (meta: MessageMeta & { key: string }) => string | undefined;
  /**
   * What a tombstone (a key with a null value) means: a removal (`apply`, the default), or nothing at all
   * (`refuse`: parked with reason `bare-tombstone`), for topics whose removals are signed events of their own.
   */
  tombstones?: 'apply' | 'refuse';
  /**
   * Remembers, across instances and restarts, which messages were already parked, so re-reading the topic
   * from its beginning at every start does not dead-letter the same message again (ADR 0016). Without it,
   * every refusal is parked.
   */
  parked?: ParkedLedger;
  /** Told of every message refused by `authenticate`, by `tombstones: 'refuse'` or by `apply` (a RejectMessage), parked or not. */
  onRefused?: (reason: string, meta: { key: string | null; partition: number; offset: string }) => void;
}

/** Which messages were parked on the dead-letter topic, named `topic:partition:offset`. */
export interface ParkedLedger {
  /** True for the first caller only: that caller parks the message; everyone else has nothing to do. */
  claim(source: string): Promise<boolean>;
  /** Gives a claim back when parking failed, so the next reader parks it. */
  release(source: string): Promise<void>;
}

/** A publisher that parks each message only once, however many readers refuse it how many times. */
function parkingOnce(publisher: Publisher, deadLetterTopic: string, ledger: ParkedLedger, logger: Logger): Publisher {
  return {
    publishAll: (messages) => publisher.publishAll(messages),
    flush: () => publisher.flush(),
    async publish(topic, messages) {
      if (topic !== deadLetterTopic) return publisher.publish(topic, messages);
      const claimed: typeof messages = [];
      for (const message of messages) {
        if (await ledger.claim(message.key)) claimed.push(message);
        else logger.debug({ source: message.key }, 'already parked: not dead-lettered again');
      }
      if (claimed.length === 0) return;
      try {
        await publisher.publish(topic, claimed);
      } catch (error) {
        await Promise.all(claimed.map((message) => ledger.release(message.key)));
        throw error;
      }
    },
  };
}

/**
 * Reads a compacted topic from its beginning and keeps following it: the way
 * every instance rebuilds a key → latest-value view (rules, breaker states)
 * at start-up. `caughtUp` resolves once everything that was on the topic when
 * it started has been applied, so a service can wait for it before serving.
 *
 * The consumer group is new on every start and never commits, so a restart
 * always replays the topic from the beginning.
 */
export async function followCompactedTopic<S extends z.ZodType>(options: CompactedFollowerOptions<S>) {
  const { kafka, topic, schema, apply, logger } = options;
  const admin = kafka.admin();
  await admin.connect();
  const ends = await retryWhileStarting(() => admin.fetchTopicOffsets(topic)).finally(() => admin.disconnect());
  const lastOffsets = (offsets: typeof ends) => new Map(offsets.filter((end) => Number(end.high) > Number(end.low)).map((end) => [end.partition, BigInt(end.high) - 1n]));
  const pending = lastOffsets(ends);
  let markCaughtUp: () => void = () => undefined;
  const caughtUp = new Promise<void>((resolve) => (markCaughtUp = resolve));
  /** The last offset read per partition, and who waits for the follower to reach some offsets (`untilCaughtUp`). */
  const read = new Map<number, bigint>();
  const waiters = new Set<Waiter<{ targets: Map<number, bigint> }>>();
  const reached = (targets: Map<number, bigint>) => [...targets].every(([partition, last]) => (read.get(partition) ?? -1n) >= last);
  const progress = (partition: number, offset: string) => {
    const last = pending.get(partition);
    if (last !== undefined && BigInt(offset) >= last) pending.delete(partition);
    if (pending.size === 0) markCaughtUp();
    read.set(partition, BigInt(offset));
    for (const waiter of waiters) if (reached(waiter.targets)) waiter.wake();
  };
  if (pending.size === 0) markCaughtUp();

  /**
   * Resolves true once everything on the topic now (its end offsets, asked of the broker at the call) has been
   * applied, false after `timeoutMs`: a check that compares the view with something else reads it current.
   */
  const untilCaughtUp = async (timeoutMs: number): Promise<boolean> => {
    const client = kafka.admin();
    await client.connect();
    const targets = lastOffsets(await retryWhileStarting(() => client.fetchTopicOffsets(topic), timeoutMs).finally(() => client.disconnect()));
    return reached(targets) || waitInSet(waiters, { targets }, timeoutMs);
  };

  const rejectUnauthentic = (meta: MessageMeta & { key: string }) => {
    const reason = options.authenticate?.(meta);
    if (reason) {
      logger.critical({ topic, key: meta.key, offset: meta.offset, reason }, 'message refused: not from a trusted producer');
      throw new RejectMessage(reason, `${topic} key ${meta.key} at offset ${meta.offset}`);
    }
  };
  /** Runs a step; a refusal is reported to `onRefused` and goes on to be parked. */
  const reporting = async (meta: { key: string | null; partition: number; offset: string }, step: () => void | Promise<void>) => {
    try {
      await step();
    } catch (error) {
      if (error instanceof RejectMessage) options.onRefused?.(error.reason, meta);
      throw error;
    }
  };
  const publisher = options.parked ? parkingOnce(options.publisher, options.deadLetterTopic, options.parked, logger) : options.publisher;

  const running = await startConsumer({
    kafka,
    groupId: `${options.name}-${randomUUID()}`,
    autoCommit: false,
    handlers: [
      on(topic, schema, async (value, meta) => {
        try {
          await reporting(meta, async () => {
            if (meta.key === null) throw new RejectMessage('no-key', 'a compacted topic message needs a key');
            rejectUnauthentic({ ...meta, key: meta.key });
            await apply(meta.key, value, meta.offset);
          });
        } finally {
          progress(meta.partition, meta.offset);
        }
      }),
    ],
    onTombstone: async (key, meta) => {
      try {
        await reporting({ ...meta, key }, async () => {
          rejectUnauthentic({ ...meta, key });
          if (options.tombstones === 'refuse') throw new RejectMessage('bare-tombstone', `${topic} key ${key} at offset ${meta.offset}: a removal is a signed, versioned event, never a bare null`);
          await apply(key, null, meta.offset);
        });
      } finally {
        progress(meta.partition, meta.offset);
      }
    },
    onDeadLettered: (meta) => progress(meta.partition, meta.offset),
    publisher,
    deadLetterTopic: options.deadLetterTopic,
    metrics: options.metrics,
    logger,
    fromBeginning: true,
  });
  return { ...running, caughtUp, untilCaughtUp };
}
