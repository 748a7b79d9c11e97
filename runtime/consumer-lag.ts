import type { Admin, Kafka } from 'kafkajs';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from './logger';

/** A reading younger than this is reused: several scrapers (or a test polling /metrics) cost one look-up. */
const READING_MAX_AGE_MS = 1_000;
/** A scrape never waits longer than this for the brokers; without an answer the group has no series. */
const READ_TIMEOUT_MS = 2_000;

/**
 * One partition's lag: messages in the log after the group's committed
 * offset. A group that never committed starts from the log's beginning
 * (every consumer here reads from the beginning), so all of it is lag.
 */
export function partitionLag(committed: string, low: string, high: string): number {
  const from = Number(committed) < 0 ? Number(low) : Number(committed);
  return Math.max(0, Number(high) - from);
}

interface Reading {
  group: string;
  topic: string;
  partition: number;
  lag: number;
}

interface Watched {
  groupId: string;
  topics: string[];
  admin: Admin;
  connected?: Promise<void>;
  logger: Logger;
}

export interface ConsumerLag {
  /** Reports a consumer group's lag on its topics until the returned function is called. */
  watch(options: { kafka: Kafka; groupId: string; topics: string[]; logger: Logger }): () => Promise<void>;
}

/**
 * `kafka_consumer_lag{group, topic, partition}`, read from the brokers when
 * /metrics is scraped (committed offsets against log ends, as
 * kafka-consumer-groups.sh does), so a consumer that is stuck shows a
 * growing lag even though it processes nothing. Each group is reported by
 * the processes that consume in it: with several instances, take the max.
 */
export function createConsumerLag(registry: Registry): ConsumerLag {
  const watched = new Set<Watched>();
  let last: { at: number; readings: Promise<Reading[]> } | undefined;

  const readAll = (): Promise<Reading[]> => {
    if (!last || Date.now() - last.at > READING_MAX_AGE_MS) {
      last = { at: Date.now(), readings: Promise.all([...watched].map(read)).then((all) => all.flat()) };
    }
    return last.readings;
  };

  new Gauge({
    name: 'kafka_consumer_lag',
    help: 'Messages not yet consumed (log end offset minus committed offset), by consumer group, topic and partition; read from the brokers at scrape time',
    labelNames: ['group', 'topic', 'partition'],
    registers: [registry],
    async collect() {
      const readings = await readAll();
      this.reset();
      for (const { group, topic, partition, lag } of readings) this.set({ group, topic, partition: String(partition) }, lag);
    },
  });

  return {
    watch({ kafka, groupId, topics, logger }) {
      const entry: Watched = { groupId, topics, admin: kafka.admin(), logger };
      watched.add(entry);
      return async () => {
        watched.delete(entry);
        if (entry.connected) await entry.connected.then(() => entry.admin.disconnect(), () => undefined);
      };
    },
  };
}

async function read(entry: Watched): Promise<Reading[]> {
  const { admin, groupId, topics } = entry;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
  });
  const lookUp = async (): Promise<Reading[]> => {
    entry.connected ??= admin.connect().catch((error: unknown) => {
      entry.connected = undefined;
      throw error;
    });
    await entry.connected;
    const [committed, ends] = await Promise.all([
      admin.fetchOffsets({ groupId, topics }),
      Promise.all(topics.map(async (topic) => ({ topic, partitions: await admin.fetchTopicOffsets(topic) }))),
    ]);
    const committedOf = new Map(committed.flatMap(({ topic, partitions }) => partitions.map((p) => [`${topic}:${p.partition}`, p.offset])));
    return ends.flatMap(({ topic, partitions }) =>
      partitions.map(({ partition, low, high }) => ({
        group: groupId,
        topic,
        partition,
        lag: partitionLag(committedOf.get(`${topic}:${partition}`) ?? '-1', low, high),
      })),
    );
  };
  try {
    return await Promise.race([lookUp(), timeout]);
  } catch (error) {
    entry.logger.warn({ err: error, groupId }, 'could not read consumer lag');
    return [];
  } finally {
    clearTimeout(timer);
  }
}
