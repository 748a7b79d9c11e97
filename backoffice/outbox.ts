import type { Producer } from 'kafkajs';
import type { KafkaMetrics } from '../runtime/kafka';
import type { Logger } from '../runtime/logger';
import { startPoller } from '../runtime/poller';
import type { Redis } from '../runtime/redis';

/** One message as it will be produced: the value is kept as the exact bytes that were signed. */
export interface OutboxEntry {
  topic: string;
  key: string;
  value: string;
  headers?: Record<string, string>;
}

/** What one send got through, in order, before it stopped at the first failure (if any). */
export interface OutboxSendResult {
  sent: Array<{ topic: string; offset: string }>;
  failed?: { topic: string; error: unknown };
}

/**
 * Redis layout (under the stack's key prefix, beside the orchestrator's keys, which it never touches):
 * - `backoffice:outbox:{writeId}`  hash: field "{index}" (3 digits) → an entry not yet acknowledged by Kafka
 * - `backoffice:outbox-pending`    sorted set: write ids with an outbox, score = when the relay may send it
 * - `backoffice:claim:{name}`      string: a claim taken in the same step as the entries (a review resolution id)
 */
const PENDING = 'backoffice:outbox-pending';
const outboxKey = (writeId: string) => `backoffice:outbox:${writeId}`;
export const claimKey = (name: string) => `backoffice:claim:${name}`;
const CLAIM_TTL_SECONDS = 30 * 24 * 60 * 60;

// KEYS: outbox, pending, claim. ARGV: write id, due, claim value ('' for none), then the entries as JSON.
// With a claim value, a claim already held means this write was recorded before: nothing is written, and the
// claim's value is returned so the caller can tell a repeat from a conflicting reuse of the same name.
const RECORD = `
if ARGV[3] ~= '' then
  local held = redis.call('GET', KEYS[3])
  if held then return held end
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ${CLAIM_TTL_SECONDS})
end
for i = 4, #ARGV do redis.call('HSET', KEYS[1], string.format('%03d', i - 4), ARGV[i]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return false
`;

// KEYS: outbox, pending. ARGV: write id, the field Kafka acknowledged. The write leaves the pending set with its last entry.
const ACKNOWLEDGED = `
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
`;

// KEYS: pending. ARGV: write id, now, lease end. The one relay that moves a due write's score past now sends it.
const LEASE = `
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then return redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[3], ARGV[1]) end
return 0
`;

interface Scripts {
  boRecord(...args: string[]): Promise<string | null>;
  boAcknowledged(...args: string[]): Promise<number>;
  boLease(...args: string[]): Promise<number>;
}

export interface BackofficeOutboxDeps {
  redis: Redis;
  producer: Pick<Producer, 'send'>;
  kafkaMetrics: Pick<KafkaMetrics, 'produced' | 'produceRequests'>;
  logger: Logger;
  clock: () => Date;
  /** How long the writer has to get its entries acknowledged before the relay sends them instead. */
  graceMs: number;
  /** Tests only: runs before each produce and may throw, standing in for a crash or a broker that refuses. */
  beforeSend?: (topic: string) => void;
}

/**
 * The back office's transactional outbox, as the orchestrator's (ADR 0005):
 * every message of one write (a rule event and its audit entry; a review
 * resolution and its audit entry) is stored in Redis in one script before
 * anything is sent, then sent in order and forgotten entry by entry as Kafka
 * acknowledges it. Whatever a failure or a crash leaves behind, the relay
 * sends later, on this instance or the next one to start: the entries of one
 * write leave together or not at all, at the cost of a possible duplicate.
 */
export function createBackofficeOutbox(deps: BackofficeOutboxDeps) {
  const { producer, logger, clock } = deps;
  const redis = deps.redis as Redis & Partial<Scripts>;
  if (!redis.boRecord) {
    redis.defineCommand('boRecord', { numberOfKeys: 3, lua: RECORD });
    redis.defineCommand('boAcknowledged', { numberOfKeys: 2, lua: ACKNOWLEDGED });
    redis.defineCommand('boLease', { numberOfKeys: 1, lua: LEASE });
  }
  const scripts = redis as Redis & Scripts;

  /** Sends the stored entries of one write in field order; stops at the first failure, leaving the rest stored. */
  const sendStored = async (writeId: string, fields: Array<[string, OutboxEntry]>): Promise<OutboxSendResult> => {
    const sent: OutboxSendResult['sent'] = [];
    for (const [field, entry] of fields) {
      try {
        deps.beforeSend?.(entry.topic);
        const [metadata] = await producer.send({
          topic: entry.topic,
          acks: -1,
          messages: [{ key: entry.key, value: entry.value, ...(entry.headers ? { headers: entry.headers } : {}) }],
        });
        deps.kafkaMetrics.produced.inc({ topic: entry.topic });
        deps.kafkaMetrics.produceRequests.inc({ kind: 'single-topic' });
        await scripts.boAcknowledged(outboxKey(writeId), PENDING, writeId, field);
        sent.push({ topic: entry.topic, offset: metadata?.baseOffset ?? '' });
      } catch (error) {
        return { sent, failed: { topic: entry.topic, error } };
      }
    }
    return { sent };
  };

  return {
    /**
     * Stores the entries of one write atomically. With `claim`, the write is recorded only if that name was never
     * claimed: otherwise nothing is stored and the value it was claimed with is returned.
     */
    async record(writeId: string, entries: OutboxEntry[], claim?: { name: string; value: string }): Promise<{ recorded: true } | { recorded: false; held: string }> {
      const held = await scripts.boRecord(
        outboxKey(writeId),
        PENDING,
        claimKey(claim?.name ?? writeId),
        writeId,
        String(clock().getTime() + deps.graceMs),
        claim?.value ?? '',
        ...entries.map((entry) => JSON.stringify(entry)),
      );
      return held === null ? { recorded: true } : { recorded: false, held };
    },

    /** The first send of a write just recorded, by its writer. */
    send(writeId: string, entries: OutboxEntry[]): Promise<OutboxSendResult> {
      return sendStored(
        writeId,
        entries.map((entry, index): [string, OutboxEntry] => [String(index).padStart(3, '0'), entry]),
      );
    },

    /** Sends, every `pollMs`, the writes whose writer did not get them acknowledged in time (a failure, a crash). */
    startRelay({ pollMs, leaseMs }: { pollMs: number; leaseMs: number }): () => Promise<void> {
      return startPoller(
        'back-office outbox relay',
        pollMs,
        async () => {
          const now = clock().getTime();
          const due = await scripts.zrangebyscore(PENDING, '-inf', String(now), 'LIMIT', 0, 100);
          for (const writeId of due) {
            if ((await scripts.boLease(PENDING, writeId, String(now), String(now + leaseMs))) !== 1) continue;
            const stored = Object.entries(await scripts.hgetall(outboxKey(writeId))).sort(([a], [b]) => a.localeCompare(b));
            const fields = stored.map(([field, json]): [string, OutboxEntry] => [field, JSON.parse(json) as OutboxEntry]);
            const result = await sendStored(writeId, fields);
            const topics = result.sent.map((sent) => sent.topic);
            if (result.failed) logger.error({ err: result.failed.error, writeId, sent: topics, topic: result.failed.topic }, 'back-office outbox relay failed; retrying');
            else logger.warn({ writeId, topics }, 'back-office outbox relayed: messages of an earlier write went out late');
          }
        },
        logger,
      );
    },
  };
}
export type BackofficeOutbox = ReturnType<typeof createBackofficeOutbox>;
