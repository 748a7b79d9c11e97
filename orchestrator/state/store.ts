import type { Redis } from 'ioredis';
import type { TopicMessage } from '../../runtime/kafka';
import type { AttemptRequested } from '../../topics/schemas';
import { isTerminal, openDeadlines, type Payment } from './payment';

/**
 * Redis layout (every key under the stack's prefix):
 * - `payment:{id}`   hash: `v` (revision, for compare-and-set) and `doc` (the payment as JSON)
 * - `idem:{caller}:{key}` string: "{paymentId}|{request hash}", expiring after the idempotency window; a key is
 *                    scoped to its caller (the token subject, base64url), so two clients never share one
 * - `deadlines:{p}`  sorted set per results partition p (where the payment's gateway answers land):
 *                    member "{paymentId}|{attemptId}", score = deadline in epoch ms
 * - `review`         set of payment ids flagged for review (a withdrawal whose cancel was never confirmed)
 * - `outbox:{id}`    hash: field "{revision}:{index}" → a Kafka message (topic, key, value) not yet confirmed sent
 * - `outbox-pending` sorted set: payment ids with an outbox, score = when it is due for the relay
 * - `account:{accountId}` and `account:{accountId}:{status}`: sorted sets (all scores 0) of
 *   "{13-digit inverted created-at ms}:{payment id}", so lexical order is newest first and a
 *   page after a cursor costs the same whichever page it is
 * - channel `{prefix}terminal:{id}`: a message with the payment id when the payment becomes terminal; only instances
 *   with a request waiting on it (`Prefer: wait`) subscribe
 *
 * A state change and the messages it must send are written in one script:
 * the transactional outbox. Messages are sent right after, and deleted once
 * Kafka acknowledged them; the relay sends whatever stays behind (a crash, a
 * broker outage), so no decided message is lost, at the cost of a possible
 * duplicate, which every consumer tolerates.
 */
const WRITE_OUTBOX = `
local function write_outbox(outbox_key, pending_key, id, due, first)
  if #ARGV < first then return end
  redis.call('HSET', outbox_key, unpack(ARGV, first, #ARGV))
  redis.call('ZADD', pending_key, 'NX', due, id)
end
`;

// KEYS: idem, payment, deadlines, outbox, outbox-pending, account index, account status index.
// ARGV: idem value, ttl, doc, JSON change, then the outbox's (field, message) pairs: messages as they are, not
// escaped again inside the change's JSON.
const CREATE = `${WRITE_OUTBOX}
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], 'v', 1, 'doc', ARGV[3])
local change = cjson.decode(ARGV[4])
redis.call('ZADD', KEYS[6], 0, change.indexMember)
redis.call('ZADD', KEYS[7], 0, change.indexMember)
for _, pair in ipairs(change.add) do redis.call('ZADD', KEYS[3], 'NX', pair[1], pair[2]) end
write_outbox(KEYS[4], KEYS[5], change.id, change.due, 5)
return false
`;

// KEYS: payment, deadlines, review, outbox, outbox-pending, account status index before, after.
// ARGV: expected revision, new doc, JSON change, the payment's terminal channel, then the outbox's (field, message) pairs.
const UPDATE = `${WRITE_OUTBOX}
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'doc', ARGV[2])
local change = cjson.decode(ARGV[3])
for _, member in ipairs(change.remove) do redis.call('ZREM', KEYS[2], member) end
for _, pair in ipairs(change.add) do redis.call('ZADD', KEYS[2], pair[1], pair[2]) end
if change.review == 'add' then redis.call('SADD', KEYS[3], change.id) end
if change.review == 'remove' then redis.call('SREM', KEYS[3], change.id) end
write_outbox(KEYS[4], KEYS[5], change.id, change.due, 5)
if KEYS[6] ~= KEYS[7] then
  redis.call('ZREM', KEYS[6], change.indexMember)
  redis.call('ZADD', KEYS[7], 0, change.indexMember)
end
if change.terminal then redis.call('PUBLISH', ARGV[4], change.id) end
return 1
`;

// KEYS: a sorted set. ARGV: member, now, lease end. Claims a due member by pushing its score to the lease end.
const CLAIM = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`;

// KEYS: the deadlines of the payment's results partition, the payment's outbox. ARGV: member, now, lease end.
// A deadline whose payment still has messages Kafka has not taken (the attempt's request among them, when a
// killed instance or a broker outage left them to the relay) is not the gateway's silence: the gateway cannot
// answer what it has not seen. It is held (2) until the send, which moves it later by the delay (CLEAR_OUTBOXES).
const CLAIM_DEADLINE = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
${CLAIM}`;

// KEYS: outbox-pending, then per payment its outbox and its deadlines. ARGV per payment, in that order: its id,
// the number n of fields sent, the n fields, the number m of deadlines to push later, then m (score, member)
// pairs: only still-open deadlines (XX), only ever later (GT). Many payments' outboxes in one call: the
// messages of one produce request are forgotten together.
const CLEAR_OUTBOXES = `
local a = 1
for k = 2, #KEYS, 2 do
  local id, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  if n > 0 then redis.call('HDEL', KEYS[k], unpack(ARGV, a, a + n - 1)) end
  a = a + n
  if redis.call('HLEN', KEYS[k]) == 0 then redis.call('ZREM', KEYS[1], id) end
  local m = tonumber(ARGV[a])
  a = a + 1
  for i = a, a + 2 * m - 1, 2 do redis.call('ZADD', KEYS[k + 1], 'XX', 'GT', ARGV[i], ARGV[i + 1]) end
  a = a + 2 * m
end
return 1
`;

interface Scripts {
  pgoCreate(...args: string[]): Promise<string | null>;
  pgoUpdate(...args: string[]): Promise<number>;
  pgoClaim(...args: string[]): Promise<number>;
  pgoClaimDeadline(...args: string[]): Promise<number>;
  pgoClearOutboxes(numberOfKeys: number, ...args: string[]): Promise<number>;
}

/** Registers the scripts once per connection, so each call sends a SHA, not the script (EVALSHA). */
function withScripts(redis: Redis): Redis & Scripts {
  const scripted = redis as Redis & Partial<Scripts>;
  if (!scripted.pgoCreate) {
    redis.defineCommand('pgoCreate', { numberOfKeys: 7, lua: CREATE });
    redis.defineCommand('pgoUpdate', { numberOfKeys: 7, lua: UPDATE });
    redis.defineCommand('pgoClaim', { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand('pgoClaimDeadline', { numberOfKeys: 2, lua: CLAIM_DEADLINE });
    // The number of keys varies with the batch, so it is the first argument of each call.
    redis.defineCommand('pgoClearOutboxes', { lua: CLEAR_OUTBOXES });
  }
  return redis as Redis & Scripts;
}

export interface StoredPayment {
  payment: Payment;
  revision: string;
  /** Set on this instance's last written copy (store.latest): another instance may have changed it since. */
  copy?: true;
}

/** Messages stored with a state change, under the fields that identify them in the outbox. */
export interface Outbox {
  paymentId: string;
  fields: string[];
  messages: TopicMessage[];
}

export type CreateResult = { created: true; outbox: Outbox } | { created: false; paymentId: string; requestHash: string };

/** Position of a payment in its account's indexes: newest first in lexical order, unique by id. */
const indexMember = (payment: Payment) => `${String(9_999_999_999_999 - Date.parse(payment.createdAt)).padStart(13, '0')}:${payment.id}`;
const accountIndex = (accountId: string, status?: string) => (status ? `account:${accountId}:${status}` : `account:${accountId}`);

export interface PageQuery {
  accountId: string;
  status?: Payment['status'];
  limit: number;
  /** The index member of the last payment of the previous page. */
  after?: string;
}

const deadlineMember = (paymentId: string, attemptId: string) => `${paymentId}|${attemptId}`;

/** A request acknowledged this long (ms) after it was decided counts as dispatched late; below it, the usual send time. */
const LATE_DISPATCH_MS = 250;
const deadlinePairs = (payment: Payment): Array<[number, string]> =>
  openDeadlines(payment).map(({ attemptId, deadline }) => [Date.parse(deadline), deadlineMember(payment.id, attemptId)]);

/**
 * Fields sort in the order the messages were decided: by revision, then by position. Each value is serialized
 * here once: the outbox stores that text and the publisher sends it (runtime/kafka.ts OutgoingMessage.json).
 */
function outboxOf(paymentId: string, revision: number, messages: TopicMessage[]): Outbox {
  const fields = messages.map((_, index) => `${String(revision).padStart(8, '0')}:${String(index).padStart(3, '0')}`);
  return { paymentId, fields, messages: messages.map((message) => Object.assign({}, message, { json: JSON.stringify(message.value) })) };
}

/**
 * A message as the outbox stores it: the text of JSON.stringify({ topic, key, value, headers }), built around the
 * value's JSON made once in outboxOf; the relay parses it back (claimOverdueOutboxes).
 */
function storedForm({ topic, key, value, json, headers }: TopicMessage): string {
  const valueJson = json ?? JSON.stringify(value);
  return `{"topic":${JSON.stringify(topic)},"key":${JSON.stringify(key)},"value":${valueJson}${headers ? `,"headers":${JSON.stringify(headers)}` : ''}}`;
}

/**
 * How many payments' last written copies an instance keeps (store.latest). At flat out a payment's copy lives
 * from its acceptance to its outcome (about 60 ms, a few hundred payments); the bound matters when gateways hang
 * and payments wait out their deadlines: 4,096 copies of about 3 KB.
 */
const LAST_WRITTEN_MAX = 4_096;

export interface StoreSettings {
  idempotencyTtlSeconds: number;
  /** The results partition of a payment's gateway answers (timeouts/results-partitions.ts). */
  resultsPartitionOf: (paymentId: string) => number;
  /** How long the sender has to confirm an outbox before the relay sends it instead. */
  outboxGraceMs: number;
  clock: () => Date;
}

/** The deadlines of payments whose answers land on results partition `partition`. */
export const deadlinesKey = (partition: number) => `deadlines:${partition}`;

/** An Idempotency-Key as its caller (the bearer token's subject) sent it: keys of different callers never meet. */
export interface ScopedIdempotencyKey {
  caller: string;
  key: string;
}
/** base64url has no ':', so a caller can never pose as another caller with a key that contains one. */
const idemKey = ({ caller, key }: ScopedIdempotencyKey) => `idem:${Buffer.from(caller, 'utf8').toString('base64url')}:${key}`;

export function createPaymentStore(connection: Redis, { idempotencyTtlSeconds, outboxGraceMs, clock, resultsPartitionOf }: StoreSettings) {
  const deadlinesOf = (paymentId: string) => deadlinesKey(resultsPartitionOf(paymentId));
  const redis = withScripts(connection);
  // The outbox hash's field-value pairs as script arguments; a loop, not flatMap, which is a runtime call per element
  // in Node 20's V8 (bench/array-flattening.ts).
  const entriesOf = (outbox: Outbox) => {
    const entries: string[] = [];
    outbox.fields.forEach((field, index) => entries.push(field, storedForm(outbox.messages[index]!)));
    return entries;
  };
  const due = () => clock().getTime() + outboxGraceMs;
  // Channels are not prefixed by ioredis, so the prefix is added here to keep stacks apart.
  const channelPrefix = `${connection.options.keyPrefix ?? ''}terminal:`;
  const terminalChannelOf = (paymentId: string) => `${channelPrefix}${paymentId}`;

  const get = async (paymentId: string): Promise<StoredPayment | undefined> => {
    const [revision, doc] = await redis.hmget(`payment:${paymentId}`, 'v', 'doc');
    if (!revision || !doc) return undefined;
    return { payment: JSON.parse(doc) as Payment, revision };
  };

  // The payments this instance wrote last, oldest first (a Map keeps insertion order), as they were written.
  const lastWritten = new Map<string, StoredPayment>();
  const remember = (stored: StoredPayment) => {
    lastWritten.delete(stored.payment.id);
    if (lastWritten.size >= LAST_WRITTEN_MAX) lastWritten.delete(lastWritten.keys().next().value as string);
    lastWritten.set(stored.payment.id, stored);
  };

  return {
    get,

    /**
     * The payment as this instance last wrote it, else as stored (`get`): for deciding on an outcome. The
     * owner of a payment's results partition is the instance that accepted it always with one instance, about
     * one time in k with k; each hit saves a round trip and a JSON parse. A copy (`copy: true`) may be stale:
     * a change decided on it is safe, because `update` is a compare-and-set on the revision that refuses a copy
     * another instance changed since (and drops it); a decision to change nothing must be checked against `get`.
     */
    async latest(paymentId: string): Promise<StoredPayment | undefined> {
      return lastWritten.get(paymentId) ?? get(paymentId);
    },

    /**
     * Records a new payment with its idempotency key, attempt deadline and
     * outgoing messages in one atomic step, unless the key is taken: then it
     * reports the payment that holds it. One Redis round trip.
     */
    async create(payment: Payment, idempotencyKey: ScopedIdempotencyKey, requestHash: string, messages: TopicMessage[]): Promise<CreateResult> {
      const outbox = outboxOf(payment.id, 1, messages);
      const change = { id: payment.id, add: deadlinePairs(payment), due: due(), indexMember: indexMember(payment) };
      const existing = await redis.pgoCreate(
        idemKey(idempotencyKey),
        `payment:${payment.id}`,
        deadlinesOf(payment.id),
        `outbox:${payment.id}`,
        'outbox-pending',
        accountIndex(payment.accountId),
        accountIndex(payment.accountId, payment.status),
        `${payment.id}|${requestHash}`,
        String(idempotencyTtlSeconds),
        JSON.stringify(payment),
        JSON.stringify(change),
        ...entriesOf(outbox),
      );
      if (existing === null) {
        remember({ payment, revision: '1', copy: true });
        return { created: true, outbox };
      }
      const [paymentId = '', hash = ''] = existing.split('|');
      return { created: false, paymentId, requestHash: hash };
    },

    /**
     * Replaces the payment if nobody changed it since `previous` was read,
     * moving its deadlines and review flag along and storing the messages
     * the change must send. Undefined means a concurrent change won: read
     * again and decide again.
     */
    async update(previous: StoredPayment, next: Payment, messages: TopicMessage[]): Promise<Outbox | undefined> {
      const open = deadlinePairs(next);
      const stillOpen = new Set(open.map(([, member]) => member));
      const before = deadlinePairs(previous.payment);
      const beforeKeys = new Set(before.map(([score, member]) => `${score}|${member}`));
      const wasFlagged = previous.payment.review !== undefined;
      const isFlagged = next.review !== undefined;
      const outbox = outboxOf(next.id, Number(previous.revision) + 1, messages);
      const change = {
        id: next.id,
        remove: before.filter(([, member]) => !stillOpen.has(member)).map(([, member]) => member),
        // Only new or moved deadlines: re-adding an unchanged one would reset a claim lease on it.
        add: open.filter(([score, member]) => !beforeKeys.has(`${score}|${member}`)),
        review: isFlagged === wasFlagged ? null : isFlagged ? 'add' : 'remove',
        due: due(),
        indexMember: indexMember(next),
        terminal: next.status !== 'PENDING' && previous.payment.status === 'PENDING',
      };
      // Dropped before the write: whether it fails, loses the race or is not confirmed, the copy may be stale.
      lastWritten.delete(next.id);
      const applied = await redis.pgoUpdate(
        `payment:${next.id}`,
        deadlinesOf(next.id),
        'review',
        `outbox:${next.id}`,
        'outbox-pending',
        accountIndex(next.accountId, previous.payment.status),
        accountIndex(next.accountId, next.status),
        previous.revision,
        JSON.stringify(next),
        JSON.stringify(change),
        terminalChannelOf(next.id),
        ...entriesOf(outbox),
      );
      if (applied !== 1) return undefined;
      // A payment nothing waits on any more is not kept: a duplicate or late answer for it reads it afresh.
      if (!isTerminal(next.status) || stillOpen.size > 0) remember({ payment: next, revision: String(Number(previous.revision) + 1), copy: true });
      return outbox;
    },

    /** The payment an Idempotency-Key was first used for, if it has not expired. */
    async findIdempotent(idempotencyKey: ScopedIdempotencyKey): Promise<{ paymentId: string; requestHash: string } | undefined> {
      const value = await redis.get(idemKey(idempotencyKey));
      if (!value) return undefined;
      const [paymentId = '', requestHash = ''] = value.split('|');
      return { paymentId, requestHash };
    },

    /**
     * Forgets outbox messages Kafka has acknowledged, of any number of
     * payments in one round trip, moving the deadline of each attempt whose
     * request reached Kafka late (a broker outage, a crash before the send,
     * our own publish queue) later by that delay: the gateway's time starts
     * when it can see the request. Returns, per outbox in the given order,
     * the attempts so extended with the delay in ms.
     */
    async clearOutboxes(outboxes: readonly Outbox[]): Promise<Array<Array<{ attemptId: string; delayMs: number }>>> {
      const sentAtMs = clock().getTime();
      const keys: string[] = ['outbox-pending'];
      const args: string[] = [];
      const extendedPerOutbox = outboxes.map((outbox) => {
        const extended: Array<{ attemptId: string; delayMs: number; score: number }> = [];
        for (const { value } of outbox.messages) {
          const request = value as Partial<AttemptRequested>;
          if (request.type !== 'attempt.requested' || !request.attemptId || !request.deadline || !request.occurredAt) continue;
          const delayMs = sentAtMs - Date.parse(request.occurredAt);
          if (delayMs > LATE_DISPATCH_MS) extended.push({ attemptId: request.attemptId, delayMs, score: Date.parse(request.deadline) + delayMs });
        }
        keys.push(`outbox:${outbox.paymentId}`, deadlinesOf(outbox.paymentId));
        args.push(outbox.paymentId, String(outbox.fields.length), ...outbox.fields, String(extended.length));
        for (const { attemptId, score } of extended) args.push(String(score), deadlineMember(outbox.paymentId, attemptId));
        return extended.map(({ attemptId, delayMs }) => ({ attemptId, delayMs }));
      });
      if (outboxes.length > 0) await redis.pgoClearOutboxes(keys.length, ...keys, ...args);
      return extendedPerOutbox;
    },

    /** Payments whose outbox is overdue, claimed for `leaseMs` so one relay at a time sends each. */
    async claimOverdueOutboxes(nowMs: number, leaseMs: number, limit: number): Promise<Outbox[]> {
      const ids = await redis.zrangebyscore('outbox-pending', '-inf', String(nowMs), 'LIMIT', 0, limit);
      const claimed: Outbox[] = [];
      for (const paymentId of ids) {
        if ((await redis.pgoClaim('outbox-pending', paymentId, String(nowMs), String(nowMs + leaseMs))) !== 1) continue;
        const entries = Object.entries(await redis.hgetall(`outbox:${paymentId}`)).sort(([a], [b]) => a.localeCompare(b));
        claimed.push({ paymentId, fields: entries.map(([field]) => field), messages: entries.map(([, json]) => JSON.parse(json) as TopicMessage) });
      }
      return claimed;
    },

    /** The Redis channel the update publishes on when this payment becomes terminal (api/terminal-waits.ts). */
    terminalChannelOf,

    /** One page of an account's payments, newest first, after the cursor; `hasMore` says whether another page exists. */
    async page(query: PageQuery): Promise<{ payments: Payment[]; last?: string; hasMore: boolean }> {
      const members = await redis.zrangebylex(accountIndex(query.accountId, query.status), query.after ? `(${query.after}` : '-', '+', 'LIMIT', 0, query.limit + 1);
      const shown = members.slice(0, query.limit);
      const docs = shown.length === 0 ? [] : await redis.pipeline(shown.map((member) => ['hget', `payment:${member.slice(member.indexOf(':') + 1)}`, 'doc'])).exec();
      const payments = (docs ?? []).flatMap(([, doc]) => (typeof doc === 'string' ? [JSON.parse(doc) as Payment] : []));
      return { payments, hasMore: members.length > query.limit, ...(shown.length > 0 ? { last: shown.at(-1) } : {}) };
    },

    /** Payments flagged for review, with their current state. */
    async flaggedForReview(): Promise<Payment[]> {
      const ids = await redis.smembers('review');
      const stored = await Promise.all(ids.map(get));
      return stored.flatMap((entry) => (entry ? [entry.payment] : []));
    },

    /** Attempts of one results partition whose deadline is at or before `upToMs`, oldest first. */
    async expired(partition: number, upToMs: number, limit: number): Promise<Array<{ paymentId: string; attemptId: string; deadlineMs: number }>> {
      const flat = await redis.zrangebyscore(deadlinesKey(partition), '-inf', String(upToMs), 'WITHSCORES', 'LIMIT', 0, limit);
      const expired: Array<{ paymentId: string; attemptId: string; deadlineMs: number }> = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        const [paymentId = '', attemptId = ''] = (flat[index] ?? '').split('|');
        expired.push({ paymentId, attemptId, deadlineMs: Number(flat[index + 1]) });
      }
      return expired;
    },

    /**
     * Claims a deadline at or before `upToMs` until `leaseEndMs` (epoch ms):
     * exactly one caller across all instances gets `claimed`. The deadline is
     * pushed back rather than removed, so if the claimant dies before storing the timeout, another instance takes
     * it over when the lease runs out; storing the timed-out attempt removes it. `unsent` while the payment has
     * messages Kafka has not taken yet (its attempt request may be among them): the deadline waits for the send.
     */
    async claimDeadline(paymentId: string, attemptId: string, upToMs: number, leaseEndMs: number): Promise<'claimed' | 'taken' | 'unsent'> {
      const claimed = await redis.pgoClaimDeadline(deadlinesOf(paymentId), `outbox:${paymentId}`, deadlineMember(paymentId, attemptId), String(upToMs), String(leaseEndMs));
      return claimed === 1 ? 'claimed' : claimed === 2 ? 'unsent' : 'taken';
    },
  };
}
export type PaymentStore = ReturnType<typeof createPaymentStore>;
