import type { Redis } from 'ioredis';
import { openDeadlines, type Payment } from './payment';

/**
 * Redis layout (every key under the stack's prefix):
 * - `payment:{id}`  hash: `v` (revision, for compare-and-set) and `doc` (the payment as JSON)
 * - `idem:{key}`    string: "{paymentId}|{request hash}", expiring after the idempotency window
 * - `deadlines`     sorted set: member "{paymentId}|{attemptId}", score = deadline in epoch ms
 * - `review`        set of payment ids flagged for review (a withdrawal whose cancel was never confirmed)
 */
const CREATE = `
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], 'v', 1, 'doc', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('ZADD', KEYS[3], 'NX', ARGV[i], ARGV[i + 1]) end
return false
`;

// ARGV: expected revision, new doc, then JSON {remove: [member], add: [[score, member]], review: "add" | "remove" | null, id}.
const UPDATE = `
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'doc', ARGV[2])
local change = cjson.decode(ARGV[3])
for _, member in ipairs(change.remove) do redis.call('ZREM', KEYS[2], member) end
for _, pair in ipairs(change.add) do redis.call('ZADD', KEYS[2], 'NX', pair[1], pair[2]) end
if change.review == 'add' then redis.call('SADD', KEYS[3], change.id) end
if change.review == 'remove' then redis.call('SREM', KEYS[3], change.id) end
return 1
`;

const CLAIM = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`;

export interface StoredPayment {
  payment: Payment;
  revision: string;
}

export type CreateResult = { created: true } | { created: false; paymentId: string; requestHash: string };

const deadlineMember = (paymentId: string, attemptId: string) => `${paymentId}|${attemptId}`;
const deadlinePairs = (payment: Payment): Array<[string, string]> =>
  openDeadlines(payment).map(({ attemptId, deadline }) => [String(Date.parse(deadline)), deadlineMember(payment.id, attemptId)]);

export function createPaymentStore(redis: Redis, idempotencyTtlSeconds: number) {
  return {
    /**
     * Records a new payment, its idempotency key and its attempt deadline in
     * one atomic step, unless the key is taken: then it reports the payment
     * that holds it. One Redis round trip.
     */
    async create(payment: Payment, idempotencyKey: string, requestHash: string): Promise<CreateResult> {
      const existing = (await redis.eval(
        CREATE,
        3,
        `idem:${idempotencyKey}`,
        `payment:${payment.id}`,
        'deadlines',
        `${payment.id}|${requestHash}`,
        String(idempotencyTtlSeconds),
        JSON.stringify(payment),
        ...deadlinePairs(payment).flat(),
      )) as string | null;
      if (existing === null) return { created: true };
      const [paymentId = '', hash = ''] = existing.split('|');
      return { created: false, paymentId, requestHash: hash };
    },

    async get(paymentId: string): Promise<StoredPayment | undefined> {
      const [revision, doc] = await redis.hmget(`payment:${paymentId}`, 'v', 'doc');
      if (!revision || !doc) return undefined;
      return { payment: JSON.parse(doc) as Payment, revision };
    },

    /**
     * Replaces the payment if nobody changed it since `previous` was read, and
     * moves its attempt deadlines along with it. False means a concurrent
     * change won: read again and decide again.
     */
    async update(previous: StoredPayment, next: Payment): Promise<boolean> {
      const stillOpen = new Set(openDeadlines(next).map(({ attemptId }) => attemptId));
      const removals = openDeadlines(previous.payment)
        .filter(({ attemptId }) => !stillOpen.has(attemptId))
        .map(({ attemptId }) => deadlineMember(next.id, attemptId));
      const wasFlagged = previous.payment.review !== undefined;
      const isFlagged = next.review !== undefined;
      const change = {
        remove: removals,
        // Added with NX: an attempt already scheduled keeps its score, so a claim lease is not reset.
        add: deadlinePairs(next),
        review: isFlagged === wasFlagged ? null : isFlagged ? 'add' : 'remove',
        id: next.id,
      };
      const applied = await redis.eval(UPDATE, 3, `payment:${next.id}`, 'deadlines', 'review', previous.revision, JSON.stringify(next), JSON.stringify(change));
      return applied === 1;
    },

    /** Payments flagged for review, with their current state. */
    async flaggedForReview(): Promise<Payment[]> {
      const ids = await redis.smembers('review');
      const stored = await Promise.all(ids.map((id) => this.get(id)));
      return stored.flatMap((entry) => (entry ? [entry.payment] : []));
    },

    /** Attempts whose deadline has passed, oldest first: "{paymentId}|{attemptId}" pairs. */
    async expired(nowMs: number, limit: number): Promise<Array<{ paymentId: string; attemptId: string }>> {
      const members = await redis.zrangebyscore('deadlines', '-inf', String(nowMs), 'LIMIT', 0, limit);
      return members.map((member) => {
        const [paymentId = '', attemptId = ''] = member.split('|');
        return { paymentId, attemptId };
      });
    },

    /**
     * Claims an expired deadline for `leaseMs`: exactly one caller across all
     * instances gets true. The deadline is pushed back rather than removed, so
     * if the claimant dies before storing the timeout, another instance takes
     * it over when the lease runs out; storing the timed-out attempt removes it.
     */
    async claimDeadline(paymentId: string, attemptId: string, nowMs: number, leaseMs: number): Promise<boolean> {
      const claimed = await redis.eval(CLAIM, 1, 'deadlines', deadlineMember(paymentId, attemptId), String(nowMs), String(nowMs + leaseMs));
      return claimed === 1;
    },
  };
}
export type PaymentStore = ReturnType<typeof createPaymentStore>;
