import type { Admin } from 'kafkajs';
import type { Redis } from '../../runtime/redis';
import type { Logger } from '../../runtime/logger';

/**
 * Redis key of the shared read-through times: a sorted set, member = results
 * partition, score = epoch ms T such that every result the broker appended
 * to that partition before T has been applied to its payment. Only ever
 * raised (ZADD GT), since each writer states a fact that stays true.
 */
export const READ_THROUGH_KEY = 'results-read';

export interface ReadProgressDeps {
  /** A connected admin client; the caller owns it. */
  admin: Pick<Admin, 'fetchTopicOffsets' | 'fetchOffsets' | 'fetchTopicMetadata'>;
  /** The results consumer group, whose committed offsets prove what was applied. */
  groupId: string;
  topic: string;
  partitionCount: number;
  redis: Redis;
  clock: () => Date;
  /**
   * Subtracted from "caught up at time t" (ms): the broker's clock may run
   * ahead of ours, and a result appended just before t may not be readable
   * yet (replication to the in-sync replicas). docs/decisions/0015.
   */
  allowanceMs: number;
  /**
   * After the results partitions' leaders or in-sync replicas change, or the
   * brokers stop answering, deadlines after the last healthy moment wait this
   * long (ms) past the last sign of trouble: producers (the gateways') retry a
   * send for up to their longest backoff before their answer can be appended.
   */
  settleMs: number;
  /**
   * The longest time (ms) between two looks at the log ends (three admin requests) while no deadline is due: a
   * sweep with a deadline due always looks. The admission backlog and a disruption noticed without a deadline
   * waiting are this old at most. At one look per sweep, the looks were most of an idle instance's CPU.
   */
  lookEveryMs: number;
  logger: Logger;
}

export interface ResultsReadProgress {
  /** The results consumer reports each message it is done with (see `ConsumerOptions.onProcessed`). */
  observe(progress: { partition: number; offset: string; timestampMs: number }): void;
  /**
   * Publishes this instance's evidence (timestamps of results it applied;
   * partitions read to their end) to Redis and returns every partition's
   * read-through time in epoch ms (0 where nothing is known yet), as all
   * instances together established it. One Redis round trip and, when it
   * looks at the log ends (always with `deadlinesDue`, else once every
   * `lookEveryMs`), three admin requests.
   */
  refresh(deadlinesDue?: boolean): Promise<number[]>;
  /**
   * How long, in ms, results on a partition may have waited unread as of the
   * last refresh: now minus its read-through time, or minus the first look
   * that found it behind if later, while the log end shows results not
   * applied yet; 0 when it was read to its end, Kafka did not say, or a
   * Kafka disruption's hold lasts. For admission control.
   */
  backlogMs(partition: number): number;
}

/**
 * Tracks how far the orchestrators have read the results topic, in broker
 * time, so that a deadline is acted on only once the partition where the
 * gateway's answer would be has been read past it: a timeout then means the
 * gateway was silent, never that we were slow (docs/decisions/0015).
 *
 * Two kinds of evidence, both facts whoever states them:
 * - applied a result with broker timestamp ts (offsets are applied in order,
 *   and the results topic stamps LogAppendTime, so every earlier result was
 *   appended no later than ts): read through ts;
 * - the group's committed offset (or this instance's own position) reached
 *   the log end offset that the broker reported to a request sent at t:
 *   read through t − allowance.
 * A partition nobody reads gains no evidence, so its deadlines wait. And
 * while Kafka itself is disrupted (a broker lost, leaders moving, brokers not
 * answering) and for `settleMs` after, answers may be stuck in the gateways'
 * producers: deadlines after the last healthy moment wait too.
 */
export function createResultsReadProgress(deps: ReadProgressDeps): ResultsReadProgress {
  const { admin, groupId, topic, partitionCount, redis, clock, allowanceMs, settleMs, lookEveryMs, logger } = deps;
  /** Highest broker timestamp applied here, per partition, not yet published. */
  const appliedThrough = new Map<number, number>();
  /** The offset after the last one this instance applied, per partition. */
  const position = new Map<number, bigint>();
  let readThrough: number[] = Array.from({ length: partitionCount }, () => 0);
  /**
   * Per partition, since when (epoch ms) every look at the log end has found results not yet applied; undefined
   * when the last look found it read to the end, or Kafka did not answer.
   */
  let behindSince: Array<number | undefined> = Array.from({ length: partitionCount }, () => undefined);
  let refreshedAt = 0;
  /** When the log ends were last asked for (epoch ms), answered or not. */
  let lookedAt = Number.NEGATIVE_INFINITY;

  /** Leaders and in-sync replicas of the results partitions at the last look, to notice a broker lost or moved. */
  let layout: string | undefined;
  /** When the cluster was last seen healthy and unchanged (epoch ms). */
  let healthyAt = 0;
  /** While set: deadlines after `from` wait until `until` (a disruption first seen at `since`, docs/decisions/0015). */
  let hold: { from: number; since: number; until: number } | undefined;
  const disrupted = (asOf: number, why: string) => {
    if (!hold) logger.warn({ topic, why, holdingDeadlinesAfter: new Date(healthyAt).toISOString() }, 'Kafka disrupted: deadlines after the last healthy moment wait until it settles');
    hold = { from: hold?.from ?? healthyAt, since: hold?.since ?? asOf, until: asOf + settleMs };
  };
  /** Partitions read to their log end, and the time before the end was asked for; undefined when Kafka did not answer. */
  const readToEnd = async (): Promise<{ asOf: number; partitions: boolean[] } | undefined> => {
    const asOf = clock().getTime();
    lookedAt = asOf;
    try {
      const [ends, [committed], metadata] = await Promise.all([
        admin.fetchTopicOffsets(topic),
        admin.fetchOffsets({ groupId, topics: [topic] }),
        admin.fetchTopicMetadata({ topics: [topic] }),
      ]);
      const now = JSON.stringify(
        (metadata.topics[0]?.partitions ?? []).map(({ partitionId, leader, isr }) => [partitionId, leader, [...isr].sort()]).sort(([a], [b]) => Number(a) - Number(b)),
      );
      if (layout !== undefined && now !== layout) disrupted(asOf, 'results partitions changed leader or in-sync replicas');
      layout = now;
      if (!hold || asOf > hold.until) {
        if (hold) logger.info({ topic, heldMs: asOf - hold.since }, 'Kafka settled: deadlines are acted on again');
        hold = undefined;
        healthyAt = asOf;
      }
      const committedOf = new Map((committed?.partitions ?? []).map(({ partition, offset }) => [partition, BigInt(offset)]));
      const partitions = Array.from({ length: partitionCount }, () => false);
      for (const { partition, high, low } of ends) {
        // A group that never committed on a partition reads it from the beginning (fromBeginning), so nothing is read yet.
        const fromGroup = committedOf.get(partition) ?? -1n;
        const done = [fromGroup < 0n ? BigInt(low) : fromGroup, position.get(partition) ?? -1n].reduce((a, b) => (a > b ? a : b));
        if (partition < partitionCount) partitions[partition] = done >= BigInt(high);
      }
      return { asOf, partitions };
    } catch (error) {
      disrupted(asOf, 'brokers did not answer');
      logger.warn({ err: error, topic }, 'results log ends not known: deadlines wait for results read instead');
      return undefined;
    }
  };

  return {
    observe({ partition, offset, timestampMs }) {
      if (timestampMs > (appliedThrough.get(partition) ?? 0)) appliedThrough.set(partition, timestampMs);
      position.set(partition, BigInt(offset) + 1n);
    },

    async refresh(deadlinesDue = true) {
      // Without a deadline due, the log ends serve the admission backlog and the next sweep's disruption check:
      // asked for once every lookEveryMs. A deadline due is acted on only after a look as of now.
      const looks = deadlinesDue || clock().getTime() - lookedAt >= lookEveryMs;
      const ends = looks ? await readToEnd() : undefined;
      const evidence: Array<string | number> = [];
      for (let partition = 0; partition < partitionCount; partition++) {
        const byEnd = ends?.partitions[partition] ? ends.asOf - allowanceMs : 0;
        const score = Math.max(byEnd, appliedThrough.get(partition) ?? 0);
        if (score > 0) evidence.push(score, String(partition));
      }
      const published = new Map(appliedThrough);
      appliedThrough.clear();
      const pipeline = redis.pipeline();
      if (evidence.length > 0) pipeline.zadd(READ_THROUGH_KEY, 'GT', ...evidence);
      pipeline.zrange(READ_THROUGH_KEY, 0, -1, 'WITHSCORES');
      const replies = await pipeline.exec().catch((error: unknown) => [[error, null] as const]);
      const [error, flat] = replies?.at(-1) ?? [];
      if (error) {
        // Kept for the next refresh: the evidence is still true.
        for (const [partition, timestampMs] of published) this.observe({ partition, offset: String((position.get(partition) ?? 1n) - 1n), timestampMs });
        throw error;
      }
      const next = Array.from({ length: partitionCount }, () => 0);
      const pairs = flat as string[];
      for (let index = 0; index + 1 < pairs.length; index += 2) {
        const partition = Number(pairs[index]);
        if (partition < partitionCount) next[partition] = Number(pairs[index + 1]);
      }
      // The backlog is judged by what was read; a disruption's hold is about answers not appended yet.
      readThrough = [...next];
      // Answers may still be on their way during and just after a disruption: those deadlines wait.
      if (hold) for (let partition = 0; partition < partitionCount; partition++) next[partition] = Math.min(next[partition] ?? 0, hold.from);
      refreshedAt = clock().getTime();
      // Unknown is not behind: while Kafka does not answer (an outage), new payments are still taken into the outbox.
      // First seen behind when this look completed: a look that waited for Redis (an outage) does not count the wait.
      // Between looks, what the last look found stands.
      if (looks) behindSince = ends ? ends.partitions.map((caughtUp, partition) => (caughtUp ? undefined : (behindSince[partition] ?? refreshedAt))) : behindSince.map(() => undefined);
      return next;
    },

    backlogMs(partition) {
      const since = behindSince[partition];
      // A Kafka disruption is not overload: while its hold lasts, the consumers are reconnecting, and new payments
      // still go into the outbox rather than being refused.
      if (since === undefined || hold) return 0;
      // Results appended while nobody could tell (an outage, before this instance's first look) count from the
      // first look that saw them: the backlog measures how long the orchestrators have stayed behind.
      const through = Math.max(readThrough[partition] ?? 0, since - allowanceMs);
      return Math.max(0, refreshedAt - through - allowanceMs);
    },
  };
}
