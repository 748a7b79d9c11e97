import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, Partitioners, type SASLOptions, type Consumer, type ConsumerRunConfig, type ICustomPartitioner, type KafkaMessage, type Producer } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import type { z } from 'zod';
import { deadLetter, type DeadLetter } from '../topics/schemas';
import { createConsumerLag } from './consumer-lag';
import type { Logger } from './logger';
import { errorMessage } from './errors';
import { createOffsetCommits } from './offset-commits';

/**
 * Thrown by a handler for a message that is well-formed but cannot be acted on
 * (for example a result for a payment nobody knows): the consumer parks it on
 * the dead-letter topic with the reason instead of retrying it forever.
 */
export class RejectMessage extends Error {
  constructor(
    readonly reason: string,
    detail: string,
  ) {
    super(detail);
    this.name = 'RejectMessage';
  }
}

/** Where the brokers are and how to authenticate to them: the client settings every Kafka client of a service shares. */
export interface KafkaConnection {
  brokers: string[];
  /** SASL credentials (this service's principal); none on a plaintext broker. */
  sasl?: SASLOptions;
  /** TLS to the brokers (SASL_SSL), with the system's trusted CAs. */
  ssl?: boolean;
}

/** The connection a service's configuration asks for (KAFKA_BROKERS, KAFKA_SASL_*, KAFKA_SSL of runtime/config.ts). */
export function kafkaConnectionOf(config: {
  KAFKA_BROKERS: string[];
  KAFKA_SASL_MECHANISM?: 'scram-sha-512' | 'scram-sha-256' | 'plain' | undefined;
  KAFKA_SASL_USERNAME?: string | undefined;
  KAFKA_SASL_PASSWORD?: string | undefined;
  KAFKA_SSL?: boolean;
}): KafkaConnection {
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = config;
  // parseConfig has refused a mechanism without both (kafkaAuthProblems).
  const sasl = mechanism !== undefined && username !== undefined && password !== undefined ? ({ mechanism, username, password } as SASLOptions) : undefined;
  return { brokers: config.KAFKA_BROKERS, ...(sasl ? { sasl } : {}), ...(config.KAFKA_SSL ? { ssl: true } : {}) };
}

export function createKafka(connection: KafkaConnection, clientId: string, logger: Logger): Kafka {
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  return new Kafka({
    clientId,
    brokers: connection.brokers,
    ...(connection.sasl ? { sasl: connection.sasl } : {}),
    ...(connection.ssl ? { ssl: true } : {}),
    logLevel: logLevel.WARN,
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5000 },
    logCreator:
      () =>
      ({ level, log }) => {
        const { message, ...rest } = log;
        if (level <= logLevel.ERROR) kafkaLogger.error(rest, message);
        else if (level === logLevel.WARN) kafkaLogger.warn(rest, message);
        else kafkaLogger.debug(rest, message);
      },
  });
}

export interface OutgoingMessage {
  key: string;
  value: { type: string };
  /**
   * `value` as JSON text, when it was serialized already (the outbox stores the same text it sends,
   * orchestrator/state/store.ts): sent as it is instead of serialized a second time.
   */
  json?: string;
  headers?: Record<string, string>;
}

/** A message with its topic, for publishing to several topics in one request. */
export interface TopicMessage extends OutgoingMessage {
  topic: string;
}

/** Publishes JSON messages; a failure rejects, so the caller decides whether work is lost. */
export interface Publisher {
  publish(topic: string, messages: OutgoingMessage[]): Promise<void>;
  /** Several topics at once; order is kept per topic and key. */
  publishAll(messages: TopicMessage[]): Promise<void>;
  /** Resolves once everything published so far has been answered (sent or failed): for a drain at shutdown. */
  flush(): Promise<void>;
}

export function kafkaMetrics(registry: Registry) {
  return {
    consumed: new Counter({
      name: 'kafka_messages_consumed_total',
      help: 'Messages taken from Kafka, by topic',
      labelNames: ['topic'],
      registers: [registry],
    }),
    produceRetries: new Counter({
      name: 'kafka_produce_retries_total',
      help: 'Produce requests sent again after a retriable failure (leader change, broker unreachable); the whole request is resent',
      registers: [registry],
    }),
    produceRequests: new Counter({
      name: 'kafka_produce_requests_total',
      help: 'Produce calls (each one a round trip to the brokers), by what was sent',
      labelNames: ['kind'],
      registers: [registry],
    }),
    produced: new Counter({
      name: 'kafka_messages_produced_total',
      help: 'Messages published to Kafka, by topic',
      labelNames: ['topic'],
      registers: [registry],
    }),
    deadLettered: new Counter({
      name: 'kafka_messages_dead_lettered_total',
      help: 'Messages parked on the dead-letter topic, by source topic and reason',
      labelNames: ['topic', 'reason'],
      registers: [registry],
    }),
    consumerLag: createConsumerLag(registry),
  };
}
export type KafkaMetrics = ReturnType<typeof kafkaMetrics>;

/** Most messages one produce request carries; a larger backlog goes out in several. */
const MAX_MESSAGES_PER_REQUEST = 500;

interface PendingPublish {
  messages: TopicMessage[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Retries of one produce request before the call fails (and the outbox relay takes over): kafkajs' own default. */
const PRODUCE_RETRIES = 5;
/** First wait before a retry (ms), doubled each time up to the cap: kafkajs' producer defaults (300 ms, 30 s cap, here 5 s). */
const PRODUCE_RETRY_BACKOFF_MS = 300;
const PRODUCE_RETRY_MAX_BACKOFF_MS = 5_000;

/**
 * Whether a failed produce may succeed if sent again: kafkajs marks broker and
 * connection errors retriable, and with `retries: 0` reports them as "number
 * of retries exceeded"; anything else (too large, not authorized) fails at once.
 */
function retriableProduceError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error.name === 'KafkaJSNumberOfRetriesExceeded' || (error as Error & { retriable?: boolean }).retriable === true;
}

/** Keys whose partition is remembered per partition count; past it the memory starts again. */
const PARTITIONS_REMEMBERED = 20_000;

/**
 * Kafka's default partitioner (kafkajs' murmur2 of the key, as the Java
 * client; a message's own `partition` or a missing key as kafkajs does),
 * remembering a string key's partition per partition count. A payment's
 * several messages (its statuses, attempt requests and attempt events) share
 * its id as key. kafkajs' murmur2 built a 64-bit Long object per byte step
 * (8% of the orchestrator's allocations per payment, docs/benchmarks/
 * efficiency.md) until the patch of ADR 0020 made it 32-bit; each call still
 * copies the key into a Buffer and filters the partition list, which the
 * messages after a payment's first skip. Same partitions as kafkajs' own, by
 * construction: the first answer for a key is kafkajs'.
 */
export const rememberingPartitioner: ICustomPartitioner = () => {
  const partition = Partitioners.DefaultPartitioner();
  const byCount = new Map<number, Map<string, number>>();
  return (args) => {
    const { message, partitionMetadata } = args;
    if ((message.partition !== undefined && message.partition !== null) || typeof message.key !== 'string') return partition(args);
    let remembered = byCount.get(partitionMetadata.length);
    if (!remembered) byCount.set(partitionMetadata.length, (remembered = new Map()));
    const known = remembered.get(message.key);
    if (known !== undefined) return known;
    const computed = partition(args);
    if (remembered.size >= PARTITIONS_REMEMBERED) remembered.clear();
    remembered.set(message.key, computed);
    return computed;
  };
};

/**
 * Publishes with `acks: -1`, coalescing concurrent calls: while one produce
 * request is in flight, later calls queue, and the queue goes out as one
 * request when it returns. An idle publisher sends at once, so batching adds
 * no latency at low load and saves a round trip per call at high load (every
 * payment in flight shares the request). Queue order is send order, so
 * messages of one key stay in order. If a shared request fails, each call's
 * messages are retried alone, so one bad message fails only its own caller.
 *
 * Not kafkajs' idempotent producer: after a leader change it can get "out
 * of order sequence number" and never recover (kafkajs issue #598; seen here
 * with the gateways' answers on a three-broker cluster, docs/decisions/0015).
 * Duplicates are handled where they are anyway: a retried batch may be
 * written twice, and every consumer tolerates a repeated message; one request
 * in flight at a time keeps a partition in order. Retries stay bounded: a
 * call that still fails rejects, and the caller sends again (the outbox, the
 * gateway worker's answer retry).
 *
 * Retries are ours, not kafkajs': its retry of a request that spans several
 * brokers skips every broker that answered the first try, including one that
 * has since become the leader of a failed broker's partitions, and resolves
 * without ever sending those messages (kafkajs issue #1303, PR #1798). A
 * PENDING status was lost that way when a broker was killed (test/cluster/
 * broker-kill). So kafkajs makes one try per call and a retriable failure
 * sends the whole request again, after fresh metadata, with backoff.
 */
export async function createPublisher(
  kafka: Kafka,
  metrics: KafkaMetrics,
  { retryBackoffMs = PRODUCE_RETRY_BACKOFF_MS }: { retryBackoffMs?: number } = {},
): Promise<Publisher & { producer: Producer }> {
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: rememberingPartitioner,
    retry: { retries: 0 },
  });
  await producer.connect();

  const sendWithRetries = async (messages: TopicMessage[]) => {
    for (let retry = 0; ; retry += 1) {
      try {
        return await send(messages);
      } catch (error) {
        if (retry >= PRODUCE_RETRIES || !retriableProduceError(error)) throw error;
        metrics.produceRetries.inc();
        await new Promise((resolve) => setTimeout(resolve, Math.min(retryBackoffMs * 2 ** retry, PRODUCE_RETRY_MAX_BACKOFF_MS)));
      }
    }
  };

  const send = async (messages: TopicMessage[]) => {
    const byTopic = new Map<string, TopicMessage[]>();
    for (const message of messages) {
      const batch = byTopic.get(message.topic);
      if (batch) batch.push(message);
      else byTopic.set(message.topic, [message]);
    }
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, batch]) => ({
        topic,
        messages: batch.map((message) => ({ key: message.key, value: message.json ?? JSON.stringify(message.value), ...(message.headers ? { headers: message.headers } : {}) })),
      })),
    });
    for (const [topic, batch] of byTopic) metrics.produced.inc({ topic }, batch.length);
    metrics.produceRequests.inc({ kind: byTopic.size > 1 ? 'batch' : 'single-topic' });
  };

  const queue: PendingPublish[] = [];
  let sending = false;
  let drained: Promise<void> = Promise.resolve();
  const takeRequest = (): PendingPublish[] => {
    let count = 0;
    let taken = 0;
    while (taken < queue.length && (taken === 0 || count + queue[taken]!.messages.length <= MAX_MESSAGES_PER_REQUEST)) {
      count += queue[taken]!.messages.length;
      taken += 1;
    }
    return queue.splice(0, taken);
  };
  const drain = async () => {
    sending = true;
    // Linger for the rest of this event-loop turn (as Kafka's own linger.ms, but bounded by the turn, not a
    // timer): the outboxes of a whole Redis reply batch or a fetched batch's answers are published in the
    // same turn, and they leave as one request instead of one request for the first and one for the rest.
    await new Promise((resolve) => setImmediate(resolve));
    while (queue.length > 0) {
      const calls = takeRequest();
      try {
        const messages: TopicMessage[] = [];
        for (const call of calls) messages.push(...call.messages);
        await sendWithRetries(messages);
        for (const call of calls) call.resolve();
      } catch (error) {
        if (calls.length === 1) calls[0]!.reject(error);
        else for (const call of calls) await sendWithRetries(call.messages).then(call.resolve, call.reject);
      }
    }
    sending = false;
  };
  const enqueue = (messages: TopicMessage[]): Promise<void> => {
    if (messages.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      queue.push({ messages, resolve, reject });
      if (!sending) drained = drain();
    });
  };

  return {
    producer,
    publish: (topic, messages) => enqueue(messages.map((message) => Object.assign({}, message, { topic }))),
    publishAll: enqueue,
    flush: () => drained,
  };
}

/** Where a message came from, with its raw bytes and headers for checks beyond the schema (signatures). */
export interface MessageMeta {
  partition: number;
  offset: string;
  key: string | null;
  raw: Buffer | null;
  headers: Record<string, string | undefined>;
  /** The message's Kafka timestamp in epoch ms: the broker's append time on topics stamped with LogAppendTime. */
  timestampMs: number;
}

const headersOf = (message: KafkaMessage): Record<string, string | undefined> =>
  Object.fromEntries(Object.entries(message.headers ?? {}).map(([name, value]) => [name, value === undefined ? undefined : Array.isArray(value) ? value.join(',') : String(value)]));

/** How a consumer treats one topic: the contract it parses with and what it does with a valid message. */
export interface TopicHandler<S extends z.ZodType> {
  topic: string;
  schema: S;
  handle: (message: z.infer<S>, meta: MessageMeta) => Promise<void>;
  /**
   * Told about a JSON message that failed the schema, before it is parked: a
   * message that still names something the service knows (a payment and
   * attempt) is never mere noise. It may throw like `handle`: a RejectMessage
   * replaces the parking reason, any other error makes kafkajs retry.
   */
  unreadable?: (json: unknown, detail: string, meta: MessageMeta) => Promise<void>;
}

/** Keep at most this much of a rejected value on the dead-letter topic. */
const DEAD_LETTER_VALUE_LIMIT = 64 * 1024;

export interface ConsumerOptions {
  kafka: Kafka;
  groupId: string;
  /** Erases the per-topic schema type; each handler is checked where it is built with `on()`. */
  handlers: Array<TopicHandler<z.ZodType>>;
  publisher: Publisher;
  deadLetterTopic: string;
  metrics: KafkaMetrics;
  logger: Logger;
  fromBeginning?: boolean;
  partitionsConsumedConcurrently?: number;
  /**
   * Handle the messages of a fetched batch with different keys at once (one
   * key's messages still one after another, in offset order), at most this
   * many at a time. Their Redis commands and Kafka messages then share round
   * trips. Unset: one message at a time. Only for handlers whose order
   * matters per key alone (everything here is keyed by payment).
   */
  keysConcurrently?: number;
  /**
   * With `keysConcurrently`: commit the handled offsets at most this often
   * (ms), one commit at a time, and once more when the consumer is closed,
   * instead of after every fetched batch as kafkajs does. Each commit is a request to the group
   * coordinator, a third of a busy gateway worker's requests. The price: a
   * member that dies or loses a partition in a rebalance hands over from the
   * last commit, so up to this long of handled messages is delivered again;
   * only for handlers that de-duplicate (gateways do, on the attempt id; the orchestrator's results
   * change nothing when applied again).
   */
  commitIntervalMs?: number;
  /** False for followers that replay a topic on every start and so never need committed offsets. */
  autoCommit?: boolean;
  /** A message with a key and no value: on compacted topics, the key was removed. Dead-lettered if not given. */
  onTombstone?: (key: string, meta: MessageMeta) => Promise<void>;
  /** Told after a message was parked, so followers can count it as read. */
  onDeadLettered?: (meta: { partition: number; offset: string }) => void;
  /**
   * Told once a message is done with (handled, parked or skipped), in offset
   * order per partition, with the broker's timestamp in epoch ms: everything
   * before it on that partition is done too. Not told for a message whose
   * handler threw for a retry.
   */
  onProcessed?: (progress: { topic: string; partition: number; offset: string; timestampMs: number }) => void;
}

/**
 * Runs `handle` on every message, those with the same key one after another
 * in the given order, different keys at once. Resolves once all are done,
 * with the errors by index; a message after a failed one of its key is not
 * handled (it is retried with it).
 */
export async function settleByKey(messages: KafkaMessage[], handle: (message: KafkaMessage) => Promise<void>): Promise<Map<number, unknown>> {
  const failures = new Map<number, unknown>();
  const byKey = new Map<string, number[]>();
  for (const [index, message] of messages.entries()) {
    // A message without a key has no order to keep with any other.
    const key = message.key === null ? `\u0000${index}` : message.key.toString('latin1');
    const indexes = byKey.get(key);
    if (indexes) indexes.push(index);
    else byKey.set(key, [index]);
  }
  await Promise.all(
    [...byKey.values()].map(async (indexes) => {
      for (const [position, index] of indexes.entries()) {
        try {
          await handle(messages[index]!);
        } catch (error) {
          for (const skipped of indexes.slice(position)) failures.set(skipped, error);
          return;
        }
      }
    }),
  );
  return failures;
}

/** Builds a handler entry while keeping the schema and handler types tied together. */
export function on<S extends z.ZodType>(
  topic: string,
  schema: S,
  handle: TopicHandler<S>['handle'],
  unreadable?: TopicHandler<S>['unreadable'],
): TopicHandler<z.ZodType> {
  return { topic, schema, handle: handle as TopicHandler<z.ZodType>['handle'], ...(unreadable ? { unreadable } : {}) };
}

/**
 * A consumer with the contract enforced at the edge: a message that is not
 * JSON or does not match its topic's schema is parked on the dead-letter topic,
 * counted and logged, and its offset committed, so it never blocks the
 * partition. A handler that throws (Redis or Kafka unavailable) is retried by
 * kafkajs from the same offset: valid work is delayed, never skipped.
 */
export interface RunningConsumer {
  consumer: Consumer;
  /** Resolves once the group has assigned partitions: the consumer is live. */
  joined: Promise<void>;
  /** False from a crash that kafkajs does not recover from by itself until the consumer has rejoined its group. */
  isHealthy: () => boolean;
  /** The partitions of `topic` this member was given at its latest join of the group (none before the first). */
  assigned: (topic: string) => readonly number[];
}

/** Pause before starting again a consumer that kafkajs gave up on. */
const RESTART_AFTER_CRASH_MS = 1_000;

export async function startConsumer(options: ConsumerOptions): Promise<RunningConsumer> {
  const { kafka, groupId, handlers, publisher, deadLetterTopic, metrics, logger } = options;
  const byTopic = new Map(handlers.map((handler) => [handler.topic, handler]));
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    // The broker's smallest allowed (group.min.session.timeout.ms): a killed instance's partitions move to the
    // others after 6 s, close to a gateway's 5 s timeout, so fewer of its results wait unread past their deadline.
    sessionTimeout: 6_000,
    heartbeatInterval: 1_000,
    // An idle fetch returns after this long; disconnect waits for it, so it bounds shutdown time.
    maxWaitTimeInMs: 250,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 5_000 },
  });
  let assignment: Record<string, number[]> = {};
  const joined = new Promise<void>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      assignment = payload.memberAssignment;
      logger.info({ groupId, assignment }, 'consumer group joined');
      resolve();
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...byTopic.keys()], fromBeginning: options.fromBeginning ?? true });

  const park = async (topic: string, partition: number, message: KafkaMessage, reason: string, detail: string) => {
    const value = message.value ?? Buffer.alloc(0);
    const letter: DeadLetter = deadLetter.parse({
      eventId: randomUUID(),
      type: 'dead.letter',
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
      sourceTopic: topic,
      partition,
      offset: message.offset,
      key: message.key?.toString('utf8').slice(0, 200) ?? null,
      reason,
      detail: detail.slice(0, 2000),
      valueBase64: value.subarray(0, DEAD_LETTER_VALUE_LIMIT).toString('base64'),
      valueBytes: value.length,
      consumer: groupId,
    });
    await publisher.publish(deadLetterTopic, [{ key: `${topic}:${partition}:${message.offset}`, value: letter }]);
    metrics.deadLettered.inc({ topic, reason });
    options.onDeadLettered?.({ partition, offset: message.offset });
    logger.warn({ topic, partition, offset: message.offset, reason, detail: letter.detail }, 'message dead-lettered');
  };

  /** The next offset per partition handled since the last commit (`commitIntervalMs`). */
  const handled = createOffsetCommits(
    (offsets) => consumer.commitOffsets(offsets),
    (error) => logger.warn({ err: error, groupId }, 'committing handled offsets failed; trying again at the next commit'),
  );
  const processed = (topic: string, partition: number, message: KafkaMessage) => {
    metrics.consumed.inc({ topic });
    options.onProcessed?.({ topic, partition, offset: message.offset, timestampMs: Number(message.timestamp) });
  };
  const keysConcurrently = options.keysConcurrently;
  const runConfig: ConsumerRunConfig = {
    autoCommit: options.commitIntervalMs === undefined && (options.autoCommit ?? true),
    partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
    ...(keysConcurrently === undefined
      ? {
          eachMessage: async ({ topic, partition, message }) => {
            await consume(topic, partition, message);
            processed(topic, partition, message);
          },
        }
      : {
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
            const { topic, partition } = batch;
            for (let start = 0; start < batch.messages.length && isRunning() && !isStale(); start += keysConcurrently) {
              const chunk = batch.messages.slice(start, start + keysConcurrently);
              const failures = await settleByKey(chunk, (message) => consume(topic, partition, message));
              // Offsets move only up to the first message that must be retried: kafkajs fetches again from
              // there, and what follows it (already handled, for other keys) is handled again, harmlessly.
              for (const [index, message] of chunk.entries()) {
                if (failures.has(index)) throw failures.get(index);
                resolveOffset(message.offset);
                handled.note(topic, partition, String(BigInt(message.offset) + 1n));
                processed(topic, partition, message);
              }
              await heartbeat();
            }
          },
        }),
  };
  const metaOf = (partition: number, message: KafkaMessage): MessageMeta => ({
    partition,
    offset: message.offset,
    key: message.key?.toString('utf8') ?? null,
    raw: message.value,
    headers: headersOf(message),
    timestampMs: Number(message.timestamp),
  });
  /** Hands one message to its handler; parks what cannot be accepted; throws only for a retry. */
  const consume = async (topic: string, partition: number, message: KafkaMessage) => {
    const handler = byTopic.get(topic);
    if (!handler) return;
    if (message.value === null && message.key !== null && options.onTombstone) {
      try {
        await options.onTombstone(message.key.toString('utf8'), { ...metaOf(partition, message), raw: null });
      } catch (error) {
        if (!(error instanceof RejectMessage)) throw error;
        await park(topic, partition, message, error.reason, error.message);
      }
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(message.value?.toString('utf8') ?? '');
    } catch (error) {
      await park(topic, partition, message, 'not-json', errorMessage(error));
      return;
    }
    const parsed = handler.schema.safeParse(json);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
      try {
        await handler.unreadable?.(json, detail, metaOf(partition, message));
      } catch (error) {
        if (!(error instanceof RejectMessage)) throw error;
        await park(topic, partition, message, error.reason, `${error.message}; ${detail}`);
        return;
      }
      await park(topic, partition, message, 'schema', detail);
      return;
    }
    try {
      await handler.handle(parsed.data, metaOf(partition, message));
    } catch (error) {
      if (!(error instanceof RejectMessage)) throw error;
      await park(topic, partition, message, error.reason, error.message);
    }
  };
  await consumer.run(runConfig);
  // Followers never commit offsets, so only committing groups have a lag to report. Watched until the owner
  // closes the consumer, not until its first DISCONNECT event: kafkajs sends one on every crash too.
  const commits = options.commitIntervalMs === undefined ? undefined : setInterval(() => void handled.commit(), options.commitIntervalMs);
  commits?.unref();
  const unwatchLag = options.commitIntervalMs !== undefined || (options.autoCommit ?? true) ? metrics.consumerLag.watch({ kafka, groupId, topics: [...byTopic.keys()], logger }) : undefined;
  let healthy = true;
  // kafkajs stops a consumer for good after an error it counts as not retriable, and a broker restart
  // can cause some (no group coordinator found while the broker starts: kafkajs issues #1445, #1630).
  // So such a consumer is started again here, after a pause, as kafkajs does after the others: a crash
  // delays consumption, it never ends it. The owner's disconnect is wrapped so that closing the consumer
  // cancels a pending restart (kafkajs' own crash handling disconnects without going through it).
  let closed = false;
  let restartTimer: NodeJS.Timeout | undefined;
  const restart = async () => {
    try {
      await consumer.connect();
      if (closed) return await disconnect();
      await consumer.run(runConfig);
    } catch (error) {
      logger.error({ err: error, groupId }, 'consumer restart failed; trying again');
      if (!closed) restartTimer = setTimeout(() => void restart(), RESTART_AFTER_CRASH_MS);
    }
  };
  const disconnect = consumer.disconnect;
  consumer.disconnect = async () => {
    closed = true;
    clearInterval(commits);
    await handled.commit();
    clearTimeout(restartTimer);
    await unwatchLag?.();
    await disconnect();
  };
  consumer.on(consumer.events.CRASH, (event) => {
    healthy = event.payload.restart;
    logger.error({ err: event.payload.error, groupId, restart: event.payload.restart }, 'consumer crashed');
    if (!event.payload.restart && !closed) restartTimer = setTimeout(() => void restart(), RESTART_AFTER_CRASH_MS);
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    // Offsets of partitions this member no longer has are the new owner's to commit.
    handled.keepOnly((topic, partition) => payload.memberAssignment[topic]?.includes(partition) ?? false);
    healthy = true;
  });
  return { consumer, joined, isHealthy: () => healthy, assigned: (topic) => assignment[topic] ?? [] };
}

/**
 * A service's Kafka wiring: the client, its counters and a connected
 * producer whose disconnect is registered with the service's lifecycle, plus
 * what consumers need to dead-letter through it.
 */
export async function connectKafka(options: {
  connection: KafkaConnection;
  clientId: string;
  deadLetterTopic: string;
  logger: Logger;
  registry: Registry;
  lifecycle: { add: (name: string, dispose: () => Promise<void>) => void };
}) {
  const { logger } = options;
  const kafka = createKafka(options.connection, options.clientId, logger);
  const metrics = kafkaMetrics(options.registry);
  const publisher = await createPublisher(kafka, metrics);
  options.lifecycle.add('kafka producer', async () => {
    await publisher.flush();
    await publisher.producer.disconnect();
  });
  return { kafka, publisher, metrics, consumerDeps: { kafka, publisher, deadLetterTopic: options.deadLetterTopic, metrics, logger } };
}
