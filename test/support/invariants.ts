import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import type { Kafka } from 'kafkajs';
import type { TopicNames } from '../../topics/names';
import { paymentStatusChanged, type PaymentStatusChanged } from '../../topics/schemas';
import type { Payment } from '../../orchestrator/state/payment';

/** Every message on a topic up to its end when called, parsed as JSON. */
export async function readTopicToEnd(kafka: Kafka, topic: string): Promise<unknown[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const remaining = new Map(ends.filter((end) => Number(end.high) > Number(end.low)).map((end) => [end.partition, BigInt(end.high) - 1n]));
  const values: unknown[] = [];
  if (remaining.size === 0) return values;
  const consumer = kafka.consumer({ groupId: `read-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            values.push(JSON.parse(message.value?.toString() ?? 'null'));
            const last = remaining.get(partition);
            if (last !== undefined && BigInt(message.offset) >= last) remaining.delete(partition);
            if (remaining.size === 0) resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return values;
}

export interface InvariantInput {
  kafka: Kafka;
  topics: TopicNames;
  redisUrl: string;
  redisKeyPrefix: string;
  /** Ids of every payment the API accepted (202). */
  acceptedIds: readonly string[];
}

export interface InvariantReport {
  violations: string[];
  terminal: number;
  flaggedForReview: number;
}

/**
 * The product's invariants, checked over the status topic and Redis:
 * - nothing lost: every accepted payment is stored and ends in exactly one
 *   terminal state, or stays PENDING flagged for review;
 * - a terminal state never changes: all terminal events of a payment agree
 *   (a repeated event is allowed: the outbox delivers at least once), and no
 *   event follows it with a different status;
 * - the stored status is the published one;
 * - at most one attempt is settled; any other attempt that succeeded is
 *   being (or has been) compensated.
 */
export async function checkPaymentInvariants(input: InvariantInput): Promise<InvariantReport> {
  const violations: string[] = [];
  const events = (await readTopicToEnd(input.kafka, input.topics.paymentStatus)).map((value) => paymentStatusChanged.parse(value));
  const byPayment = new Map<string, PaymentStatusChanged[]>();
  for (const event of events) byPayment.set(event.paymentId, [...(byPayment.get(event.paymentId) ?? []), event]);

  const redis = new Redis(input.redisUrl, { keyPrefix: input.redisKeyPrefix });
  let terminal = 0;
  let flaggedForReview = 0;
  try {
    for (const id of input.acceptedIds) {
      const doc = await redis.hget(`payment:${id}`, 'doc');
      if (!doc) {
        violations.push(`${id}: accepted but not stored`);
        continue;
      }
      const payment = JSON.parse(doc) as Payment;
      const mine = (byPayment.get(id) ?? []).sort((a, b) => a.sequence - b.sequence);
      const terminals = mine.filter((event) => event.status !== 'PENDING');
      const settled = payment.attempts.filter((attempt) => attempt.status === 'succeeded');

      if (settled.length > 1) violations.push(`${id}: ${settled.length} settled attempts`);
      if (payment.status === 'SUCCESS' && settled.length !== 1) violations.push(`${id}: SUCCESS without exactly one settled attempt`);
      if (payment.status === 'FAILURE' && settled.length !== 0) violations.push(`${id}: FAILURE with a settled attempt`);

      if (payment.status === 'PENDING') {
        if (payment.review) flaggedForReview++;
        else violations.push(`${id}: still PENDING and not flagged for review`);
        if (terminals.length > 0) violations.push(`${id}: published terminal ${terminals[0]?.status} but stored PENDING`);
        continue;
      }
      terminal++;
      const distinct = new Set(terminals.map((event) => `${event.sequence}|${event.status}|${event.reason ?? ''}|${event.attemptId ?? ''}`));
      if (terminals.length === 0) violations.push(`${id}: stored ${payment.status} but no terminal event published`);
      if (distinct.size > 1) violations.push(`${id}: terminal events disagree: ${[...distinct].join(' / ')}`);
      if (terminals[0] && terminals[0].status !== payment.status) violations.push(`${id}: published ${terminals[0].status}, stored ${payment.status}`);
      const firstTerminal = terminals[0]?.sequence ?? Infinity;
      if (mine.some((event) => event.sequence > firstTerminal)) violations.push(`${id}: status events after the terminal one`);
      if (!mine.some((event) => event.status === 'PENDING' && event.sequence === 1)) violations.push(`${id}: no PENDING event`);
    }
  } finally {
    redis.disconnect();
  }
  return { violations, terminal, flaggedForReview };
}
